"""The README's commands run, and the output it shows is what the CLI prints today."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def _cli():
    exe = shutil.which("osc-design")
    return [exe] if exe else [sys.executable, "-m", "osc_design"]


def _run(args, cwd):
    return subprocess.run(_cli() + args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_readme_opens_with_the_two_setup_commands():
    lang, first = BLOCKS[0]
    lines = [line.split("#")[0].strip() for line in first.strip().splitlines()]
    assert lang == "bash"
    assert lines[0] == "python3 -m pip install -e . && osc-design --channels 256 --kernel 7"
    assert lines[1] == "bash scripts/test.sh"
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_main_job_runs(tmp_path):
    result = _run(["--channels", "256", "--kernel", "7"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "osc-2" in result.stdout and "Certificate" in result.stdout


def test_readme_shows_the_real_table():
    shown = next(body for lang, body in BLOCKS if lang == "text" and body.startswith("Target conv: 256 -> 256"))
    result = _run(["--channels", "256", "--kernel", "7", "--input-size", "14"], ROOT)
    assert result.returncode == 0
    assert result.stdout.rstrip("\n") == shown.rstrip("\n")


def test_readme_export_commands_run(tmp_path):
    block = next(body for lang, body in BLOCKS if lang == "bash" and "osc-design export" in body)
    for line in block.strip().splitlines():
        args = shlex.split(line.split("#")[0])
        assert args[0] == "osc-design"
        if "--backend" in args:  # the numeric check is covered by the backend tests; keep this one fast
            args = args[: args.index("--backend")]
        result = _run(args[1:], tmp_path)
        assert result.returncode == 0, (line, result.stderr)
    assert (tmp_path / "design_torch.py").exists() and (tmp_path / "design_jax.py").exists()


@pytest.mark.parametrize("line", [
    "osc-design network resnet50 --policy osc-2",
    "osc-design network cifar-resnet20 --policy bsconv-s --option p=0.25 --option with_bn=true",
])
def test_readme_network_commands_run(line, tmp_path):
    assert line in README
    result = _run(shlex.split(line)[1:], tmp_path)
    assert result.returncode == 0, result.stderr


def test_readme_worked_example_on_a_model_outside_the_catalogue(tmp_path):
    """The "Your own models" example, as written: the model file, every command, the table it shows and
    the Python session (each ``# True`` and ``# Summary(...)`` comment is what the line gives)."""
    torch = pytest.importorskip("torch")
    source = next(body for lang, body in BLOCKS if lang == "python" and body.startswith("# tinynet.py"))
    (tmp_path / "tinynet.py").write_text(source)
    commands = next(body for lang, body in BLOCKS if lang == "bash" and "--model tinynet.py:make" in body)
    for line in commands.strip().splitlines():
        result = _run(shlex.split(line.split("#")[0])[1:], tmp_path)
        assert result.returncode == 0, (line, result.stderr)
    for name in ("tinynet.json", "plan.json", "tinynet.pt2", "tinynet.onnx"):
        assert (tmp_path / name).stat().st_size > 0
    shown = next(body for lang, body in BLOCKS if lang == "text" and body.startswith("layer   target"))
    table = _run(["network", "--model", "tinynet.py:make", "--input-size", "3x64x64", "--policy", "osc-2"],
                 tmp_path).stdout
    assert table.startswith(shown.rstrip("\n"))
    session = next(body for lang, body in BLOCKS if lang == "python" and "od.load_plan" in body)
    namespace: dict = {}
    sys.modules.pop("tinynet", None)  # the README's file, not one another test imported under that name
    sys.path.insert(0, str(tmp_path))
    try:
        import os

        cwd = os.getcwd()
        os.chdir(tmp_path)
        for line in session.strip().splitlines():
            code, _, comment = line.partition("#")
            comment = comment.strip()
            if comment == "True" or comment.startswith("Summary("):
                value = eval(code, namespace)  # the README's own line, an expression
                assert (value is True) if comment == "True" else repr(value) == comment, line
            else:
                exec(code, namespace)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tinynet", None)
    assert isinstance(namespace["converted"], torch.nn.Module)
