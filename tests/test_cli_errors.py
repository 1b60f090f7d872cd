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
        (["--channels", "8", "--kernel", "3", "--objective", "latency"], 2,
         "--objective latency needs --backend torch, jax or onnxruntime"),
        (["--channels", "8", "--kernel", "3", "--measure"], 2, "--measure needs --backend torch, jax or onnxruntime"),
        (["--channels", "8", "--kernel", "3", "--refine", "2"], 2, "--refine 2 needs --objective latency"),
        (["compare", "--channels", "8", "--kernel", "3", "--objective", "latency", "--backend", "torch", "--refine",
          "-1"], 2, "Invalid value for '--refine': -1 is not allowed"),
        (["--channels", "8", "--kernel", "3", "--backend", "tf"], 2, "Invalid value for '--backend'"),
        (["calibrate", "--batch", "0"], 2, "0 is not allowed"),
        (["network"], 2, "give a catalogue network name or --from FILE"),
        (["network", "resnet18", "--budget-params", "2"], 2, "2.0 is not a fraction in (0, 1]"),
        (["network", "resnet18", "--option", "p"], 2, "'p' is not KEY=VALUE"),
        (["network", "resnet18", "--objective", "latency"], 2,
         "--objective latency needs --backend torch, jax or onnxruntime"),
        (["network", "resnet18", "--budget-latency", "0.5"], 2,
         "--budget-latency needs --backend torch, jax or onnxruntime"),
        (["network", "resnet18", "--budget-latency", "0"], 2, "0.0 is not a fraction in (0, 1]"),
        (["network", "resnet18", "--budget-params", "0.5", "--budget-macs", "0.5"], 2, "give at most one of"),
        (["network", "resnet18", "--budget-latency", "0.5", "--objective", "latency", "--backend", "torch"], 2,
         "--budget-latency caps latency while params are minimised: drop --objective latency"),
        (["verify", "/nonexistent.json"], 2, "is not a readable file"),
        (["export", "/nonexistent.json", "--to", "tf"], 2, "Invalid value for '--to'"),
        (["export", "/nonexistent.json", "--to", "onnx"], 2, "is not a readable file"),
        (["plot", "scaling", "--output", "x.pdf"], 2, "must end in .png or .svg"),
    ],
)
def test_bad_input(args, code, message):
    exit_code, out, err = _run(args)
    assert exit_code == code
    assert err.startswith("Error: ") and message in err
    assert err.count("\n") == 1  # one line
    assert "Traceback" not in out + err


def test_onnx_export_refuses_a_missing_output_before_projecting(tmp_path, monkeypatch):
    np = pytest.importorskip("numpy")
    from osc_design import Target, get_family, save
    from osc_design.weights import files

    def fail(*args, **kwargs):
        raise AssertionError("projected before the missing --output was refused")

    monkeypatch.setattr(files, "project", fail)
    save(get_family("osc-2").build(Target(8, 8, 3)), tmp_path / "d.json")
    np.save(tmp_path / "w.npy", np.ones((8, 8, 3, 3)))
    exit_code, out, err = _run(["export", str(tmp_path / "d.json"), "--to", "onnx",
                                "--weights", str(tmp_path / "w.npy")])
    assert exit_code == 2 and err.startswith("Error: Invalid value for '--output'") and err.count("\n") == 1
    assert "projection" not in out + err


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


def _gpu_seen() -> bool:
    torch = pytest.importorskip("torch")
    return bool(torch.cuda.is_available())


@pytest.fixture
def bad_files(tmp_path):
    """A file that does not parse and one that parses but does not validate."""
    (tmp_path / "broken.json").write_text("{bad")
    (tmp_path / "invalid.json").write_text('{"format": "osc-design.layer"}')
    return tmp_path


