"""``osc_design.summary`` of ONNX files: equal to the closed forms on the product's own exports, and to
onnx-tool's counts (after the conventions stated in osc_design.networks.onnx_summary) on the product's exports
and on models exported from third-party architectures (pytorchcv, efficientnet-pytorch) by torch.onnx.export."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from tests.backends.requested import require

require("onnxruntime")

import onnx  # noqa: E402

from osc_design import Target, compare, summary  # noqa: E402
from osc_design.backends.onnx import to_onnx  # noqa: E402
from osc_design.cost import cost  # noqa: E402

onnx_tool = pytest.importorskip("onnx_tool")


def _onnx_tool(path, shape):
    """onnx-tool's profile: its graph (nodes with .params, .macs, .outshape)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = onnx_tool.Model(str(path)).graph
        g.shape_infer({"input": np.zeros(shape, np.float32)})
        g.profile()
    return g


def _bias_adds(node) -> int:
    """What onnx-tool adds for a bias: one per output element (Conv, Gemm with a third input)."""
    return int(np.prod(node.outshape)) if node.op_type in ("Conv", "Gemm") and len(node.input) == 3 else 0


def _check_against_onnx_tool(s, g, path):
    """Per node: our MACs = onnx-tool's less bias adds for Conv/Gemm/MatMul, 0 for the others (onnx-tool counts
    element-wise work); our params = onnx-tool's less the non-float initializers and BN running statistics."""
    model = onnx.load(str(path))
    ints = {t.name for t in model.graph.initializer if t.data_type not in (onnx.TensorProto.FLOAT,)}
    stats = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    rows = {r.name: r for r in s.rows}
    for name, node in g.nodemap.items():
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            assert rows[name].macs == int(node.macs[0]) - _bias_adds(node), name
            assert rows[name].output_shape == tuple(node.outshape), name
    not_params = sum(sizes[n] for n in ints | stats)
    assert s.params == int(g.params) - not_params


def test_own_exports_equal_closed_forms_and_onnx_tool(tmp_path):
    for t in (Target(32, 32, 3, input_size=12), Target(24, 40, (3, 5), stride=(2, 1), padding=(1, 2), input_size=10)):
        for d in compare(t).designs:
            path = tmp_path / f"{d.family}.onnx"
            path.write_bytes(to_onnx(d.spec).SerializeToString())
            s = summary(path, batch=2)
            c = cost(d.spec, t.input_size)
            assert (s.params, s.macs, s.flops) == (c.total_params, 2 * c.macs, 4 * c.macs), d.family
            assert s.input_shape == (2, t.in_channels, *t.input_size)
            assert sum(r.macs for r in s.rows if r.layer == "Conv") == s.macs
            _check_against_onnx_tool(s, _onnx_tool(path, s.input_shape), path)


def _pytorchcv(module, name):
    from torch import nn

    model = getattr(importlib.import_module(f"pytorchcv.models.{module}"), name)(pretrained=False)
    for parent in model.modules():  # the fixed global pool sized for 224 inputs
        for attr, child in parent.named_children():
            if isinstance(child, nn.AvgPool2d) and min(nn.modules.utils._pair(child.kernel_size)) >= 7:
                setattr(parent, attr, nn.AdaptiveAvgPool2d(1))
    return model


THIRD_PARTY = {
    "resnet10": lambda: _pytorchcv("resnet", "resnet10"),
    "mobilenetv2_wd4": lambda: _pytorchcv("mobilenetv2", "mobilenetv2_wd4"),
    "shufflenetv2_wd2": lambda: _pytorchcv("shufflenetv2", "shufflenetv2_wd2"),  # shuffles by view/transpose
}


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_third_party_exports_equal_onnx_tool_and_torch_macs(name, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("pytorchcv")
    from osc_design.networks.summary import summary as torch_summary

    model = THIRD_PARTY[name]().eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "N"}})
    s = summary(path)
    g = _onnx_tool(path, (1, 3, 64, 64))
    _check_against_onnx_tool(s, g, path)
    assert s.params == int(g.params)  # torch's exports hold shapes as Constant nodes and fold the batch norms
    ts = torch_summary(model, (3, 64, 64))
    assert s.macs == ts.macs  # the same conventions as the PyTorch summary
    # the exporter folds each batch norm into its conv (2C params gone, a bias of C gained), and stores equal
    # folded biases (zeros, with fresh norms) once, shared through Identity: fewer params in the file
    norms = sum(r.params for r in ts.rows if r.kind == "norm")
    assert ts.params - norms < s.params < ts.params


def _osc_model(batch: int | None = None):
    """The product's ONNX export of a small design (input Nx16x8x8), its batch fixed to ``batch`` if given."""
    from osc_design import get_family

    model = to_onnx(get_family("osc").build(Target(16, 32, 3, input_size=8)))
    if batch is not None:
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    return model


def test_dimensions_the_model_fixes_are_refused_not_overridden():
    from osc_design.errors import OptionError

    free, fixed = _osc_model(), _osc_model(batch=4)
    assert summary(free, batch=3, input_size=(16, 8, 8)).input_shape == (3, 16, 8, 8)  # agreeing sizes are fine
    assert summary(fixed).input_shape == (4, 16, 8, 8)  # the default batch of 1 takes the model's own
    for model, kwargs, option, words in [
        (free, {"input_size": (16, 9, 9)}, "input_size", "which fixes 8 at dimension 2, 8 at dimension 3"),
        (free, {"input_size": (8, 8, 8)}, "input_size", "which fixes 16 at dimension 1"),
        (free, {"input_size": (16, 8)}, "input_size", "has 2 dimensions; the model's input (Nx16x8x8) has 3"),
        (fixed, {"batch": 2}, "batch", "the model's input (4x16x8x8) has a fixed batch of 4, not 2"),
        (fixed, {"batch": 0}, "batch", "batch must be a positive integer"),
    ]:
        with pytest.raises(OptionError) as caught:
            summary(model, **kwargs)
        assert caught.value.option == option and words in str(caught.value), str(caught.value)


def test_cli_names_the_option_that_contradicts_the_model(tmp_path):
    from typer.testing import CliRunner

    from osc_design.cli import app

    onnx.save(_osc_model(batch=4), str(tmp_path / "fixed.onnx"))
    path = str(tmp_path / "fixed.onnx")
    for args, hint in [(["--batch", "2"], "'--batch'"), (["-i", "16x9x9"], "'--input-size'")]:
        result = CliRunner().invoke(app, ["summary", path, *args])
        assert result.exit_code == 2 and f"Invalid value for {hint}" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    ok = CliRunner().invoke(app, ["summary", path, "-i", "16x8x8", "--batch", "4", "-f", "json"])
    assert ok.exit_code == 0 and '"input_shape": [\n    4,\n    16,\n    8,\n    8\n  ]' in ok.output
