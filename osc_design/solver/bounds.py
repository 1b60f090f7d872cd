"""Lower bounds of the certificates and of the search's pruning (see "Lower bounds" in :mod:`osc_design.solver`).

Free functions of the target and the options: the water-filling minimum of ``sum w_i z_i`` under
``prod z_i >= V`` (:func:`waterfill`), the ``N``-stage relaxations (:func:`bound_n`: the product bound
and, without dilation, the additive one), the bound for completing a prefix (:func:`rem_bound`), the
proof that more stages cannot help (:func:`all_n`) and the public :func:`lower_bound`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from ..errors import SpecError
from ..spec import Target
from ..geometry import check_int
from .space import SearchSpace, Widths, check_objective, check_options, norm_widths, stage_cap

__all__ = ["waterfill", "rem_bound", "rem_lb", "int_sum_bound", "smooth_numbers",
           "bound_n", "bound_parts", "space_bound", "all_n", "min_area",
           "cost_factor", "lower_bound"]

INF = float("inf")


# ---------------------------------------------------------------------------------------------------
# water-filling
# ---------------------------------------------------------------------------------------------------
def _root(P: int | float, m: int) -> float:
    """``P^(1/m)``, exact when ``P`` is an integer that is a perfect ``m``-th power."""
    mu = math.exp(math.log(P) / m)
    if isinstance(P, int):
        r = round(mu)
        if r > 0 and r ** m == P:
            return float(r)
    return mu


def waterfill(weights: Sequence[float], V: int | float) -> float:
    """``min sum_i w_i z_i`` subject to ``z_i >= 1`` and ``prod_i z_i >= V``.

    KKT: ``w_i z_i = mu`` on the free variables (the smallest weights), ``z_i = 1`` on the rest; with
    ``m`` free variables ``mu = (V * w_1 * ... * w_m)^(1/m)``, valid when ``mu >= w_m``.

    >>> waterfill([256, 256], 256 * 49)  # 2 * 256 * sqrt(256 * 49)
    57344.0
    """
    ws = sorted(weights)
    if V <= 1 or not ws:
        return float(sum(ws))
    tail: float = 0
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
    """:func:`waterfill` for the weights ``big`` (each > 1, ascending) plus ``ones`` weights equal to 1."""
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


def rem_lb(V: float, ah: float, aw: float, left: int) -> float:
    """:func:`rem_bound` at ``V`` rounded down to a power of ``2^(1/16)`` (still a valid lower bound:
    the bound grows with ``V``), so that the cache is hit."""
    if V <= 1:
        return rem_bound(1.0, ah, aw, left)
    q = math.floor(math.log2(V) * 16) / 16
    return rem_bound(2.0 ** q, ah, aw, left)


@lru_cache(maxsize=262144)
def rem_bound(V: float, ah: float, aw: float, left: int) -> float:
    """Relaxation bound (per unit width) for completing a design with at most ``left`` more stages.

    ``V`` is the multiplicative volume still missing (channels, and axes where reach multiplies);
    ``ah``, ``aw`` are the kernel weights still needed along axes where spans only add, 1 when none.
    Each such span sits in one stage in the relaxation (linear cost), alone or shared by both axes;
    the fan-ins are water-filled against those weights (:func:`waterfill`).
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
    best = INF
    for big in layouts:
        # the value is convex in the number of stages (the perspective of a convex function, minimised
        # over the other variables), so the scan stops at the first increase
        prev = INF
        for j in range(max(1, len(big)), left + 1):
            ones = j - len(big)
            value = sum(big) + ones if lnV <= 0 else _wf_ones(big, ones, lnV)
            if value > prev:
                break
            prev = value
        best = min(best, prev)
    return best


def _iroot(V: int, j: int) -> int:
    """``floor(V^(1/j))`` for integers ``V >= 1``, ``j >= 1``."""
    q = int(round(V ** (1.0 / j)))
    while q ** j > V:
        q -= 1
    while (q + 1) ** j <= V:
        q += 1
    return q


@lru_cache(maxsize=262144)
def int_sum_bound(V: int, left: int) -> int:
    """The least sum of at most ``left`` positive integers whose product is at least ``V`` (``left >= 1``).

    The bound of a dilated prefix (per unit width): every later stage has an integer volume
    ``v_i = n_i kh_i kw_i >= 1``, and their product must reach what is still missing (see
    :meth:`osc_design.solver.search.Search.spatial_need`). For ``j`` integers the least sum is reached by
    balanced values ``q`` and ``q + 1`` (replacing ``a >= b + 2`` by ``a - 1, b + 1`` keeps the sum and
    does not lower the product), so each ``j`` costs one root.

    >>> int_sum_bound(24, 8), int_sum_bound(24, 1), int_sum_bound(1, 3)
    (9, 24, 0)
    """
    if V <= 1:
        return 0
    best = V
    for j in range(2, min(left, (V - 1).bit_length()) + 1):
        q = _iroot(V, j)
        p, t = q ** j, 0
        while p < V:
            p = p // q * (q + 1)
            t += 1
        best = min(best, j * q + t)
    return best


