"""Bad input on the command line: one line on stderr naming the option and value, the right exit code."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from osc_design.cli import app

runner = CliRunner()


def _run(args):
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--channels", "0", "--kernel", "3"], 2, "Invalid value for '--channels' / '-c': 0 is not allowed"),
        (["--channels", "-4", "--kernel", "3"], 2, "-4 is not allowed"),
        (["--channels", "8", "--kernel", "0"], 2, "Invalid value for '--kernel': '0' is not a size"),
        (["--channels", "8", "--kernel", "7x"], 2, "Invalid value for '--kernel': '7x' is not a size"),
        (["--channels", "8", "--kernel", "abc"], 2, "Invalid value for '--kernel': 'abc' is not a size"),
        (["--channels", "8", "--kernel", "3", "--stride", "4"], 2,
         "Invalid value for '--stride': '4' is larger than the kernel 3x3"),
        (["--channels", "8", "--kernel", "3", "--input-size", "0"], 2,
         "Invalid value for '--input-size': '0' is not a size"),
        (["--channels", "abc", "--kernel", "3"], 2, "Invalid value for '--channels'"),
        (["--kernel", "3"], 2, "give --channels, or both --in-channels and --out-channels"),
        (["--channels", "8"], 2, "a kernel size is required"),
        (["--channels", "8", "--kernel", "3", "--format", "xml"], 2, "Invalid value for '--format'"),
        (["--channels", "8", "--kernel", "3", "--bogus"], 2, "No such option: --bogus"),
        (["--channels", "8", "--kernel", "3", "--output", "/nonexistent-dir/x.txt"], 2,
         "Invalid value for '--output': '/nonexistent-dir/x.txt' is not a writable file path"),
        (["compare", "--channels", "0", "--kernel", "3"], 2, "0 is not allowed"),
        (["solve", "--channels", "8", "--kernel", "3x3x3"], 2, "'3x3x3' is not a size"),
        (["--channels", "8", "--kernel", "3", "--objective", "latency"], 2, "--objective latency needs --backend"),
        (["--channels", "8", "--kernel", "3", "--measure"], 2, "--measure needs --backend torch or jax"),
        (["--channels", "8", "--kernel", "3", "--refine", "2"], 2, "--refine 2 needs --objective latency"),
        (["compare", "--channels", "8", "--kernel", "3", "--objective", "latency", "--backend", "torch", "--refine",
          "-1"], 2, "Invalid value for '--refine': -1 is not allowed"),
        (["--channels", "8", "--kernel", "3", "--backend", "tf"], 2, "Invalid value for '--backend'"),
        (["calibrate", "--batch", "0"], 2, "0 is not allowed"),
        (["network"], 2, "give a catalogue network name or --from FILE"),
        (["network", "resnet18", "--budget-params", "2"], 2, "2.0 is not a fraction in (0, 1]"),
        (["network", "resnet18", "--option", "p"], 2, "'p' is not KEY=VALUE"),
        (["network", "resnet18", "--objective", "latency"], 2, "--objective latency needs --backend torch or jax"),
        (["network", "resnet18", "--budget-latency", "0.5"], 2, "--budget-latency needs --backend torch or jax"),
        (["network", "resnet18", "--budget-latency", "0"], 2, "0.0 is not a fraction in (0, 1]"),
        (["network", "resnet18", "--budget-params", "0.5", "--budget-macs", "0.5"], 2, "give at most one of"),
        (["network", "resnet18", "--budget-latency", "0.5", "--objective", "latency", "--backend", "torch"], 2,
         "--budget-latency caps latency while params are minimised: drop --objective latency"),
        (["verify", "/nonexistent.json"], 2, "is not a readable file"),
        (["export", "/nonexistent.json", "--to", "onnx"], 2, "Invalid value for '--to'"),
        (["plot", "scaling", "--output", "x.pdf"], 2, "must end in .png or .svg"),
    ],
)
def test_bad_input(args, code, message):
    exit_code, out, err = _run(args)
    assert exit_code == code
    assert err.startswith("Error: ") and message in err
    assert err.count("\n") == 1  # one line
    assert "Traceback" not in out + err


def test_output_is_not_written_on_error(tmp_path):
    target = tmp_path / "out.json"
    exit_code, _, _ = _run(["--channels", "8", "--kernel", "7x", "--output", str(target)])
    assert exit_code == 2 and not target.exists()


def test_version_and_help():
    code, out, _ = _run(["--version"])
    assert code == 0 and out.startswith("osc-design ")
    code, out, _ = _run([])
    assert code == 0 and "--channels" in out and "Example" in out


@pytest.mark.parametrize("command", ["compare", "solve", "verify", "export", "sweep", "network", "plot", "calibrate"])
def test_every_command_has_help_with_an_example(command):
    code, out, _ = _run([command, "--help"])
    assert code == 0 and "Example" in out


def test_help_lists_exit_codes():
    _, out, _ = _run(["--help"])
    assert "Exit codes" in out
    json.dumps(out)  # printable
