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


def brute_force(c_in, c_out, kh, kw, n_max):
    best = None
    for N in range(1, n_max + 1):
        fans = [[c_in // g for g in _divisors(c_in) if c_out % g == 0]] + [_divisors(c_out)] * (N - 1)
        hs, ws = feasible_kernels(kh, N), feasible_kernels(kw, N)
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
