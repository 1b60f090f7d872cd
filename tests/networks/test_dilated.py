"""Dilated targets: a dilated conv is planned on its dilated window, saved, loaded back and converted.

The footprint is checked independently of the coverage verifier: autograd tells which input pixels one
output pixel of the torch module reads (random weights, every path non-zero), and that set must be the
dilated window's taps, no more, no fewer. The small model is plain ``nn.Sequential``, so it scripts:
its converted model must script too.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from osc_design import Target  # noqa: E402
from osc_design.backends import torch as tb  # noqa: E402
from osc_design.coverage import coverage  # noqa: E402
from osc_design.networks.convert import convert  # noqa: E402
from osc_design.networks.extract import extract_network  # noqa: E402
from osc_design.networks.plan import dilate, layer_target, load_plan, plan_network, save_plan  # noqa: E402
from osc_design.registry import get_family  # noqa: E402


def _read_offsets(module: nn.Module, channels: int, size: int) -> set[tuple[int, int]]:
    """Offsets (dy, dx) from the centre of the input pixels that output pixel (c, c) reads (c = size // 2)."""
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.uniform_(p, 0.5, 1.5)  # positive weights: no cancellation hides a read
    x = torch.zeros(1, channels, size, size, requires_grad=True)
    c = size // 2
    module(x)[0, :, c, c].sum().backward()
    ys, xs = torch.nonzero(x.grad[0].abs().sum(0)).unbind(1)
    return {(int(y) - c, int(w) - c) for y, w in zip(ys, xs, strict=True)}


@pytest.mark.parametrize(("kernel", "dilation"), [(3, (2, 2)), (5, (3, 3)), ((3, 5), (2, 4))])
@pytest.mark.parametrize("family", ["osc", "osc-2"])
def test_a_dilated_design_reads_exactly_the_dilated_window(family, kernel, dilation):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = tuple(d * (kk // 2) for kk, d in zip(k, dilation, strict=True))
    target = Target(8, 8, k, padding=padding, input_size=33, dilation=dilation)
    undilated = get_family(family).design(Target(8, 8, k, input_size=33)).spec
    spec = dilate(undilated, target)
    assert coverage(spec).full and spec.options_dict["dilated_by"] == list(dilation)
    window = {(dilation[0] * ty - padding[0], dilation[1] * tx - padding[1])
              for ty in range(k[0]) for tx in range(k[1])}
    assert _read_offsets(tb.build_module(spec), 8, 33) == window
    reference = nn.Conv2d(8, 8, k, padding=padding, dilation=dilation, bias=False)
    assert _read_offsets(reference, 8, 33) == window  # the window itself, as torch dilates
    assert tuple(tb.build_module(spec)(torch.zeros(1, 8, 33, 33)).shape) == (1, 8, 33, 33)


def test_an_undilated_design_misses_the_dilated_window():
    spec = get_family("osc").design(Target(8, 8, 3, input_size=16)).spec
    wide = Target(8, 8, 3, padding=2, input_size=16, dilation=2)
    from osc_design.spec import LayerSpec

    padded = LayerSpec(wide.with_input_size(None), spec.nodes, spec.output, spec.family)
    assert coverage(padded).fraction == pytest.approx(1 / 9)  # only the centre tap of the dilated window


class Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False),
            nn.Conv2d(16, 16, 3, padding=2, dilation=2, bias=False),
            nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=4, dilation=4, groups=2, bias=True),
            nn.Conv2d(32, 32, (3, 5), padding=(3, 6), dilation=3, bias=False),  # padding 6 in x: 2 x dilation
            nn.Conv2d(32, 32, 3, padding=3, dilation=2, bias=False),  # padding not a multiple: kept
            nn.Conv2d(32, 32, 3, padding="same", dilation=2, bias=False),
        )

    def forward(self, x):
        return self.body(x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:The TorchScript type system:UserWarning")
def test_dilated_layers_plan_save_load_convert_and_script(tmp_path):
    torch.manual_seed(0)
    model = Dilated().eval()
    layers = extract_network(model, (3, 24, 24)).layers
    plan = plan_network(layers, "osc-2", network="dilated")
    by_name = {lp.layer.name: lp for lp in plan.layers}
    for name in ("body.1", "body.4", "body.5", "body.7"):
        lp = by_name[name]
        assert lp.replaced and lp.chosen.coverage == 1.0, name
        assert lp.chosen.spec.target.dilation == lp.layer.dilation, name
        searched = layer_target(lp.layer)
        assert f"designed for the undilated target {searched.describe()}" in lp.reason
        assert f"dilation times {lp.layer.dilation[0]}" in lp.reason
    assert layer_target(by_name["body.5"].layer).padding == (1, 2)
    assert not by_name["body.6"].replaced and "not a multiple of the dilation" in by_name["body.6"].reason
    path = tmp_path / "plan.json"
    save_plan(path, plan)
    assert '"dilation": [\n' in path.read_text() and '"dilated_by"' in path.read_text()
    loaded = load_plan(path)
    assert loaded == plan
    converted = convert(model, loaded, weights="random").eval()
    with torch.no_grad():
        for size in (24, 19):  # the per-layer shape rule at the planned size and another one
            x = torch.randn(2, 3, size, size)
            h = x
            for old, new in zip(model.body, converted.body, strict=True):
                assert new(h).shape == old(h).shape
                h = old(h)
        scripted = torch.jit.script(converted)
        torch.testing.assert_close(scripted(x), converted(x))
    assert sum(p.numel() for p in converted.parameters()) == (
        sum(p.numel() for p in model.parameters()) - plan.total("before", "total_params")
        + plan.total("after", "total_params"))


@pytest.mark.parametrize("family", ["osc-2", "depthwise-separable"])
def test_verify_passes_on_a_dilated_design_on_every_backend(family):
    from osc_design.backends import available_backends, verify

    target = Target(8, 8, 5, padding=4, input_size=16, dilation=2)
    spec = dilate(get_family(family).build(Target(8, 8, 5, input_size=16)), target)
    for backend in available_backends():
        report = verify(spec, backend)
        assert report.ok, str(report)
