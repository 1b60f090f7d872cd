"""Time of ``summary`` and of ``network --model`` (extraction and planning) per architecture, beyond the
model's own construction and one forward pass, with the summary totals beside torchinfo's and fvcore's.

Architectures: the catalogue's PyTorch models and pytorchcv definitions (random weights, no downloads;
pytorchcv's fixed 7x7 global pool is swapped for ``AdaptiveAvgPool2d(1)`` so any input size runs). For each:
``build`` (construct the model), ``forward`` (one CPU forward pass, batch 1, ``no_grad``), ``summary``
(:func:`osc_design.summary`), ``extract`` (:func:`osc_design.extract_network`) and ``plan``
(:func:`osc_design.plan_network`, ``--policy``, the layers extraction does not keep; one call, the solver
cache warm only for targets met earlier in the run) and ``convert`` (:func:`osc_design.convert`, to standard
torch modules), in seconds, summary and extract the best of ``--repeat`` runs; ``first`` is the first summary
call of the process, which includes torch's one-time set-up of its ``meta`` kernels (paid once per process, so
once per command). Goal: ``summary`` and ``extract + plan`` under 1 s for a model of about 100 convolutions.

Totals: params and MACs (ours), torchinfo's params and mult-adds (ours plus each conv bias at every
output position and every other leaf parameter once per sample), fvcore's conv + linear MACs (the
same as ours); ``=`` when they agree.

Run: python benchmarks/bench_summary.py [--size 224] [--policy osc-2] [--repeat 3] [--models resnet18 ...]
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

PYTORCHCV = {
    "resnet10": ("resnet", "resnet10"), "resnet18": ("resnet", "resnet18"), "resnet50": ("resnet", "resnet50"),
    "resnext14_16x4d": ("resnext", "resnext14_16x4d"), "mobilenetv2_wd4": ("mobilenetv2", "mobilenetv2_wd4"),
    "mobilenetv2_w1": ("mobilenetv2", "mobilenetv2_w1"),
    "mobilenetv3_small_w7d20": ("mobilenetv3", "mobilenetv3_small_w7d20"),
    "mobilenetv3_large_w1": ("mobilenetv3", "mobilenetv3_large_w1"),
    "shufflenetv2_wd2": ("shufflenetv2", "shufflenetv2_wd2"), "shufflenetv2_w1": ("shufflenetv2", "shufflenetv2_w1"),
    "xception": ("xception", "xception"), "drnc26": ("drn", "drnc26"), "igcv3_wd4": ("igcv3", "igcv3_wd4"),
    "efficientnet_b0b": ("efficientnet", "efficientnet_b0b"),
}
CATALOGUE = ("cifar-resnet110", "mobilenet_v2")
OTHERS = ("efficientnet-b0-static", "efficientnet-b0-dynamic", "deeplabv3_resnetd50b")
"""efficientnet-pytorch's B0 with static (``image_size`` given) and dynamic "same" padding, and pytorchcv's
DeepLab-v3 on a dilated ResNet-50 (``aux=False, fixed_size=False``, 21 classes)."""


def _other(name: str, size: int) -> Any:
    if name.startswith("efficientnet-b0"):
        from efficientnet_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-b0", image_size=size if name.endswith("static") else None)
    from pytorchcv.models.deeplabv3 import deeplabv3_resnetd50b_voc

    return deeplabv3_resnetd50b_voc(pretrained=False, pretrained_backbone=False, aux=False, fixed_size=False)


def _build(name: str, size: int) -> Any:
    from torch import nn

    if name in CATALOGUE:
        from osc_design.networks.torch_models import build_model

        return build_model(name).eval()
    if name in OTHERS:
        return _other(name, size).eval()
    module, attr = PYTORCHCV[name]
    model = getattr(importlib.import_module(f"pytorchcv.models.{module}"), attr)(pretrained=False)
    for parent in model.modules():
        for key, child in parent.named_children():
            if isinstance(child, nn.AvgPool2d) and min(nn.modules.utils._pair(child.kernel_size)) >= 7:
                setattr(parent, key, nn.AdaptiveAvgPool2d(1))
    return model.eval()


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def _reference(model: Any, x: Any) -> tuple[int, int, int | None]:
    """torchinfo's params and mult-adds, fvcore's conv + linear MACs (None where a package is missing)."""
    import torchinfo

    info = torchinfo.summary(model, input_data=x, verbose=0)
    try:
        from fvcore.nn import FlopCountAnalysis
    except ImportError:
        return info.total_params, info.total_mult_adds, None
    flops = FlopCountAnalysis(model, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    return info.total_params, info.total_mult_adds, by_op.get("conv", 0) + by_op.get("linear", 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--policy", default="osc-2")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--models", nargs="+", default=[*CATALOGUE, *PYTORCHCV, *OTHERS])
    args = p.parse_args()
    import torch

    import osc_design as od

    shape = (3, args.size, args.size)
    print(f"input 1x{'x'.join(map(str, shape))}, policy {args.policy}, best of {args.repeat}; seconds")
    print(f"{'model':22} {'convs':>5} {'build':>6} {'forward':>7} {'first':>6} {'summary':>7} {'extract':>7} "
          f"{'plan':>6} {'convert':>7} {'params':>12} {'MACs':>15} {'torchinfo mult-adds':>20} "
          f"{'fvcore conv+linear':>19}")
    first: float | None = None  # only for the first model
    for index, name in enumerate(args.models):
        build, model = _best(lambda n=name: _build(n, args.size), 1)
        x = torch.zeros(1, *shape)
        with torch.no_grad():
            forward, _ = _best(lambda m=model, x=x: m(x), 1)
        if index == 0:
            start = time.perf_counter()
            od.summary(model, shape)
            first = time.perf_counter() - start
        t_summary, s = _best(lambda m=model: od.summary(m, shape), args.repeat)
        t_extract, found = _best(lambda m=model: od.extract_network(m, shape), args.repeat)
        plannable = [layer for layer in found.layers if layer.keep_reason is None]
        t_plan, plan = _best(lambda f=plannable, n=name: od.plan_network(f, args.policy, network=n), 1)
        t_convert, _ = _best(lambda m=model, p=plan: od.convert(m, p, weights="random"), 1)
        params, mult_adds, fv = _reference(model, x)
        conv_linear = s.macs_by_kind["conv"] + s.macs_by_kind["linear"]
        shown = f"{first:6.2f}" if index == 0 and first is not None else f"{'-':>6}"
        print(f"{name:22} {len(found.layers):5} {build:6.2f} {forward:7.3f} {shown} {t_summary:7.3f} "
              f"{t_extract:7.3f} {t_plan:6.2f} {t_convert:7.2f} {s.params:12,} {s.macs:15,} "
              f"{'=' if params == s.params else params:>1} {mult_adds:18,} "
              f"{'n/a' if fv is None else ('=' if fv == conv_linear else f'{fv:,}'):>19}")


if __name__ == "__main__":
    main()
