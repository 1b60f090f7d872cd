"""Optimized separable convolution (OSC): an exact design optimizer with optimality certificates.

Everything about OSC's internals is **reconstructed** (``papers.md`` section 1: only the abstracts'
asymptotic claims ``O(C^{3/2} K)`` and ``O(C log(C K^2))`` are verified; the chain model, the coverage
conditions, the constant 2 and ``N* = ln(C K^2)`` are derivations). The families ``osc-2`` and ``osc``
(registered in :mod:`osc_design.osc_families`, built with :func:`solve`) say so with
``certainty="reconstructed"``.

Model
-----
A design for a target convolution ``C_in -> C_out``, kernel ``Kh x Kw``, stride ``(sh, sw)``, padding
``(ph, pw)`` is a chain of ``N`` grouped convolutions. Stage ``i`` maps ``C_{i-1} -> C_i`` channels
(``C_0 = C_in``, ``C_N = C_out``; internal widths ``C_out`` unless ``widths`` says otherwise) with
``g_i`` groups dividing both, fan-in ``n_i = C_{i-1} / g_i``, a kernel ``kh_i x kw_i`` (rectangular
unless ``square_only``), a dilation (1 unless ``dilation=True``) and, on exactly one stage when the
target is strided, the stride. Between consecutive stages sits a ShuffleNet channel shuffle with the
previous stage's group count (a free permutation; left out where it is the identity or the next
stage has one group). Weights without bias::

    params = sum_i C_i * n_i * kh_i * kw_i            (= sum_i C_{i-1} C_i kh_i kw_i / g_i)
    macs   = sum_i params_i * H_i * W_i               (H_i x W_i: output grid of stage i)

A design is *valid* only if :func:`osc_design.coverage.coverage` proves full volumetric coverage:
every output channel depends on every input channel at every tap of the target window.

Channel reach. With these shuffles every output channel of stage ``i`` depends on exactly
``min(C_in, n_1 * ... * n_i)`` input channels. This was checked while the module was written for
every chain of up to three stages with ``C_in, C_out <= 24`` and internal widths ``C_out``, for full
reach whenever ``prod n_i >= C_in`` on every such chain of up to four stages, and on 30,000 random
chains of up to five stages with arbitrary widths up to 30; every returned design is verified again.
Reach can never exceed the product of fan-ins, so ``prod_i n_i >= C_in`` is necessary *and*
sufficient, whatever the (prime, odd, unequal) channel counts: the divisibility constraints enter
only through the allowed fan-ins.

Spatial reach, per axis. A stage with kernel ``k`` and tap step ``delta`` (its dilation, times the
stride for stages after the strided one, in input pixels) adds the offsets ``delta * {0..k-1}``; the
footprint of the chain is the Minkowski sum. The searched space keeps every prefix footprint gap-free
("mixed-radix digits in chain order": ``delta <= R + 1`` where ``R`` is the span so far), so the
footprint is the interval ``{0..R}`` and a stage takes ``R`` to ``R + delta (k - 1)``. Without
dilation ``delta`` is 1 (``s`` after the stride) and spans simply add: ``sum_i (k_i - 1) + 1 >= K``.
With dilation they multiply: ``{0,1,2} + 3*{0,1,2} = {0..8}``: ``R + 1`` grows by up to the factor
``k``. Padding is not searched. Every stage pads symmetrically, so the output size equals the
target's for every input size only if the footprint is centred on the target window, which forces
``R = K - 1 (mod 2)``; the padding is assigned by a fixed rule: cumulative padding
``max(0, floor(R / 2) + p - floor((K - 1) / 2))`` before the stride (``R``: span so far),
``floor(B / 2)`` coarse pixels after it (``B``: coarse span so far), and the strided stage takes the
rest. MACs are exact for that rule. Along an axis without dilation, prefix gaps can never be filled
later (all later steps are multiples of the stride), so the gap-free rule costs nothing there; with
dilation it excludes designs whose first dilated stage is filled in by a *later* stage of smaller
step (e.g. taps ``{0,2}`` then ``{0,1,2}``), which can be cheaper when the stages are not
interchangeable (``5 -> 2`` channels, kernel ``3 x 5``, two stages: 38 params that way, 40 here).

The search
----------
An exact dynamic programme over chain prefixes. A state is ``(channel reach r, per-axis footprint
state, stride phase)``; the per-axis state is the span ``R`` while it is below ``T = max(K - 1, 1)``
and only its parity above (further growth cannot matter there), plus, after the stride, the parity of
the coarse span, the promised final parity and the strided stage's output size. Every design of the
space is one path; a stage's cost depends only on its transition, so the cheapest accepting state is
optimal. Prunings that keep it exact:

1. Per spatial state, entries are Pareto-filtered over (reach, cost): more reach never hurts.
2. Branch and bound: a state is dropped when its cost plus a relaxation bound for the rest (below)
   exceeds an upper bound; the upper bound grows (from the certificate's bound) until a design is
   found, and any design within the bound survives, so the first design found is optimal. For
   ``params`` with dilation or a stride, the optimum of a smaller space (no dilation; the stride on
   the last stage, i.e. the unstrided chain) is a design of this one and caps the upper bound.
3. ``params`` without dilation, rectangular kernels: along an axis all stages on the same side of the
   stride have the same tap step, so the cost is linear in each of their kernel sizes for fixed
   fan-ins; moving a span to the stage with the smallest weight never costs more. Hence at most one
   stage per axis and stride phase has a kernel larger than 1, and the span before the stride is one
   that a single later stage completes exactly (an exchange argument, not a heuristic). Square
   kernels (cost ``k^2``, convex) and the MAC objectives (border effects) enumerate all spans.
4. ``params`` with dilation: from span ``R`` a kernel ``k`` may take any step ``1..R+1``; per parity
   only the largest span below ``T`` and the smallest at or above it are kept, and a state with at
   least the reach and, per axis, at least the span of the same parity at no higher cost dominates
   (every completion of the weaker state works from it: same kernels and steps, steps stay within
   ``span + 1``, the final span grows by an even amount).

Stage cap. A stage helps only if it multiplies the channel reach by ``n >= 2`` or grows a spatial
span. Besides the first stage, at most ``ceil(log2 C_in)`` stages of an optimal design carry a fan-in
``n >= 2`` (else dropping the smallest one keeps ``prod n >= C_in`` at lower cost), and a stage that
does neither is a removable depthwise ``1 x 1``. The default cap (:func:`stage_cap`) is
``ceil(log2 C_in) + 1`` plus, per axis, 1 spatial stage without dilation (2 with a stride: one per
phase, by 3.), ``ceil(log2 K) + 1`` with dilation, ``ceil((K_max - 1) / 2)`` for square kernels
without dilation, plus 1 for the strided stage. The certificate's ``all_n`` reports whether the
relaxation proves that no chain with more stages is cheaper.

Lower bounds (certificates)
---------------------------
Write ``v_i = n_i * kh_i * kw_i`` (the stage's "volume"). Along an axis the footprint has at most
``prod_i k_i`` offsets and must contain the ``K`` window taps, and ``prod_i n_i >= C_in``, so
``prod_i v_i >= V = C_in * Kh * Kw`` for every valid design, with or without dilation or stride
(``C_in * max(Kh, Kw)^2`` for square kernels; ``lambda`` times ``C_in Kh Kw`` when only a fraction
``lambda`` of the volume must be covered, since the covered fraction is
``(reach / C_in) * (taps_h / Kh) * (taps_w / Kw)``). With stage widths ``C_i`` and
``v_i >= L_i = C_{i-1} / gcd(C_{i-1}, C_i)`` (the smallest fan-in a stage can have), the minimum of
``sum_i C_i v_i`` under ``prod_i v_i >= V`` (weighted AM-GM; water-filling when some ``v_i`` sit at
their floor) bounds every ``N``-stage design. For equal widths ``C`` it is ``N C V^(1/N)``
when ``V^(1/N) >= 1``: for ``N = 2``, ``2 C_out sqrt(C_in Kh Kw)``, which is the paper's
``2 C^{3/2} K`` for ``C_in = C_out = C``, ``K x K``. Minimising ``N C (C K^2)^{1/N}`` over real
``N`` gives ``N* = ln(C K^2)`` and ``e C ln(C K^2)`` (the abstract's ``O(C log(C K^2))``); the
certificate keeps it as ``relaxation`` and uses the minimum over the allowed *integer* ``N`` as
``bound``.

Without dilation (full coverage) spans only add: along an axis ``sum (k_i - 1)`` over stages before
the stride plus ``s * sum (k_i - 1)`` over stages after it must reach ``K - 1``. For fixed fan-ins
the cost is linear in each ``k_i``, so in the relaxation one stage takes the whole span, with kernel
weight at least ``1 + (K - 1) / s``, alone or shared with the other axis. Water-filling the fan-ins
``n_i >= L_i`` against these weights (``prod n_i >= C_in``) gives a second valid bound; the larger
one is used. This is where integer reality and the lack of dilation bite: a spatial stage cannot have a
fan-in below 1, so for large ``K`` a design pays about ``C_out (Kh + Kw)`` for space plus
``e C_out ln C_in`` for channels, far above ``e C ln(C K^2)``; with dilation the integer optimum
comes within a few percent of the product bound. The remaining gaps come from divisibility (fan-ins
must divide the widths, so ``n_i a_i`` cannot all equal ``e``) and from integer kernels and ``N``.

For ``macs`` every stage costs its parameters times its output area, at least ``(Ho - 1)(Wo - 1)``
under the padding rule, so the params bound times that area is valid. For ``macs_valid`` (padding taps
not counted) a tap may miss the image for most outputs of a small map, so no such factor holds in
general and the certificate's bound is the trivial 0.

Worked example: 256 -> 256, K = 7
---------------------------------
``V = 256 * 49 = 12,544``. Two stages: the bound is ``2 * 256 * sqrt(12,544) = 57,344`` and the
solver finds ``7x1`` (16 groups, fan-in 16), shuffle, ``1x7`` (16 groups): ``256 * 16 * 7 * 2 =
57,344``, gap 0 %. Free ``N`` without dilation: ``7x1`` and ``1x7`` depthwise, then four ``1x1``
stages of fan-in 4: ``256 * (7 + 7 + 4 * 4) = 7,680`` in 6 stages; the additive bound is 7,454.5
(gap 2.9 %), far above ``e C ln(C K^2) = 6,567``: the spatial stages alone cost ``256 * 14``. With
dilation: ``4x1``, ``1x4``, then ``2x2`` at dilation 3 (``{0..3} + 3 * {0, 1} = {0..6}``) and four
``1x1`` of fan-in 4: ``256 * (4 + 4 + 4 + 16) = 7,168`` in 7 stages, bound 6,574.5 (gap 8.3 %: the
fan-ins are powers of two, so no stage reaches the ideal volume ``e``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .cost import Cost
from .cost import cost as _cost
from .coverage import Coverage
from .coverage import coverage as _coverage
from .errors import InfeasibleDesignError, OscDesignError, SpecError
from .geometry import check_int, conv_output_size, valid_taps
from .spec import GraphBuilder, LayerSpec, Target

__all__ = ["Stage", "Certificate", "Solution", "solve", "pareto_front", "stage_cap", "lower_bound", "OBJECTIVES"]

OBJECTIVES = ("params", "macs", "macs_valid")
_BIG = 1 << 40  # even; a span ">= T" is stored as _BIG + parity (only differences and parities are used)
_INF = float("inf")


# ---------------------------------------------------------------------------------------------------
# per-axis footprint automaton
# ---------------------------------------------------------------------------------------------------
class _Axis:
    """Footprint states and stage steps along one spatial axis (height or width).

    A *pre* state is ``(R,)``: the footprint span so far (exact below ``T = max(K - 1, 1)``, else
    ``_BIG + parity``). After the strided stage an axis with stride ``s > 1`` has *post* states
    ``(R, bpar, beta, m, bused)``: total span in input pixels, parity of the coarse span ``B`` so far,
    the promised final parity ``beta`` of ``B``, the strided stage's output size ``m`` (0 when sizes are
    not tracked) and whether a post-stride stage already has a kernel > 1 (used by the exchange rule).
    """

    def __init__(self, K: int, s: int, p: int, size: int | None, out: int | None, *, dilated: bool,
                 concentrate: bool, dominate: bool, objective: str, partial: bool) -> None:
        self.K, self.s, self.p = K, s, p
        self.T = max(K - 1, 1)
        self.delta = p - (K - 1) // 2
        self.size, self.out = size, out
        self.dilated, self.concentrate, self.dominate = dilated, concentrate, dominate
        self.objective, self.partial = objective, partial
        self._ks: dict[tuple, tuple[int, ...]] = {}
        self._steps: dict[tuple, tuple] = {}

    # -- spans, paddings, sizes -------------------------------------------------------------------
    def canon(self, R: int) -> int:
        if R >= _BIG:
            return _BIG + (R & 1)
        return R if R < self.T else _BIG + (R & 1)

    def Q(self, R: int, started: bool) -> int:
        """Cumulative padding (input pixels) after the stages that made span ``R`` (pre-stride rule)."""
        if not started:
            return 0
        if R == 0:
            return max(0, self.delta) if self.K == 1 else 0
        if R >= _BIG:
            return R // 2 + self.delta  # never clamped: T >= -2 * delta
        return max(0, R // 2 + self.delta)

    def size_pre(self, R: int, started: bool) -> int | None:
        if self.size is None:
            return None
        if not started:
            return self.size
        return self.size + 2 * self.Q(R, True) - R if R < _BIG else self.size + 2 * self.delta - (R & 1)

    def initial(self) -> tuple:
        return (0,)

    # -- kernel sizes worth trying ----------------------------------------------------------------
    def ks(self, st: tuple, kind: str) -> tuple[int, ...]:
        """Kernel sizes worth trying from ``st`` for a stage of ``kind`` (rectangular mode)."""
        key = (st, kind)
        got = self._ks.get(key)
        if got is None:
            got = self._ks[key] = tuple(sorted(set(self._ks_raw(st, kind)), reverse=True))
        return got

    def _ks_raw(self, st: tuple, kind: str) -> list[int]:
        K, s, T = self.K, self.s, self.T
        R = st[0]
        post = kind == "post" and s > 1
        big = R >= _BIG
        out = [1]
        if post:
            if not big and R + 1 < s:
                return out
            if self.concentrate:
                if st[4]:
                    return out
                if big:
                    return out + [2]
                if not self.partial:
                    b = -(-max(0, K - 1 - R) // s)
                    return out + ([b + 1] if b > 0 else [])
                bmax = -(-max(0, K - 1 - R) // s) + 1
                return out + [b + 1 for b in range(1, bmax + 1)]
            if big:
                return out + [2]
            if self.dilated:
                return out + list(range(2, -(-K // (R + 1)) + 3))
            return out + [b + 1 for b in range(1, -(-(T - R) // s) + 2)]
        # pre-stride stage (or an axis without stride)
        if self.concentrate:
            if R != 0:
                return out
            if s == 1:
                spans = [K - 1] if K > 1 else []
                if self.partial:
                    spans += [a for a in range(1, K - 1) if (a - (K - 1)) % 2 == 0]
                return out + [a + 1 for a in spans if a >= 1]
            if self.partial:
                return out + list(range(2, K + 1))
            # spans A before the stride that a single later stage completes exactly: A + s * B = K - 1,
            # A >= s - 1 when B > 0 (a gap-free footprint); overshooting never pays for params
            spans = [K - 1 - s * b for b in range(0, (K - 1) // s + 1)]
            return out + [a + 1 for a in spans if a >= 1 and (a == K - 1 or a >= s - 1)]
        if big:
            return out + [2]
        if self.dilated:
            return out + list(range(2, -(-K // (R + 1)) + 3))
        return out + list(range(2, T - R + 3))

    def kmax_square(self, st: tuple, kind: str) -> int:
        """Largest kernel this axis may want in a square stage (the other axis must accept it)."""
        return max(self.ks(st, kind))

    # -- one stage along this axis ----------------------------------------------------------------
    def step(self, st: tuple, kind: str, started: bool, k: int) -> tuple:
        """Outcomes ``(new_state, dilation, padding, factor)`` of a stage with kernel ``k``.

        ``kind`` is ``"pre"``, ``"stride"`` (the strided stage) or ``"post"``; for an axis with unit
        stride all three are the same. ``factor`` is the per-axis cost factor of the objective: ``k``
        (params), ``k * out_size`` (macs) or the valid tap count (macs_valid).
        """
        key = (st, kind, started, k)
        got = self._steps.get(key)
        if got is None:
            got = self._steps[key] = tuple(self._step(st, kind, started, k))
        return got

    def _deltas(self, R: int, k: int, unit: int) -> list[int]:
        """Dilations ``d`` (step ``unit * d``) allowed from span ``R`` for kernel ``k``."""
        if k == 1:
            return [1]
        if not self.dilated:
            return [1] if (R >= _BIG or unit <= R + 1) else []
        if R >= _BIG:
            if (unit * (k - 1)) % 2 == 0:
                return [1]
            return [1, 2] if 2 * unit <= self.T + 1 else [1]
        dmax = (R + 1) // unit
        if dmax < 1:
            return []
        ds = list(range(1, dmax + 1))
        if not self.dominate:
            return ds
        keep: dict[tuple[int, bool], int] = {}
        for d in ds:  # per parity: the largest span below T and the smallest at or above T
            R2 = R + unit * d * (k - 1)
            cls = (R2 & 1, R2 >= self.T)
            if cls not in keep:
                keep[cls] = d
            elif cls[1]:
                keep[cls] = min(keep[cls], d)
            else:
                keep[cls] = max(keep[cls], d)
        return sorted(set(keep.values()))

    def _factor(self, k: int, h_in: int | None, h_out: int | None, stride: int, pad: int, d: int) -> int:
        if self.objective == "params":
            return k
        if self.objective == "macs":
            return k * h_out  # type: ignore[operator]
        return valid_taps(h_in, k, stride, pad, d)  # type: ignore[arg-type]

    def _step(self, st: tuple, kind: str, started: bool, k: int):
        s = self.s
        if s == 1:
            kind = "pre"
        if kind == "post":
            R, bpar, beta, m, bused = st
            for d in self._deltas(R, k, s):
                b = d * (k - 1)
                bpar2 = (bpar + b) & 1
                pad = (b + bpar - bpar2) // 2
                h_in = h_out = None
                if self.size is not None:
                    h_in = m - bpar
                    h_out = h_in + 2 * pad - b
                    if h_in < 1 or h_out < 1:
                        continue
                new = (self.canon(R + s * b), bpar2, beta, m, bused or b > 0)
                yield new, d, pad, self._factor(k, h_in, h_out, 1, pad, d)
            return
        R = st[0]
        h_in = self.size_pre(R, started)
        if h_in is not None and h_in < 1:
            return
        q_prev = self.Q(R, started)
        for d in self._deltas(R, k, 1):
            a = d * (k - 1)
            R2 = R + a
            if kind == "pre":
                pad = self.Q(R2, True) - q_prev
                h_out = None
                if h_in is not None:
                    h_out = h_in + 2 * pad - a
                    if h_out < 1:
                        continue
                yield (self.canon(R2),), d, pad, self._factor(k, h_in, h_out, 1, pad, d)
                continue
            # the strided stage: it takes whatever padding centres the final footprint
            betas = (0, 1) if s % 2 == 0 else ((self.K - 1 - R2) & 1,)
            for beta in betas:
                twice = 2 * self.p + (R2 - (self.K - 1)) + s * beta - 2 * q_prev
                if twice < 0 or twice % 2:
                    continue
                pad = twice // 2
                m = 0
                h_out = None
                if h_in is not None:
                    m = h_out = conv_output_size(h_in, k, s, pad, d)
                    if m < 1:
                        continue
                yield (self.canon(R2), 0, beta, m, False), d, pad, self._factor(k, h_in, h_out, s, pad, d)

    # -- acceptance -------------------------------------------------------------------------------
    def covered_taps(self, st: tuple, post: bool) -> int:
        """Window taps covered along this axis by a final state (0: not a valid final state)."""
        K, s = self.K, self.s
        R = st[0]
        if s > 1:
            if not post or st[1] != st[2]:
                return 0
        elif self.Q(R, True) != self.p + (R - (K - 1)) // 2 and R < _BIG:
            return 0
        if (R - (K - 1)) % 2:
            return 0
        if R >= _BIG or R >= K - 1:
            return K
        if not self.partial or self.p + (R - (K - 1)) // 2 < 0:
            return 0
        return R + 1


# ---------------------------------------------------------------------------------------------------
# small integer helpers
# ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return tuple(small + large[::-1])


@lru_cache(maxsize=8192)
def _fanins(cin: int, cout: int) -> tuple[int, ...]:
    """Fan-ins ``n = cin / g`` of a ``cin -> cout`` stage, ascending (``g`` divides both widths)."""
    return tuple(sorted(cin // g for g in _divisors(math.gcd(cin, cout))))


def _clog2(x: int) -> int:
    return max(0, (x - 1).bit_length())


def _root(P: int | float, m: int) -> float:
    """``P^(1/m)``, exact when ``P`` is an integer that is a perfect ``m``-th power."""
    mu = math.exp(math.log(P) / m)
    if isinstance(P, int):
        r = round(mu)
        if r > 0 and r ** m == P:
            return float(r)
    return mu


def _waterfill(weights: Sequence[int], V: int | float) -> float:
    """``min sum_i w_i z_i`` subject to ``z_i >= 1`` and ``prod_i z_i >= V``.

    KKT: ``w_i z_i = mu`` on the free variables (the smallest weights), ``z_i = 1`` on the rest; with
    ``m`` free variables ``mu = (V * w_1 * ... * w_m)^(1/m)``, valid when ``mu >= w_m``.

    >>> _waterfill([256, 256], 256 * 49)  # 2 * 256 * sqrt(256 * 49)
    57344.0
    """
    ws = sorted(weights)
    if V <= 1 or not ws:
        return float(sum(ws))
    tail = 0
    for m in range(len(ws), 0, -1):
        P: int | float = V
        for w in ws[:m]:
            P = P * w
        mu = _root(P, m)
        if mu >= ws[m - 1] * (1 - 1e-12):
            return m * mu + tail
        tail += ws[m - 1]
    return float(sum(ws))  # unreachable for V > 1


def _wf_ones(big: tuple[float, ...], ones: int, lnV: float) -> float:
    """:func:`_waterfill` for the weights ``big`` (each > 1, ascending) plus ``ones`` weights equal to 1."""
    total = len(big) + ones
    lbig = [math.log(b) for b in big]
    for m in range(total, 0, -1):
        nb = m - ones  # how many of the big weights are free
        if nb < 0:
            break
        log_mu = (lnV + sum(lbig[:nb])) / m
        top = lbig[nb - 1] if nb > 0 else 0.0
        if log_mu >= top - 1e-12:
            return m * math.exp(log_mu) + sum(big[nb:])
    return float(sum(big) + ones) if ones == 0 else ones * math.exp(lnV / ones) + sum(big)


def _rem_lb(V: float, ah: float, aw: float, left: int) -> float:
    """:func:`_rem_bound` at ``V`` rounded down to a power of ``2^(1/16)`` (still a valid lower bound:
    the bound grows with ``V``), so that the cache is hit."""
    if V <= 1:
        return _rem_bound(1.0, ah, aw, left)
    q = math.floor(math.log2(V) * 16) / 16
    return _rem_bound(2.0 ** q, ah, aw, left)


@lru_cache(maxsize=262144)
def _rem_bound(V: float, ah: float, aw: float, left: int) -> float:
    """Relaxation bound (per unit width) for completing a design with at most ``left`` more stages.

    ``V`` is the multiplicative volume still missing (channels, and axes where reach multiplies);
    ``ah``, ``aw`` are the kernel weights still needed along axes where spans only add, 1 when none.
    Each such span sits in one stage in the relaxation (linear cost), alone or shared by both axes;
    the fan-ins are water-filled against those weights (:func:`_waterfill`).
    """
    if left < 1 or (ah == 1 and aw == 1 and V <= 1):
        return 0.0
    lnV = math.log(V) if V > 1 else 0.0
    if ah > 1 and aw > 1:
        layouts: list[tuple[float, ...]] = [(ah * aw,), tuple(sorted((ah, aw)))]
    elif ah > 1 or aw > 1:
        layouts = [(max(ah, aw),)]
    else:
        layouts = [()]
    best = _INF
    for big in layouts:
        # the value is convex in the number of stages (the perspective of a convex function, minimised
        # over the other variables), so the scan stops at the first increase
        prev = _INF
        for j in range(max(1, len(big)), left + 1):
            ones = j - len(big)
            value = sum(big) + ones if lnV <= 0 else _wf_ones(big, ones, lnV)
            if value > prev:
                break
            prev = value
        best = min(best, prev)
    return best


# ---------------------------------------------------------------------------------------------------
# the exact search
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One conv stage of a design (as built into the spec)."""

    in_channels: int
    out_channels: int
    groups: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @property
    def fan_in(self) -> int:
        """Input channels seen by one output channel, ``in_channels // groups``."""
        return self.in_channels // self.groups

    @property
    def params(self) -> int:
        return self.out_channels * self.fan_in * self.kernel_size[0] * self.kernel_size[1]

    def describe(self) -> str:
        kh, kw = self.kernel_size
        s = f"{kh}x{kw} g{self.groups} ({self.in_channels}->{self.out_channels}, fan-in {self.fan_in})"
        if self.dilation != (1, 1):
            s += f" d{self.dilation[0]}x{self.dilation[1]}"
        if self.stride != (1, 1):
            s += f" s{self.stride[0]}x{self.stride[1]}"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "groups": self.groups,
                "fan_in": self.fan_in, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation)}


