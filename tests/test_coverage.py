"""The receptive-field verifier against brute-force impulse propagation."""

from __future__ import annotations

import importlib
import time
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osc_design import Conv2d, GraphBuilder, Shift, Target, coverage, dependence, dumps
from osc_design.coverage import chain_coverage
from osc_design.serialize import to_dict
from tests.reference import brute_force_offsets
from tests.strategies import graphs

coverage_module = importlib.import_module("osc_design.coverage")  # the module (``osc_design.coverage`` is the function)


def _margin(spec):
    reach = 2
    for node in spec.nodes:
        s = spec.cumulative_stride(node.id)
        if isinstance(node, Conv2d):
            for a in (0, 1):
                reach += s[a] * (node.dilation[a] * (node.kernel_size[a] - 1) + node.padding[a] + node.stride[a])
        elif isinstance(node, Shift):
            reach += max(abs(node.shift[0]) * s[0], abs(node.shift[1]) * s[1])
    return reach


def _brute(spec):
    return brute_force_offsets(to_dict(spec), spec.target.stride, _margin(spec))


def _brute_covered(spec, deps):
    t = spec.target
    window = {(ty - t.padding[0], tx - t.padding[1])
              for ty in range(t.kernel_size[0]) for tx in range(t.kernel_size[1])}
    return sum(len(window & offs) for offs in deps.values())


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_dependence_equals_impulse_propagation(spec):
    deps = _brute(spec)
    dep = dependence(spec)
    for o in range(spec.target.out_channels):
        for i in range(spec.target.in_channels):
            assert dep.offsets(o, i) == deps.get((o, i), set()), (o, i, dumps(spec))
            assert dep.depends(o, i) == ((o, i) in deps)
    cov = coverage(spec)
    assert cov.covered == _brute_covered(spec, deps)
    t = spec.target
    assert cov.total == t.in_channels * t.out_channels * t.kernel_size[0] * t.kernel_size[1]
    if not cov.full:
        o, i, (ty, tx) = cov.missing
        assert (ty - t.padding[0], tx - t.padding[1]) not in deps.get((o, i), set())


