"""Spec transformations: grouped lifting and output bias, checked against independent evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osc_design import GraphBuilder, SpecError, Target, cost, coverage
from osc_design.serialize import to_dict
from osc_design.transform import lift_groups, with_output_bias
from tests.reference import evaluate
from tests.strategies import graphs


@settings(max_examples=40, deadline=None)
@given(graphs(max_channels=4, max_blocks=4, allow_stride=False), st.integers(2, 3), st.integers(0, 2**31 - 1))
def test_lifted_spec_runs_independent_copies(spec, groups, seed):
    t = spec.target
    big = Target(t.in_channels * groups, t.out_channels * groups, t.kernel_size, t.stride, t.padding)
    lifted = lift_groups(spec, groups, big)
    x = np.random.default_rng(seed).normal(size=(t.in_channels * groups, 7, 7))
    got = evaluate(to_dict(lifted), x)  # all-ones weights: the lifted graph must be g copies on channel blocks
    blocks = [evaluate(to_dict(spec), x[j * t.in_channels:(j + 1) * t.in_channels]) for j in range(groups)]
    np.testing.assert_allclose(got, np.concatenate(blocks, axis=0))
    one, many = cost(spec, input_size=7), cost(lifted, input_size=7)
    assert (many.params, many.macs, many.bias_params, many.adds) == tuple(
        groups * v for v in (one.params, one.macs, one.bias_params, one.adds))
    # coverage of a lifted design relative to the grouped conv: each output sees only its own block
    assert coverage(lifted).covered == groups * coverage(spec).covered


def test_lift_checks_the_target():
    b = GraphBuilder(Target(4, 4, 3))
    one = b.build(b.conv2d(b.input, 4, 3, padding=1))
    with pytest.raises(SpecError, match="does not scale"):
        lift_groups(one, 2, Target(8, 6, 3))


def test_output_bias_goes_on_the_last_conv():
    b = GraphBuilder(Target(4, 4, 3, input_size=5))
    spec = b.build(b.conv2d(b.conv2d(b.input, 4, 3, padding=1, groups=4), 4, 1))
    biased = with_output_bias(spec)
    assert cost(biased).bias_params == 4 and cost(spec).bias_params == 0
    b = GraphBuilder(Target(4, 4, 1))
    ends_in_shuffle = b.build(b.channel_shuffle(b.conv2d(b.input, 4, 1), 2))
    with pytest.raises(SpecError, match="ends in 'channel_shuffle', not a conv"):
        with_output_bias(ends_in_shuffle)