@lru_cache(maxsize=1024)
def smooth_numbers(primes: tuple[int, ...], limit: int) -> tuple[int, ...]:
    """The integers ``1..limit`` (and the first one above) whose prime factors all lie in ``primes``,
    ascending: the products a chain's fan-ins can form when every fan-in divides a width.

    >>> smooth_numbers((2, 3), 10)
    (1, 2, 3, 4, 6, 8, 9, 12)
    """
    out = {1}
    for p in primes:
        for x in sorted(out):
            y = x * p
            while y <= limit * p:
                out.add(y)
                if y > limit:
                    break
                y *= p
    ordered = sorted(out)
    cut = next((i for i, x in enumerate(ordered) if x >= limit), len(ordered) - 1)
    return tuple(ordered[:cut + 1])


# ---------------------------------------------------------------------------------------------------
# N-stage relaxations
# ---------------------------------------------------------------------------------------------------
def _stage_widths(target: Target, N: int, widths: Widths) -> list[int]:
    if widths is None:
        return [target.out_channels] * N
    if isinstance(widths, int):
        return [widths] * (N - 1) + [target.out_channels]
    return list(widths) + [target.out_channels]


def _stage_lows(target: Target, N: int, widths: Widths) -> list[int]:
    """Smallest fan-in of each stage: ``C_{i-1} / gcd(C_{i-1}, C_i)`` (its groups divide both widths)."""
    c = [target.in_channels] + _stage_widths(target, N, widths)
    return [c[i] // math.gcd(c[i], c[i + 1]) for i in range(N)]


def waterfill_low(weights: Sequence[float], lows: Sequence[int], V: int | float) -> float:
    """``min sum_i w_i z_i`` subject to ``z_i >= L_i`` and ``prod_i z_i >= V`` (``z_i = L_i y_i``)."""
    scaled = [w * low for w, low in zip(weights, lows, strict=False)]
    prod_low = math.prod(lows)
    if isinstance(V, int) and V % prod_low == 0:
        return waterfill(scaled, V // prod_low)
    return waterfill(scaled, V / prod_low)


def _position_class(N: int, i: int) -> str:
    return "first" if i == 0 else ("last" if i == N - 1 else "mid")


@lru_cache(maxsize=16384)
def bound_parts(target: Target, N: int, widths: Widths, square: bool, dilated: bool,
                 lam: float) -> tuple[float, dict[tuple[str, ...], float]]:
    """The two relaxations for ``N`` stages: the product bound, and the additive bound per layout.

    Layout keys name where the spans sit by position class (``first``, ``mid``, ``last``), so that
    for internal widths that do not depend on the stage, a layout means the same for every ``N``.
    """
    c = _stage_widths(target, N, widths)
    lows = _stage_lows(target, N, widths)
    (kh, kw), (sh, sw) = target.kernel_size, target.stride
    cin = target.in_channels
    spatial = max(kh, kw) ** 2 if (square and lam >= 1.0) else kh * kw
    V: int | float = cin * spatial if lam >= 1.0 else lam * cin * spatial
    prod = waterfill_low(c, lows, V)
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
            w: list[float] = list(c)
            w[j] *= weights[0]
            tag = str(j) if isinstance(widths, tuple) else ""
            layouts[("one", _position_class(N, j), tag)] = waterfill_low(w, lows, cin)
        return prod, layouts
    for j in one:  # one stage takes both spans
        w = list(c)
        w[j] *= weights[0] * weights[1]
        tag = str(j) if isinstance(widths, tuple) else ""
        layouts[("joint", _position_class(N, j), tag)] = waterfill_low(w, lows, cin)
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
            layouts[key] = waterfill_low(w, lows, cin)
    return prod, layouts


def bound_n(target: Target, N: int, widths: Widths, square: bool, dilated: bool,
             lam: float) -> float:
    """Relaxation lower bound on the params of any ``N``-stage design of the space (see :mod:`osc_design.solver`).

    The product bound (``prod v_i >= V``) holds for every design. Without dilation and with full
    coverage a second bound holds as well: along an axis the span needed, ``K - 1``, is a sum of
    ``k_i - 1`` (taps before the stride) and ``s (k_i - 1)`` (after it); the cost is linear in each
    ``k_i`` for fixed fan-ins, so in the relaxation one stage takes the whole span, with kernel weight
    at least ``1 + (K - 1) / s``: the minimum over where those spans sit. The larger of the two bounds
    is returned. Both respect the smallest fan-in each stage can have (its groups divide both of its
    widths).
    """
    prod, layouts = bound_parts(target, N, widths, square, dilated, lam)
    return max(prod, min(layouts.values())) if layouts else prod


def min_area(target: Target) -> int:
    """Smallest output area any stage can have under the padding rule: ``>= (Ho - 1)(Wo - 1)``.

    >>> min_area(Target(8, 8, 3, input_size=14))
    169
    """
    if target.input_size is None:
        return 0
    area = 1
    for a in (0, 1):
        h, o = target.input_size[a], target.output_size[a]  # type: ignore[index]
        K, p = target.kernel_size[a], target.padding[a]
        area *= max(0, min(h, h + 2 * p - K, o - 1))
    return area


def cost_factor(objective: str, target: Target) -> float:
    """Lower bound on the objective per unit of params: 1, the smallest output area, or 0 (``macs_valid``)."""
    if objective == "params":
        return 1.0
    if objective == "macs":
        return float(min_area(target))
    return 0.0


def space_bound(space: SearchSpace, rho: float) -> float:
    """``min over n_lo <= N <= n_hi`` of the ``N``-stage params bound, times ``rho``."""
    return min(bound_n(space.target, N, space.widths, space.square, space.dilated, space.lam)
               for N in range(space.n_lo, space.n_hi + 1)) * rho


def all_n(space: SearchSpace, value: float, rho: float) -> bool:
    """True when the relaxation proves that no design with more than ``n_hi`` stages beats ``value``.

    Stages beyond ``n_hi`` are identical (same width, fan-in at least 1), and for a fixed layout the
    relaxed optimum is convex in the number of identical stages (the perspective of a convex function,
    minimised over the other variables); so is the larger of two such bounds. Scanning each layout's
    bound upward from ``n_hi + 1`` until it rises therefore finds its minimum over all larger ``N``.
    """
    if isinstance(space.widths, tuple) or rho <= 0:
        return False
    n_hi = space.n_hi
    curves: dict[tuple[str, ...] | None, list[float]] = {}
    for N in range(n_hi + 1, n_hi + 200):
        prod, layouts = bound_parts(space.target, N, space.widths, space.square, space.dilated, space.lam)
        points = {k: max(prod, v) for k, v in layouts.items()} if layouts else {None: prod}
        open_curves = 0
        for k, v in points.items():  # a layout, once possible, stays possible for larger N
            curve = curves.setdefault(k, [])
            if curve and curve[-1] == -INF:
                continue  # this layout's bound already rose: its minimum is known
            if v * rho < value:
                return False
            if curve and v >= curve[-1]:
                curve.append(-INF)
                continue
            curve.append(v)
            open_curves += 1
        if not open_curves and N >= 4:  # every position class (first, mid pairs, last) has appeared
            return True
    return False


def lower_bound(target: Target, *, n_min: int = 1, n_max: int | None = None, objective: str = "params",
                square_only: bool = False, dilation: bool = False, widths: Sequence[int] | int | None = None,
                min_coverage: float = 1.0) -> float:
    """The certificate's lower bound: ``min over n_min <= N <= n_max`` of the ``N``-stage relaxation.

    Parameters
    ----------
    target : Target
        The convolution to replace.
    n_min, n_max : int
        Range of stage counts (``n_max`` defaults to :func:`~osc_design.solver.stage_cap`).
    objective, square_only, dilation, widths, min_coverage
        As in :func:`osc_design.solver.solve`.

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
    check_options(target, "params", None, square_only, dilation, widths, min_coverage)
    check_objective(objective)
    check_int(n_min, "n_min", minimum=1)
    if n_max is not None and check_int(n_max, "n_max", minimum=1) < n_min:
        raise SpecError(f"`n_max` (={n_max!r}) must be at least `n_min` (={n_min!r})")
    w = norm_widths(widths)
    if n_max is None:
        n_max = len(w) + 1 if isinstance(w, tuple) else stage_cap(target, dilation=dilation, square_only=square_only)
    best = min(bound_n(target, N, w, square_only, dilation, min_coverage) for N in range(n_min, n_max + 1))
    if objective == "params":
        return best
    if objective == "macs":
        return best * min_area(target)
    return 0.0
