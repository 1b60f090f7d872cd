"""The dilated solver (params) against an independent brute force over gap-filling chains.

The brute force knows nothing of the solver's order or pruning: per axis it enumerates every tuple of
(kernel, dilation) per stage (kernels up to ``K + 1``, dilations up to ``K``), forms the footprint as
the Minkowski sum of ``d * {0..k-1}`` and accepts it when it contains the window centred in it (span
of the window's parity); then it takes the cheapest chain over fan-ins (groups dividing both widths,
product of fan-ins ``>= C_in``) and kernel tuples feasible on both axes. That is every chain of grouped
convs with per-stage kernels and dilations whose footprint covers the window.
"""

from __future__ import annotations

import itertools
import random
from functools import lru_cache

import pytest

from osc_design import Target, coverage
from osc_design.solver import solve


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@lru_cache(maxsize=None)
def feasible_kernels(K, N):
    """Kernel tuples (one per stage) for which some dilations make the footprint cover the centred window."""
    out = set()
    ks = range(1, K + 2)
    for kt in itertools.product(ks, repeat=N):
        ranges = [range(1, K + 1) if k > 1 else (1,) for k in kt]
        for dt in itertools.product(*ranges):
            foot = {0}
            for k, d in zip(kt, dt, strict=True):
                foot = {f + d * j for f in foot for j in range(k)}
            R = max(foot)
            if R >= K - 1 and (R - (K - 1)) % 2 == 0:
                c = (R - (K - 1)) // 2
                if all(c + t in foot for t in range(K)):
                    out.add(kt)
                    break
    return frozenset(out)


@lru_cache(maxsize=None)
def _minimal(tuples):
    """The componentwise minimal kernel tuples (a larger kernel anywhere only costs more)."""
    return [t for t in tuples if not any(u != t and all(a <= b for a, b in zip(u, t, strict=True)) for u in tuples)]


