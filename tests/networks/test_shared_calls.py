"""A conv module the forward pass calls several times (weight sharing): one layer, its params counted once
and its MACs at every call, checked against FlopCounterMode and fvcore on the original and converted models."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import osc_design as od  # noqa: E402
from osc_design.cli import app  # noqa: E402
from osc_design.errors import SchemaError  # noqa: E402
from osc_design.networks.catalog import ConvLayer  # noqa: E402
from osc_design.networks.convert import convert  # noqa: E402
from osc_design.networks.description import layers_from_dict, layers_to_dict  # noqa: E402
from osc_design.networks.extract import extract_convs  # noqa: E402
from osc_design.networks.plan import plan_from_dict, plan_network  # noqa: E402

MODELS = '''
import torch
from torch import nn


class Twice(nn.Module):
    """A refinement conv applied twice at the same size."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.refine = nn.Conv2d(16, 16, 3, padding=1)

    def forward(self, x):
        x = self.stem(x)
        return self.refine(torch.relu(self.refine(x)))


class TwoSizes(nn.Module):
    """One strided conv on x and on a 2x downsampled x (an odd size), reached under two names."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 1)
        self.shared = nn.Conv2d(16, 16, 5, stride=2, padding=2, bias=False)
        self.alias = self.shared

    def forward(self, x):
        x = self.stem(x)
        a = self.shared(x)
        b = self.alias(nn.functional.avg_pool2d(x, 2))
        return a.mean(dim=(2, 3)) + b.mean(dim=(2, 3))
'''
SIZE = (3, 30, 30)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import importlib.util

    path = tmp_path_factory.mktemp("shared") / "sharednets.py"
    path.write_text(MODELS)
    spec = importlib.util.spec_from_file_location("sharednets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def _conv_macs(model, x):
    """FlopCounterMode's convolution FLOPs / 2, and the output."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = model(x)
    return counter.get_flop_counts()["Global"].get(torch.ops.aten.convolution, 0) // 2, y


@pytest.mark.parametrize("name,calls", [("Twice", ((30, 30), (30, 30))), ("TwoSizes", ((30, 30), (15, 15)))])
def test_every_call_counted_before_and_after_conversion(models, name, calls):
    model = getattr(models[0], name)()
    layers = extract_convs(model, SIZE)
    assert [layer.calls for layer in layers] == [1, 2] and layers[1].input_sizes == calls
    plan = plan_network(layers, "osc-2")
    assert plan.layers[1].replaced
    x = torch.randn(2, *SIZE)
    before, y0 = _conv_macs(model, x)
    converted = convert(model, plan, weights="random")
    after, y1 = _conv_macs(converted, x)
    assert y1.shape == y0.shape
    assert before == 2 * plan.total("before", "macs")  # batch 2
    assert after == 2 * plan.total("after", "macs")
    shared_once = sum(p.numel() for p in model.parameters())  # an alias's parameters count once
    assert plan.total("before", "total_params") == shared_once
    assert plan.total("after", "total_params") == sum(p.numel() for p in converted.parameters())
    fresh = convert(model, plan, weights="random")  # the state dict round trip
    fresh.load_state_dict(converted.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), converted(x))


def test_plan_counts_agree_with_fvcore_and_summary(models):
    import warnings

    with warnings.catch_warnings():  # fvcore's imports use torch.jit.script, deprecated in torch 2.10+
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore import nn as fvcore_nn
    model = models[0].TwoSizes().eval()
    plan = plan_network(extract_convs(model, SIZE), "osc")
    flops = fvcore_nn.FlopCountAnalysis(model, torch.zeros(1, *SIZE))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    assert flops.by_operator()["conv"] == plan.total("before", "macs")
    s = od.summary(model, SIZE)
    assert s.macs_by_kind["conv"] == plan.total("before", "macs")
    assert [r.calls for r in s.rows if r.kind == "conv"] == [lp.layer.calls for lp in plan.layers]


def test_plan_and_description_documents_round_trip(models):
    model = models[0].TwoSizes()
    layers = extract_convs(model, SIZE)
    doc = layers_to_dict("TwoSizes", layers)
    assert doc["layers"][1]["later_input_sizes"] == [[15, 15]] and "later_input_sizes" not in doc["layers"][0]
    assert layers_from_dict(json.loads(json.dumps(doc)))[1] == layers
    plan = plan_network(layers, "osc-2", network="TwoSizes")
    saved = json.loads(json.dumps(plan.to_dict()))
    assert [lp["calls"] for lp in saved["layers"]] == [1, 2]
    assert saved["layers"][1]["target"]["later_input_sizes"] == [[15, 15]]
    assert plan_from_dict(saved) == plan
    saved["layers"][1]["calls"] = 3
    with pytest.raises(SchemaError, match=r"layers\[1\]\.calls"):
        plan_from_dict(saved)
    saved["layers"][1]["target"]["later_input_sizes"] = [[15, 15], [7, 7]]  # a call the costs did not count
    with pytest.raises(SchemaError, match=r"layers\[1\]\.before\..*is not the layer.s cost"):
        plan_from_dict(saved)


def _branches(target, **_):
    """A test family whose two depthwise branches (3x3 and 2x2 windows, stride 2) agree in size at even input
    sizes only: at an odd size they cannot be added."""
    from osc_design.spec import GraphBuilder

    b, c = GraphBuilder(target), target.out_channels
    wide = b.conv2d(b.input, c, 3, stride=2, padding=1, groups=c)
    small = b.conv2d(b.input, c, 2, stride=2, groups=c)
    return b.build(b.add([wide, small]), family="branches")


def test_a_design_that_cannot_serve_a_later_call_keeps_the_conv(monkeypatch):
    from osc_design import registry

    family = registry.Family("branches", "two branches", _branches, lambda t: 0, lambda t: 0, "C^2")
    monkeypatch.setitem(registry._REGISTRY, "branches", family)
    even = ConvLayer("even", 8, 8, (3, 3), (2, 2), (1, 1), 1, False, (16, 16), later_input_sizes=((8, 8),))
    odd = ConvLayer("odd", 8, 8, (3, 3), (2, 2), (1, 1), 1, False, (16, 16), later_input_sizes=((8, 8), (15, 15)))
    plan = plan_network([even, odd], "branches")
    assert [lp.replaced for lp in plan.layers] == [True, False]
    assert "call 3 of the module" in plan.layers[1].reason and "15x15" in plan.layers[1].reason
    assert plan.layers[1].before.macs == 64 * 9 * (64 + 16 + 64)  # out 8x8, 4x4, 8x8: every call counted


def test_cli_table_and_json_show_the_calls(models, tmp_path, monkeypatch):
    monkeypatch.chdir(models[1].parent)
    runner = CliRunner()
    table = runner.invoke(app, ["network", "--model", "sharednets.py:TwoSizes", "--input-size", "3x30x30",
                                "--policy", "osc-2"])
    assert table.exit_code == 0, table.output
    assert "@30x30,15x15 x2" in table.output
    result = runner.invoke(app, ["network", "--model", "sharednets.py:Twice", "--input-size", "3x30x30",
                                 "--policy", "osc-2", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [layer["calls"] for layer in doc["layers"]] == [1, 2]
    path = tmp_path / "plan.json"
    path.write_text(result.output)
    assert od.load_plan(path).total("before", "macs") == doc["totals"]["macs"]["before"]
