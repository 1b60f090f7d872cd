"""The solver against an independent brute force for chains of at most two stages.

The brute force enumerates every two-stage chain (groups dividing the widths, every kernel shape)
that satisfies the *necessary* coverage conditions (fan-in product >= C_in; per axis the kernels'
spans add up to the window) and takes the cheapest: a lower bound on every valid design. The solver
must reach it exactly with a design the verifier proves full.
"""

from __future__ import annotations

import itertools
import random
from functools import lru_cache

import pytest

from osc_design import Target, cost, coverage
from osc_design.solver import solve


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@lru_cache(maxsize=None)
def brute_force_params(c_in, c_out, kh, kw):
    best = c_in * c_out * kh * kw  # N = 1 needs groups = 1 and the whole window
    shapes = [(a, b) for a in range(1, kh + 1) for b in range(1, kw + 1)]
    common = [g for g in _divisors(c_in) if c_out % g == 0]
    for g1 in common:
        n1 = c_in // g1
        for g2 in _divisors(c_out):
            n2 = c_out // g2
            if n1 * n2 < c_in:
                continue
            for (a1, b1), (a2, b2) in itertools.product(shapes, shapes):
                if a1 + a2 - 1 < kh or b1 + b2 - 1 < kw:
                    continue
                best = min(best, c_out * (n1 * a1 * b1 + n2 * a2 * b2))
    return best


def test_two_stage_optimum_equals_brute_force_on_the_whole_grid():
    """Every C_in, C_out in 1..32 and K in 1..5 (5,120 targets)."""
    for c_in, c_out, k in itertools.product(range(1, 33), range(1, 33), range(1, 6)):
        sol = solve(Target(c_in, c_out, k), max_stages=2)
        expected = brute_force_params(c_in, c_out, k, k)
        assert sol.cost.params == expected, (c_in, c_out, k)
        assert cost(sol.spec).params == sol.cost.params and sol.spec.stages <= 2
        assert sol.coverage.full and sol.certificate.bound <= sol.cost.params + 1e-9


@pytest.mark.parametrize(("c_in", "c_out", "kh", "kw"), [(256, 256, 7, 7), (64, 128, 3, 3), (17, 34, 5, 3),
                                                         (31, 31, 3, 3), (12, 18, 4, 4), (48, 40, 7, 1)])
def test_larger_and_rectangular_targets(c_in, c_out, kh, kw):
    sol = solve(Target(c_in, c_out, (kh, kw)), max_stages=2)
    assert sol.cost.params == brute_force_params(c_in, c_out, kh, kw)
    assert coverage(sol.spec).full  # re-verified here, independently of the solver's own check


def test_random_sample_reverified():
    rng = random.Random(0)
    for _ in range(200):
        c_in, c_out, k = rng.randint(1, 32), rng.randint(1, 32), rng.randint(1, 5)
        assert coverage(solve(Target(c_in, c_out, k), max_stages=2).spec).full


@pytest.mark.parametrize(("c", "k", "params"), [(256, 7, 57_344), (256, 3, 24_576), (256, 5, 40_960),
                                                 (64, 3, 3_072), (128, 3, 8_704), (512, 3, 69_632)])
def test_paper_table_two_stage_optima(c, k, params):
    # papers.md 1.6, best integer N = 2 (all widths C, no dilation)
    assert solve(Target(c, c, k), max_stages=2).cost.params == params


def test_free_depth_is_never_worse_and_bounded():
    for c, k in [(256, 3), (256, 7), (64, 3), (100, 5)]:
        t = Target(c, c, k)
        free, two = solve(t), solve(t, max_stages=2)
        assert free.cost.params <= two.cost.params
        assert coverage(free.spec).full
        assert free.certificate.bound <= free.cost.params


def brute_force_chain(c_in, c_out, kh, kw, n_max):
    """Cheapest chain of at most ``n_max`` stages meeting the necessary conditions, by exhaustive relaxation.

    State after a stage: (channel reach = product of fan-ins capped at C_in, height span, width span).
    Every stage maps to C_out channels (the solver's default internal width) with groups dividing both widths.
    """
    best = None
    frontier = {(1, 1, 1): 0}  # before any stage: reach 1, spans 1
    for depth in range(n_max):
        width_in = c_in if depth == 0 else c_out
        groups = [g for g in _divisors(width_in) if c_out % g == 0]
        nxt = {}
        for (reach, sh, sw), spent in frontier.items():
            for g in groups:
                n = width_in // g
                for a in range(1, kh + 1):
                    for b in range(1, kw + 1):
                        state = (min(c_in, reach * n), min(kh, sh + a - 1), min(kw, sw + b - 1))
                        total = spent + c_out * n * a * b
                        if total < nxt.get(state, float("inf")):
                            nxt[state] = total
        frontier = nxt
        done = frontier.get((c_in, kh, kw))
        if done is not None and (best is None or done < best):
            best = done
    return best


@pytest.mark.parametrize("n_max", [3, 4])
def test_deeper_chains_equal_brute_force_on_a_sample(n_max):
    rng = random.Random(n_max)
    for _ in range(60):
        c_in, c_out, kh, kw = rng.randint(1, 16), rng.randint(1, 16), rng.randint(1, 4), rng.randint(1, 4)
        sol = solve(Target(c_in, c_out, (kh, kw)), max_stages=n_max)
        assert sol.cost.params == brute_force_chain(c_in, c_out, kh, kw, n_max), (c_in, c_out, kh, kw)
        assert coverage(sol.spec).full and sol.spec.stages <= n_max
