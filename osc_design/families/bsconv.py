"""Blueprint separable convolutions: ``bsconv-u`` and ``bsconv-s`` (Haase & Amthor, CVPR 2020)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..geometry import check_int
from ..spec import GraphBuilder, LayerSpec, Target
from ._common import _check_bool, _lazy_sympy, _options, _syms, add

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = ["bsconv_mid_channels", "build_bsconv_u", "build_bsconv_s"]


def _bsconv_u_opts(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = _options("bsconv-u", options, {"with_bn": False})
    _check_bool(opts["with_bn"], "with_bn")
    return opts


def build_bsconv_u(target: Target, **options: Any) -> LayerSpec:
    """BSConv-U (Haase & Amthor, CVPR 2020): pointwise ``C_in -> C_out``, then depthwise ``K_h x K_w`` on ``C_out``.

    Verified against the official code (``bsconv/pytorch/modules.py``, papers.md 3.1 [V-code]). The stride and
    padding sit on the depthwise conv, so the pointwise runs at the input resolution:
    ``MACs = H W C_in C_out + H_out W_out K_h K_w C_out``; ``P = C_in C_out + K_h K_w C_out``.

    Parameters
    ----------
    target : Target
        The convolution to replace.
    with_bn : bool, default False
        Batch norm between the pointwise and the depthwise (``BSConvU(with_bn=True)``), ``+2 C_out`` params.
    """
    opts = _bsconv_u_opts(options)
    t = target
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.out_channels, 1, name="pw")
    if opts["with_bn"]:
        y = b.batch_norm(y, name="bn")
    y = b.conv2d(y, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding, groups=t.out_channels,
                 name="dw")
    return b.build(y, family="bsconv-u", options=opts)


def _bsu_params(target: Target, **options: Any) -> sympy.Expr:
    opts = _bsconv_u_opts(options)
    s = _syms()
    return s["C_in"] * s["C_out"] + s["K_h"] * s["K_w"] * s["C_out"] + (2 * s["C_out"] if opts["with_bn"] else 0)


def _bsu_macs(target: Target, **options: Any) -> sympy.Expr:
    _bsconv_u_opts(options)
    s = _syms()
    return s["H"] * s["W"] * s["C_in"] * s["C_out"] + s["H_out"] * s["W_out"] * s["K_h"] * s["K_w"] * s["C_out"]


def _exact_fraction(value: Any, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"`{name}` (={value!r}) must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"`{name}` (={value!r}) must be finite")
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _bsconv_s_opts(target: Target, options: Mapping[str, Any]) -> dict[str, Any]:
    opts = _options("bsconv-s", options, {"p": 0.25, "min_mid": 4, "with_bn": False})
    p = _exact_fraction(opts["p"], "p")
    if not 0 < p <= 1:
        raise SpecError(f"`p` (={opts['p']!r}) must be in (0, 1]")
    check_int(opts["min_mid"], "min_mid", minimum=1)
    _check_bool(opts["with_bn"], "with_bn")
    return {**opts, "_p": p, "_mid": bsconv_mid_channels(target.in_channels, opts["p"], opts["min_mid"])}


def bsconv_mid_channels(in_channels: int, p: float = 0.25, min_mid: int = 4) -> int:
    """BSConv-S bottleneck width ``M' = min(M, max(min_mid, ceil(p M)))`` [V-code, papers.md 3.1].

    ``p`` is taken as the exact decimal it is written as (``0.1`` is 1/10), so ``ceil(p M)`` has no float
    rounding; the official code computes ``math.ceil(p * M)`` in binary floating point, which differs only
    when the float product lands just above an integer (e.g. ``p = 0.1, M = 70``: 8 there, 7 here).

    Examples
    --------
    >>> bsconv_mid_channels(3), bsconv_mid_channels(10), bsconv_mid_channels(64), bsconv_mid_channels(32, 0.5)
    (3, 4, 16, 16)
    """
    check_int(in_channels, "in_channels", minimum=1)
    frac = _exact_fraction(p, "p")
    if not 0 < frac <= 1:
        raise SpecError(f"`p` (={p!r}) must be in (0, 1]")
    check_int(min_mid, "min_mid", minimum=1)
    return min(in_channels, max(min_mid, math.ceil(frac * in_channels)))


def build_bsconv_s(target: Target, **options: Any) -> LayerSpec:
    """BSConv-S (Haase & Amthor, CVPR 2020): pointwise ``C_in -> M'``, pointwise ``M' -> C_out``, depthwise ``K x K``.

    Verified against the official code (``BSConvS``, papers.md 3.1 [V-code]); ``M'`` from
    :func:`bsconv_mid_channels`. The pointwise convs run at the input resolution, the depthwise carries stride and
    padding. ``P = C_in M' + M' C_out + K_h K_w C_out (+ 2 M' + 2 C_out with BN)``. The orthonormality
    regulariser on pw1 is a training loss and has no cost here. Full coverage (``M' >= 1`` dense bottleneck).

    Parameters
    ----------
    target : Target
        The convolution to replace.
    p : float, default 0.25
        Bottleneck ratio in (0, 1].
    min_mid : int, default 4
        Lower bound on ``M'`` (BSConv's ``min_mid_channels``).
    with_bn : bool, default False
        Batch norm after pw1 and after pw2, as BSConv's ready-made ResNet/WRN models use
        (``BSConvS_Replacer(with_bn=True)``).
    """
    opts = _bsconv_s_opts(target, options)
    t = target
    b = GraphBuilder(t)
    y = b.conv2d(b.input, opts["_mid"], 1, name="pw1")
    if opts["with_bn"]:
        y = b.batch_norm(y, name="bn1")
    y = b.conv2d(y, t.out_channels, 1, name="pw2")
    if opts["with_bn"]:
        y = b.batch_norm(y, name="bn2")
    y = b.conv2d(y, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding, groups=t.out_channels,
                 name="dw")
    public = {k: v for k, v in opts.items() if not k.startswith("_")}
    return b.build(y, family="bsconv-s", options=public)


def _bs_mid_expr(opts: Mapping[str, Any]) -> sympy.Expr:
    sp = _lazy_sympy()
    s = _syms()
    p = sp.Rational(opts["_p"].numerator, opts["_p"].denominator)
    return sp.Min(s["C_in"], sp.Max(opts["min_mid"], sp.ceiling(p * s["C_in"])))


def _bss_params(target: Target, **options: Any) -> sympy.Expr:
    opts = _bsconv_s_opts(target, options)
    s = _syms()
    mid = _bs_mid_expr(opts)
    bn = 2 * mid + 2 * s["C_out"] if opts["with_bn"] else 0
    return s["C_in"] * mid + mid * s["C_out"] + s["K_h"] * s["K_w"] * s["C_out"] + bn


def _bss_macs(target: Target, **options: Any) -> sympy.Expr:
    opts = _bsconv_s_opts(target, options)
    s = _syms()
    mid = _bs_mid_expr(opts)
    return (s["H"] * s["W"] * (s["C_in"] * mid + mid * s["C_out"])
            + s["H_out"] * s["W_out"] * s["K_h"] * s["K_w"] * s["C_out"])


add("bsconv-u", "BSConv-U (Haase & Amthor, CVPR 2020)", build_bsconv_u, _bsu_params, _bsu_macs,
    "C(C + K^2)", "verified", {"with_bn": False})
add("bsconv-s", "BSConv-S (Haase & Amthor, CVPR 2020)", build_bsconv_s, _bss_params, _bss_macs,
    "C(C + K^2)", "verified", {"p": 0.25, "min_mid": 4, "with_bn": False})
