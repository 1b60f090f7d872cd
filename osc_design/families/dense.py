"""The dense references: ``conv`` and ``grouped``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..geometry import check_int
from ..spec import GraphBuilder, LayerSpec, Target
from ..solver.intmath import divisors
from ._common import _options, _smallest_prime_factor, _syms, add

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = ["build_conv", "build_grouped", "conv_params"]


def build_conv(target: Target, **options: Any) -> LayerSpec:
    """One dense convolution with the target's geometry (the reference every other family replaces).

    Source: the standard convolution, ``P = C_in C_out K_h K_w``, ``MACs = P H_out W_out`` [standard].
    No options. Covers the full volume.

    Examples
    --------
    >>> build_conv(Target(256, 256, 3)).convs[0].weight_shape
    (256, 256, 3, 3)
    """
    _options("conv", options, {})
    t = target
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding, name="conv")
    return b.build(y, family="conv")


def conv_params(target: Target, **options: Any) -> sympy.Expr:
    _options("conv", options, {})
    s = _syms()
    return s["C_in"] * s["C_out"] * s["K_h"] * s["K_w"]


def _conv_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _syms()
    return conv_params(target, **options) * s["H_out"] * s["W_out"]


def _grouped_opts(target: Target, options: Mapping[str, Any]) -> dict[str, Any]:
    opts = _options("grouped", options, {"groups": None})
    common = math.gcd(target.in_channels, target.out_channels)
    g = opts["groups"]
    if g is None:
        g = 1 if common == 1 else _smallest_prime_factor(common)
    check_int(g, "groups", minimum=1)
    if common % g:
        divs = divisors(common)
        shown = ", ".join(map(str, divs[:12])) + (", ..." if len(divs) > 12 else "")
        raise SpecError(
            f"`groups` (={g}) must divide `in_channels` (={target.in_channels}) and `out_channels` "
            f"(={target.out_channels}); try groups in {{{shown}}}"
        )
    return {"groups": g}


def build_grouped(target: Target, **options: Any) -> LayerSpec:
    """One grouped convolution (AlexNet / ResNeXt style) with the target's geometry.

    ``P = C_in C_out K_h K_w / g`` [standard]. Each output channel sees ``C_in / g`` input channels, so the
    coverage is exactly ``1/g`` of the volume (no shuffle can help within one conv).

    Parameters
    ----------
    target : Target
        The convolution to replace.
    groups : int, optional
        Must divide both channel counts. Default: the smallest divisor > 1 of ``gcd(C_in, C_out)`` (2 when
        both are even, as in AlexNet's two-GPU split); 1 (a dense conv) when the gcd is 1.
    """
    opts = _grouped_opts(target, options)
    t = target
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding,
                 groups=opts["groups"], name="conv")
    return b.build(y, family="grouped", options=opts)


def _grouped_params(target: Target, **options: Any) -> sympy.Expr:
    g = _grouped_opts(target, options)["groups"]
    s = _syms()
    return s["C_in"] * s["C_out"] * s["K_h"] * s["K_w"] / g


def _grouped_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _syms()
    return _grouped_params(target, **options) * s["H_out"] * s["W_out"]


add("conv", "Standard convolution", build_conv, conv_params, _conv_macs, "C^2 K^2", "verified", {})
add("grouped", "Grouped convolution (Krizhevsky et al. 2012; Xie et al. 2017)", build_grouped,
    _grouped_params, _grouped_macs, "C^2 K^2 / g", "verified", {"groups": None})
