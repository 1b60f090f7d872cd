"""``network --convert`` / ``--export-onnx``: the converted model written to files that load without osc-design
and compute what ``od.convert`` computes in Python."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from osc_design.cli import app  # noqa: E402

MODEL = """
import torch
from torch import nn

def make():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 5, padding=2, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
"""

# a fresh interpreter that cannot import osc_design (nor the model's file): what a deployment has
LOAD = textwrap.dedent("""
    import sys
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("osc_design", "cliconvnet"):
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Refuse())
    import numpy as np, torch
    x = torch.from_numpy(np.load(sys.argv[2]))
    with torch.no_grad():
        y = torch.export.load(sys.argv[1]).module()(x)
    np.save(sys.argv[3], y.numpy())
""")


def _run(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("weights", ["project", "random"])
def test_convert_and_export_onnx_write_the_converted_model(tmp_path, monkeypatch, weights):
    import onnxruntime

    import osc_design as od

    (tmp_path / "cliconvnet.py").write_text(MODEL)
    result = _run(["network", "--model", "cliconvnet.py:make", "--input-size", "3x32x32", "--policy", "osc-2",
                   "--convert", "tiny.pt2", "--export-onnx", "tiny.onnx", "--weights", weights, "-f", "json",
                   "-o", "plan.json"], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert f"3 of 3 convs replaced, weights {weights}" in result.output
    assert ("relative error" in result.output) == (weights == "project")
    sys.path.insert(0, str(tmp_path))
    try:
        from cliconvnet import make
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("cliconvnet", None)
    model = make().eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", LOAD, "tiny.pt2", "x.npy", "y.npy"], cwd=tmp_path, check=True,
                   env={"PATH": "/usr/bin:/bin"})
    loaded = np.load(tmp_path / "y.npy")
    onnx_out = onnxruntime.InferenceSession(str(tmp_path / "tiny.onnx")).run(None, {"input": x})[0]
    assert loaded.shape == onnx_out.shape == (3, 10)
    np.testing.assert_allclose(onnx_out, loaded, rtol=1e-4, atol=1e-5)
    if weights == "project":  # deterministic: the same conversion in Python gives the same logits
        converted = od.convert(model, od.load_plan(tmp_path / "plan.json")).eval()
        with torch.no_grad():
            np.testing.assert_allclose(converted(torch.from_numpy(x)).numpy(), loaded, rtol=1e-4, atol=1e-5)


def test_conversion_options_are_checked_first(tmp_path, monkeypatch):
    (tmp_path / "cliconvnet.py").write_text(MODEL)
    cases = [
        (["network", "resnet18", "--weights", "random"], "'--weights'"),
        (["network", "--from", "nothing.json", "--convert", "x.pt2"], "'--convert'"),
        (["network", "--model", "cliconvnet.py:make", "--export-onnx", str(tmp_path / "no" / "x.onnx")],
         "'--export-onnx'"),
    ]
    for args, flag in cases:
        result = _run(args, tmp_path, monkeypatch)
        assert result.exit_code == 2 and flag in result.output, (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cliconvnet.py"]  # nothing written


PINNED = """
import torch
from torch import nn

class Pinned(nn.Module):
    def __init__(self, free):
        super().__init__()
        self.free = free
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        y = self.c2(self.c1(x))
        return self.fc(y.reshape(x.shape[0], -1) if self.free else y.view(1, -1))

def free():
    torch.manual_seed(0)
    return Pinned(True)

def one():
    torch.manual_seed(0)
    return Pinned(False)
"""


@pytest.mark.parametrize("make", ["free", "one"])
def test_the_exports_keep_the_batch_free_where_the_model_does(tmp_path, monkeypatch, make):
    import onnxruntime

    (tmp_path / "pinnednet.py").write_text(PINNED)
    result = _run(["network", "--model", f"pinnednet.py:{make}", "--input-size", "3x8x8", "--policy", "osc-2",
                   "--convert", "m.pt2", "--export-onnx", "m.onnx"], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    fixed = "fixes its batch size: exported at batch 1" in result.output
    assert fixed == (make == "one")
    batch = 1 if fixed else 5  # osc-2's shuffles must not pin the ONNX graph's batch
    out = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(
        None, {"input": np.zeros((batch, 3, 8, 8), np.float32)})[0]
    assert out.shape == (batch, 10)
    assert "Traceback" not in result.output and "E1201" not in result.output


def test_a_catalogue_network_converts_from_a_fresh_init_by_default(tmp_path, monkeypatch):
    """A catalogue model is built with fresh weights: nothing is projected unless asked."""
    result = _run(["network", "cifar-resnet20", "--policy", "bsconv-u", "--convert", "m.pt2"], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "weights random" in result.output and "relative error" not in result.output
    assert (tmp_path / "m.pt2").stat().st_size > 0
