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
    "drnc26": _pytorchcv("drn", "drnc26"),  # dilated (2 and 4): planned on their dilated windows
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


_CONVERTED: dict[tuple[str, str], tuple] = {}


def _converted(name: str, policy: str):
    """The plan and the converted model of one architecture and policy (built once)."""
    if (name, policy) not in _CONVERTED:
        model, found, *_ = _original(name)
        plan = plan_network(_plannable(found.layers), policy, network=name)
        _CONVERTED[name, policy] = (plan, convert(model, plan, weights="random").eval())
    return _CONVERTED[name, policy]


@pytest.mark.parametrize(("name", "policy"), CASES)
def test_convert_keeps_every_shape_and_count(name, policy):
    model, found, x, shapes, flops_before, y_before = _original(name)
    before_state = _state(model)
    plan, converted = _converted(name, policy)
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
    for lp in plan.layers:  # dilated convs are planned on their dilated window, and say what was searched
        if lp.layer.dilation != (1, 1) and lp.replaced:
            assert lp.chosen.spec.target.dilation == lp.layer.dilation and lp.chosen.coverage == 1.0, lp.layer.name
            assert "designed for the undilated target" in lp.reason, lp.layer.name
    dilated = [lp for lp in plan.layers if lp.layer.dilation != (1, 1)]
    assert all(lp.replaced for lp in dilated if lp.layer.groups < lp.layer.in_channels), name


# ------------------------------------------------------------------------------------------ standard PyTorch out


def _scripts(model: nn.Module) -> bool:
    try:
        torch.jit.script(model)
    except Exception:  # noqa: BLE001 - TorchScript raises many kinds; all mean "does not script"
        return False
    return True


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:The TorchScript type system:UserWarning")
@pytest.mark.parametrize("name", MODELS)
def test_converted_model_is_standard_pytorch_and_its_state_dict_round_trips(name):
    model, _, x, _, _, _ = _original(name)
    plan, converted = _converted(name, "osc-2")
    own = {type(m) for m in model.modules()}
    for module_name, module in converted.named_modules():  # only torch's classes beside the model's own
        cls = type(module)
        assert cls in own or cls.__module__.startswith("torch."), (module_name, cls)
    for lp in plan.layers:
        if lp.replaced:
            replacement = converted.get_submodule(lp.layer.name)
            assert all(type(m).__module__.startswith("torch.") for m in replacement.modules()), lp.layer.name
    torch.manual_seed(1)  # a fresh build of the same structure, other weights, loads the state_dict
    fresh = convert(MODELS[name]().eval(), plan, weights="random").eval()
    with torch.no_grad():
        assert not torch.equal(fresh(x), converted(x))
        fresh.load_state_dict(converted.state_dict())
        torch.testing.assert_close(fresh(x), converted(x), rtol=0, atol=0)
    if _scripts(model):  # none of these third-party models scripts today; the converted one must when it does
        scripted = torch.jit.script(converted)
        torch.testing.assert_close(scripted(x), converted(x))


EXPORTED = ("resnet10", "shufflenetv2_wd2", "drnc26", "efficientnet-b0-dynamic")
"""``torch.export.export`` (seconds each) runs on these: plain, shuffles, dilated, run-time "same" padding."""


@pytest.mark.parametrize("name", EXPORTED)
def test_converted_model_passes_torch_export(name):
    _, _, x, _, _, _ = _original(name)
    _, converted = _converted(name, "osc-2")
    exported = torch.export.export(converted, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), converted(x))


_LOAD_ALONE = """
import importlib.abc, sys
class NoOscDesign(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "osc_design" or name.startswith("osc_design."):
            raise ImportError("osc_design must not be needed to load a converted model: " + name)
        return None
sys.meta_path.insert(0, NoOscDesign())
import torch
for name in sys.argv[1:]:
    model = torch.load(name + ".pt", weights_only=False)
    x, y = torch.load(name + ".io.pt")
    with torch.no_grad():
        torch.testing.assert_close(model(x), y, rtol=0, atol=0)
    assert not any(m.startswith("osc_design") for m in sys.modules), name
print("loaded", len(sys.argv) - 1)
"""


def test_converted_models_load_with_torch_alone(tmp_path):
    """Saved with ``torch.save``, loaded in a fresh interpreter that cannot import osc_design (the EXPORTED
    architectures: every kind of replacement module, one interpreter start)."""
    import os
    import subprocess
    import sys

    names = list(EXPORTED)
    for name in names:
        _, _, x, _, _, _ = _original(name)
        _, converted = _converted(name, "osc-2")
        with torch.no_grad():
            torch.save((x, converted(x)), tmp_path / f"{name}.io.pt")
        torch.save(converted, tmp_path / f"{name}.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _LOAD_ALONE, *names], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["loaded", str(len(names))]