def brute_force(c_in, c_out, kh, kw, n_max):
    best = None
    for N in range(1, n_max + 1):
        fans = [[c_in // g for g in _divisors(c_in) if c_out % g == 0]] + [_divisors(c_out)] * (N - 1)
        hs, ws = _minimal(feasible_kernels(kh, N)), _minimal(feasible_kernels(kw, N))
        for ns in itertools.product(*fans):
            prod = 1
            for n in ns:
                prod *= n
            if prod < c_in:
                continue
            for kt in hs:
                for lt in ws:
                    cost = c_out * sum(n * a * b for n, a, b in zip(ns, kt, lt, strict=True))
                    if best is None or cost < best:
                        best = cost
    return best


def test_issue_examples_gap_filling():
    # a dilated first stage (2x1, dilation 6) whose gaps the second (7x13) fills
    sol = solve(Target(32, 8, 13), max_stages=2, dilation=True)
    assert sol.cost.params == 1240 and coverage(sol.spec).full
    assert solve(Target(32, 190, 13), max_stages=2, dilation=True).cost.params == 29_450


def test_two_stages_equal_brute_force():
    rng = random.Random(18)
    cases = [(32, 8, 9, 9), (5, 2, 3, 5), (12, 4, 7, 7)]
    cases += [(rng.randint(1, 32), rng.randint(1, 32), k, k) for k in (3, 5, 7, 9) for _ in range(6)]
    for c_in, c_out, kh, kw in cases:
        sol = solve(Target(c_in, c_out, (kh, kw)), max_stages=2, dilation=True)
        assert sol.cost.params == brute_force(c_in, c_out, kh, kw, 2), (c_in, c_out, kh, kw)
        assert coverage(sol.spec).full


@pytest.mark.parametrize("n_max", [3])
def test_free_stages_equal_brute_force(n_max):
    rng = random.Random(n_max)
    for _ in range(12):
        c_in, c_out, k = rng.randint(1, 32), rng.randint(1, 32), rng.choice([3, 5])
        sol = solve(Target(c_in, c_out, k), max_stages=n_max, dilation=True)
        assert sol.cost.params == brute_force(c_in, c_out, k, k, n_max), (c_in, c_out, k)
        assert coverage(sol.spec).full


@pytest.mark.parametrize(("n_max", "ks", "count"), [(4, (3,), 8)])
def test_more_free_stages_equal_brute_force(n_max, ks, count):
    rng = random.Random(40 + n_max)
    cases = [(24, 8, 3), (32, 12, 3), (6, 30, 3)]
    cases += [(rng.randint(1, 32), rng.randint(1, 32), rng.choice(ks)) for _ in range(count)]
    for c_in, c_out, k in cases:
        sol = solve(Target(c_in, c_out, k), max_stages=n_max, dilation=True)
        assert sol.cost.params == brute_force(c_in, c_out, k, k, n_max), (c_in, c_out, k)


def _least_sum(V, left):
    """Independent: the least sum of at most ``left`` positive integers with product >= V, by recursion."""
    @lru_cache(maxsize=None)
    def f(v, m):
        if v <= 1:
            return 0
        if m == 0:
            return 10 ** 9
        return min(x + f(-(-v // x), m - 1) for x in range(2, v + 1))
    return f(V, left)


def test_integer_bound_is_the_least_sum():
    from osc_design.solver.bounds import int_sum_bound, smooth_numbers

    for V in range(1, 160):
        for left in range(1, 6):
            assert int_sum_bound(V, left) == _least_sum(V, left), (V, left)
    assert smooth_numbers((2, 5), 30) == tuple(x for x in range(1, 33) if x in
                                               {1, 2, 4, 5, 8, 10, 16, 20, 25, 32})


@pytest.mark.parametrize(("c_in", "c_out", "k", "n_max"), [(48, 48, 7, None), (36, 24, 9, None),
                                                          (20, 45, 7, None)])
def test_pruning_bounds_lose_nothing(c_in, c_out, k, n_max):
    """The search with its bounds (integer remainder bound, unit schedule) against the same programme with
    no bound at all (every state kept up to the dominance rules): the same optimum."""
    from osc_design.solver.search import Search
    from osc_design.solver.space import SearchSpace

    space = SearchSpace.create(Target(c_in, c_out, k), "params", n_max, False, True, None, 1.0)
    plain = Search(space)
    plain.rho = 0.0  # no pruning: a single pass with an infinite upper bound
    found = plain.solve(0.0)
    assert solve(Target(c_in, c_out, k), max_stages=n_max, dilation=True).cost.params == min(v for v, _ in
                                                                                             found.values())


def test_reordered_chain_keeps_every_map():
    """Moving the C_in -> C_out stage first can empty a map the programme's order kept (9 taps, padding 2,
    input 5, output 1: taps {0,3,6} first leaves a 6-span, then a 2-tap stage a 7-span map of size 0); the
    decoder then puts the whole padding on the first stage, and the chain builds, covers and costs the same."""
    from osc_design import cost
    from osc_design.solver.axis import Axis
    from osc_design.solver.chain import Move, _build_ordered, _maps_nonempty, build, reordered
    from osc_design.solver.space import SearchSpace

    target = Target(8, 4, (9, 1), padding=(2, 0), input_size=(5, 3))
    space = SearchSpace.create(target, "params", None, False, True, None, 1.0)
    axes = (Axis(space, 0), Axis(space, 1))

    def move(k, d, n, special):
        return Move((k, 1), (d, 1), n, special)

    moves = [move(2, 1, 2, False), move(2, 1, 2, False), move(3, 3, 2, True)]  # the programme's order
    assert _maps_nonempty(axes, moves) and not _maps_nonempty(axes, [moves[2], *moves[:2]])
    built = _build_ordered(axes, 8, 4, [moves[2], *moves[:2]], True)
    assert reordered(axes, 8, 4, moves) == built
    assert [s.padding for s in built] == [(2, 0), (0, 0), (0, 0)]
    spec = build(target, built, "osc", {})
    assert coverage(spec).full and cost(spec).params == 4 * (2 * 3 + 2 * 2 + 2 * 2)
