"""The closed searches of the dilated params space (split shortest paths, two-stage enumeration) against
independent computations: brute forces over fan-in products, kernel tuples and whole chains, and the
dynamic programme of :mod:`osc_design.solver.search` on the same space (a different algorithm: prefix
states, dominance and branch and bound)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solver_gaps import brute_force, feasible_kernels

from osc_design import Target, coverage
from osc_design.errors import InfeasibleDesignError, SpecError
from osc_design.solver import direct, solve
from osc_design.solver.api import _solve_space
from osc_design.solver.axis import Axis
from osc_design.solver.bounds import space_bound
from osc_design.solver.search import Search
from osc_design.solver.space import SearchSpace


def _space(target, max_stages=None):
    return SearchSpace.create(target, "params", max_stages, False, True, None, 1.0)


def _programme(space):
    """(params, stages) of the dynamic programme's optimum, fewest stages among equal costs; ``None`` if none."""
    search = Search(space)
    known = math.inf
    smaller = space.smaller()
    if smaller is not None:
        try:
            known = float(_solve_space(smaller, "none").cost.params)
        except InfeasibleDesignError:
            pass
    found = search.solve(space_bound(space, search.rho), known=known)
    if not found:
        return None
    n = min(found, key=lambda N: (found[N][0], N))
    return int(found[n][0]), len(found[n][1])


def _closed(space):
    got = direct.two_stage_search(space) if space.n_hi <= 2 else direct.split_search(space)
    return None if got is None else (got.value, len(got.stages))


def _least_fanin_sum(c_in, c_out):
    """Independent: the least sum of fan-ins >= 2 (one of them may be a fan-in of the C_in -> C_out stage, the
    others divide C_out) whose product reaches C_in, by enumerating multisets."""
    first = [c_in // g for g in range(1, c_in + 1) if c_in % g == 0 and c_out % g == 0]
    later = [d for d in range(2, c_out + 1) if c_out % d == 0]
    best = math.inf
    for n_first in first:
        for m in range(0, c_in.bit_length() + 1):
            for rest in itertools.combinations_with_replacement(later, m):
                if n_first * math.prod(rest) >= c_in:
                    best = min(best, (n_first if n_first > 1 else 0) + sum(rest))
    return best


@pytest.mark.parametrize(("c_in", "c_out"), [(1, 5), (7, 7), (12, 18), (30, 8), (64, 64), (36, 24), (5, 35),
                                              (17, 34), (48, 32)])
def test_channel_paths_give_the_least_fanin_sum(c_in, c_out):
    with_first, without_first, _ = direct.channel_paths(c_in, c_out)
    costs = [p.cost for p in (with_first, without_first) if p is not None]
    assert min(costs) == _least_fanin_sum(c_in, c_out)
    for p in (with_first, without_first):
        for (count, twos), moves in (p.labels.items() if p else ()):
            fans = [n for n, _ in moves]
            assert math.prod(fans) >= c_in and sum(fans) == p.cost
            assert count == len(fans) and twos == fans.count(2)


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 6, 7, 9])
def test_axis_paths_give_the_least_kernel_sum(K):
    """Against the brute force of ``test_solver_gaps`` (every kernel and dilation per stage, Minkowski sums): the
    least sum of kernels > 1 over tuples of up to three stages whose footprint covers the window (a tuple of
    four or more kernels > 1 costs at least 8, more than every least sum here)."""
    ax = Axis(_space(Target(8, 8, (K, 1))), 0)
    paths, _ = direct.axis_paths(ax)
    least = min(sum(k for k in kt if k > 1) for N in range(1, 4) for kt in feasible_kernels(K, N))
    assert least < 8 and paths.cost == least
    for (count, twos), moves in paths.labels.items():
        ks = [k for k, _ in moves]
        assert sum(ks) == least and count == len(ks) and twos == ks.count(2)


@pytest.mark.parametrize(("c_in", "c_out", "k"), [(8, 8, 3), (4, 6, 3), (6, 4, 5), (3, 9, 3), (8, 2, 5),
                                                  (5, 5, 3), (2, 12, 5), (9, 6, 3)])
def test_free_stages_against_a_brute_force(c_in, c_out, k):
    """Every chain of up to four stages (the brute force of ``test_solver_gaps``): the free optimum costs no more,
    and exactly as much when it has at most four stages."""
    sol = solve(Target(c_in, c_out, k), dilation=True)
    assert sol.certificate.method.startswith("Splitting") and sol.certificate.all_n
    assert coverage(sol.spec).full
    best = brute_force(c_in, c_out, k, k, 4)
    assert sol.cost.params <= best
    if len(sol.stages) <= 4:
        assert sol.cost.params == best, (c_in, c_out, k)


def test_issue_examples():
    assert solve(Target(256, 256, 15), dilation=True).cost.params == 8_192  # e C ln(C K^2) regime
    sol = solve(Target(256, 256, 7), dilation=True)
    assert (sol.cost.params, len(sol.stages)) == (7_168, 7)
    assert solve(Target(32, 8, 13), max_stages=2, dilation=True).cost.params == 1_240


