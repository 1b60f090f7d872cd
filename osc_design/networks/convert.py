"""Convert a PyTorch model by a network plan: each planned ``nn.Conv2d`` becomes its exported design.

The replacement applies the padding the original really applies (see
:mod:`osc_design.networks.extract`), so it maps every input shape to the output shape of the
module it replaces:

* symmetric zeros (integer padding, ``'same'``/``'valid'`` strings, static "same" wrappers that
  pad evenly): the design alone, built with that padding;
* asymmetric zeros at a fixed amount (``padding='same'`` with an even window, a static "same"
  wrapper's ``ZeroPad2d``, a dynamic "same" wrapper with stride 1):
  ``nn.Sequential(nn.ZeroPad2d(pre_padding), design)``;
* a dynamic "same" wrapper with a stride above 1 (timm's ``Conv2dSame``, efficientnet-pytorch's
  ``Conv2dDynamicSamePadding``), whose zeros depend on the input size:
  ``nn.Sequential(same_padding_module(...), design)``, recomputing them at run time like the original,
  so the converted model stays exact at input sizes other than the extracted one (the plan's
  costs are those of the extracted size).

Layers the extraction kept (``keep_reason``) are never replaced; kept modules stay the very
modules of the copy, unchanged. A module the forward pass calls several times (weight sharing) is
replaced once: every call, and every attribute that holds the module (an alias), then uses the one
replacement, so its parameters stay shared.
"""

from __future__ import annotations

import copy
from typing import Any

import torch  # noqa: F401 - the doctests use it
from torch import nn

from ..errors import SpecError
from ..spec import LayerSpec
from .catalog import ConvLayer
from .extract import conv_padding, keep_reason_of
from .plan import NetworkPlan

__all__ = ["same_padding_module", "convert"]


def same_padding_module(kernel_size: tuple[int, int], stride: tuple[int, int],
                        dilation: tuple[int, int] = (1, 1)) -> nn.Module:
    """TensorFlow's "same" zero padding for a convolution, computed from each input's size (see
    :func:`~osc_design.networks.extract.same_padding`), as a standard module: a ``torch.fx.GraphModule``
    (class name ``SamePad2d``) whose code does the size arithmetic and one ``F.pad``, so it loads with
    torch alone, scripts, and exports (at the example input's size).

    >>> same_padding_module((3, 3), (2, 2))(torch.zeros(1, 1, 64, 65)).shape
    torch.Size([1, 1, 65, 67])
    """
    from torch import fx

    graph = fx.Graph()
    tracer = fx.proxy.GraphAppendingTracer(graph)
    x: Any = fx.Proxy(graph.placeholder("x"), tracer)  # a tensor while recording: its ops become graph nodes
    pads = []
    for axis in (1, 0):  # F.pad's order: (left, right, top, bottom)
        k, s, d = kernel_size[axis], stride[axis], dilation[axis]
        size, span = x.size(axis + 2), (k - 1) * d + 1
        total = (size + (s - 1)) // s * s + (span - s) - size  # (ceil(size / s) - 1) * s + span - size
        if span < s:  # then -s < total < s: max(total, 0) without a comparison (an unpickled GraphModule retraces)
            total = total * (total // s + 1)
        before = total // 2
        pads += [before, total - before]
    padded: Any = nn.functional.pad(x, pads)
    graph.output(padded.node)
    return fx.GraphModule(nn.Module(), graph, class_name="SamePad2d")


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, attr = name.split(".")
    parent = model
    for part in path:
        if not hasattr(parent, part):
            raise SpecError(f"layer {name!r} of the plan is not in the model (no submodule {part!r})")
        parent = getattr(parent, part)
    if not hasattr(parent, attr):
        raise SpecError(f"layer {name!r} of the plan is not in the model")
    return parent, attr


def _replacement(old: nn.Conv2d, layer: ConvLayer, spec: LayerSpec, projections: dict[str, Any] | None = None
                 ) -> nn.Module:
    """The design's module with the padding ``old`` applies in front, after checking ``old`` is ``layer``."""
    from ..backends.torch import build_module

    why = layer.keep_reason or keep_reason_of(old)
    if why is not None:
        raise SpecError(f"layer {layer.name!r} is kept, the plan cannot replace it: {why}")
    padding, pre, dynamic = conv_padding(old, layer.module_input_size)
    found = (old.in_channels, old.out_channels, tuple(old.kernel_size), tuple(old.stride), padding, pre,
             tuple(old.dilation), old.groups, old.bias is not None)
    planned = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
               layer.pre_padding, layer.dilation, layer.groups, layer.bias)
    if found != planned:
        raise SpecError(f"layer {layer.name!r} does not match the plan: model has (in, out, kernel, stride, padding, "
                        f"pre_padding, dilation, groups, bias) = {found}, plan has {planned}")
    design = build_module(spec, device=old.weight.device, dtype=old.weight.dtype)
    if projections is not None:  # weights="project": start from the trained conv's projection
        from ..backends.torch import set_weights
        from ..weights import project

        bias = None if old.bias is None else old.bias.detach().cpu().double().numpy()
        projections[layer.name] = fitted = project(spec, old.weight.detach().cpu().double().numpy(), bias)
        set_weights(design, spec, fitted.params)
    if dynamic:
        return nn.Sequential(same_padding_module(layer.kernel_size, layer.stride, layer.dilation), design)
    if any(pre):
        return nn.Sequential(nn.ZeroPad2d(pre), design)
    return design


def convert(model: nn.Module, plan: NetworkPlan, weights: str = "project", report: bool = False) -> Any:
    """A converted deep copy of ``model`` (the original is untouched).

    ``weights="project"`` (default) starts each replaced layer from the projection of the trained conv it
    replaces onto its design (:func:`osc_design.weights.project`; at 256 -> 256 3x3 the closed form of
    ``osc-2`` takes about 0.5 s, the iterative fit of deeper chains 35 to 40 s); ``"random"`` leaves each
    design's fresh init (faster, for training from scratch). The MNIST table in the README chose the default:
    projected layers fine-tune to a better accuracy than random ones for every family. With
    ``report=True`` the result is ``(model, {layer name: Projection})`` (empty for ``"random"``), each
    projection's ``error`` the layer's relative Frobenius error.

    Every layer of ``plan`` with a design replaces the ``nn.Conv2d`` (or recognised subclass) of the
    same dotted name by the design's module (:func:`osc_design.backends.torch.build_module`), on
    the conv's device and dtype, behind the padding the conv applies (see the module docstring).
    The conv must match the planned layer (channels, kernel, stride, padding at the layer's input
    size, dilation, groups, bias) and must not be one the extraction keeps.

    Raises
    ------
    SpecError
        When a planned layer is missing from the model, does not match it, or is kept.
    """
    if weights not in ("random", "project"):
        raise SpecError(f"`weights` (={weights!r}) must be 'random' or 'project'")
    projections: dict[str, Any] | None = {} if weights == "project" else None
    converted = copy.deepcopy(model)
    for lp in plan.layers:
        if lp.chosen.spec is None:
            continue
        parent, attr = _parent(converted, lp.layer.name)
        old = getattr(parent, attr)
        if not isinstance(old, nn.Conv2d):
            raise SpecError(f"layer {lp.layer.name!r} is a {type(old).__name__}, not an nn.Conv2d")
        new = _replacement(old, lp.layer, lp.chosen.spec, projections)
        for name in [name for name, m in converted.named_modules(remove_duplicate=False) if m is old]:
            setattr(*_parent(converted, name), new)  # the layer's own name, and every alias of the module
    return (converted, projections or {}) if report else converted
