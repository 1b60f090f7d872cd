"""The rival operator families (everything but OSC): spec builders, exact sympy closed forms, registrations.

Importing this module registers, in this order, the families ``conv``, ``grouped``,
``depthwise-separable``, ``spatial-separable``, ``depthwise-spatial-separable``, ``bsconv-u``,
``bsconv-s``, ``compconv``, ``slak`` and ``shiftwise`` (see :mod:`osc_design.registry`). Each family
has a builder ``build(target, **options) -> LayerSpec`` that replaces the target convolution, and closed
forms ``params_expr`` / ``macs_expr`` (sympy, in the symbols below) that, evaluated with
:func:`evaluate`, equal the foundation cost model's exact counts of the built graph.

Conventions shared by all families
----------------------------------
* No conv has a bias (params are weights); batch norms appear only where an option asks for them.
* Every design has the target's output size and window alignment: target output ``q`` reads input rows
  ``q*s - p + [0, K)``. A stage with the full kernel side ``K`` along an axis uses the target's padding and
  stride there; a stage with a smaller side ``k`` is *centred* in the window, which needs ``K - k`` even
  and ``p >= (K - k) / 2`` (otherwise a :class:`~osc_design.SpecError` says why: no op can crop).
* Symbols (sympy, created on first use, never at import): ``C_in, C_out`` channels; ``K_h, K_w`` kernel;
  ``s_h, s_w`` stride; ``p_h, p_w`` padding; ``H, W`` input size; ``H_out, W_out`` output size. They
  are attributes of this module (``osc_design.families.C_in``) and :func:`symbols` returns them all.

The reference for every formula is ``papers.md`` (sections 0, 2, 3, 4); each builder's docstring says
what is verified there and what is reconstructed (tags [V-code], [V-2nd], [D], [U]).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .cost import Cost, cost_by_node
from .errors import SpecError
from .geometry import check_int
from .registry import Family, register
from .spec import GraphBuilder, LayerSpec, Target

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = [
    "SYMBOL_NAMES",
    "FAMILIES",
    "symbols",
    "evaluate",
    "count_params",
    "count_macs",
    "compconv_depth",
    "compconv_prim",
    "compconv_eq8",
    "bsconv_mid_channels",
    "shiftwise_kernels",
    "shiftwise_slak_ratio",
    "depthwise_part",
    "build_conv",
    "build_grouped",
    "build_depthwise_separable",
    "build_spatial_separable",
    "build_depthwise_spatial_separable",
    "build_bsconv_u",
    "build_bsconv_s",
    "build_compconv",
    "build_slak",
    "build_shiftwise",
]

Pair = tuple[int, int]

# ----------------------------------------------------------------------------------------------------
# symbols and evaluation
# ----------------------------------------------------------------------------------------------------

SYMBOL_NAMES = ("C_in", "C_out", "K_h", "K_w", "s_h", "s_w", "p_h", "p_w", "H", "W", "H_out", "W_out")
"""Names of the closed-form symbols, in a fixed order (all integers; all positive but ``p_h, p_w``)."""


@lru_cache(maxsize=1)
def _symbol_table() -> dict[str, Any]:
    import sympy

    table = {}
    for name in SYMBOL_NAMES:
        if name in ("p_h", "p_w"):
            table[name] = sympy.Symbol(name, integer=True, nonnegative=True)
        else:
            table[name] = sympy.Symbol(name, integer=True, positive=True)
    return table


def symbols() -> dict[str, sympy.Symbol]:
    """The closed-form symbols by name (imports sympy on first call).

    Returns
    -------
    dict
        ``{"C_in": C_in, "C_out": C_out, ..., "W_out": W_out}`` (see :data:`SYMBOL_NAMES`).

    Examples
    --------
    >>> s = symbols()
    >>> s["C_in"] * s["K_h"]
    C_in*K_h
    """
    return dict(_symbol_table())


def __getattr__(name: str) -> Any:  # PEP 562: ``families.C_in`` without importing sympy at import time
    if name in SYMBOL_NAMES:
        return _symbol_table()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _values(target: Target) -> dict[str, int]:
    (kh, kw), (sh, sw), (ph, pw) = target.kernel_size, target.stride, target.padding  # type: ignore[misc]
    vals = {"C_in": target.in_channels, "C_out": target.out_channels, "K_h": kh, "K_w": kw,
            "s_h": sh, "s_w": sw, "p_h": ph, "p_w": pw}
    if target.input_size is not None:
        (h, w), (ho, wo) = target.input_size, target.output_size  # type: ignore[misc]
        vals.update(H=h, W=w, H_out=ho, W_out=wo)
    return vals


def evaluate(expr: sympy.Expr, target: Target) -> int:
    """Evaluate a closed form at a target: its channels, kernel, stride, padding and (if any) sizes.

    Parameters
    ----------
    expr : sympy.Expr
        An expression in the symbols of :func:`symbols` (e.g. from a family's ``params_expr``).
    target : Target
        Supplies the numbers; ``H, W, H_out, W_out`` need ``target.input_size``.

    Returns
    -------
    int
        The exact value.

    Raises
    ------
    SpecError
        If the expression still has free symbols (e.g. a MAC count for a target without input size).

    Examples
    --------
    >>> t = Target(256, 256, 3, input_size=56)
    >>> evaluate(FAMILIES["depthwise-separable"].macs_expr(t), t)
    212746240
    """
    import sympy

    table = _symbol_table()
    subs = {table[k]: sympy.Integer(v) for k, v in _values(target).items()}
    value = sympy.sympify(expr).xreplace(subs)
    if value.free_symbols:
        names = ", ".join(sorted(str(s) for s in value.free_symbols))
        raise SpecError(f"the expression still depends on {names}; give the target an `input_size`")
    value = sympy.simplify(value) if not value.is_Integer else value
    if not value.is_Integer:
        raise SpecError(f"the expression evaluates to {value}, not an integer")
    return int(value)


def count_params(family: str, target: Target, **options: Any) -> int:
    """Params of ``family`` at ``target`` from its closed form (:func:`evaluate` of ``params_expr``)."""
    fam = _family(family)
    return evaluate(fam.params_expr(target, **options), target)


def count_macs(family: str, target: Target, **options: Any) -> int:
    """MACs (padding taps included) of ``family`` at ``target`` (which needs an ``input_size``) from its closed form."""
    fam = _family(family)
    return evaluate(fam.macs_expr(target, **options), target)


def _family(family_id: str) -> Family:
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise SpecError(f"unknown family {family_id!r}; expected one of {', '.join(FAMILIES)}") from None


# ----------------------------------------------------------------------------------------------------
# option checking and geometry
# ----------------------------------------------------------------------------------------------------


def _options(family: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        allowed = ", ".join(f"`{k}`" for k in defaults) or "none"
        raise SpecError(f"{family}: unknown option `{unknown[0]}` (={given[unknown[0]]!r}); options: {allowed}")
    return {**defaults, **given}


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"`{name}` (={value!r}) must be true or false")
    return value


def _centred_padding(target: Target, kernel: Pair, *, family: str, option: str) -> Pair:
    """Padding that puts a ``kernel`` stage centred in the target's window, with the target's output grid.

    Along an axis with target kernel ``K`` and padding ``p``, a ``k``-tap stage with padding
    ``p - (K - k) / 2`` has exactly the target's output size (for every input size and stride) and reads the
    centre ``k`` taps of the window. ``option`` names what to blame when ``K - k`` is odd.
    """
    pads = []
    for axis, axis_name in ((0, "height"), (1, "width")):
        big, small, pad = target.kernel_size[axis], kernel[axis], target.padding[axis]  # type: ignore[index]
        if (big - small) % 2:
            raise SpecError(
                f"{family}: `{option}` (={small}) cannot be centred in the target's {big}-tap kernel {axis_name}: "
                f"the kernel side minus `{option}` must be even for the output size to match; "
                f"try {option}={small - 1 if small > 1 else small + 1}"
            )
        inner = pad - (big - small) // 2
        if inner < 0:
            raise SpecError(
                f"{family}: the target's `padding` (={target.padding}) is too small: a {small}-tap stage centred in the "
                f"{big}-tap {axis_name} window needs padding >= {(big - small) // 2} to keep the output size "
                f"(no op can crop)"
            )
        pads.append(inner)
    return (pads[0], pads[1])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _smallest_prime_factor(n: int) -> int:
    for d in range(2, math.isqrt(n) + 1):
        if n % d == 0:
            return d
    return n


def _lazy_sympy() -> Any:
    import sympy

    return sympy


def _S() -> dict[str, Any]:
    return _symbol_table()


# ----------------------------------------------------------------------------------------------------
# conv and grouped
# ----------------------------------------------------------------------------------------------------


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


def _conv_params(target: Target, **options: Any) -> sympy.Expr:
    _options("conv", options, {})
    s = _S()
    return s["C_in"] * s["C_out"] * s["K_h"] * s["K_w"]


def _conv_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _S()
    return _conv_params(target, **options) * s["H_out"] * s["W_out"]


def _grouped_opts(target: Target, options: Mapping[str, Any]) -> dict[str, Any]:
    opts = _options("grouped", options, {"groups": None})
    common = math.gcd(target.in_channels, target.out_channels)
    g = opts["groups"]
    if g is None:
        g = 1 if common == 1 else _smallest_prime_factor(common)
    check_int(g, "groups", minimum=1)
    if common % g:
        divs = _divisors(common)
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
    s = _S()
    return s["C_in"] * s["C_out"] * s["K_h"] * s["K_w"] / g


def _grouped_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _S()
    return _grouped_params(target, **options) * s["H_out"] * s["W_out"]


# ----------------------------------------------------------------------------------------------------
# depthwise separable, spatial separable, depthwise spatial separable
# ----------------------------------------------------------------------------------------------------


def build_depthwise_separable(target: Target, **options: Any) -> LayerSpec:
    """MobileNet depthwise separable convolution (Howard et al. 2017, arXiv 1704.04861).

    Depthwise ``K_h x K_w`` on ``C_in`` (carries the stride and padding), then pointwise ``C_in -> C_out``
    at the output resolution. ``P = C_in K_h K_w + C_in C_out``,
    ``MACs = H_out W_out (C_in K_h K_w + C_in C_out)`` [V-2nd, papers.md section 0]. No options; full coverage.
    """
    _options("depthwise-separable", options, {})
    t = target
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.in_channels, t.kernel_size, stride=t.stride, padding=t.padding,
                 groups=t.in_channels, name="dw")
    y = b.conv2d(y, t.out_channels, 1, name="pw")
    return b.build(y, family="depthwise-separable")


def _dws_params(target: Target, **options: Any) -> sympy.Expr:
    _options("depthwise-separable", options, {})
    s = _S()
    return s["C_in"] * s["K_h"] * s["K_w"] + s["C_in"] * s["C_out"]


def _dws_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _S()
    return _dws_params(target, **options) * s["H_out"] * s["W_out"]


def build_spatial_separable(target: Target, **options: Any) -> LayerSpec:
    """Spatial separable convolution: dense ``K_h x 1`` ``C_in -> C_out``, then dense ``1 x K_w`` ``C_out -> C_out``.

    Stride: the row stride ``(s_h, 1)`` sits on the ``K_h x 1`` conv and the column stride ``(1, s_w)`` on the
    ``1 x K_w`` conv, so each conv applies the target's geometry along its own axis; the first one therefore runs
    at ``H_out x W``. ``P = K_h C_in C_out + K_w C_out^2``,
    ``MACs = H_out W K_h C_in C_out + H_out W_out K_w C_out^2`` (``P = 2 K C^2`` for ``C_in = C_out``: the
    ``O(C^2 K)`` of the OSC abstract) [V-abs for the order, D for the constant]. No options; full coverage.
    """
    _options("spatial-separable", options, {})
    t = target
    (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding  # type: ignore[misc]
    b = GraphBuilder(t)
    y = b.conv2d(b.input, t.out_channels, (kh, 1), stride=(sh, 1), padding=(ph, 0), name="conv_kx1")
    y = b.conv2d(y, t.out_channels, (1, kw), stride=(1, sw), padding=(0, pw), name="conv_1xk")
    return b.build(y, family="spatial-separable")


def _ss_params(target: Target, **options: Any) -> sympy.Expr:
    _options("spatial-separable", options, {})
    s = _S()
    return s["K_h"] * s["C_in"] * s["C_out"] + s["K_w"] * s["C_out"] ** 2


def _ss_macs(target: Target, **options: Any) -> sympy.Expr:
    _options("spatial-separable", options, {})
    s = _S()
    return (s["H_out"] * s["W"] * s["K_h"] * s["C_in"] * s["C_out"]
            + s["H_out"] * s["W_out"] * s["K_w"] * s["C_out"] ** 2)


def build_depthwise_spatial_separable(target: Target, **options: Any) -> LayerSpec:
    """Depthwise spatial separable: depthwise ``K_h x 1``, depthwise ``1 x K_w``, then pointwise ``C_in -> C_out``.

    The OSC abstract's third baseline ("depth/spatial separable"); its exact layout was not found, this natural
    reading is [U] (papers.md section 0). Stride as in ``spatial-separable``: ``(s_h, 1)`` on the ``K_h x 1`` and
    ``(1, s_w)`` on the ``1 x K_w`` depthwise conv. ``P = C_in (K_h + K_w) + C_in C_out``,
    ``MACs = H_out W K_h C_in + H_out W_out (K_w C_in + C_in C_out)``. No options; full coverage (the two
    depthwise strips compose to the full ``K_h x K_w`` window per channel).
    """
    _options("depthwise-spatial-separable", options, {})
    t = target
    (kh, kw), (sh, sw), (ph, pw) = t.kernel_size, t.stride, t.padding  # type: ignore[misc]
    c = t.in_channels
    b = GraphBuilder(t)
    y = b.conv2d(b.input, c, (kh, 1), stride=(sh, 1), padding=(ph, 0), groups=c, name="dw_kx1")
    y = b.conv2d(y, c, (1, kw), stride=(1, sw), padding=(0, pw), groups=c, name="dw_1xk")
    y = b.conv2d(y, t.out_channels, 1, name="pw")
    return b.build(y, family="depthwise-spatial-separable")


def _dss_params(target: Target, **options: Any) -> sympy.Expr:
    _options("depthwise-spatial-separable", options, {})
    s = _S()
    return s["C_in"] * (s["K_h"] + s["K_w"]) + s["C_in"] * s["C_out"]


def _dss_macs(target: Target, **options: Any) -> sympy.Expr:
    _options("depthwise-spatial-separable", options, {})
    s = _S()
    return (s["H_out"] * s["W"] * s["K_h"] * s["C_in"]
            + s["H_out"] * s["W_out"] * (s["K_w"] * s["C_in"] + s["C_in"] * s["C_out"]))


# ----------------------------------------------------------------------------------------------------
# BSConv
# ----------------------------------------------------------------------------------------------------


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
    s = _S()
    return s["C_in"] * s["C_out"] + s["K_h"] * s["K_w"] * s["C_out"] + (2 * s["C_out"] if opts["with_bn"] else 0)


def _bsu_macs(target: Target, **options: Any) -> sympy.Expr:
    _bsconv_u_opts(options)
    s = _S()
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
    s = _S()
    p = sp.Rational(opts["_p"].numerator, opts["_p"].denominator)
    return sp.Min(s["C_in"], sp.Max(opts["min_mid"], sp.ceiling(p * s["C_in"])))


def _bss_params(target: Target, **options: Any) -> sympy.Expr:
    opts = _bsconv_s_opts(target, options)
    s = _S()
    mid = _bs_mid_expr(opts)
    bn = 2 * mid + 2 * s["C_out"] if opts["with_bn"] else 0
    return s["C_in"] * mid + mid * s["C_out"] + s["K_h"] * s["K_w"] * s["C_out"] + bn


def _bss_macs(target: Target, **options: Any) -> sympy.Expr:
    opts = _bsconv_s_opts(target, options)
    s = _S()
    mid = _bs_mid_expr(opts)
    return (s["H"] * s["W"] * (s["C_in"] * mid + mid * s["C_out"])
            + s["H_out"] * s["W_out"] * s["K_h"] * s["K_w"] * s["C_out"])


# ----------------------------------------------------------------------------------------------------
# CompConv
# ----------------------------------------------------------------------------------------------------


def compconv_depth(in_channels: int, c0: int = 128) -> int:
    """CompConv adaptive depth ``d = min(floor(log2(max(1, C_in / C_0))) + 1, 3)`` (papers.md 2.3).

    The transcription prints ``max(..., 3)``; the text says d is capped at 3 and decreases with ``C_0``, which
    only ``min`` satisfies [U: max/min typo corrected]. A non-integer ``log2`` is floored [U].

    Examples
    --------
    >>> [compconv_depth(c) for c in (64, 128, 256, 512, 1024, 2048)]
    [1, 1, 2, 3, 3, 3]
    """
    check_int(in_channels, "in_channels", minimum=1)
    check_int(c0, "c0", minimum=1)
    e = 0
    while c0 * 2 ** (e + 1) <= in_channels:  # largest e with c0 * 2**e <= C_in (e = 0 when C_in < c0)
        e += 1
    return min(e + 1, 3)


def compconv_prim(out_channels: int, depth: int) -> int:
    """``C_prim = ceil(C_out / (2 (2^d - 1)))`` (CompConv eq. 5, [V-2nd]); ``depth >= 1``.

    Examples
    --------
    >>> compconv_prim(256, 2), compconv_prim(512, 3), compconv_prim(28, 3)
    (43, 37, 2)
    """
    check_int(out_channels, "out_channels", minimum=1)
    check_int(depth, "depth", minimum=1)
    return -(-out_channels // (2 * (2**depth - 1)))


def compconv_eq8(in_channels: int, out_channels: int, kernel_size: int | Pair, depth: int,
                 variant: str = "linear") -> int:
    """CompConv's printed per-pixel cost, eq. (8), in both readings (papers.md 2.4).

    ``k^2 (C_in C_prim + sum_{i=1}^{d-1} (2^i C_prim)^2 + T)`` with ``T = 2^{d-1} C_prim`` ("linear", as printed)
    or ``(2^{d-1} C_prim)^2`` ("squared"). Eq. 8 counts the whole last unit ``X_A0``, including the surplus
    channels that are dropped; :func:`build_compconv` computes only the kept ones, so its params are lower by
    ``k^2 * excess`` (linear) or ``k^2 * 2^{d-1} C_prim * excess`` (squared) when ``2 (2^d - 1) C_prim > C_out``.

    Examples
    --------
    >>> compconv_eq8(256, 256, 3, 2), compconv_eq8(256, 256, 3, 2, "squared")
    (166410, 232200)
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    cp = compconv_prim(out_channels, depth)
    tail = 2 ** (depth - 1) * cp
    last = tail if _check_variant(variant) == "linear" else tail**2
    return kh * kw * (in_channels * cp + sum((2**i * cp) ** 2 for i in range(1, depth)) + last)


def _check_variant(variant: Any) -> str:
    if variant not in ("linear", "squared"):
        raise SpecError(f"`variant` (={variant!r}) must be 'linear' (eq. 8 as printed: depthwise tail) "
                        f"or 'squared' (full-conv tail)")
    return variant


@dataclass(frozen=True)
class _CompPlan:
    depth: int
    prim: int = 0
    excess: int = 0
    copies: int = 0
    resample: Pair | None = None  # padding of the strided 1x1 copy path, None when plain slices suffice


def _compconv_opts(target: Target, options: Mapping[str, Any]) -> tuple[dict[str, Any], _CompPlan]:
    opts = _options("compconv", options, {"depth": None, "c0": 128, "variant": "linear"})
    check_int(opts["c0"], "c0", minimum=1)
    _check_variant(opts["variant"])
    if opts["depth"] is None:
        d = compconv_depth(target.in_channels, opts["c0"])
    else:
        d = check_int(opts["depth"], "depth", minimum=0)
    resolved = {"depth": d, "c0": opts["c0"], "variant": opts["variant"]}
    if d == 0:
        return resolved, _CompPlan(0)
    (kh, kw), c_out = target.kernel_size, target.out_channels  # type: ignore[misc]
    if kh % 2 == 0 or kw % 2 == 0:
        raise SpecError(
            f"compconv: `kernel_size` (={target.kernel_size}) must have odd sides at `depth` (={d}) >= 1: its chained "
            f"k x k convs must keep the spatial size to be concatenated with the identity copies (depth=0 is a "
            f"plain conv)"
        )
    cp = compconv_prim(c_out, d)
    units = 2 * (2**d - 1) * cp
    excess, tail = units - c_out, 2 ** (d - 1) * cp
    if excess > tail:
        raise SpecError(
            f"compconv: `depth` (={d}) is too deep for `out_channels` (={c_out}): C_prim = {cp} gives {units} channels "
            f"and the {excess} surplus ones exceed the last unit X_A0 ({tail} channels); use a smaller depth"
        )
    copies = (2 ** (d - 1) - 1) * cp
    if copies > target.in_channels:
        raise SpecError(
            f"compconv: `depth` (={d}) needs {copies} identity-copied input channels (C_prim = {cp}) but "
            f"`in_channels` is {target.in_channels}; use a smaller depth"
        )
    resample = None
    same = ((kh - 1) // 2, (kw - 1) // 2)
    if copies and (target.stride != (1, 1) or target.padding != same):
        resample = _centred_padding(target, (1, 1), family="compconv", option="kernel_size")
    return resolved, _CompPlan(d, cp, excess, copies, resample)


def build_compconv(target: Target, **options: Any) -> LayerSpec:
    """CompConv (Zhang, Xu, Shen, CVPR-W 2021, arXiv 2106.10486): recursive divide-and-conquer on channels.

    Equations 4-8 are [V-2nd] (blog transcriptions); the module wiring is the reconstruction of papers.md 2.5
    [U]. For depth ``d``, ``C_prim = ceil(C_out / (2 (2^d - 1)))`` and level ``i`` (``d-1`` smallest) has
    ``c_i = 2^(d-1-i) C_prim`` channels in each of ``X_Ai`` and ``X_Bi``:

    1. ``X_B(d-1) = conv_K(X_in)``, ``C_in -> C_prim``: the only conv reading the input; it carries the target's
       stride and padding, so everything after it runs at the output resolution.
    2. ``X_Ai`` (``i = 1..d-1``): identity copies of consecutive input channels ``[0, (2^(d-1) - 1) C_prim)``, the
       smallest level first.
    3. ``X_Bi = conv_K(concat(X_A(i+1), X_B(i+1)))``, ``c_i -> c_i``, stride 1, "same" padding.
    4. ``X_A0 = T(X_B0)``: the tailing unit, computed (not copied); ``variant="linear"`` (default, eq. 8 as
       printed) makes ``T`` a depthwise ``K x K`` conv, ``"squared"`` a full ``K x K`` conv. Only the
       ``c_0 - excess`` channels that are kept are computed (the surplus ``2 (2^d - 1) C_prim - C_out`` tailing
       channels are dropped, papers.md 2.2), which is why eq. 8 (:func:`compconv_eq8`, which counts the whole
       unit) is higher by the dropped channels' cost when the excess is non-zero. (An excess of the whole unit
       leaves no ``X_A0``; a larger one is an error.)
    5. Output = concat ``[X_A(d-1), X_B(d-1), ..., X_A1, X_B1, X_A0, X_B0]`` (``C_out`` channels), then a 2-group
       channel shuffle (when ``C_out`` is even; it costs nothing and does not change coverage).

    Stride and non-"same" padding [U, the paper says nothing]: the identity copies must meet ``X_B(d-1)`` on the
    output grid and no pooling op exists, so for a strided target (or padding other than ``(K-1)/2``) they are
    taken through one strided depthwise ``1 x 1`` conv (a subsampler, one weight per copied channel, centred in the
    window). ``depth = 0`` is a plain dense conv ("no compression"). The ``K x K`` convs after the first must keep
    the size, so depth >= 1 needs odd kernel sides.

    Coverage: the copied output channels see one input channel at the window centre, and the other units see
    every input channel only through ``X_B(d-1)``; the verifier reports the exact (partial) fraction.

    Parameters
    ----------
    target : Target
        The convolution to replace.
    depth : int, optional
        Recursion depth ``d >= 0``; default adaptive, :func:`compconv_depth` ``(C_in, c0)``.
    c0 : int, default 128
        ``C_0`` of the adaptive depth (CompConv128). Ignored with an explicit depth.
    variant : {"linear", "squared"}, default "linear"
        The two readings of eq. 8 (A: depthwise tail; B: full-conv tail).
    """
    opts, plan = _compconv_opts(target, options)
    t = target
    b = GraphBuilder(t)
    if plan.depth == 0:
        y = b.conv2d(b.input, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding, name="conv")
        return b.build(y, family="compconv", options=opts)
    d, cp = plan.depth, plan.prim
    (kh, kw) = t.kernel_size
    same = ((kh - 1) // 2, (kw - 1) // 2)
    width = [2 ** (d - 1 - i) * cp for i in range(d)]  # c_i
    xb: dict[int, str] = {d - 1: b.conv2d(b.input, cp, t.kernel_size, stride=t.stride, padding=t.padding,
                                          name=f"B{d - 1}")}
    xa: dict[int, str] = {}
    if plan.copies:
        src = b.input if plan.copies == t.in_channels else b.slice(b.input, 0, plan.copies, name="copies")
        if plan.resample is not None:
            src = b.conv2d(src, plan.copies, 1, stride=t.stride, padding=plan.resample, groups=plan.copies,
                           name="copies_strided")
        start = 0
        for i in range(d - 1, 0, -1):
            xa[i] = b.slice(src, start, start + width[i], name=f"A{i}")
            start += width[i]
    for i in range(d - 2, -1, -1):
        joined = b.concat([xa[i + 1], xb[i + 1]], name=f"cat{i}")
        xb[i] = b.conv2d(joined, width[i], t.kernel_size, padding=same, name=f"B{i}")
    kept = width[0] - plan.excess
    if kept and opts["variant"] == "linear":
        src = xb[0] if plan.excess == 0 else b.slice(xb[0], 0, kept, name="B0_kept")
        xa[0] = b.conv2d(src, kept, t.kernel_size, padding=same, groups=kept, name="A0")
    elif kept:
        xa[0] = b.conv2d(xb[0], kept, t.kernel_size, padding=same, name="A0")
    pieces = [p for i in range(d - 1, 0, -1) for p in (xa[i], xb[i])] + ([xa[0]] if kept else []) + [xb[0]]
    y = pieces[0] if len(pieces) == 1 else b.concat(pieces, name="cat")
    if t.out_channels % 2 == 0:
        y = b.channel_shuffle(y, 2, name="shuffle")
    return b.build(y, family="compconv", options=opts)


def _cc_params(target: Target, **options: Any) -> sympy.Expr:
    opts, plan = _compconv_opts(target, options)
    if plan.depth == 0:
        return _conv_params(target)
    sp = _lazy_sympy()
    s = _S()
    d = plan.depth
    cp = sp.ceiling(s["C_out"] / (2 * (2**d - 1)))
    tail = 2 ** (d - 1) * cp
    kept = s["C_out"] - (2 * (2**d - 1) - 2 ** (d - 1)) * cp  # tail minus the surplus channels
    last = kept if opts["variant"] == "linear" else tail * kept
    body = s["C_in"] * cp + sum(((2**i * cp) ** 2 for i in range(1, d)), sp.Integer(0)) + last
    copies = (2 ** (d - 1) - 1) * cp if plan.resample is not None else 0
    return s["K_h"] * s["K_w"] * body + copies


def _cc_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _S()  # every conv runs at the output resolution (the first one carries the stride)
    return _cc_params(target, **options) * s["H_out"] * s["W_out"]


# ----------------------------------------------------------------------------------------------------
# SLaK and shift-wise
# ----------------------------------------------------------------------------------------------------


def _small_kernel(target: Target, options: Mapping[str, Any], family: str, limit: int, what: str) -> int:
    opts = _options(family, options, {"small_kernel": 5})
    k = check_int(opts["small_kernel"], "small_kernel", minimum=1)
    if k > limit:
        raise SpecError(f"{family}: `small_kernel` (={k}) must be <= {what} (={limit}) of the target kernel "
                        f"{target.kernel_size[0]}x{target.kernel_size[1]}")
    return k


def _slak_branches(target: Target, k: int) -> list[tuple[str, Pair]]:
    kh, kw = target.kernel_size
    branches = []
    if kh > k:
        branches.append(("tall", (kh, k)))
    if kw > k:
        branches.append(("wide", (k, kw)))
    branches.append(("small", (k, k)))
    return branches


def _slak_opts(target: Target, options: Mapping[str, Any]) -> tuple[int, list[tuple[str, Pair, Pair]]]:
    k = _small_kernel(target, options, "slak", min(target.kernel_size), "the shorter side")
    out = []
    for name, kernel in _slak_branches(target, k):
        out.append((name, kernel, _centred_padding(target, kernel, family="slak", option="small_kernel")))
    return k, out


def build_slak(target: Target, **options: Any) -> LayerSpec:
    """SLaK decomposed large kernel (Liu et al., ICLR 2023), completed by a pointwise into a full replacement.

    Verified against the official code (``models/SLaK.py``, papers.md 4.1 [V-code]): parallel depthwise
    ``M x k`` (tall, ``M = K_h``), ``k x M`` (wide, ``M = K_w``) and ``k x k`` convs on ``C_in``, summed, here
    followed by a pointwise ``C_in -> C_out`` so that the row replaces the same convolution as every other family.
    Each branch carries the target stride and is centred in the window. The per-branch BNs, the MLP and the residual
    of the ConvNeXt block are not part of the replaced conv and are left out.

    A strip whose long side equals ``k`` is a ``k x k`` kernel and merges into the ``k x k`` branch: for ``k == M``
    only the ``k x k`` branch remains (SLaK's code then drops its ``small_conv`` and keeps two ``k x k`` strips,
    which sum to one ``k x k`` kernel). ``P = C_in (K_h k + k K_w + k^2) + C_in C_out`` (strips present only when
    longer than ``k``); all convs run at the output resolution. Coverage is the cross of the two strips, not the
    full window (reported exactly by the verifier).

    Parameters
    ----------
    target : Target
        The convolution to replace.
    small_kernel : int, default 5
        The short side ``k``; must be <= both kernel sides, with ``K - k`` even on each axis.
    """
    k, branches = _slak_opts(target, options)
    t = target
    b = GraphBuilder(t)
    c = t.in_channels
    outs = [b.conv2d(b.input, c, kernel, stride=t.stride, padding=pad, groups=c, name=name)
            for name, kernel, pad in branches]
    y = outs[0] if len(outs) == 1 else b.add(outs, name="sum")
    y = b.conv2d(y, t.out_channels, 1, name="pw")
    return b.build(y, family="slak", options={"small_kernel": k})


def _slak_params(target: Target, **options: Any) -> sympy.Expr:
    k, branches = _slak_opts(target, options)
    s = _S()
    per_channel = 0
    for name, _kernel, _pad in branches:
        per_channel += {"tall": s["K_h"] * k, "wide": k * s["K_w"], "small": k * k}[name]
    return s["C_in"] * per_channel + s["C_in"] * s["C_out"]


def _slak_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _S()
    return _slak_params(target, **options) * s["H_out"] * s["W_out"]


def shiftwise_kernels(big_kernel: int, small_kernel: int) -> int:
    """Number of small kernels ``ceil(M / k)`` that tile an ``M``-long strip (``self.nk`` in the official code).

    Examples
    --------
    >>> [shiftwise_kernels(m, 5) for m in (51, 49, 47, 45, 13, 5)]
    [11, 10, 10, 9, 3, 1]
    """
    check_int(big_kernel, "big_kernel", minimum=1)
    check_int(small_kernel, "small_kernel", minimum=1)
    return -(-big_kernel // small_kernel)


def shiftwise_slak_ratio(big_kernel: int, small_kernel: int) -> Fraction:
    """Shift-wise vs SLaK weight (and MAC) ratio ``2 M k / (ceil(M/k) k^2) = 2 M / (k ceil(M/k))`` (papers.md 4.3).

    SLaK's two strips (``2 M k`` weights per channel, without its ``k x k`` branch) against the ``ceil(M/k)``
    shared ``k x k`` kernels of shift-wise [D; reproduces the quoted list].

    Examples
    --------
    >>> [round(float(shiftwise_slak_ratio(m, 5)), 2) for m in (51, 49, 45, 13, 5)]
    [1.85, 1.96, 2.0, 1.73, 2.0]
    """
    return Fraction(2 * big_kernel, small_kernel * shiftwise_kernels(big_kernel, small_kernel))


@dataclass(frozen=True)
class _ShiftPlan:
    k: int
    nk: int
    padding: Pair
    shifts_h: tuple[int, ...]  # dx of slice i in the horizontal (wide) shift-add
    shifts_v: tuple[int, ...]  # dy of slice i in the vertical (tall) shift-add


def _shiftwise_opts(target: Target, options: Mapping[str, Any]) -> _ShiftPlan:
    kh, kw = target.kernel_size
    big = max(kh, kw)
    k = _small_kernel(target, options, "shiftwise", big, "the longer side")
    nk = shiftwise_kernels(big, k)
    stride1 = Target(target.in_channels, target.in_channels, target.kernel_size, 1, target.padding)
    pad = _centred_padding(stride1, (k, k), family="shiftwise", option="small_kernel")

    def shifts(side: int) -> tuple[int, ...]:
        start = (side - nk * k) // 2  # window tap where slice 0 starts (the nk*k strip straddles the window)
        return tuple((side - k) // 2 - start - i * k for i in range(nk))

    return _ShiftPlan(k, nk, pad, shifts(kw), shifts(kh))


def build_shiftwise(target: Target, **options: Any) -> LayerSpec:
    """Shift-wise convolution (Li et al., "Shift-ConvNets", arXiv 2401.12736 / CVPR 2025), plus a pointwise.

    Verified parts (papers.md 4.2, [V-code] ``lidc54/shift-wiseConv``): ``nk = ceil(M / k)`` small depthwise
    ``k x k`` kernels per channel, computed by one grouped conv ``C_in -> nk C_in`` (``groups = C_in``); the same
    small-kernel outputs feed a horizontal and a vertical shift-add: slice ``i`` is shifted to where it sits in the
    ``k x nk k`` (resp. ``nk k x k``) strip, which is centred on the window (``nk k >= M``). In the graph a
    ``channel_shuffle`` with ``C_in`` groups makes the outputs slice-major, ``slice`` nodes take each small
    kernel's ``C_in`` maps, explicit ``shift`` nodes place them, and one ``add`` sums all ``2 nk`` maps;
    then a pointwise ``C_in -> C_out`` completes the replacement.

    Choices [D/U]: all ``C_in`` channels are processed (no "ghost" channels), the vertical branch uses the slices in
    order (the code permutes them randomly within each channel, same cost and coverage) and the code's extra
    "small" branch (one random slice per channel) and BNs are left out. ``M = max(K_h, K_w)`` for rectangular
    targets (both strips use ``nk`` kernels). Shifts move by whole output pixels, so the depthwise part runs at
    stride 1 and the pointwise carries the target stride (it subsamples; the depthwise MACs are at the stride-1
    size ``(H + 2 p_h - K_h + 1) x (W + 2 p_w - K_w + 1)``). ``P = C_in nk k^2 + C_in C_out``. Coverage is the
    cross of the two strips (exactly reported by the verifier).

    Parameters
    ----------
    target : Target
        The convolution to replace.
    small_kernel : int, default 5
        ``k``; must be <= ``max(K_h, K_w)``, with ``K - k`` even on each axis.
    """
    plan = _shiftwise_opts(target, options)
    t = target
    c, nk, k = t.in_channels, plan.nk, plan.k
    b = GraphBuilder(t)
    y = b.conv2d(b.input, nk * c, k, padding=plan.padding, groups=c, name="small")
    if nk > 1:
        y = b.channel_shuffle(y, c, name="slice_major")  # channel i*C + c <- small kernel i of channel c
        slices = [b.slice(y, i * c, (i + 1) * c, name=f"k{i}") for i in range(nk)]
    else:
        slices = [y]
    shifted = [b.shift(sl, (0, dx), name=f"h{i}") for i, (sl, dx) in enumerate(zip(slices, plan.shifts_h))]
    shifted += [b.shift(sl, (dy, 0), name=f"v{i}") for i, (sl, dy) in enumerate(zip(slices, plan.shifts_v))]
    y = b.add(shifted, name="sum")
    y = b.conv2d(y, t.out_channels, 1, stride=t.stride, name="pw")
    return b.build(y, family="shiftwise", options={"small_kernel": k})


def _sw_params(target: Target, **options: Any) -> sympy.Expr:
    plan = _shiftwise_opts(target, options)
    sp = _lazy_sympy()
    s = _S()
    nk = sp.ceiling(sp.Max(s["K_h"], s["K_w"]) / plan.k)
    return s["C_in"] * nk * plan.k**2 + s["C_in"] * s["C_out"]


def _sw_macs(target: Target, **options: Any) -> sympy.Expr:
    plan = _shiftwise_opts(target, options)
    sp = _lazy_sympy()
    s = _S()
    nk = sp.ceiling(sp.Max(s["K_h"], s["K_w"]) / plan.k)
    h1 = s["H"] + 2 * s["p_h"] - s["K_h"] + 1  # stride-1 size of the depthwise part
    w1 = s["W"] + 2 * s["p_w"] - s["K_w"] + 1
    return h1 * w1 * s["C_in"] * nk * plan.k**2 + s["H_out"] * s["W_out"] * s["C_in"] * s["C_out"]


_POINTWISE_LAST = ("depthwise-separable", "depthwise-spatial-separable", "slak", "shiftwise")


def depthwise_part(spec_or_target: LayerSpec | Target, family: str | None = None, **options: Any) -> Cost:
    """Cost of the depthwise (large-kernel) part of a design, without its final pointwise, as the papers report it.

    Parameters
    ----------
    spec_or_target : LayerSpec or Target
        A spec built by ``slak``, ``shiftwise``, ``depthwise-separable`` or ``depthwise-spatial-separable``, or a
        target to build one for.
    family : str, optional
        With a target: which of those families to build (required then).
    **options
        Family options, with a target.

    Returns
    -------
    Cost
        Everything but the node ``"pw"`` (spatial counts when the target has an input size).

    Examples
    --------
    >>> t = Target(96, 96, 51, input_size=56)
    >>> c = depthwise_part(t, "slak")
    >>> c.params, c.macs
    (51360, 161064960)
    >>> depthwise_part(t, "shiftwise").params
    26400
    """
    if isinstance(spec_or_target, Target):
        if family is None:
            raise SpecError("`family` is needed to build a design for a target (one of "
                            f"{', '.join(_POINTWISE_LAST)})")
        if family not in _POINTWISE_LAST:
            raise SpecError(f"`family` (={family!r}) has no depthwise part; expected one of {', '.join(_POINTWISE_LAST)}")
        spec = _family(family).build(spec_or_target, **options)
    elif isinstance(spec_or_target, LayerSpec):
        if family is not None or options:
            raise SpecError("`family` and options apply only when a target is given, not a spec")
        spec = spec_or_target
        if spec.family not in _POINTWISE_LAST or "pw" not in spec.node_map:
            raise SpecError(f"spec of family {spec.family!r} has no depthwise part; "
                            f"expected one of {', '.join(_POINTWISE_LAST)}")
    else:
        raise SpecError(f"expected a LayerSpec or a Target, got {type(spec_or_target).__name__}")
    total = Cost(0, 0) if spec.target.input_size is None else Cost(0, 0, 0, 0, 0, 0)
    for nid, c in cost_by_node(spec).items():
        if nid != "pw":
            total = total + c
    return total


# ----------------------------------------------------------------------------------------------------
# registration
# ----------------------------------------------------------------------------------------------------

_Expr = Callable[..., Any]

FAMILIES: dict[str, Family] = {}
"""The families of this module by id, in registration order (also in :mod:`osc_design.registry`)."""


def _add(id: str, title: str, build: Callable[..., LayerSpec], params: _Expr, macs: _Expr, asymptotic: str,
         certainty: str, options: Mapping[str, Any]) -> None:
    fam = Family(id, title, build, params, macs, asymptotic, certainty, dict(options))
    FAMILIES[id] = register(fam)


_add("conv", "Standard convolution", build_conv, _conv_params, _conv_macs, "C^2 K^2", "verified", {})
_add("grouped", "Grouped convolution (Krizhevsky et al. 2012; Xie et al. 2017)", build_grouped,
     _grouped_params, _grouped_macs, "C^2 K^2 / g", "verified", {"groups": None})
_add("depthwise-separable", "MobileNet depthwise separable (Howard et al. 2017)", build_depthwise_separable,
     _dws_params, _dws_macs, "C(C + K^2)", "verified", {})
_add("spatial-separable", "Spatial separable K x 1 then 1 x K (Szegedy et al. 2016)", build_spatial_separable,
     _ss_params, _ss_macs, "C^2 K", "verified", {})
_add("depthwise-spatial-separable", "Depthwise spatial separable (the OSC abstract's baseline; layout [U])",
     build_depthwise_spatial_separable, _dss_params, _dss_macs, "C(C + K)", "reconstructed", {})
_add("bsconv-u", "BSConv-U (Haase & Amthor, CVPR 2020)", build_bsconv_u, _bsu_params, _bsu_macs,
     "C(C + K^2)", "verified", {"with_bn": False})
_add("bsconv-s", "BSConv-S (Haase & Amthor, CVPR 2020)", build_bsconv_s, _bss_params, _bss_macs,
     "C(C + K^2)", "verified", {"p": 0.25, "min_mid": 4, "with_bn": False})
_add("compconv", "CompConv (Zhang, Xu & Shen, CVPR-W 2021; wiring reconstructed)", build_compconv,
     _cc_params, _cc_macs, "C^2 K^2", "reconstructed", {"depth": None, "c0": 128, "variant": "linear"})
_add("slak", "SLaK decomposed large kernel + pointwise (Liu et al., ICLR 2023)", build_slak, _slak_params,
     _slak_macs, "C(C + K)", "verified", {"small_kernel": 5})
_add("shiftwise", "Shift-wise convolution + pointwise (Li et al., CVPR 2025)", build_shiftwise, _sw_params,
     _sw_macs, "C(C + K)", "verified", {"small_kernel": 5})