def _random_targets(seed, n):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        kh, kw = rng.randint(1, 9), rng.randint(1, 9)
        pad = (rng.randint(0, kh), rng.randint(0, kw)) if rng.random() < 0.25 else None
        size = (rng.randint(2, 12), rng.randint(2, 12)) if rng.random() < 0.25 else None
        try:
            target = Target(rng.randint(1, 36), rng.randint(1, 36), (kh, kw), padding=pad, input_size=size)
        except SpecError:  # an input too small for the kernel
            continue
        out.append((target, rng.choice([None, None, 1, 2, 2])))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_closed_searches_equal_the_programme(seed):
    """Value and stage count equal to the dynamic programme's on random targets (rectangular kernels, unequal
    widths, paddings that are not centred, input sizes), for one, two and any number of stages. (With two
    stages each axis may take its own order, a larger space than the programme's: never more expensive.)"""
    for target, n_max in _random_targets(seed, 25):
        space = _space(target, n_max)
        got = _closed(space)
        if got is None:  # the closed search declines only for an empty intermediate map or no design
            continue
        ref = _programme(space)
        if n_max == 2 and got[0] < ref[0]:
            continue
        assert got == ref, (target, n_max)


def test_two_stages_per_axis_orders_against_a_brute_force():
    """The brute force takes every order on each axis (Minkowski sums of any kernels and dilations)."""
    rng = random.Random(7)
    for _ in range(10):
        c_in, c_out, kh, kw = rng.randint(1, 24), rng.randint(1, 24), rng.choice([3, 5, 7]), rng.choice([3, 5, 7])
        sol = solve(Target(c_in, c_out, (kh, kw)), max_stages=2, dilation=True)
        assert sol.certificate.method.startswith("Enumeration")
        assert "each axis its own" in sol.certificate.space
        assert sol.cost.params == brute_force(c_in, c_out, kh, kw, 2), (c_in, c_out, kh, kw)


def test_a_binding_stage_cap_is_left_to_the_programme():
    space = _space(Target(64, 64, 9), 4)  # the split optimum needs more than four stages
    assert direct.split_search(space) is None
    sol = solve(Target(64, 64, 9), max_stages=4, dilation=True)
    assert sol.certificate.method.startswith("Exact dynamic programme") and len(sol.stages) <= 4
    assert sol.cost.params > solve(Target(64, 64, 9), dilation=True).cost.params


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4096), st.integers(1, 4096), st.integers(1, 51), st.integers(1, 51))
def test_large_targets_cover_and_cost_what_they_claim(c_in, c_out, kh, kw):
    """Any supported size: the design covers the volume (exact verifier), a two-stage design costs at least the
    free one, and the free one at least what any footprint along each axis needs (the counting bound below)."""
    target = Target(c_in, c_out, (kh, kw))
    free = solve(target, dilation=True)
    two = solve(target, dilation=True, max_stages=2)
    for sol in (free, two):
        assert coverage(sol.spec).full
    assert free.cost.params <= two.cost.params
    assert free.cost.params >= c_out * (_least_any_footprint(kh) + _least_any_footprint(kw))


@pytest.mark.parametrize(("c_in", "c_out", "k"), [(16, 16, 5), (32, 8, (9, 5))])
def test_dilated_pareto_front_equals_one_programme_for_every_stage_count(c_in, c_out, k):
    """The front from one exact programme per stage count (up to the split optimum's) equals the front of the
    programme that keeps a design for every stage count at once, over the whole stage range."""
    from osc_design.solver import pareto_front

    target = Target(c_in, c_out, k)
    space = _space(target)
    found = Search(space).solve(space_bound(space, 1.0), per_n=True)
    points = sorted((N, int(v)) for N, (v, _) in found.items())
    front = [(N, v) for N, v in points if not any(v2 <= v and N2 < N for N2, v2 in points)]
    assert [(s.spec.stages, s.cost.params) for s in pareto_front(target, dilation=True)] == front


def _least_any_footprint(K):
    """Independent: the least sum of kernels > 1 of any footprint (any dilations, gaps, orders) that contains the
    window centred in it. A footprint has at most ``prod k`` points, so ``prod k >= K``; with only odd kernels
    every step ``d (k - 1)`` is even, so the span is even and the centred window's span ``K - 1`` must be too."""
    best = 0 if K <= 1 else math.inf
    todo = [((), 1)]
    while todo:
        ks, prod = todo.pop()
        for k in range(ks[-1] if ks else 2, K + 1):
            total = sum(ks) + k
            if total >= best:
                break
            if prod * k >= K and (K % 2 or any(x % 2 == 0 for x in (*ks, k))):
                best = total
            else:  # too few points, or only odd kernels for an even window: more kernels
                todo.append(((*ks, k), prod * k))
    return best


def test_axis_optimum_is_optimal_over_every_footprint():
    """For every supported kernel side, the cheapest gap-free kernel sequence costs what any footprint must: with
    the splitting argument, the free-stage optimum is optimal among chains whose footprints have gaps or need a
    different order on each axis too."""
    for K in range(1, 128):
        paths, _ = direct.axis_paths(Axis(_space(Target(8, 8, (K, 1))), 0))
        assert paths.cost == _least_any_footprint(K), K