class _Search:
    """The dynamic programme over chain prefixes for one target and one set of options."""

    def __init__(self, target: Target, objective: str, n_lo: int, n_hi: int, square: bool, dilated: bool,
                 widths: tuple[int, ...] | int | None, min_coverage: float) -> None:
        self.target = target
        self.objective = objective
        self.n_lo, self.n_hi = n_lo, n_hi
        self.square, self.dilated = square, dilated
        self.widths = widths
        self.lam = min_coverage
        self.cin, self.cout = target.in_channels, target.out_channels
        self.strided = target.stride != (1, 1)
        partial = min_coverage < 1.0
        concentrate = objective == "params" and not dilated and not square
        dominate = objective == "params"
        sizes = target.input_size
        outs = target.output_size
        self.axes = tuple(
            _Axis(target.kernel_size[a], target.stride[a], target.padding[a],  # type: ignore[index]
                  None if sizes is None else sizes[a], None if outs is None else outs[a],
                  dilated=dilated, concentrate=concentrate, dominate=dominate, objective=objective,
                  partial=partial)
            for a in (0, 1)
        )
        self.volume = self.cin * target.kernel_size[0] * target.kernel_size[1]
        # axes whose spans only add (no dilation, unit stride): the remainder bound treats them apart
        self.additive = tuple(not dilated and not partial and target.kernel_size[a] > 1 for a in (0, 1))
        self.need = min_coverage * self.cin
        for a in (0, 1):
            if not self.additive[a]:
                self.need *= target.kernel_size[a]
        # per-volume-unit cost lower bound (for pruning) and the factor for the certificate bound
        if objective == "params":
            self.rho = 1.0
        elif objective == "macs":
            self.rho = float(self.min_area())
        else:
            self.rho = 0.0
        self._combos: dict[tuple, list] = {}
        self.searched = 0
        self.state_dominance = dilated and objective == "params"
        self._layers: list[dict[tuple, dict[int, list]]] = []

    # -- widths ------------------------------------------------------------------------------------
    def width(self, t: int, last: bool) -> int:
        """Output width of stage ``t`` (1-based)."""
        if last:
            return self.cout
        w = self.widths
        if w is None:
            return self.cout
        if isinstance(w, int):
            return w
        return w[t - 1]

    @property
    def uniform(self) -> bool:
        return self.widths is None or self.widths == self.cout

    def min_width(self, t_from: int) -> int:
        """Smallest output width of stages ``t_from..``."""
        w = self.widths
        if w is None:
            return self.cout
        if isinstance(w, int):
            return min(w, self.cout)
        rest = list(w[t_from - 1:]) + [self.cout]
        return min(rest)

    def min_area(self) -> int:
        """Smallest output area any stage can have under the padding rule: ``>= (Ho - 1)(Wo - 1)``."""
        t = self.target
        if t.input_size is None:
            return 0
        area = 1
        for a in (0, 1):
            h, o, K, p = t.input_size[a], t.output_size[a], t.kernel_size[a], t.padding[a]  # type: ignore[index]
            area *= max(0, min(h, h + 2 * p - K, o - 1))
        return area

    # -- moves -------------------------------------------------------------------------------------
    def combos(self, hs: tuple, ws: tuple, kind: str, started: bool) -> list:
        key = (hs, ws, kind, started)
        got = self._combos.get(key)
        if got is not None:
            return got
        ah, aw = self.axes
        out = []
        if self.square:
            kmax = max(ah.kmax_square(hs, kind), aw.kmax_square(ws, kind))
            for k in range(kmax, 0, -1):
                for hs2, dh, ph, fh in ah.step(hs, kind, started, k):
                    for ws2, dw, pw, fw in aw.step(ws, kind, started, k):
                        out.append((fh * fw, hs2, ws2, (k, k), (dh, dw), (ph, pw), self.spatial_reach(hs2, ws2)))
        else:
            hsteps = [(kh, o) for kh in ah.ks(hs, kind) for o in ah.step(hs, kind, started, kh)]
            wsteps = [(kw, o) for kw in aw.ks(ws, kind) for o in aw.step(ws, kind, started, kw)]
            for kh, (hs2, dh, ph, fh) in hsteps:
                for kw, (ws2, dw, pw, fw) in wsteps:
                    out.append((fh * fw, hs2, ws2, (kh, kw), (dh, dw), (ph, pw), self.spatial_reach(hs2, ws2)))
        self._combos[key] = out
        return out

    def accept(self, key: tuple, r: int) -> bool:
        hs, ws, phase = key
        if self.strided and phase != 1:
            return False
        th = self.axes[0].covered_taps(hs, phase == 1)
        tw = self.axes[1].covered_taps(ws, phase == 1)
        if not th or not tw:
            return False
        covered = r * th * tw
        return covered == self.volume or covered / self.volume >= self.lam

    def spatial_reach(self, hs: tuple, ws: tuple) -> tuple[int, float, float]:
        """What a state still needs spatially, for the remainder bound.

        Returns ``(m, ah, aw)``: ``m`` is the product of the covered window taps (at most ``R + 1``)
        along the axes whose reach multiplies (dilation, or a relaxed coverage), ``ah``/``aw`` the
        kernel weight a remaining span ``D`` needs along axes without dilation: ``1 + D / s`` (a
        stage after the stride spaces its taps by ``s``; before it they are 1 apart), 1 when covered.
        """
        m, a = 1, [1, 1]
        for i, (ax, st) in enumerate(((self.axes[0], hs), (self.axes[1], ws))):
            R = st[0]
            done = R >= _BIG or R >= ax.K - 1
            if self.additive[i]:
                a[i] = 1 if done else 1 + (ax.K - 1 - R) / ax.s
            else:
                m *= ax.K if done else R + 1
        return m, a[0], a[1]

    # -- the programme -------------------------------------------------------------------------------
    def run(self, ub: float) -> dict[int, tuple[float, tuple]]:
        """Best design cost per exact stage count ``N`` in ``[n_lo, n_hi]`` (only costs ``<= ub``)."""
        cin_all = self.cin
        h0, w0 = self.axes[0].initial(), self.axes[1].initial()
        layer: dict[tuple, dict[int, list]] = {(h0, w0, 0): {1: [0, None]}}
        finals: dict[int, tuple[float, tuple]] = {}
        uniform = self.uniform
        ub_tol = ub * (1 + 1e-12)
        need = self.need
        self.searched = 1
        for t in range(self.n_hi):
            stage = t + 1
            cin = self.cin if t == 0 else self.width(t, False)
            left_after = self.n_hi - stage
            want_final = stage >= self.n_lo
            build_next = stage < self.n_hi
            outs = []
            if build_next or uniform:
                outs.append(False)
            if want_final and not uniform:
                outs.append(True)
            nxt: dict[tuple, dict[int, list]] = {}
            cands: dict[tuple, dict[int, list]] = {}
            lb_cache: dict[tuple, float] = {}
            for last in outs:
                cout = self.width(stage, last)
                target_layer = cands if last else nxt
                fan = _fanins(cin, cout)
                cmin_rest = self.min_width(stage + 1) * self.rho if left_after else 0.0
                fan0 = fan[0]

                def lower(r2: int, sp2: tuple) -> float:
                    lk = (r2 * sp2[0], sp2[1], sp2[2])
                    lb = lb_cache.get(lk)
                    if lb is None:
                        lb = lb_cache[lk] = cmin_rest * _rem_lb(need / lk[0], lk[1], lk[2], left_after)
                    return lb

                for key, entries in layer.items():
                    hs, ws, phase = key
                    if phase == 1:
                        kinds: tuple[str, ...] = ("post",)
                    else:
                        kinds = ("pre", "stride") if self.strided else ("pre",)
                    cmin_key = min(e[0] for e in entries.values())
                    for kind in kinds:
                        phase2 = 1 if kind in ("stride", "post") else 0
                        for f, hs2, ws2, kk, dd, pp, sp2 in self.combos(hs, ws, kind, t > 0):
                            unit = cout * f
                            # even the cheapest entry with the smallest fan-in and full reach cannot fit
                            best_case = cmin_key + fan0 * unit
                            if best_case > ub_tol or (cmin_rest and best_case + lower(cin_all, sp2) > ub_tol):
                                continue
                            key2 = (hs2, ws2, phase2)
                            slot = target_layer.get(key2)
                            for r, (c, _) in entries.items():
                                for n in fan:
                                    r2 = r * n
                                    if r2 >= cin_all:
                                        r2 = cin_all
                                    c2 = c + n * unit
                                    if c2 > ub_tol:
                                        break
                                    if cmin_rest and c2 + lower(r2, sp2) > ub_tol:
                                        if r2 == cin_all:
                                            break
                                        continue
                                    if slot is None:
                                        slot = target_layer[key2] = {}
                                    cur = slot.get(r2)
                                    if cur is None or c2 < cur[0]:
                                        slot[r2] = [c2, (key, r, kind, n, cin, cout, kk, dd, pp)]
                                    if r2 == cin_all:
                                        break
            # Pareto filter over reach within each spatial state
            for store in (nxt, cands):
                for key2, slot in store.items():
                    if len(slot) > 1:
                        best = _INF
                        for r2 in sorted(slot, reverse=True):
                            if slot[r2][0] >= best:
                                del slot[r2]
                            else:
                                best = slot[r2][0]
            if self.state_dominance and len(nxt) > 1:
                nxt = self._dominance_filter(nxt)
            if want_final:
                src = nxt if uniform else cands
                for key2, slot in src.items():
                    for r2, (c2, back) in slot.items():
                        if c2 <= ub and self.accept(key2, r2):
                            if stage not in finals or c2 < finals[stage][0]:
                                finals[stage] = (c2, back)
            self.searched += sum(len(s) for s in nxt.values()) + sum(len(s) for s in cands.values())
            layer = nxt
            self._layers.append(layer)
            if not layer:
                break
        return finals

    @staticmethod
    def _dominance_filter(layer: dict[tuple, dict[int, list]]) -> dict[tuple, dict[int, list]]:
        """Drop entries another entry dominates: at least the reach, at least the span of the same parity
        along each axis (all other state parts equal) and at most the cost. Valid for ``params`` with
        dilation: from a larger span of the same parity every completion of the smaller one works (same
        kernels and dilations; steps stay within ``span + 1``; the final span grows by an even amount)."""
        groups: dict[tuple, list[tuple]] = {}
        for key, slot in layer.items():
            hs, ws, phase = key
            g = (hs[0] & 1, ws[0] & 1, hs[1:], ws[1:], phase)
            for r, entry in slot.items():
                groups.setdefault(g, []).append((entry[0], -r, -hs[0], -ws[0], key, r))
        out: dict[tuple, dict[int, list]] = {}
        for items in groups.values():
            items.sort()
            kept: list[tuple[int, int, int]] = []
            for c, nr, nh, nw, key, r in items:
                rh, rw = -nh, -nw
                if any(kr >= r and kh >= rh and kw >= rw for kr, kh, kw in kept):
                    continue
                kept.append((r, rh, rw))
                out.setdefault(key, {})[r] = layer[key][r]
        return out

    def solve(self, ub_hint: float, exact_n: bool = False, known: float = _INF) -> dict[int, tuple[float, list[Stage]]]:
        """Run with an increasing upper bound until designs are found; decode the traces.

        Any design costing at most the upper bound survives the pruning, so the first pass that finds
        designs finds the optimum (per stage count when ``exact_n``). ``known`` is the cost of a design
        known to lie in the space (it caps the schedule).
        """
        total = 0
        pruning = self.rho > 0 and ub_hint > 0 and math.isfinite(ub_hint)
        factors = (1.0 + 1e-9, 1.03, 1.08, 1.2, 1.5, 2.5, 6.0)
        schedule = [ub_hint * f for f in factors] + [_INF] if pruning else [_INF]
        if known < _INF and not exact_n:
            # the cost of a design known to be in the space ends the schedule (and replaces the passes
            # just below it, which would cost nearly as much and might fail)
            schedule = [u for u in schedule if u < known / 1.1] + [known * (1 + 1e-9), _INF]
        finals: dict[int, tuple[float, tuple]] = {}
        for ub in schedule:
            self._layers = []
            finals = self.run(ub)
            total += self.searched
            if finals and (not exact_n or len(finals) == self.n_hi - self.n_lo + 1 or ub == _INF):
                break
        self.searched = total
        out = {}
        for N, (c, back) in finals.items():
            out[N] = (c, self.decode(N, back))
        return out

    def decode(self, N: int, back: tuple) -> list[Stage]:
        stages: list[Stage] = []
        t = N
        while back is not None:
            key, r, kind, n, cin, cout, kk, dd, pp = back
            stride = self.target.stride if kind == "stride" else (1, 1)
            stages.append(Stage(cin, cout, cin // n, kk, stride, pp, dd))  # type: ignore[arg-type]
            t -= 1
            if t == 0:
                break
            back = self._layers[t - 1][key][r][1]
        stages.reverse()
        return stages


# ---------------------------------------------------------------------------------------------------
# lower bounds
# ---------------------------------------------------------------------------------------------------
def _stage_widths(target: Target, N: int, widths: tuple[int, ...] | int | None) -> list[int]:
    if widths is None:
        return [target.out_channels] * N
    if isinstance(widths, int):
        return [widths] * (N - 1) + [target.out_channels]
    return list(widths) + [target.out_channels]


def _stage_lows(target: Target, N: int, widths: tuple[int, ...] | int | None) -> list[int]:
    """Smallest fan-in of each stage: ``C_{i-1} / gcd(C_{i-1}, C_i)`` (its groups divide both widths)."""
    c = [target.in_channels] + _stage_widths(target, N, widths)
    return [c[i] // math.gcd(c[i], c[i + 1]) for i in range(N)]


def _waterfill_low(weights: Sequence[float], lows: Sequence[int], V: int | float) -> float:
    """``min sum_i w_i z_i`` subject to ``z_i >= L_i`` and ``prod_i z_i >= V`` (``z_i = L_i y_i``)."""
    scaled = [w * low for w, low in zip(weights, lows)]
    prod_low = math.prod(lows)
    if isinstance(V, int) and V % prod_low == 0:
        return _waterfill(scaled, V // prod_low)
    return _waterfill(scaled, V / prod_low)


def _position_class(N: int, i: int) -> str:
    return "first" if i == 0 else ("last" if i == N - 1 else "mid")


@lru_cache(maxsize=16384)
def _bound_parts(target: Target, N: int, widths: tuple[int, ...] | int | None, square: bool, dilated: bool,
                 lam: float) -> tuple[float, dict[tuple[str, ...], float]]:
    """The two relaxations for ``N`` stages: the product bound, and the additive bound per layout.

    Layout keys name where the spans sit by position class (``first``, ``mid``, ``last``), so that
    for internal widths that do not depend on the stage, a layout means the same for every ``N``.
    """
    c = _stage_widths(target, N, widths)
    lows = _stage_lows(target, N, widths)
    (kh, kw), (sh, sw) = target.kernel_size, target.stride  # type: ignore[misc]
    cin = target.in_channels
    spatial = max(kh, kw) ** 2 if (square and lam >= 1.0) else kh * kw
    V: int | float = cin * spatial if lam >= 1.0 else lam * cin * spatial
    prod = _waterfill_low(c, lows, V)
    layouts: dict[tuple[str, ...], float] = {}
    if lam < 1.0 or dilated:
        return prod, layouts
    weights = [1 + (K - 1) / s for K, s in ((kh, sh), (kw, sw)) if K > 1]
    if not weights:
        return prod, layouts
    if all(w == int(w) for w in weights):
        weights = [int(w) for w in weights]
    # positions of one class are interchangeable when their (width, smallest fan-in) agree
    reps: dict[tuple, list[int]] = {}
    for i in range(N):
        cls = (_position_class(N, i), c[i], lows[i]) if isinstance(widths, tuple) else (_position_class(N, i),)
        if len(reps.setdefault(cls, [])) < 2:
            reps[cls].append(i)
    one = sorted(v[0] for v in reps.values())
    two = sorted(i for v in reps.values() for i in v)
    if len(weights) == 1:
        for j in one:
            w = list(c)
            w[j] *= weights[0]
            tag = str(j) if isinstance(widths, tuple) else ""
            layouts[("one", _position_class(N, j), tag)] = _waterfill_low(w, lows, cin)
        return prod, layouts
    for j in one:  # one stage takes both spans
        w = list(c)
        w[j] *= weights[0] * weights[1]
        tag = str(j) if isinstance(widths, tuple) else ""
        layouts[("joint", _position_class(N, j), tag)] = _waterfill_low(w, lows, cin)
    for i in two:  # two stages take one span each
        for j in two:
            if i == j:
                continue
            key = ("split", _position_class(N, i), _position_class(N, j),
                   f"{i},{j}" if isinstance(widths, tuple) else "")
            if key in layouts:
                continue
            w = list(c)
            w[i] *= weights[0]
            w[j] *= weights[1]
            layouts[key] = _waterfill_low(w, lows, cin)
    return prod, layouts


def _bound_n(target: Target, N: int, widths: tuple[int, ...] | int | None, square: bool, dilated: bool,
             lam: float) -> float:
    """Relaxation lower bound on the params of any ``N``-stage design of the space (see module docstring).

    The product bound (``prod v_i >= V``) holds for every design. Without dilation and with full
    coverage a second bound holds as well: along an axis the span needed, ``K - 1``, is a sum of
    ``k_i - 1`` (taps before the stride) and ``s (k_i - 1)`` (after it); the cost is linear in each
    ``k_i`` for fixed fan-ins, so in the relaxation one stage takes the whole span, with kernel weight
    at least ``1 + (K - 1) / s``: the minimum over where those spans sit. The larger of the two bounds
    is returned. Both respect the smallest fan-in each stage can have (its groups divide both of its
    widths).
    """
    prod, layouts = _bound_parts(target, N, widths, square, dilated, lam)
    return max(prod, min(layouts.values())) if layouts else prod


def lower_bound(target: Target, *, n_min: int = 1, n_max: int | None = None, objective: str = "params",
                square_only: bool = False, dilation: bool = False, widths: Sequence[int] | int | None = None,
                min_coverage: float = 1.0) -> float:
    """The certificate's lower bound: ``min over n_min <= N <= n_max`` of the ``N``-stage relaxation.

    Parameters
    ----------
    target : Target
        The convolution to replace.
    n_min, n_max : int
        Range of stage counts (``n_max`` defaults to :func:`stage_cap`).
    objective, square_only, dilation, widths, min_coverage
        As in :func:`solve`.

    Returns
    -------
    float
        A lower bound on the objective of every design of the searched space with ``n_min..n_max``
        stages (params: water-filling / AM-GM relaxation; macs: times the smallest stage output area;
        macs_valid: 0).

    Examples
    --------
    >>> lower_bound(Target(256, 256, 7), n_max=2)  # 2 * C^1.5 * K
    57344.0
    """
    w = _norm_widths(widths, target)
    if n_max is None:
        n_max = len(w) + 1 if isinstance(w, tuple) else stage_cap(target, dilation=dilation, square_only=square_only)
    best = min(_bound_n(target, N, w, square_only, dilation, min_coverage) for N in range(n_min, n_max + 1))
    if objective == "params":
        return best
    if objective == "macs":
        return best * _Search(target, "macs", 1, 1, square_only, dilation, w, min_coverage).min_area()
    return 0.0


def stage_cap(target: Target, *, dilation: bool = False, square_only: bool = False) -> int:
    """Default largest number of stages searched (see "Stage cap" in the module docstring).

    ``ceil(log2 C_in) + 1`` channel stages, plus per axis 1 spatial stage without dilation (2 with a
    stride on that axis), ``ceil(log2 K) + 1`` with dilation, ``ceil((K_max - 1) / 2)`` for square
    kernels without dilation, plus 1 for the strided stage.

    >>> stage_cap(Target(256, 256, 7))
    11
    """
    n = _clog2(target.in_channels) + 1
    (kh, kw), (sh, sw) = target.kernel_size, target.stride  # type: ignore[misc]
    if square_only and not dilation:
        n += max(1, -(-(max(kh, kw) - 1) // 2))
    else:
        for K, s in ((kh, sh), (kw, sw)):
            if K > 1:
                n += (_clog2(K) + 1) if dilation else (2 if s > 1 else 1)
    return n + (1 if target.stride != (1, 1) else 0)


# ---------------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    """Why a returned design is optimal, and how far it is from the relaxation bound.

    Attributes
    ----------
    objective : str
        ``"params"``, ``"macs"`` or ``"macs_valid"``.
    value : int
        The design's exact objective value (from :func:`osc_design.cost.cost`).
    bound : float
        A valid lower bound for every design of the searched space with the allowed stage counts.
    gap : float
        ``100 * (value - bound) / value`` (0 when the bound is reached).
    searched : int
        Number of DP states created (all passes of the branch and bound together).
    method : str
        The argument of optimality.
    space : str
        The searched space.
    stages : int
        Stages of the returned design.
    n_max : int
        Largest number of stages searched.
    all_n : bool
        True when the relaxation proves that no design with more than ``n_max`` stages is better.
    relaxation : float
        ``e * C_out * ln(V)`` (real ``N``, equal widths; ``V`` the volume of the module docstring) or
        the ``N = 1..`` minimum when ``V < e``: the paper's continuous optimum, for reference.
    per_stage_bounds : tuple of float
        The ``N``-stage bound for each searched ``N`` (index 0 is ``N = n_min``).
    n_min : int
        Smallest number of stages searched.
    """

    objective: str
    value: int
    bound: float
    gap: float
    searched: int
    method: str
    space: str
    stages: int
    n_max: int
    all_n: bool
    relaxation: float
    per_stage_bounds: tuple[float, ...] = field(default=())
    n_min: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (integers stay integers)."""
        return {"objective": self.objective, "value": self.value, "bound": self.bound, "gap": self.gap,
                "searched": self.searched, "stages": self.stages, "n_min": self.n_min, "n_max": self.n_max,
                "all_n": self.all_n, "relaxation": self.relaxation,
                "per_stage_bounds": list(self.per_stage_bounds), "method": self.method, "space": self.space}


@dataclass(frozen=True)
class Solution:
    """The optimal design with its exact cost, its verified coverage and its certificate."""

    spec: LayerSpec
    cost: Cost
    coverage: Coverage
    certificate: Certificate

    @property
    def stages(self) -> list[Stage]:
        """The conv stages of the design, in order."""
        return [Stage(c.in_channels, c.out_channels, c.groups, c.kernel_size, c.stride, c.padding, c.dilation)
                for c in self.spec.convs]

    def describe(self) -> str:
        """One line: the stages, the cost and the gap."""
        parts = " -> ".join(s.describe() for s in self.stages)
        c = self.certificate
        return f"{parts}: {c.objective} {c.value:,} (bound {c.bound:,.1f}, gap {c.gap:.2f} %)"

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.spec.family, "stages": [s.to_dict() for s in self.stages],
                "cost": self.cost.to_dict(), "coverage": self.coverage.to_dict(),
                "certificate": self.certificate.to_dict()}


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------
def _norm_widths(widths: Any, target: Target) -> tuple[int, ...] | int | None:
    if widths is None:
        return None
    if isinstance(widths, bool):
        raise SpecError(f"`widths` (={widths!r}) must be None, an integer or a sequence of integers")
    if isinstance(widths, int):
        return check_int(widths, "widths", minimum=1)
    if isinstance(widths, (list, tuple)):
        out = tuple(check_int(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths))
        return out
    raise SpecError(f"`widths` (={widths!r}) must be None, an integer or a sequence of integers")


def _check(target: Any, objective: Any, max_stages: Any, square_only: Any, dilation: Any, widths: Any,
           min_coverage: Any, verify: Any) -> tuple:
    if not isinstance(target, Target):
        raise SpecError(f"`target` (={target!r}) must be a Target")
    if objective not in OBJECTIVES:
        raise SpecError(f"`objective` (={objective!r}) must be one of {', '.join(OBJECTIVES)}")
    if objective != "params" and target.input_size is None:
        raise SpecError(f"objective {objective!r} counts MACs and needs a target `input_size`")
    for name, value in (("square_only", square_only), ("dilation", dilation)):
        if not isinstance(value, bool):
            raise SpecError(f"`{name}` (={value!r}) must be true or false")
    if isinstance(min_coverage, bool) or not isinstance(min_coverage, (int, float)) \
            or not (0.0 < float(min_coverage) <= 1.0) or math.isnan(float(min_coverage)):
        raise SpecError(f"`min_coverage` (={min_coverage!r}) must be a number in (0, 1]")
    if verify not in ("full", "fast", "none"):
        raise SpecError(f"`verify` (={verify!r}) must be 'full', 'fast' or 'none'")
    for a, axis in enumerate(("height", "width")):
        s, K = target.stride[a], target.kernel_size[a]
        if s > K:
            raise SpecError(
                f"stride {s} exceeds the kernel {K} along the {axis}: the target skips input pixels, so no "
                f"design can (or needs to) cover a contiguous window; use a kernel of at least {s}"
            )
    w = _norm_widths(widths, target)
    if max_stages is not None:
        check_int(max_stages, "max_stages", minimum=1)
    if isinstance(w, tuple):
        n = len(w) + 1
        if max_stages is not None and max_stages != n:
            raise SpecError(f"`widths` has {len(w)} internal width(s), i.e. {n} stages, "
                            f"but `max_stages` is {max_stages}")
        n_lo = n_hi = n
    else:
        n_lo = 1
        n_hi = max_stages if max_stages is not None else stage_cap(target, dilation=dilation, square_only=square_only)
    return w, n_lo, n_hi, float(min_coverage)


# ---------------------------------------------------------------------------------------------------
# building and verifying
# ---------------------------------------------------------------------------------------------------
def _build(target: Target, stages: Sequence[Stage], family: str, options: dict[str, Any]) -> LayerSpec:
    """The chain as a spec: conv stages, a channel shuffle with the previous stage's groups in between."""
    b = GraphBuilder(target)
    x = b.input
    prev: Stage | None = None
    for i, st in enumerate(stages, 1):
        if prev is not None and 1 < prev.groups < prev.out_channels and st.groups > 1:
            x = b.channel_shuffle(x, prev.groups, name=f"shuffle{i - 1}")
        x = b.conv2d(x, st.out_channels, st.kernel_size, stride=st.stride, padding=st.padding,
                     dilation=st.dilation, groups=st.groups, name=f"stage{i}")
        prev = st
    return b.build(x, family=family, options=options)


def _fast_coverage(target: Target, stages: Sequence[Stage]) -> Coverage:
    """Exact coverage of a shuffle chain built by :func:`_build`, computed per distinct group dependence.

    Equivalent to :func:`osc_design.coverage.coverage` for these chains: channel and spatial dependence
    of a chain factor apart (the verifier's single term), all channels of a group share their
    dependence, a shuffle with ``G`` groups sends input ``j`` of the next stage to group ``j mod G`` of
    the previous one, and the footprint along each axis is a 1-D Minkowski sum. Dependences are bit sets
    over the first stage's groups (each stands for its block of ``n_1`` input channels); groups with the
    same dependence share one set, so a depthwise stage only relabels.
    """
    import numpy as np

    cin = target.in_channels
    first = stages[0]
    n1 = first.fan_in
    sets: list[int] = [1 << q for q in range(first.groups)]
    ids = np.arange(first.groups)  # group -> index into ``sets``
    prev = first
    for st in stages[1:]:
        G, c = prev.groups, st.in_channels
        j = np.arange(c)
        cls = j % G if (1 < G < prev.out_channels and st.groups > 1) else j // (c // G)
        rows = ids[cls].reshape(st.groups, st.fan_in)
        if st.fan_in == 1:
            ids = rows[:, 0]
        else:
            index: dict[frozenset, int] = {}
            new_sets, new_ids = [], []
            for row in rows.tolist():
                key = frozenset(row)
                k = index.get(key)
                if k is None:
                    u = 0
                    for i in key:
                        u |= sets[i]
                    k = index[key] = len(new_sets)
                    new_sets.append(u)
                new_ids.append(k)
            sets, ids = new_sets, np.array(new_ids)
        prev = st
    per_out = target.out_channels // len(ids)
    reach_of = [u.bit_count() * n1 for u in sets]
    reach = [reach_of[i] for i in ids.tolist()]
    inside_axes = []
    for a in (0, 1):
        offs = _footprint(stages, a)
        K, p = target.kernel_size[a], target.padding[a]  # type: ignore[index]
        inside_axes.append([t for t in range(K) if t - p in offs])
    taps = len(inside_axes[0]) * len(inside_axes[1])
    total = target.out_channels * cin * target.kernel_size[0] * target.kernel_size[1]
    covered = sum(reach) * per_out * taps
    missing = None
    if covered < total:
        holes = [[t for t in range(target.kernel_size[a]) if t not in inside_axes[a]] for a in (0, 1)]
        if holes[0] or holes[1]:
            missing = (0, 0, (holes[0][0] if holes[0] else 0, holes[1][0] if holes[1] else 0))
        else:
            q = min(range(len(reach)), key=lambda g: (reach[g] == cin, g))
            u = sets[int(ids[q])]
            i = next(b * n1 for b in range(first.groups) if not (u >> b) & 1)
            missing = (q * per_out, i, (inside_axes[0][0], inside_axes[1][0]))
    return Coverage(covered, total, missing)


def _footprint(stages: Sequence[Stage], a: int) -> set[int]:
    """Offsets, in input pixels and relative to an output pixel's position, that the chain reads along axis ``a``."""
    offs, cum = {0}, 1
    for st in stages:
        step = cum * st.dilation[a]
        offs = {o + step * t - cum * st.padding[a] for o in offs for t in range(st.kernel_size[a])}
        cum *= st.stride[a]
    return offs


def _model_coverage(target: Target, stages: Sequence[Stage]) -> Coverage:
    """Coverage as the model states it, unverified: full when ``prod n_i >= C_in`` and every window tap
    is in the 1-D footprints; otherwise the per-group computation (:func:`_fast_coverage`)."""
    reach = 1
    for st in stages:
        reach *= st.fan_in
    if reach >= target.in_channels:
        for a in (0, 1):
            offs = _footprint(stages, a)
            if any(t - target.padding[a] not in offs for t in range(target.kernel_size[a])):  # type: ignore[index]
                break
        else:
            total = target.out_channels * target.in_channels * target.kernel_size[0] * target.kernel_size[1]
            return Coverage(total, total, None)
    return _fast_coverage(target, stages)


def _verify(spec: LayerSpec, stages: Sequence[Stage], mode: str, lam: float) -> Coverage:
    """Coverage of the returned design: ``"full"`` runs the exact verifier, ``"fast"`` the equivalent
    per-group computation, ``"none"`` states the model's value (see :func:`solve`)."""
    if mode == "none":
        return _model_coverage(spec.target, stages)
    cov = _coverage(spec) if mode == "full" else _fast_coverage(spec.target, stages)
    if not (cov.full or cov.fraction >= lam):
        raise OscDesignError(
            f"internal error (a bug in osc_design.solver): the optimal design for {spec.target.describe()} covers "
            f"only {cov.fraction:.4%} of the volume ({cov.describe()}); please report it"
        )
    return cov


# ---------------------------------------------------------------------------------------------------
# solve
# ---------------------------------------------------------------------------------------------------
def _space_text(target: Target, n_lo: int, n_hi: int, square: bool, dilated: bool, widths: Any, lam: float,
                objective: str) -> str:
    w = ("internal widths C_out" if widths is None else
         f"internal widths {widths}" if isinstance(widths, int) else f"widths {list(widths)}")
    n = f"N = {n_hi} stages" if n_lo == n_hi else f"1 <= N <= {n_hi} stages"
    k = "square kernels k x k" if square else "rectangular kernels kh x kw"
    d = ("dilations forming mixed-radix digits along the chain (each step <= footprint span + 1)"
         if dilated else "no dilation")
    s = ("the stride on one searched stage (later taps spaced by the stride)"
         if target.stride != (1, 1) else "no stride")
    cov = "full volumetric coverage" if lam >= 1.0 else f"at least {lam:.6g} of the volume covered"
    extra = ""
    if objective == "params" and not dilated and not square:
        extra = "; at most one stage per axis and stride phase with a kernel > 1 (exact by exchange)"
    return (f"chains of {n}, {w}, groups dividing both widths of a stage, {k}, {d}, {s}, channel shuffles "
            f"with the previous stage's groups, padding by the centring rule, {cov}{extra}")


def _method_text(objective: str, all_n: bool, n_hi: int, exact_n: bool) -> str:
    head = ("Exact dynamic programme over chain prefixes, state = (channel reach, per-axis footprint span or "
            "its parity, stride phase); every design of the space is one path and a stage's cost depends "
            "only on its transition, so the cheapest accepting state is optimal")
    prune = ("; Pareto pruning over reach and branch and bound with the relaxation bound (valid for every "
             "completion) remove only designs that cannot be cheaper")
    if exact_n:
        tail = f" among designs with exactly {n_hi} stages."
    elif all_n:
        tail = f"; the relaxation bound exceeds the optimum for every N > {n_hi}, so it is optimal for all N."
    else:
        tail = f" for N <= {n_hi}."
    return head + prune + tail


def _all_n(target: Target, n_hi: int, widths: Any, square: bool, dilated: bool, lam: float, value: float,
           rho: float) -> bool:
    """True when the relaxation proves that no design with more than ``n_hi`` stages beats ``value``.

    Stages beyond ``n_hi`` are identical (same width, fan-in at least 1), and for a fixed layout the
    relaxed optimum is convex in the number of identical stages (the perspective of a convex function,
    minimised over the other variables); so is the larger of two such bounds. Scanning each layout's
    bound upward from ``n_hi + 1`` until it rises therefore finds its minimum over all larger ``N``.
    """
    if isinstance(widths, tuple) or rho <= 0:
        return False
    curves: dict[tuple[str, ...] | None, list[float]] = {}
    for N in range(n_hi + 1, n_hi + 200):
        prod, layouts = _bound_parts(target, N, widths, square, dilated, lam)
        points = {k: max(prod, v) for k, v in layouts.items()} if layouts else {None: prod}
        open_curves = 0
        for k, v in points.items():  # a layout, once possible, stays possible for larger N
            curve = curves.setdefault(k, [])
            if curve and curve[-1] == -_INF:
                continue  # this layout's bound already rose: its minimum is known
            if v * rho < value:
                return False
            if curve and v >= curve[-1]:
                curve.append(-_INF)
                continue
            curve.append(v)
            open_curves += 1
        if not open_curves and N >= 4:  # every position class (first, mid pairs, last) has appeared
            return True
    return False


def _infeasible(target: Target, n_hi: int, square: bool, dilated: bool, lam: float) -> InfeasibleDesignError:
    (kh, kw) = target.kernel_size
    if square and not dilated and (kh - kw) % 2:
        return InfeasibleDesignError(
            f"square kernels without dilation give both axes the same footprint span, which must be "
            f"= {kh - 1} (mod 2) for the height and = {kw - 1} (mod 2) for the width of kernel {kh}x{kw}; "
            "allow rectangular kernels or dilation"
        )
    return InfeasibleDesignError(
        f"no chain of at most {n_hi} stage{'s' if n_hi > 1 else ''} in the searched space covers "
        f"{'the full' if lam >= 1 else f'{lam:.4g} of the'} volume of {target.describe()} "
        f"(kernel {kh}x{kw}, stride {target.stride}, padding {target.padding}); allow more stages, "
        "rectangular kernels or dilation"
    )


def _family_name(max_stages: int | None) -> str:
    return "osc-2" if max_stages == 2 else "osc"


def _make_solution(target: Target, objective: str, stages: list[Stage], value: int, search: _Search,
                   n_lo: int, n_hi: int, square: bool, dilated: bool, widths: Any, lam: float, verify: str,
                   family: str, options: dict[str, Any], exact_n: bool, searched: int) -> Solution:
    spec = _build(target, stages, family, options)
    exact = _cost(spec)
    got = {"params": exact.params, "macs": exact.macs, "macs_valid": exact.macs_valid}[objective]
    if got != value:
        raise OscDesignError(
            f"internal error (a bug in osc_design.solver): the search valued the design at {value} "
            f"{objective} but the cost model counts {got}; please report it"
        )
    cov = _verify(spec, stages, verify, lam)
    per_n = tuple(_bound_n(target, N, widths, square, dilated, lam) * search.rho for N in range(n_lo, n_hi + 1))
    bound = min(per_n) if objective != "macs_valid" else 0.0
    if objective == "macs_valid":
        per_n = tuple(0.0 for _ in per_n)
    if bound > value * (1 + 1e-9):
        raise OscDesignError(
            f"internal error (a bug in osc_design.solver): the relaxation bound {bound} exceeds the optimum "
            f"{value} for {target.describe()}; please report it"
        )
    bound = min(bound, float(value))  # float rounding only
    gap = 100.0 * (value - bound) / value if value else 0.0
    all_n = (not exact_n) and objective != "macs_valid" and _all_n(
        target, n_hi, widths, square, dilated, lam, float(value), search.rho)
    V = lam * target.in_channels * (max(target.kernel_size) ** 2 if square else
                                    target.kernel_size[0] * target.kernel_size[1])
    relax = (math.e * target.out_channels * math.log(V) if V >= math.e
             else target.out_channels * max(1.0, V)) * (search.rho if objective != "macs_valid" else 0.0)
    cert = Certificate(
        objective=objective, value=value, bound=bound, gap=gap, searched=searched,
        method=_method_text(objective, all_n, n_hi, exact_n),
        space=_space_text(target, n_lo, n_hi, square, dilated, widths, lam, objective),
        stages=len(stages), n_max=n_hi, all_n=all_n, relaxation=relax, per_stage_bounds=per_n, n_min=n_lo,
    )
    return Solution(spec, exact, cov, cert)


def _options(objective: str, max_stages: Any, square: bool, dilated: bool, widths: Any, lam: float) -> dict:
    return {"objective": objective, "max_stages": max_stages, "square_only": square, "dilation": dilated,
            "widths": (list(widths) if isinstance(widths, tuple) else widths), "min_coverage": lam}


@lru_cache(maxsize=4096)
def _solve_cached(target: Target, objective: str, max_stages: int | None, square: bool, dilated: bool,
                  widths: Any, lam: float, verify: str) -> Solution:
    w, n_lo, n_hi, lam = _check(target, objective, max_stages, square, dilated, widths, lam, verify)
    search = _Search(target, objective, n_lo, n_hi, square, dilated, w, lam)
    hint = min(_bound_n(target, N, w, square, dilated, lam) for N in range(n_lo, n_hi + 1)) * search.rho
    known = _INF
    if objective == "params" and (dilated or target.stride != (1, 1)):
        # designs in a smaller space lie in this one (up to the dominance rules, which keep one at least
        # as good): without dilation; with the stride on the last stage, i.e. the unstrided chain
        # (every stage before the stride, the last one strided). Their optimum caps the search.
        smaller = (target, False) if dilated else (
            Target(target.in_channels, target.out_channels, target.kernel_size, (1, 1), target.padding), dilated)
        try:
            known = float(_solve_cached(smaller[0], objective, n_hi if max_stages is None else max_stages, square,
                                        smaller[1], widths, lam, "none").cost.params)
        except InfeasibleDesignError:
            known = _INF
    found = search.solve(hint, known=known)
    if not found:
        raise _infeasible(target, n_hi, square, dilated, lam)
    best_n = min(found, key=lambda N: (found[N][0], N))
    value, stages = found[best_n]
    family = _family_name(max_stages if not isinstance(w, tuple) else n_hi)
    options = _options(objective, max_stages, square, dilated, w, lam)
    return _make_solution(target, objective, stages, int(value), search, n_lo, n_hi, square, dilated, w, lam,
                          verify, family, options, isinstance(w, tuple), search.searched)


def solve(target: Target, objective: str = "params", max_stages: int | None = None, square_only: bool = False,
          dilation: bool = False, widths: Sequence[int] | int | None = None, min_coverage: float = 1.0, *,
          verify: str = "full") -> Solution:
    """The optimal separable design for ``target`` with its certificate.

    Parameters
    ----------
    target : Target
        The convolution to replace (``input_size`` needed for the MAC objectives).
    objective : {"params", "macs", "macs_valid"}
        What to minimise: weights without bias, MACs with padding taps, or MACs of real-pixel taps only.
    max_stages : int, optional
        Largest number of stages (``2`` gives the ``"osc-2"`` family); default :func:`stage_cap`.
    square_only : bool
        Restrict every stage to a ``k x k`` kernel.
    dilation : bool
        Allow dilated stages (mixed-radix composition of taps).
    widths : int or sequence of int, optional
        Internal channel widths: ``None`` for ``C_out`` everywhere, an int for every internal layer, or
        the ``N - 1`` internal widths (which fixes ``N``).
    min_coverage : float
        Fraction of the volumetric receptive field that must be covered, in ``(0, 1]``; below 1 the
        channel and spatial requirements are relaxed and the returned design's verified fraction is at
        least this.
    verify : {"full", "fast", "none"}
        Check the returned design with the exact verifier :func:`osc_design.coverage.coverage`
        (``"full"``, the default: a few milliseconds, about 35 ms at 4096 channels), with the
        equivalent per-group computation (``"fast"``; same result, for sweeps), or not at all
        (``"none"``: the coverage reported is the model's, ``prod n_i >= C_in`` and the 1-D
        footprints). A design failing the check raises :class:`~osc_design.OscDesignError` (a bug).

    Returns
    -------
    Solution
        ``spec`` (family ``"osc-2"`` when ``max_stages == 2``, else ``"osc"``), exact ``cost``, verified
        ``coverage`` and ``certificate``. Results are cached per arguments.

    Raises
    ------
    SpecError
        Bad arguments (unknown objective, MACs without input size, stride larger than the kernel,
        ``max_stages < 1``, inconsistent widths, ``min_coverage`` outside ``(0, 1]``).
    InfeasibleDesignError
        No design of the space covers the requested volume (the message says why).

    Examples
    --------
    >>> sol = solve(Target(256, 256, 7), max_stages=2)
    >>> sol.cost.params, sol.certificate.bound, sol.certificate.gap
    (57344, 57344.0, 0.0)
    >>> [c.kernel_size for c in sol.spec.convs], [c.groups for c in sol.spec.convs]
    ([(7, 1), (1, 7)], [16, 16])
    """
    if isinstance(widths, list):
        widths = tuple(widths)
    if isinstance(min_coverage, bool) or not isinstance(min_coverage, (int, float)):
        raise SpecError(f"`min_coverage` (={min_coverage!r}) must be a number in (0, 1]")
    try:
        hash(widths)
    except TypeError:
        raise SpecError(f"`widths` (={widths!r}) must be None, an integer or a sequence of integers") from None
    return _solve_cached(target, objective, max_stages, square_only, dilation, widths, float(min_coverage), verify)


def pareto_front(target: Target, max_stages: int | None = None, square_only: bool = False, dilation: bool = False,
                 widths: Sequence[int] | int | None = None, min_coverage: float = 1.0, *,
                 verify: str = "full") -> list[Solution]:
    """Non-dominated designs over (params, macs, stages), sorted by stages.

    For every stage count ``N`` the exact ``N``-stage optimum for params (and, with an input size, for
    MACs) is computed; the designs no other one beats or ties in all three measures are returned. Each
    solution's certificate is for its own stage count.

    >>> [s.cost.params for s in pareto_front(Target(64, 64, 3), max_stages=3)]
    [36864, 3072, 1600]
    """
    if isinstance(widths, list):
        widths = tuple(widths)
    w, n_lo, n_hi, lam = _check(target, "params", max_stages, square_only, dilation, widths, min_coverage, verify)
    objectives = ["params"] + (["macs"] if target.input_size is not None else [])
    cands: list[Solution] = []
    for objective in objectives:
        search = _Search(target, objective, n_lo, n_hi, square_only, dilation, w, lam)
        hint = min(_bound_n(target, N, w, square_only, dilation, lam) for N in range(n_lo, n_hi + 1)) * search.rho
        found = search.solve(hint, exact_n=True)
        for N, (value, stages) in sorted(found.items()):
            family = _family_name(N if N == 2 else None)
            options = _options(objective, N, square_only, dilation, w, lam)
            cands.append(_make_solution(target, objective, stages, int(value), search, N, N, square_only, dilation,
                                        w, lam, verify, family, options, True, search.searched))
    if not cands:
        raise _infeasible(target, n_hi, square_only, dilation, lam)

    def key(s: Solution) -> tuple:
        return (s.cost.params, s.cost.macs if s.cost.macs is not None else 0, s.spec.stages)

    front: list[Solution] = []
    for s in cands:
        ks = key(s)
        if any(all(a <= b for a, b in zip(key(o), ks)) and key(o) != ks for o in cands):
            continue
        if any(key(o) == ks for o in front):
            continue
        front.append(s)
    return sorted(front, key=lambda s: (s.spec.stages, s.cost.params))
