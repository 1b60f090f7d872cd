"""CompConv (Zhang, Xu & Shen, CVPR-W 2021): recursive divide-and-conquer on channels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..geometry import check_int
from ..spec import GraphBuilder, LayerSpec, Target
from ._common import Pair, _centred_padding, _lazy_sympy, _options, _syms, add
from .dense import conv_params

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = ["compconv_depth", "compconv_prim", "compconv_eq8", "build_compconv"]


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
    (kh, kw), c_out = target.kernel_size, target.out_channels
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
    t, b = target, GraphBuilder(target)
    if plan.depth == 0:
        y = b.conv2d(b.input, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding, name="conv")
        return b.build(y, family="compconv", options=opts)
    d, same = plan.depth, ((t.kernel_size[0] - 1) // 2, (t.kernel_size[1] - 1) // 2)
    width = [2 ** (d - 1 - i) * plan.prim for i in range(d)]  # c_i
    xb: dict[int, str] = {d - 1: b.conv2d(b.input, plan.prim, t.kernel_size, stride=t.stride, padding=t.padding,
                                          name=f"B{d - 1}")}
    xa = _identity_units(b, plan, width)
    for i in range(d - 2, -1, -1):
        joined = b.concat([xa[i + 1], xb[i + 1]], name=f"cat{i}")
        xb[i] = b.conv2d(joined, width[i], t.kernel_size, padding=same, name=f"B{i}")
    tail = _tailing_unit(b, xb[0], width[0] - plan.excess, plan.excess, same, opts["variant"])
    pieces = [p for i in range(d - 1, 0, -1) for p in (xa[i], xb[i])] + ([tail] if tail else []) + [xb[0]]
    y = pieces[0] if len(pieces) == 1 else b.concat(pieces, name="cat")
    if t.out_channels % 2 == 0:
        y = b.channel_shuffle(y, 2, name="shuffle")
    return b.build(y, family="compconv", options=opts)


def _identity_units(b: GraphBuilder, plan: _CompPlan, width: list[int]) -> dict[int, str]:
    """``X_Ai`` for ``i = d-1 .. 1``: consecutive input channels, through the strided 1x1 subsampler if needed."""
    t = b.target
    if not plan.copies:
        return {}
    src = b.input if plan.copies == t.in_channels else b.slice(b.input, 0, plan.copies, name="copies")
    if plan.resample is not None:
        src = b.conv2d(src, plan.copies, 1, stride=t.stride, padding=plan.resample, groups=plan.copies,
                       name="copies_strided")
    xa, start = {}, 0
    for i in range(plan.depth - 1, 0, -1):
        xa[i] = b.slice(src, start, start + width[i], name=f"A{i}")
        start += width[i]
    return xa


def _tailing_unit(b: GraphBuilder, b0: str, kept: int, excess: int, same: Pair, variant: str) -> str | None:
    """``X_A0 = T(X_B0)`` on the ``kept`` channels (depthwise for "linear", dense for "squared"); None if none."""
    if not kept:
        return None
    kernel = b.target.kernel_size
    if variant == "linear":
        src = b0 if excess == 0 else b.slice(b0, 0, kept, name="B0_kept")
        return b.conv2d(src, kept, kernel, padding=same, groups=kept, name="A0")
    return b.conv2d(b0, kept, kernel, padding=same, name="A0")


def _cc_params(target: Target, **options: Any) -> sympy.Expr:
    opts, plan = _compconv_opts(target, options)
    if plan.depth == 0:
        return conv_params(target)
    sp = _lazy_sympy()
    s = _syms()
    d = plan.depth
    cp = sp.ceiling(s["C_out"] / (2 * (2**d - 1)))
    tail = 2 ** (d - 1) * cp
    kept = s["C_out"] - (2 * (2**d - 1) - 2 ** (d - 1)) * cp  # tail minus the surplus channels
    last = kept if opts["variant"] == "linear" else tail * kept
    body = s["C_in"] * cp + sum(((2**i * cp) ** 2 for i in range(1, d)), sp.Integer(0)) + last
    copies = (2 ** (d - 1) - 1) * cp if plan.resample is not None else 0
    return s["K_h"] * s["K_w"] * body + copies


def _cc_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _syms()  # every conv runs at the output resolution (the first one carries the stride)
    return _cc_params(target, **options) * s["H_out"] * s["W_out"]


add("compconv", "CompConv (Zhang, Xu & Shen, CVPR-W 2021; wiring reconstructed)", build_compconv,
    _cc_params, _cc_macs, "C^2 K^2", "reconstructed", {"depth": None, "c0": 128, "variant": "linear"})
