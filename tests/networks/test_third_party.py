"""Faithful extraction and conversion on model code no one here wrote: efficientnet-pytorch and pytorchcv.

For every architecture and both policies ``osc-2`` and ``osc``: every ``nn.Conv2d`` is extracted with
the input and output shapes torch gives it (or kept with a reason), the converted model runs, every
replaced module maps the same input shape to the same output shape as the module it replaces, kept
modules are the same class with the same state, the parameter count is the plan's, and
``FlopCounterMode``'s convolution FLOPs are twice the plan's MACs.

Inputs are 64x64, batch 1. pytorchcv's classifiers end in a fixed ``AvgPool2d`` (7x7; Xception's
10x10, DRN's 28x28) sized for 224/299 inputs; it is swapped for the equivalent ``AdaptiveAvgPool2d(1)`` (no
convolution is touched) so the small input runs. Random weights, no downloads (``pretrained=False``).
"""

from __future__ import annotations

import importlib

import pytest

torch = pytest.importorskip("torch")
try:  # with torch present these are required: scripts/test.sh installs them (pytorchcv without its deps)
    import efficientnet_pytorch  # noqa: F401
    import pytorchcv  # noqa: F401
except ImportError as error:  # pragma: no cover - fail loudly, never skip
    raise ImportError("tests/networks/test_third_party.py needs `pip install --no-deps pytorchcv "
                      "efficientnet-pytorch` (scripts/test.sh does it)") from error

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from osc_design.networks.convert import convert  # noqa: E402
from osc_design.networks.extract import extract_network  # noqa: E402
from osc_design.networks.plan import plan_network  # noqa: E402

SIZE = 64


def _pytorchcv(module: str, name: str):
    def build() -> nn.Module:
        model = getattr(importlib.import_module(f"pytorchcv.models.{module}"), name)(pretrained=False)
        for parent in model.modules():  # the fixed global pool sized for 224 (299) inputs
            for attr, child in parent.named_children():
                if isinstance(child, nn.AvgPool2d) and min(nn.modules.utils._pair(child.kernel_size)) >= 7:
                    setattr(parent, attr, nn.AdaptiveAvgPool2d(1))
        return model

    return build


def _efficientnet(image_size: int | None):
    def build() -> nn.Module:
        from efficientnet_pytorch import EfficientNet

        # image_size given: Conv2dStaticSamePadding (ZeroPad2d for that size); None: Conv2dDynamicSamePadding
        return EfficientNet.from_name("efficientnet-b0", image_size=image_size)

    return build


MODELS = {
    "resnet10": _pytorchcv("resnet", "resnet10"),
    "resnext14_16x4d": _pytorchcv("resnext", "resnext14_16x4d"),  # grouped 3x3 convs
    "mobilenetv2_wd4": _pytorchcv("mobilenetv2", "mobilenetv2_wd4"),
    "mobilenetv3_small_w7d20": _pytorchcv("mobilenetv3", "mobilenetv3_small_w7d20"),
    "shufflenetv2_wd2": _pytorchcv("shufflenetv2", "shufflenetv2_wd2"),
    "xception": _pytorchcv("xception", "xception"),
    "drnc26": _pytorchcv("drn", "drnc26"),  # dilated
    "igcv3_wd4": _pytorchcv("igcv3", "igcv3_wd4"),  # grouped 1x1 convs
    "efficientnet_b0b": _pytorchcv("efficientnet", "efficientnet_b0b"),  # TF padding by F.pad outside the convs
    "efficientnet-b0-static": _efficientnet(SIZE),
    "efficientnet-b0-dynamic": _efficientnet(None),
}

_CACHE: dict[str, tuple] = {}


