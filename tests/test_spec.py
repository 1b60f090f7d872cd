"""Targets, ops and layer specs are validated on construction, with messages naming field and value."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from osc_design import Conv2d, GraphBuilder, Input, LayerSpec, Permute, SpecError, Target
from osc_design.ops import shuffle_permutation


def test_target_normalises_and_defaults():
    t = Target(64, 128, (7, 5), 2, input_size=(15, 14))
    assert t.kernel_size == (7, 5) and t.stride == (2, 2) and t.padding == (3, 2)
    assert t.output_size == (8, 7)
    assert t.describe() == "64->128 k7x5 s2 @15x14"


def test_target_stores_pairs_whatever_form_it_was_given():
    short = Target(256, 256, 7, input_size=14)
    spelled = Target(in_channels=256, out_channels=256, kernel_size=[7, 7], stride=(1, 1), padding=(3, 3),
                     input_size=[14, 14])
    assert short == spelled and hash(short) == hash(spelled)
    assert repr(short) == ("Target(in_channels=256, out_channels=256, kernel_size=(7, 7), stride=(1, 1), "
                           "padding=(3, 3), input_size=(14, 14))")
    for value in (short.kernel_size, short.stride, short.padding, short.input_size):
        assert type(value) is tuple and len(value) == 2 and all(type(v) is int for v in value)
    assert Target(4, 4, 3).input_size is None and Target(4, 4, 3).output_size is None


def test_target_survives_pickle_copy_and_replace():
    t = Target(8, 16, (5, 3), stride=2, padding=(2, 1), input_size=(11, 9))
    for clone in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t), dataclasses.replace(t)):
        assert clone == t and clone.output_size == (6, 5)
    wider = dataclasses.replace(t, out_channels=32, input_size=13)
    assert (wider.out_channels, wider.input_size, wider.padding) == (32, (13, 13), (2, 1))
    assert t.with_input_size(None) == dataclasses.replace(t, input_size=None)
    with pytest.raises(SpecError, match=r"`stride` \(=0\) must be >= 1"):
        dataclasses.replace(t, stride=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.stride = (1, 1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(in_channels=0, out_channels=4, kernel_size=3), r"`in_channels` \(=0\) must be >= 1"),
        (dict(in_channels=4, out_channels=-2, kernel_size=3), r"`out_channels` \(=-2\) must be >= 1"),
        (dict(in_channels=4, out_channels=4, kernel_size=0), r"`kernel_size` \(=0\) must be >= 1"),
        (dict(in_channels=4, out_channels=4, kernel_size=(3, 3, 3)), r"must have 2 entries"),
        (dict(in_channels=4.0, out_channels=4, kernel_size=3), r"`in_channels` \(=4.0\) must be an integer"),
        (dict(in_channels=True, out_channels=4, kernel_size=3), r"`in_channels` \(=True\) must be an integer"),
        (dict(in_channels=4, out_channels=4, kernel_size=7, padding=0, input_size=3), r"too small"),
    ],
)
def test_bad_targets(kwargs, message):
    with pytest.raises(SpecError, match=message):
        Target(**kwargs)


def test_conv_validation():
    with pytest.raises(SpecError, match=r"`groups` \(=3\) must divide `in_channels` \(=8\)"):
        Conv2d(id="c", inputs=("x",), in_channels=8, out_channels=6, kernel_size=3, groups=3)
    with pytest.raises(SpecError, match=r"c.padding` \(=-1\) must be >= 0"):
        Conv2d(id="c", inputs=("x",), in_channels=8, out_channels=8, kernel_size=3, padding=-1)
    with pytest.raises(SpecError, match=r"needs 1 input\(s\), got 2"):
        Conv2d(id="c", inputs=("x", "y"), in_channels=8, out_channels=8, kernel_size=3)
    with pytest.raises(SpecError, match="must be a permutation"):
        Permute(id="p", inputs=("x",), perm=(0, 0, 1))


def test_branches_at_different_strides_are_rejected():
    b = GraphBuilder(Target(4, 4, 3, stride=2))
    a = b.conv2d(b.input, 4, 3, stride=2, padding=1)
    c = b.conv2d(b.input, 4, 3, padding=1)
    with pytest.raises(SpecError, match="inputs arrive at different strides"):
        b.build(b.add([a, c]))


def test_total_stride_and_output_size_must_match_target():
    b = GraphBuilder(Target(4, 4, 3, stride=2))
    with pytest.raises(SpecError, match=r"total stride \(1, 1\) differs from the target's \(2, 2\)"):
        b.build(b.conv2d(b.input, 4, 3, padding=1))
    b = GraphBuilder(Target(4, 4, 3, input_size=8))
    with pytest.raises(SpecError, match=r"output size \(6, 6\) differs from the target's \(8, 8\)"):
        b.build(b.conv2d(b.input, 4, 3))


def test_two_inputs_and_unreachable_nodes():
    t = Target(2, 2, 1)
    x = Input(id="x", channels=2)
    y = Input(id="y", channels=2)
    c = Conv2d(id="c", inputs=("x",), in_channels=2, out_channels=2, kernel_size=1)
    with pytest.raises(SpecError, match="exactly one `input` node, found 2"):
        LayerSpec(t, (x, y, c), "c")
    with pytest.raises(SpecError, match="duplicate node id 'x'"):
        LayerSpec(t, (x, x, c), "c")


def test_stages_counts_the_longest_conv_path():
    b = GraphBuilder(Target(4, 4, 3))
    a = b.conv2d(b.conv2d(b.input, 4, (3, 1), padding=(1, 0)), 4, (1, 3), padding=(0, 1))
    c = b.conv2d(b.input, 4, 3, padding=1)
    spec = b.build(b.conv2d(b.add([a, c]), 4, 1))
    assert spec.stages == 3 and len(spec.convs) == 4


def test_specs_are_immutable_hashable_and_picklable():
    b = GraphBuilder(Target(4, 4, 3))
    spec = b.build(b.conv2d(b.input, 4, 3, padding=1))
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert hash(spec) == hash(pickle.loads(pickle.dumps(spec)))
    with pytest.raises(AttributeError):
        spec.family = "x"  # type: ignore[misc]


def test_shuffle_permutation_matches_reshape_transpose():
    import numpy as np

    for c, g in [(6, 2), (12, 3), (16, 4), (5, 1), (7, 7)]:
        x = np.arange(c)
        expected = x.reshape(g, c // g).T.reshape(-1)
        assert list(shuffle_permutation(c, g)) == list(expected)


def test_errors_pickle_with_message():
    err = SpecError("`groups` (=3) must divide `in_channels` (=8)")
    assert str(pickle.loads(pickle.dumps(err))) == str(err)
