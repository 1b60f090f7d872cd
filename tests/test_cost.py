"""Exact cost model: published reference values and brute-force tap counting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osc_design import Cost, GraphBuilder, Target, cost, cost_by_node
from osc_design.geometry import conv_output_size, valid_taps
from tests.reference import conv2d


def _single(c_in, c_out, k, size, *, stride=1, padding=None, dilation=1, groups=1, bias=False):
    kh, kw = (k, k) if isinstance(k, int) else k
    pad = padding if padding is not None else (kh // 2, kw // 2)
    target = Target(c_in, c_out, (kh, kw), stride, pad)
    b = GraphBuilder(target)
    y = b.conv2d(b.input, c_out, (kh, kw), stride=stride, padding=pad, dilation=dilation, groups=groups, bias=bias)
    return b.build(y, family="conv")


@pytest.mark.parametrize(
    ("c", "k", "size", "groups", "params", "macs", "macs_valid"),
    [
        # foundation issue reference values (stride 1, padding K//2, no bias)
        (64, 3, 56, 1, 36_864, 115_605_504, 112_869_376),
        (96, (51, 5), 56, 96, 24_480, 76_769_280, 58_026_624),
        # peers.md 2.1/2.2, XLA FLOPs / 2: 225,738,752 ; 969,408,512 ; 3,786,752 ; 934,355,712
        (64, 3, 56, 8, 4_608, 14_450_688, 28_217_344 // 2),
        (64, 3, 56, 64, 576, 1_806_336, 3_527_168 // 2),
        (256, 7, 14, 1, 3_211_264, 629_407_744, 969_408_512 // 2),
        (256, 7, 14, 256, 12_544, 2_458_624, 3_786_752 // 2),
        (96, 51, 56, 96, 249_696, 783_046_656, 934_355_712 // 2),
    ],
)
def test_reference_values(c, k, size, groups, params, macs, macs_valid):
    got = cost(_single(c, c, k, size, groups=groups), input_size=size)
    assert (got.params, got.macs, got.macs_valid) == (params, macs, macs_valid)
    assert got.flops == 2 * macs and got.bias_params == 0 and got.bias_adds == 0


def test_bias_is_counted_separately():
    got = cost(_single(64, 64, 3, 56, bias=True), input_size=56)
    assert got.params == 36_864 and got.bias_params == 64 and got.total_params == 36_928
    assert got.bias_adds == 64 * 56 * 56 == 200_704  # ptflops/torchinfo add exactly this (peers.md 2.1)
    assert got.macs == 115_605_504 and got.xla_flops == 2 * got.macs_valid + 200_704


def test_without_input_size_spatial_counts_are_none():
    got = cost(_single(8, 8, 3, None))
    assert got.params == 576 and got.macs is None and got.flops is None and got.xla_flops is None


@settings(max_examples=120, deadline=None)
@given(
    size=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 3), d=st.integers(1, 3)
)
def test_valid_taps_by_enumeration(size, k, s, p, d):
    n_out = conv_output_size(size, k, s, p, d)
    if n_out < 1:
        return
    expected = sum(1 for o in range(n_out) for t in range(k) if 0 <= o * s - p + d * t < size)
    assert valid_taps(size, k, s, p, d) == expected


@settings(max_examples=60, deadline=None)
@given(
    c_in=st.sampled_from([1, 2, 3, 4, 6]), mult=st.integers(1, 3), g_idx=st.integers(0, 3),
    kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 2), sw=st.integers(1, 2),
    dh=st.integers(1, 2), h=st.integers(4, 9), w=st.integers(4, 9), bias=st.booleans(),
)
def test_conv_costs_match_numpy_counting(c_in, mult, g_idx, kh, kw, sh, sw, dh, h, w, bias):
    divisors = [g for g in range(1, c_in + 1) if c_in % g == 0]
    groups = divisors[g_idx % len(divisors)]
    c_out = groups * mult
    pad = (kh // 2, kw // 2)
    if conv_output_size(h, kh, sh, pad[0], dh) < 1 or conv_output_size(w, kw, sw, pad[1]) < 1:
        return
    target = Target(c_in, c_out, (kh, kw), (sh, sw), pad)
    b = GraphBuilder(target)
    spec = b.build(b.conv2d(b.input, c_out, (kh, kw), stride=(sh, sw), padding=pad, dilation=(dh, 1),
                            groups=groups, bias=bias))
    got = cost(spec, input_size=(h, w))
    # an all-ones image through all-ones weights: each output value counts its valid (tap, channel) pairs
    ones = conv2d(np.ones((c_in, h, w)), np.ones((c_out, c_in // groups, kh, kw)), (sh, sw), pad, (dh, 1), groups)
    weight_numel = c_out * (c_in // groups) * kh * kw
    assert got.macs_valid == int(ones.sum())
    assert got.macs == weight_numel * ones.shape[1] * ones.shape[2]
    assert got.params == weight_numel
    assert got.bias_adds == (c_out * ones.shape[1] * ones.shape[2] if bias else 0)


def test_graph_cost_is_sum_of_nodes_and_adds_count_elements():
    target = Target(4, 4, 3, input_size=10)
    b = GraphBuilder(target)
    a = b.conv2d(b.input, 4, 3, padding=1, groups=4)
    c = b.conv2d(b.input, 4, (3, 1), padding=(1, 0), groups=4)
    y = b.add([a, c, b.shift(a, (1, 0))])
    spec = b.build(b.conv2d(b.batch_norm(y), 4, 1))
    per_node = cost_by_node(spec)
    total = cost(spec)
    assert total.params == 36 + 12 + 16 + 2 * 4
    assert per_node["add1"].adds == 2 * 4 * 10 * 10 and total.adds == 800
    assert total.macs == sum(c.macs for c in per_node.values())
    assert per_node["shift1"] == Cost(0, 0, 0, 0, 0, 0, 0)
    assert per_node["bn1"].norm_ops == 2 * 4 * 10 * 10 and total.xla_flops == 2 * total.macs_valid + 800 + 800


def test_cost_arithmetic_and_dict():
    a, b = Cost(1, 2, 3, 4, 5, 6), Cost(10, 20, None, 40, 50, 60)
    assert (a + b).macs is None and (a + b).params == 11
    d = a.to_dict()
    assert d["flops"] == 6 and d["flops_valid"] == 8 and d["xla_flops"] == 8 + 5 + 6 and d["total_params"] == 3