def _first_shapes(model: nn.Module, names, x, count_flops: bool = False):
    """Run ``model`` on ``x``; (input, output) shapes of each named module's first call, and the conv FLOPs."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple] = {}

    def hook(name):
        def record(module, args, output):
            shapes.setdefault(name, (tuple(args[0].shape), tuple(output.shape)))

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            y = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes, counter.get_flop_counts()["Global"].get(torch.ops.aten.convolution, 0), y


def _original(name: str):
    """Built once per architecture: model, extraction, per-conv shapes, conv FLOPs and output on one input."""
    if name not in _CACHE:
        torch.manual_seed(0)
        model = MODELS[name]().eval()
        found = extract_network(model, (3, SIZE, SIZE))
        x = torch.randn(1, 3, SIZE, SIZE)
        shapes, flops, y = _first_shapes(model, [layer.name for layer in found.layers], x)
        _CACHE[name] = (model, found, x, shapes, flops, y)
    return _CACHE[name]


@pytest.mark.parametrize("name", MODELS)
def test_extraction_records_the_shapes_torch_gives(name):
    model, found, _, shapes, flops, _ = _original(name)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(layer.name for layer in found.layers) == sorted(convs)  # every conv, each once
    assert found.others == []
    for layer in found.layers:
        (_, c, h, w), (_, c_out, oh, ow) = shapes[layer.name]
        assert (c, c_out) == (layer.in_channels, layer.out_channels)
        assert layer.module_input_size == (h, w), layer.name
        assert layer.output_size == (oh, ow), layer.name
    assert flops == 2 * sum(_macs(layer) for layer in found.layers)


def _macs(layer) -> int:
    """Multiply-accumulates of one conv: one per weight per output position (padding zeros included)."""
    (kh, kw), (oh, ow) = layer.kernel_size, layer.output_size
    return oh * ow * layer.out_channels * (layer.in_channels // layer.groups) * kh * kw


def _plannable(layers):
    # plan.py does not read ConvLayer.keep_reason yet: the kept layers are left out of the plan here
    return [layer for layer in layers if layer.keep_reason is None]


def _state(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


OSC_SUBSET = ("resnet10", "resnext14_16x4d", "shufflenetv2_wd2", "mobilenetv3_small_w7d20", "efficientnet-b0-static",
              "efficientnet-b0-dynamic")
"""``osc`` runs on these only (CI time: the converted forward passes, not the planning, dominate)."""
CASES = [(name, "osc-2") for name in MODELS] + [(name, "osc") for name in OSC_SUBSET]


@pytest.mark.parametrize(("name", "policy"), CASES)
def test_convert_keeps_every_shape_and_count(name, policy):
    model, found, x, shapes, flops_before, y_before = _original(name)
    before_state = _state(model)
    plan = plan_network(_plannable(found.layers), policy, network=name)
    converted = convert(model, plan)
    replaced = [lp.layer.name for lp in plan.layers if lp.replaced]
    assert replaced, "nothing was replaced"
    new_shapes, flops_after, y_after = _first_shapes(converted, replaced, x)
    assert y_after.shape == y_before.shape
    for layer_name in replaced:  # the per-layer shape rule
        assert new_shapes[layer_name] == shapes[layer_name], layer_name
    # kept modules: the same class with the same state (everything outside a replaced module)
    new_modules = dict(converted.named_modules())
    for module_name, module in model.named_modules():
        if any(module_name == r or module_name.startswith(r + ".") for r in replaced):
            continue
        twin = new_modules[module_name]
        assert type(twin) is type(module), module_name
        if module_name and not any(r.startswith(module_name + ".") for r in replaced):  # not an ancestor
            state = twin.state_dict()
            assert all(torch.equal(state[k], v) for k, v in module.state_dict().items()), module_name
    assert all(torch.equal(before_state[k], v) for k, v in model.state_dict().items())  # original untouched
    # counts: params and MACs of the plan against torch's own
    planned_before = {lp.layer.name for lp in plan.layers}
    modules = dict(model.named_modules())
    assert plan.total("before", "total_params") == sum(p.numel() for n in planned_before
                                                       for p in modules[n].parameters())
    assert sum(p.numel() for p in converted.parameters()) == (
        sum(p.numel() for p in model.parameters()) - plan.total("before", "total_params")
        + plan.total("after", "total_params"))
    kept_macs = sum(_macs(layer) for layer in found.layers if layer.name not in planned_before)
    assert flops_before == 2 * (plan.total("before", "macs") + kept_macs)
    assert flops_after == 2 * (plan.total("after", "macs") + kept_macs)
    for lp in plan.layers:  # dilated convs are not planned yet: kept, with the plan's reason
        if lp.layer.dilation != (1, 1):
            assert not lp.replaced and lp.reason.startswith("dilated conv"), lp.layer.name