def _two_stage(c, g1, g2, k1, k2, shuffle=True, target_kernel=None, pad1=None, pad2=None):
    target = Target(c, c, target_kernel or (k1[0] + k2[0] - 1, k1[1] + k2[1] - 1))
    b = GraphBuilder(target)
    y = b.conv2d(b.input, c, k1, padding=pad1 if pad1 is not None else (k1[0] // 2, k1[1] // 2), groups=g1)
    if shuffle:
        y = b.channel_shuffle(y, g1)
    y = b.conv2d(y, c, k2, padding=pad2 if pad2 is not None else (k2[0] // 2, k2[1] // 2), groups=g2)
    return b.build(y)


def test_osc_two_stage_256_k7_is_full():
    spec = _two_stage(256, 16, 16, (7, 1), (1, 7))
    cov = coverage(spec)
    assert cov.full and cov.fraction == 1.0 and cov.missing is None


def test_without_shuffle_groups_stay_aligned():
    cov = coverage(_two_stage(16, 4, 4, (3, 1), (1, 3), shuffle=False))
    # each output sees one stage-1 group of 4 input channels: 4/16 of the channels
    assert cov.fraction == pytest.approx(4 / 16)
    assert not cov.full


def test_misses_by_one_channel():
    # every output reads input channels 0 and 1 but never channel 2
    b = GraphBuilder(Target(3, 3, 1))
    y = b.conv2d(b.input, 3, 1, groups=3)
    spec = b.build(b.conv2d(b.slice(y, 0, 2), 3, 1))
    cov = coverage(spec)
    assert (cov.covered, cov.total, cov.missing) == (6, 9, (0, 2, (0, 0)))
    assert cov.covered == _brute_covered(spec, _brute(spec))


def test_bad_permutation_loses_a_block():
    # blocks {0,1} {2,3} {4,5}; a wrong permutation gives both stage-2 groups one block twice
    b = GraphBuilder(Target(6, 6, 1))
    y = b.channel_shuffle(b.conv2d(b.input, 6, 1, groups=3), 3)
    good = b.build(b.conv2d(y, 6, 1, groups=2, name="good"))
    bad = b.build(b.conv2d(b.permute(y, [0, 1, 3, 2, 4, 5]), 6, 1, groups=2))
    assert coverage(good).full
    cov = coverage(bad)
    assert cov.covered == 36 - 6 * 2 == _brute_covered(bad, _brute(bad))  # every output misses 2 channels
    assert cov.missing == (0, 4, (0, 0))


def test_misses_by_one_offset():
    # target 3x3, stages 3x1 then 1x2: the window's right column is never reached
    spec = _two_stage(4, 1, 1, (3, 1), (1, 2), target_kernel=(3, 3), pad2=(0, 1))
    cov = coverage(spec)
    assert cov.fraction == pytest.approx(6 / 9)
    assert cov.missing[2] == (0, 2)
    assert cov.covered == _brute_covered(spec, _brute(spec))


def test_stride_spaces_later_taps():
    # stride 2 on a 1-tap first stage: the 3-tap second stage lands on every other input pixel
    target = Target(2, 2, (5, 1), stride=(2, 1))
    b = GraphBuilder(target)
    y = b.conv2d(b.input, 2, 1, stride=(2, 1))
    spec = b.build(b.conv2d(y, 2, (3, 1), padding=(1, 0)))
    cov = coverage(spec)
    assert cov.covered == _brute_covered(spec, _brute(spec))
    assert not cov.full


def test_4096_channel_chain_under_a_second():
    c = 4096
    b = GraphBuilder(Target(c, c, 51))
    y = b.conv2d(b.input, c, (51, 1), padding=(25, 0), groups=64)
    y = b.channel_shuffle(y, 64)
    spec = b.build(b.conv2d(y, c, (1, 51), padding=(0, 25), groups=64))
    t0 = time.perf_counter()
    cov = coverage(spec)
    elapsed = time.perf_counter() - t0
    assert cov.full and cov.total == c * c * 51 * 51
    assert elapsed < 5  # the measured figure (~0.05 s) is in benchmarks/; this only guards against a blow-up


def test_fraction_is_exact():
    cov = coverage(_two_stage(16, 4, 4, (3, 1), (1, 3), shuffle=False))
    assert cov.exact_fraction.denominator in (4, 1) or cov.exact_fraction == cov.covered / cov.total
    assert np.isclose(float(cov.exact_fraction), cov.fraction)


@st.composite
def shuffle_chains(draw):
    """A random chain of grouped convs with a channel shuffle wherever the solver's chains put one."""
    n = draw(st.integers(1, 4))
    widths = [draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12])) for _ in range(n + 1)]
    strided = draw(st.integers(-1, n - 1))  # the stage carrying stride 2 along both axes, -1: none
    kernel = (draw(st.integers(2, 5)), draw(st.integers(1, 5)))
    target = Target(widths[0], widths[-1], kernel, stride=2 if strided >= 0 else 1,
                    padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    b = GraphBuilder(target)
    x, prev = b.input, None
    for i in range(n):
        common = [g for g in range(1, widths[i] + 1) if widths[i] % g == 0 and widths[i + 1] % g == 0]
        g = draw(st.sampled_from(common))
        if prev is not None and 1 < prev[0] < prev[1] and g > 1:
            x = b.channel_shuffle(x, prev[0])
        k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        x = b.conv2d(x, widths[i + 1], k, stride=2 if i == strided else 1, groups=g,
                     padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
                     dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))))
        prev = (g, widths[i + 1])
    return b.build(x)


@settings(max_examples=300, deadline=None)
@given(shuffle_chains(), st.booleans())
def test_chain_coverage_equals_the_verifier(spec, intervals):
    # both representations of chain_coverage: bit sets over the first stage's groups, and interval sets
    with mock.patch.object(coverage_module, "BITSET_GROUPS", -1 if intervals else coverage_module.BITSET_GROUPS):
        got = chain_coverage(spec.target, spec.convs)
    exact = coverage(spec)
    assert (got.covered, got.total) == (exact.covered, exact.total)
    assert (got.missing is None) == (exact.missing is None)
    if got.missing is not None:
        o, i, (ty, tx) = got.missing
        assert (ty - spec.target.padding[0], tx - spec.target.padding[1]) not in dependence(spec).offsets(o, i)