# issue 14 item 3: 2 for anything the user gave that is invalid, the same for every command
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["solve", "-c", "256", "-k", "7", "--objective", "latency"], "solve has no latency model"),
        (["verify", "{d}/broken.json"], "invalid JSON"),
        (["verify", "{d}/invalid.json"], "unknown layer-spec version"),
        (["export", "{d}/broken.json"], "invalid JSON"),
        (["export", "{d}/invalid.json"], "unknown layer-spec version"),
        (["sweep", "-c", "32", "-k", "3", "--families", "osc,bogus"], "'bogus' is not a family"),
        (["network", "resnet18", "--policy", "nope"], "Invalid value for '--policy': 'nope' is not a family"),
        (["network", "--from", "{d}/broken.json"], "invalid JSON"),
        (["network", "cifar-resnet20", "--policy", "bsconv-s", "--option", "p=abc"],
         "Invalid value for '--option': bsconv-s: option `p` (='abc') must be a number"),
        (["network", "cifar-resnet20", "--policy", "bsconv-s", "--option", "q=1"],
         "bsconv-s: unknown option `q` (=1)"),
        (["network", "cifar-resnet20", "--policy", "bsconv-s", "--option", "with_bn=maybe"],
         "option `with_bn` (='maybe') must be true or false"),
        (["network", "cifar-resnet20", "--policy", "bsconv-s", "--option", "p=5"],
         "`p` (=5) must be in (0, 1] (no layer could use it)"),
        (["network", "resnet18", "--policy", "any", "--option", "p=0.5"], "--policy any takes no family options"),
        (["plot", "scaling", "-i", "14x20", "-o", "{d}/s.png"], "'14x20': the scaling plot takes a square size"),
        (["plot", "pareto", "-o", "{d}/p.png"], "give --channels (C_in = C_out) for the pareto plot"),
        (["--square-only", "true", "-c", "8", "-k", "3"], "--square-only is an on/off flag and takes no value"),
        (["compare", "-c", "8", "-k", "3", "--dilation", "false"], "--dilation is an on/off flag"),
    ],
)
def test_invalid_input_exits_2(bad_files, args, message):
    exit_code, out, err = _run([a.format(d=bad_files) for a in args])
    assert exit_code == 2, err
    assert err.startswith("Error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in out + err and "--in-channels" not in err


@pytest.mark.parametrize("command", [["-c", "8", "-k", "3", "--backend", "torch"],
                                     ["compare", "-c", "8", "-k", "3", "--backend", "torch"],
                                     ["network", "cifar-resnet20", "--backend", "torch"],
                                     ["calibrate", "--backend", "torch"],
                                     ["plot", "pareto", "-c", "8", "-k", "3", "-o", "p.png", "--backend", "torch"]])
def test_unavailable_device_exits_2(command, tmp_path, monkeypatch):
    if _gpu_seen():
        pytest.skip("this machine has a GPU")
    monkeypatch.chdir(tmp_path)
    exit_code, _, err = _run([*command, "--device", "cuda"])
    assert exit_code == 2 and "Invalid value for '--device': 'cuda' is not available" in err
    assert not list(tmp_path.iterdir())


def test_valid_input_without_a_design_exits_1():
    exit_code, _, err = _run(["network", "cifar-resnet20", "--policy", "bsconv-u", "--budget-params", "0.01"])
    assert exit_code == 1 and "below the smallest achievable" in err and err.count("\n") == 1


def test_help_states_the_exit_code_policy():
    _, out, _ = _run(["--help"])
    text = " ".join(out.replace("│", " ").split())
    assert "Exit codes: 0 ok; 2 invalid input (arguments, option values, files that do not parse or validate, " \
           "an unavailable backend or device); 1 valid input without a valid design, or a failed check." in text


# issue 14 item 6: help and messages
def test_help_keeps_bracketed_defaults_and_flags_have_no_metavar():
    _, out, _ = _run(["--help"])
    text = " ".join(out.replace("│", " ").split())
    assert "[default: 56]" in text and "[default: free]" in text
    line = next(x for x in out.splitlines() if "--square-only" in x)
    assert "<bool>" not in line
    _, out, _ = _run(["sweep", "--help"])
    assert "[default: all]" in " ".join(out.replace("│", " ").split())


def test_validator_prefix_is_stripped(capsys):
    from osc_design.cli._app import _fail

    assert _fail("Value error, `p` (=2) must be in (0, 1]", 2) == 2
    assert capsys.readouterr().err == "Error: `p` (=2) must be in (0, 1]\n"


def test_root_options_before_a_subcommand_are_refused(tmp_path):
    out = tmp_path / "x.txt"
    code, _, err = _run(["-c", "64", "-k", "3", "-o", str(out), "solve", "-c", "32", "-k", "3"])
    assert code == 2 and "options go after the command" in err and err.count("\n") == 1
    assert not out.exists()


def test_verify_input_size_and_export_class_name_are_usage_errors(tmp_path):
    spec = tmp_path / "s.json"
    assert _run(["solve", "-c", "16", "-k", "3", "-i", "14", "-f", "json", "-o", str(spec)])[0] == 0
    code, _, err = _run(["verify", str(spec), "--input-size", "20"])
    assert code == 2 and "'--input-size'" in err and "differs from the target's input size" in err
    code, _, err = _run(["export", str(spec), "--class-name", "bad name"])
    assert code == 2 and "'--class-name'" in err and "'bad name'" in err


def test_a_bug_still_ends_in_one_line(monkeypatch):
    import importlib

    def broken(*args, **kwargs):
        raise TypeError("simulated bug")

    monkeypatch.setattr(importlib.import_module("osc_design.compare"), "compare", broken)
    code, _, err = _run(["-c", "8", "-k", "3"])
    assert code == 1 and err == "Error: internal error (TypeError: simulated bug); please report it with the " \
                                "command line\n"


def test_device_check_with_a_missing_framework_exits_2(monkeypatch):
    import osc_design.backends
    from osc_design.errors import BackendUnavailableError

    def missing(name):
        raise BackendUnavailableError(f"the {name} backend needs torch: pip install torch")

    monkeypatch.setattr(osc_design.backends, "get_backend", missing)
    code, _, err = _run(["-c", "8", "-k", "3", "--backend", "torch", "--device", "cuda"])
    assert code == 2 and "needs torch" in err and err.count("\n") == 1
