"""The OSC solver: optimality against independent brute forces, certificates, options, errors.

Every brute force here is written from the problem statement (stage configurations, necessary
coverage conditions, the documented padding rule) and never calls the solver's internals; designs
built by the brute forces are checked with the foundation's verifier and cost model.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osc_design import GraphBuilder, InfeasibleDesignError, SpecError, Target, cost, coverage, dependence
from osc_design.ops import ChannelShuffle, Conv2d
from osc_design.solver import Certificate, Solution, lower_bound, pareto_front, solve, stage_cap


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def fanins(c_prev, c_next):
    """Fan-ins n = c_prev / g of a stage whose groups g divide both widths."""
    return sorted(c_prev // g for g in divisors(math.gcd(c_prev, c_next)))


# ---------------------------------------------------------------------------------------------------
# figures that must hold
# ---------------------------------------------------------------------------------------------------
def test_256_k7_two_stages_is_the_amgm_optimum():
    sol = solve(Target(256, 256, 7), max_stages=2)
    assert sol.cost.params == 57_344 == 2 * 256 ** 1.5 * 7
    convs = sol.spec.convs
    assert [c.kernel_size for c in convs] == [(7, 1), (1, 7)]
    assert [c.groups for c in convs] == [16, 16]
    shuffles = [n for n in sol.spec.nodes if isinstance(n, ChannelShuffle)]
    assert len(shuffles) == 1 and shuffles[0].groups == 16
    assert sol.spec.family == "osc-2"
    assert sol.certificate.bound == 57_344.0 and sol.certificate.gap == 0.0
    assert coverage(sol.spec).full  # independently of the solver's own check


@pytest.mark.parametrize(("c", "k", "params", "kernels", "groups"), [
    (256, 3, 24_576, [(3, 1), (1, 3)], [16, 16]),
    (256, 5, 40_960, [(5, 1), (1, 5)], [16, 16]),
    (64, 3, 3_072, [(3, 1), (1, 3)], [8, 8]),
    (128, 3, 8_704, [(3, 3), (1, 1)], [32, 4]),
    (512, 3, 69_632, [(3, 3), (1, 1)], [64, 8]),
])
def test_papers_md_table_1_6(c, k, params, kernels, groups):
    """Best integer N = 2 of papers.md 1.6 (all widths C, no dilation): reproduced, layouts included."""
    sol = solve(Target(c, c, k), max_stages=2)
    assert sol.cost.params == params
    assert [x.kernel_size for x in sol.spec.convs] == kernels and [x.groups for x in sol.spec.convs] == groups
    assert sol.certificate.bound == pytest.approx(2 * c ** 1.5 * k)


def test_two_stage_bound_for_unequal_channels_and_rectangular_kernels():
    # 2 C_out sqrt(C_in Kh Kw): reached when the fan-ins can be sqrt(C_in Kh Kw) / K per stage
    sol = solve(Target(64, 128, 3), max_stages=2)
    assert sol.certificate.bound == pytest.approx(2 * 128 * math.sqrt(64 * 9)) and sol.cost.params == 6_144
    sol = solve(Target(36, 72, (4, 1)), max_stages=2)
    assert sol.certificate.bound == pytest.approx(2 * 72 * math.sqrt(36 * 4))


def test_reference_designs_of_the_report():
    t = Target(256, 256, 7)
    free = solve(t)
    assert free.cost.params == 7_680 and free.spec.stages == 6 and free.certificate.all_n
    dil = solve(t, dilation=True)
    assert dil.cost.params == 7_168 and dil.cost.params < free.cost.params
    assert dil.certificate.bound < free.certificate.bound  # the additive bound is tighter without dilation
    assert solve(Target(64, 128, 3)).cost.params == 2_304


# ---------------------------------------------------------------------------------------------------
# two stages: the whole grid against a vectorised brute force
# ---------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def kernel_area_pairs(kh, kw):
    """(a1, a2) of every pair of rectangular kernels whose spans add up to the window (N <= 2)."""
    pairs = set()
    for h1, h2, w1, w2 in itertools.product(range(1, kh + 1), range(1, kh + 1), range(1, kw + 1), range(1, kw + 1)):
        if h1 + h2 - 1 >= kh and w1 + w2 - 1 >= kw:
            pairs.add((h1 * w1, h2 * w2))
    arr = np.array(sorted(pairs))
    return arr[:, 0], arr[:, 1]


def brute_two_stages(c_in, c_out, kh, kw):
    """Cheapest design with at most two stages meeting the necessary conditions (a lower bound)."""
    best = c_in * c_out * kh * kw  # one stage: groups 1, the whole window
    a1, a2 = kernel_area_pairs(kh, kw)
    for n1 in fanins(c_in, c_out):
        for n2 in fanins(c_out, c_out):
            if n1 * n2 >= c_in:
                best = min(best, c_out * int((n1 * a1 + n2 * a2).min()))
    return best


def test_two_stages_equal_brute_force_on_the_whole_grid():
    """Every C_in, C_out in 1..32 and K in 1..5 (5,120 targets); every design verified by solve()."""
    for c_in, c_out, k in itertools.product(range(1, 33), range(1, 33), range(1, 6)):
        sol = solve(Target(c_in, c_out, k), max_stages=2, verify="fast")
        assert sol.cost.params == brute_two_stages(c_in, c_out, k, k), (c_in, c_out, k)
        assert sol.certificate.bound <= sol.cost.params
    rng = random.Random(3)
    for _ in range(40):  # the exact verifier on a sample
        c_in, c_out, k = rng.randint(1, 32), rng.randint(1, 32), rng.randint(1, 5)
        assert coverage(solve(Target(c_in, c_out, k), max_stages=2).spec).full


# ---------------------------------------------------------------------------------------------------
# free depth, strides, square kernels, dilation: a sample against brute force
# ---------------------------------------------------------------------------------------------------
def footprint_ok(kernels, steps, K, prefix_gap_free):
    """Do the per-stage tap sets ``step * {0..k-1}`` sum to a footprint holding the centred window?

    The span must have the window's parity (symmetric padding keeps the output size only then) and the
    window sits in the middle. With ``prefix_gap_free`` every prefix footprint must be an interval.
    """
    offs = {0}
    for k, step in zip(kernels, steps, strict=True):
        offs = {o + step * t for o in offs for t in range(k)}
        if prefix_gap_free and len(offs) != max(offs) + 1:
            return False
    span = max(offs)
    if span < K - 1 or (span - (K - 1)) % 2:
        return False
    lo = (span - (K - 1)) // 2
    return all(lo + t in offs for t in range(K))


def brute_chain(target, n_max, *, square=False, dilation=False, prefix_gap_free=True):
    """Cheapest chain of 1..n_max stages meeting the necessary conditions, by enumeration.

    Enumerates the stride stage, per axis every kernel sequence (and dilation sequence), keeps those whose
    footprint holds the window, pairs the axes into stage areas and tries every fan-in tuple on them.
    """
    c_in, c_out = target.in_channels, target.out_channels
    (kh, kw), (sh, sw) = target.kernel_size, target.stride
    strided = (sh, sw) != (1, 1)
    best = None
    for n in range(1, n_max + 1):
        areas = set()
        for j in (range(n) if strided else [n - 1]):
            per_axis = []
            for K, s in ((kh, sh), (kw, sw)):
                seqs = set()
                for ks in itertools.product(range(1, max(kh, kw) + 2), repeat=n):
                    for ds in itertools.product(*[range(1, K + 1) if dilation and k > 1 else [1] for k in ks]):
                        steps = [d * (s if i > j else 1) for i, d in enumerate(ds)]
                        if footprint_ok(ks, steps, K, prefix_gap_free):
                            seqs.add(ks)
                            break
                per_axis.append(seqs)
            for hs in per_axis[0]:
                for ws in per_axis[1]:
                    if not square or hs == ws:
                        areas.add(tuple(a * b for a, b in zip(hs, ws, strict=True)))
        if not areas:
            continue
        area = np.array(sorted(areas))
        for ns in itertools.product(fanins(c_in, c_out), *[fanins(c_out, c_out)] * (n - 1)):
            if math.prod(ns) >= c_in:
                value = c_out * int((area @ np.array(ns)).min())
                best = value if best is None else min(best, value)
    return best


def random_targets(seed, count, max_channels=12, max_kernel=4, stride=True):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        k = (rng.randint(1, max_kernel), rng.randint(1, max_kernel))
        s = (1, 1)
        if stride and rng.random() < 0.4:
            s = (min(2, k[0]), min(2, k[1]))
        out.append((Target(rng.randint(1, max_channels), rng.randint(1, max_channels), k, stride=s),
                    rng.randint(1, 3)))
    return out


def solve_or_none(target, **options):
    try:
        return solve(target, **options).cost.params
    except InfeasibleDesignError:
        return None


@pytest.mark.parametrize("seed", [0, 1])
def test_free_depth_and_strides_equal_brute_force(seed):
    for target, n in random_targets(seed, 40):
        assert solve_or_none(target, max_stages=n) == brute_chain(target, n), (target, n)


def test_square_kernels_equal_brute_force():
    for target, n in random_targets(5, 40):
        best = brute_chain(target, n, square=True)
        own = target.in_channels * target.out_channels * target.kernel_size[0] * target.kernel_size[1]
        if best is not None and best > own and target.kernel_size[0] != target.kernel_size[1]:
            best = None  # square kernels costlier than the rectangular target conv itself: refused
        assert solve_or_none(target, max_stages=n, square_only=True) == best, (target, n)


def test_dilation_equals_brute_force_in_the_stated_space_and_is_bounded_by_all_dilations():
    for target, n in random_targets(7, 50, max_channels=10, max_kernel=5):
        n = min(n, 2)
        got = solve_or_none(target, max_stages=n, dilation=True)
        assert got == brute_chain(target, n, dilation=True), (target, n)
        every = brute_chain(target, n, dilation=True, prefix_gap_free=False)  # gaps filled by later stages
        assert every is None or got is None or every <= got


def test_a_dilated_design_beats_the_plain_one_and_composes_like_digits():
    t = Target(16, 16, 9)
    sol = solve(t, dilation=True)
    plain = solve(t)
    assert sol.cost.params < plain.cost.params
    assert any(c.dilation != (1, 1) for c in sol.spec.convs) and coverage(sol.spec).full


def test_stride_placement_is_searched():
    # the strided stage sits before spatial stages: later taps are spaced by the stride
    sol = solve(Target(720, 720, 7, stride=2))
    convs = sol.spec.convs
    strided = [i for i, c in enumerate(convs) if c.stride != (1, 1)]
    assert len(strided) == 1 and any(c.kernel_size != (1, 1) for c in convs[strided[0] + 1:])
    assert sol.cost.params == 21_600 and coverage(sol.spec).full


# ---------------------------------------------------------------------------------------------------
# MAC objectives and relaxed coverage: designs built as specs by the documented padding rule
# ---------------------------------------------------------------------------------------------------
def axis_footprint(kernels, strides, pads):
    """Input offsets one output pixel reads along an axis, from the definition of a padded, strided conv."""
    offs, cum = {0}, 1
    for k, s, p in zip(kernels, strides, pads, strict=True):
        offs = {o + cum * (t - p) for o in offs for t in range(k)}
        cum *= s
    return offs


def centre(offs):
    """Centre of a footprint, rounded down."""
    return min(offs) + (max(offs) - min(offs)) // 2


def nearest_padding(place, goal, limit):
    """The padding ``0 <= q < limit`` for which ``place(q)`` comes nearest ``goal`` (the smallest on ties)."""
    return min(range(limit), key=lambda q: (abs(place(q) - goal), q))


def axis_rule_paddings(ks, K, s, p, j):
    """Per-stage paddings along one axis (kernel sizes ``ks``, window ``K``, stride ``s`` on stage ``j``,
    target padding ``p``) by the rule of :func:`rule_paddings`; ``None`` when no padding centres the chain."""
    n = len(ks)
    limit = sum(ks) + p + 2
    window = range(-p, K - p)
    last_pre = j if s > 1 else n
    pad = [0] * n
    for i in range(last_pre):  # before the stride (every stage along an axis without one)
        if len(axis_footprint(ks[: i + 1], [1] * (i + 1), pad[:i] + [0])) == 1 and K > 1:
            continue
        pad[i] = nearest_padding(lambda q, i=i: centre(axis_footprint(ks[: i + 1], [1] * (i + 1), pad[:i] + [q])),
                                 centre(window), limit)
    if last_pre == n:
        return pad
    for i in range(j + 1, n):  # after the stride, in output pixels of the strided stage
        pad[i] = nearest_padding(lambda q, i=i: centre(axis_footprint(ks[j + 1: i + 1], [1] * (i - j),
                                                                      pad[j + 1: i] + [q])), 0, limit)
    strides = [s if i == j else 1 for i in range(n)]
    for q in range(limit):
        offs = axis_footprint(ks, strides, pad[:j] + [q] + pad[j + 1:])
        if min(window) - min(offs) == max(offs) - max(window):
            pad[j] = q
            return pad
    return None


def rule_paddings(target, kernels, j):
    """Paddings of the documented centring rule for ``kernels`` with the stride on stage ``j``, found by search.

    The rule stated directly, per axis: before the stride each stage pads so that the footprint of the
    chain so far has its centre (rounded down) on the window's, as near as non-negative padding
    allows, and pads nothing while that footprint is a single tap (unless the window is one too);
    after the stride each stage does the same for the footprint of the stages after the stride (in
    output pixels of the strided stage, centred on 0); the strided stage pads so that the whole
    footprint overhangs the window equally on both sides (no such padding: not in the space).
    """
    per_axis = []
    for a in (0, 1):
        pad = axis_rule_paddings([k[a] for k in kernels], target.kernel_size[a], target.stride[a],
                                 target.padding[a], j)
        if pad is None:
            return None
        per_axis.append(pad)
    return list(zip(*per_axis, strict=True))


def rule_designs(target, n_max, max_kernel):
    """Every chain of the space (shuffles, rule paddings) with kernels up to ``max_kernel``, as valid specs."""
    c_in, c_out = target.in_channels, target.out_channels
    strided = target.stride != (1, 1)
    shapes = [(h, w) for h in range(1, max_kernel + 1) for w in range(1, max_kernel + 1)]
    for n in range(1, n_max + 1):
        for ns in itertools.product(fanins(c_in, c_out), *[fanins(c_out, c_out)] * (n - 1)):
            for ks in itertools.product(shapes, repeat=n):
                for j in (range(n) if strided else [n - 1]):
                    pads = rule_paddings(target, ks, j)
                    if pads is None:
                        continue
                    b = GraphBuilder(target)
                    x, prev_g, prev_c = b.input, None, c_in
                    try:
                        for i, (nn, k, pad) in enumerate(zip(ns, ks, pads, strict=True)):
                            width_in = c_in if i == 0 else c_out
                            g = width_in // nn
                            if prev_g is not None and 1 < prev_g < prev_c and g > 1:
                                x = b.channel_shuffle(x, prev_g)
                            x = b.conv2d(x, c_out, k, stride=target.stride if (strided and i == j) else 1,
                                         padding=pad, groups=g)
                            prev_g, prev_c = g, c_out
                        yield b.build(x)
                    except SpecError:  # an intermediate map too small for its kernel
                        continue


@lru_cache(maxsize=None)
def rule_table(target, n_max):
    """(params, macs, macs_valid, covered fraction) of every design :func:`rule_designs` builds."""
    rows = []
    for spec in rule_designs(target, n_max, max(target.kernel_size) + 1):
        c, cov = cost(spec), coverage(spec)
        rows.append((c.params, c.macs, c.macs_valid, 1.0 if cov.full else cov.fraction))
    return rows


def rule_optimum(target, n_max, objective, min_coverage):
    column = ("params", "macs", "macs_valid").index(objective)
    values = [row[column] for row in rule_table(target, n_max) if row[3] >= min_coverage]
    return min(values) if values else None


MAC_TARGETS = [
    Target(4, 4, 3, input_size=5), Target(2, 4, 3, stride=2, input_size=7), Target(4, 2, (3, 2), input_size=(6, 5)),
    Target(3, 3, 2, stride=2, padding=0, input_size=6), Target(4, 4, 3, padding=0, input_size=5),
    Target(2, 2, 3, stride=(2, 1), input_size=(5, 4)), Target(4, 4, (1, 3), input_size=3),
]


@pytest.mark.parametrize("objective", ["macs", "macs_valid"])
@pytest.mark.parametrize("target", MAC_TARGETS, ids=lambda t: t.describe())
def test_mac_objectives_equal_brute_force_over_built_designs(target, objective):
    sol = solve(target, objective=objective, max_stages=2)
    assert getattr(sol.cost, objective) == rule_optimum(target, 2, objective, 1.0)
    assert sol.certificate.bound <= getattr(sol.cost, objective)


def test_mac_objective_needs_an_input_size():
    with pytest.raises(SpecError, match="input_size"):
        solve(Target(8, 8, 3), objective="macs")


@pytest.mark.parametrize("lam", [0.3, 0.5, 0.75])
@pytest.mark.parametrize("target", MAC_TARGETS[:4], ids=lambda t: t.describe())
def test_relaxed_coverage_equals_brute_force(target, lam):
    sol = solve(target, max_stages=2, min_coverage=lam)
    assert sol.coverage.fraction >= lam and coverage(sol.spec).fraction >= lam
    assert sol.cost.params == rule_optimum(target, 2, "params", lam)


def test_relaxed_coverage_is_monotone():
    t = Target(64, 64, 5)
    values = [solve(t, min_coverage=lam).cost.params for lam in (1.0, 0.8, 0.5, 0.2, 0.05)]
    assert values == sorted(values, reverse=True) and values[-1] < values[0]


# ---------------------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------------------
@st.composite
def solver_cases(draw):
    k = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    s = (draw(st.integers(1, min(2, k[0]))), draw(st.integers(1, min(2, k[1]))))
    target = Target(draw(st.integers(1, 300)), draw(st.integers(1, 300)), k, stride=s,
                    input_size=draw(st.one_of(st.none(), st.integers(9, 20))))
    options = {"max_stages": draw(st.sampled_from([None, 1, 2, 3, 4])),
               "square_only": draw(st.booleans()), "min_coverage": draw(st.sampled_from([1.0, 1.0, 0.6]))}
    if target.input_size is not None:
        options["objective"] = draw(st.sampled_from(["params", "macs", "macs_valid"]))
    return target, options


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=solver_cases())
def test_bound_is_a_lower_bound_and_the_design_is_valid(case):
    target, options = case
    try:
        sol = solve(target, **options)
    except InfeasibleDesignError:
        return
    cert = sol.certificate
    value = getattr(sol.cost, options.get("objective", "params"))
    assert cert.value == value and 0 <= cert.bound <= value
    assert cert.gap == pytest.approx(100 * (value - cert.bound) / value)
    assert coverage(sol.spec).fraction >= options["min_coverage"]
    assert sol.spec.stages <= (options["max_stages"] or stage_cap(target, square_only=options["square_only"]))


def test_bound_below_the_brute_force_optimum_on_a_grid():
    for c_in, c_out, k in itertools.product([1, 5, 12, 24, 32], [1, 7, 16, 30], [1, 2, 3, 5]):
        t = Target(c_in, c_out, k)
        assert lower_bound(t, n_max=2) <= brute_two_stages(c_in, c_out, k, k) + 1e-9
        assert lower_bound(t, n_max=2, dilation=True) <= lower_bound(t, n_max=2) + 1e-9


def test_free_depth_bound_is_the_integer_n_relaxation():
    t = Target(256, 256, 7)
    sol = solve(t, dilation=True)
    v = 256 * 49
    expected = min(n * 256 * v ** (1 / n) for n in range(1, sol.certificate.n_max + 1))
    assert sol.certificate.bound == pytest.approx(expected)
    assert sol.certificate.relaxation == pytest.approx(math.e * 256 * math.log(v))  # e C ln(C K^2)
    assert sol.certificate.bound >= sol.certificate.relaxation


def test_certificate_is_json_ready():
    sol = solve(Target(48, 96, 5, stride=2, input_size=17), objective="macs")
    d = sol.certificate.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert isinstance(d["value"], int) and isinstance(d["searched"], int) and isinstance(d["stages"], int)
    assert isinstance(d["bound"], float) and isinstance(d["gap"], float)
    assert d["searched"] > 0 and d["method"] and d["space"] and d["objective"] == "macs"
    assert json.loads(json.dumps(sol.to_dict()))["certificate"] == d
    assert isinstance(sol, Solution) and isinstance(sol.certificate, Certificate)


def test_all_n_flag_proves_depth():
    assert solve(Target(256, 256, 7)).certificate.all_n
    assert not solve(Target(256, 256, 7), max_stages=2).certificate.all_n


# ---------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------
def test_widths_are_respected_and_match_brute_force():
    t = Target(12, 12, 3)
    a1, a2 = kernel_area_pairs(3, 3)
    for mid in (4, 6, 24):
        sol = solve(t, widths=[mid])
        assert sol.spec.convs[0].out_channels == mid and sol.spec.stages == 2
        best = min(int((mid * n1 * a1 + 12 * n2 * a2).min())
                   for n1 in fanins(12, mid) for n2 in fanins(mid, 12) if n1 * n2 >= 12)
        assert sol.cost.params == best
        assert coverage(sol.spec).full
    wide = solve(t, widths=24)
    assert all(c.out_channels == 24 for c in wide.spec.convs[:-1]) and wide.spec.convs[-1].out_channels == 12
    assert coverage(wide.spec).full


def test_prime_and_odd_channels():
    for c_in, c_out in [(7, 7), (13, 26), (9, 15), (31, 17)]:
        sol = solve(Target(c_in, c_out, 3))
        assert coverage(sol.spec).full
        assert all(c.in_channels % c.groups == 0 and c.out_channels % c.groups == 0 for c in sol.spec.convs)


def test_square_only_single_stage_is_the_conv_itself():
    sol = solve(Target(32, 48, 5), max_stages=1, square_only=True)
    (conv,) = sol.spec.convs
    assert conv.kernel_size == (5, 5) and conv.groups == 1 and sol.cost.params == 32 * 48 * 25


def test_pareto_front_is_non_dominated_and_sorted():
    t = Target(64, 64, 3, stride=2, input_size=28)
    front = pareto_front(t)
    keys = [(s.cost.params, s.cost.macs, s.spec.stages) for s in front]
    assert [k[2] for k in keys] == sorted(k[2] for k in keys)
    for a in keys:
        assert not any(b != a and all(x <= y for x, y in zip(b, a, strict=True)) for b in keys)
    assert all(coverage(s.spec).full for s in front)
    assert keys[0] == (64 * 64 * 9, cost(solve(t, max_stages=1).spec).macs, 1)
    assert min(k[0] for k in keys) == solve(t).cost.params
    assert min(k[1] for k in keys) <= solve(t, objective="macs").cost.macs


def test_results_are_cached_and_reproducible():
    t = Target(96, 96, 5)
    assert solve(t) is solve(t)
    assert solve(t, widths=(96,)).spec == solve(t, widths=[96]).spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c_in=st.integers(1, 64), c_out=st.integers(1, 64), k=st.integers(1, 7), n=st.integers(1, 5),
       lam=st.sampled_from([1.0, 0.5]), dil=st.booleans())
def test_fast_coverage_equals_the_verifier(c_in, c_out, k, n, lam, dil):
    t = Target(c_in, c_out, k)
    try:
        fast = solve(t, max_stages=n, min_coverage=lam, dilation=dil and k <= 5, verify="fast")
    except InfeasibleDesignError:
        return
    exact = coverage(fast.spec)
    assert (fast.coverage.covered, fast.coverage.total) == (exact.covered, exact.total)
    if not exact.full:  # the reported hole is a real one
        o, i, (ty, tx) = fast.coverage.missing
        p = t.padding
        assert (ty - p[0], tx - p[1]) not in dependence(fast.spec).offsets(o, i)
    assert solve(t, max_stages=n, min_coverage=lam, dilation=dil and k <= 5, verify="none").cost == fast.cost


# ---------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"objective": "flops"}, "objective"),
    ({"max_stages": 0}, "max_stages"),
    ({"max_stages": 2.5}, "max_stages"),
    ({"widths": [0]}, "widths"),
    ({"widths": [8, 8], "max_stages": 2}, "widths"),
    ({"widths": "wide"}, "widths"),
    ({"min_coverage": 0.0}, "min_coverage"),
    ({"min_coverage": 1.5}, "min_coverage"),
    ({"min_coverage": True}, "min_coverage"),
    ({"square_only": 1}, "square_only"),
    ({"verify": "maybe"}, "verify"),
])
def test_bad_options_raise_spec_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        solve(Target(8, 8, 3), **kwargs)


def test_bad_targets():
    with pytest.raises(SpecError, match="in_channels"):
        Target(0, 8, 3)
    with pytest.raises(SpecError, match="kernel_size"):
        Target(8, 8, 0)
    with pytest.raises(SpecError, match="stride 3 exceeds the kernel 2"):
        solve(Target(8, 8, 2, stride=3))
    with pytest.raises(SpecError, match="Target"):
        solve((8, 8, 3))


def test_unreachable_coverage_says_why():
    with pytest.raises(InfeasibleDesignError, match="same footprint span"):
        solve(Target(8, 8, (2, 3)), square_only=True)
    with pytest.raises(InfeasibleDesignError, match="same footprint span"):
        solve(Target(8, 8, (2, 3)), square_only=True, min_coverage=0.5)
    with pytest.raises(InfeasibleDesignError, match="no chain of at most 1 stage"):
        solve(Target(8, 8, (2, 3)), square_only=True, dilation=True, max_stages=1)
    assert solve(Target(8, 8, (2, 3)), square_only=True, dilation=True, max_stages=2).spec.stages == 2


# ---------------------------------------------------------------------------------------------------
# integration
# ---------------------------------------------------------------------------------------------------
def test_registered_families_build_the_solver_designs():
    from osc_design.families import evaluate
    from osc_design.registry import get_family

    t = Target(64, 96, 5, input_size=12)
    two, free = get_family("osc-2"), get_family("osc")
    assert two.build(t) == solve(t, max_stages=2).spec and free.build(t) == solve(t).spec
    assert two.certainty == free.certainty == "reconstructed"
    assert two.asymptotic == "C^(3/2) K" and free.asymptotic == "C log(C K^2)"
    for fam in (two, free):
        spec = fam.build(t)
        assert evaluate(fam.params_expr(t), t) == cost(spec).params
        assert evaluate(fam.macs_expr(t), t) == cost(spec).macs


@pytest.mark.parametrize("module", ["api", "space", "bounds", "chain", "intmath", "axis", "search", "result"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(f"osc_design.solver.{module}"),
                           optionflags=doctest.ELLIPSIS).failed == 0


def test_import_stays_light():
    code = "import sys, osc_design.solver; print(sorted({'sympy', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_convs_have_the_declared_geometry():
    sol = solve(Target(24, 40, (5, 3), stride=2, input_size=(17, 12)), objective="macs")
    for conv in sol.spec.convs:
        assert isinstance(conv, Conv2d) and conv.bias is False
    assert sol.spec.spatial_sizes()[sol.spec.output] == sol.spec.target.output_size
