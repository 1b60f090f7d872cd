"""Convert a PyTorch model by a network plan: each planned ``nn.Conv2d`` becomes its exported design."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ..errors import SpecError
from .plan import NetworkPlan

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["convert"]


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


def convert(model: nn.Module, plan: NetworkPlan) -> nn.Module:
    """A converted deep copy of ``model`` (the original is untouched).

    Every layer of ``plan`` with a design replaces the ``nn.Conv2d`` of the same dotted name by the
    design's module (:func:`osc_design.backends.torch.build_module`), on the conv's device and dtype.
    The conv must match the planned layer (channels, kernel, stride, padding, groups, bias).

    Raises
    ------
    SpecError
        When a planned layer is missing from the model or does not match it.
    """
    import torch

    from ..backends.torch import build_module

    converted = copy.deepcopy(model)
    for lp in plan.layers:
        if lp.chosen.spec is None:
            continue
        parent, attr = _parent(converted, lp.layer.name)
        old = getattr(parent, attr)
        if not isinstance(old, torch.nn.Conv2d):
            raise SpecError(f"layer {lp.layer.name!r} is a {type(old).__name__}, not an nn.Conv2d")
        layer = lp.layer
        found = (old.in_channels, old.out_channels, tuple(old.kernel_size), tuple(old.stride), tuple(old.padding),
                 old.groups, old.bias is not None)
        planned = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                   layer.groups, layer.bias)
        if found != planned:
            raise SpecError(f"layer {lp.layer.name!r} does not match the plan: model has "
                            f"(in, out, kernel, stride, padding, groups, bias) = {found}, plan has {planned}")
        setattr(parent, attr, build_module(lp.chosen.spec, device=old.weight.device, dtype=old.weight.dtype))
    return converted
