"""Large kernels from small ones: ``slak`` and ``shiftwise``, and the depthwise part of a design."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..cost import Cost, cost_by_node
from ..errors import SpecError
from ..geometry import check_int
from ..registry import get_family
from ..spec import GraphBuilder, LayerSpec, Target
from ._common import Pair, _centred_padding, _lazy_sympy, _options, _syms, add

if TYPE_CHECKING:  # pragma: no cover
    import sympy

__all__ = ["shiftwise_kernels", "shiftwise_slak_ratio", "build_slak", "build_shiftwise", "depthwise_part"]


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
    s = _syms()
    per_channel = 0
    for name, _kernel, _pad in branches:
        per_channel += {"tall": s["K_h"] * k, "wide": k * s["K_w"], "small": k * k}[name]
    return s["C_in"] * per_channel + s["C_in"] * s["C_out"]


def _slak_macs(target: Target, **options: Any) -> sympy.Expr:
    s = _syms()
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
    stride1 = Target(target.in_channels, target.in_channels, target.kernel_size, (1, 1), target.padding)
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
    shifted = [b.shift(sl, (0, dx), name=f"h{i}") for i, (sl, dx) in enumerate(zip(slices, plan.shifts_h, strict=True))]
    shifted += [b.shift(sl, (dy, 0), name=f"v{i}")
                for i, (sl, dy) in enumerate(zip(slices, plan.shifts_v, strict=True))]
    y = b.add(shifted, name="sum")
    y = b.conv2d(y, t.out_channels, 1, stride=t.stride, name="pw")
    return b.build(y, family="shiftwise", options={"small_kernel": k})


def _sw_params(target: Target, **options: Any) -> sympy.Expr:
    plan = _shiftwise_opts(target, options)
    sp = _lazy_sympy()
    s = _syms()
    nk = sp.ceiling(sp.Max(s["K_h"], s["K_w"]) / plan.k)
    return s["C_in"] * nk * plan.k**2 + s["C_in"] * s["C_out"]


def _sw_macs(target: Target, **options: Any) -> sympy.Expr:
    plan = _shiftwise_opts(target, options)
    sp = _lazy_sympy()
    s = _syms()
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
            raise SpecError(f"`family` (={family!r}) has no depthwise part; "
                            f"expected one of {', '.join(_POINTWISE_LAST)}")
        spec = get_family(family).build(spec_or_target, **options)
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


add("slak", "SLaK decomposed large kernel + pointwise (Liu et al., ICLR 2023)", build_slak, _slak_params,
    _slak_macs, "C(C + K)", "verified", {"small_kernel": 5})
add("shiftwise", "Shift-wise convolution + pointwise (Li et al., CVPR 2025)", build_shiftwise, _sw_params,
    _sw_macs, "C(C + K)", "verified", {"small_kernel": 5})
