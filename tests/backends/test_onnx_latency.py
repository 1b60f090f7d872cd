"""onnxruntime timing: chains of an op (what times an op inside a graph), which ops chain, the marginal cost
taken from two chain lengths, and timing sessions that do not spin. No timed assertions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.requested import require

require("onnxruntime")

from osc_design.backends.onnx import OnnxTimer, chain_model, node_model, session  # noqa: E402
from osc_design.errors import SpecError  # noqa: E402
from osc_design.latency import timing  # noqa: E402
from osc_design.latency.opkeys import CALL_KEY, OpKey, chainable, conv_key, key_spec  # noqa: E402
from osc_design.latency.timing import CHAIN_EXTRA, Context, Timing, marginal, measure_ops  # noqa: E402

SHUFFLE = OpKey("channel_shuffle", (("channels", 12), ("groups", 3), ("h", 5), ("w", 7)))


@pytest.mark.parametrize("key, expected", [
    (conv_key(8, 8, 3, 6, padding=1), True),
    (conv_key(8, 8, (1, 5), 6, groups=8), True),  # "same" padding of a rectangular depthwise kernel
    (conv_key(8, 8, 3, 6, stride=2, padding=1), False),  # the size halves
    (conv_key(8, 16, 1, 6), False),  # the channels change
    (conv_key(8, 8, 3, 6, padding=0), False),
    (SHUFFLE, True),
    (OpKey("batch_norm", (("channels", 6), ("h", 5), ("w", 7))), True),
    (OpKey("shift", (("channels", 6), ("h", 5), ("w", 7))), True),
    (OpKey("add", (("inputs", 2), ("channels", 6), ("h", 5), ("w", 7))), False),  # two inputs
    (OpKey("slice", (("in_channels", 6), ("width", 4), ("h", 5), ("w", 7))), False),
    (CALL_KEY, False),
])
def test_chainable_ops_keep_their_input_shape(key, expected):
    assert chainable(key) is expected


def test_a_chain_is_the_op_applied_again_with_scaled_weights():
    """A bias-free conv is linear in its weights: three copies (weights x 1, 1.001, 1.002) are the single node
    applied three times, times 1.001 x 1.002. A shuffle chain is the permutation applied three times."""
    spec, node = key_spec(conv_key(6, 6, 3, 5, groups=3, padding=1))
    x = np.random.default_rng(1).standard_normal((2, 6, 5, 5)).astype(np.float32)
    one = session(node_model(spec, node))
    y = x
    for _ in range(3):
        y = one.run(None, {"in0": y})[0]
    got = session(chain_model(spec, node, 3)).run(None, {"in0": x})[0]
    np.testing.assert_allclose(got, y * 1.001 * 1.002, rtol=1e-4, atol=1e-5)

    spec, node = key_spec(SHUFFLE)
    x = np.random.default_rng(2).standard_normal((2, 12, 5, 7)).astype(np.float32)
    j = np.arange(12)
    perm = (j % 3) * 4 + j // 3
    got = session(chain_model(spec, node, 3)).run(None, {"in0": x})[0]
    np.testing.assert_array_equal(got, x[:, perm][:, perm][:, perm])


def test_chain_model_rejects_shape_changing_nodes_and_bad_counts():
    with pytest.raises(SpecError, match="cannot be chained"):
        chain_model(*key_spec(conv_key(8, 16, 1, 6)), 3)
    with pytest.raises(SpecError, match="copies"):
        chain_model(*key_spec(SHUFFLE), 0)


def test_marginal_is_the_difference_over_the_extra_copies():
    t = marginal(Timing(1e-3, 1e-4, 9, 0.9e-3), Timing(3e-3, 2e-4, 7, 2.5e-3), 4)
    assert (t.median, t.runs, t.best) == pytest.approx((0.5e-3, 7, 0.4e-3))
    assert t.spread == pytest.approx(np.hypot(1e-4, 2e-4) / 4)
    low = marginal(Timing(2e-3, 0.0, 5, 2e-3), Timing(1.9e-3, 0.0, 5, 1.9e-3), 2)  # noise: never negative
    assert (low.median, low.best) == (0.0, 0.0)


def test_measure_ops_times_chainable_ops_alone_and_chained(monkeypatch):
    """measure_ops hands the round-robin one callable per op plus a chain of 1 + CHAIN_EXTRA copies for each
    op that keeps its shape, and returns the marginal for those."""
    seen = []

    def fake_round_robin(fns, policy, sync=None):
        seen.extend(fns)
        return [Timing(1e-3 * (i + 1), 0.0, 5, 1e-3 * (i + 1)) for i in range(len(fns))]

    chained = []
    real_chain = OnnxTimer.chain_call

    def chain_call(self, spec, node, copies, seed=0):
        chained.append(copies)
        return real_chain(self, spec, node, copies, seed)

    monkeypatch.setattr(timing, "time_round_robin", fake_round_robin)
    monkeypatch.setattr(OnnxTimer, "chain_call", chain_call)
    keys = [conv_key(8, 8, 3, 6, padding=1), conv_key(8, 16, 1, 6), SHUFFLE]
    got = measure_ops(keys, Context("onnxruntime", threads=1, batch=2))
    assert len(seen) == 5 and chained == [1 + CHAIN_EXTRA] * 2
    assert got[0] == marginal(Timing(1e-3, 0.0, 5, 1e-3), Timing(2e-3, 0.0, 5, 2e-3), CHAIN_EXTRA)
    assert got[1] == Timing(3e-3, 0.0, 5, 3e-3)  # timed alone
    assert got[2] == marginal(Timing(4e-3, 0.0, 5, 4e-3), Timing(5e-3, 0.0, 5, 5e-3), CHAIN_EXTRA)
    outs = [fn() for fn in seen]  # each callable runs its own session: the op alone, then its chain
    assert [o.shape for o in outs] == [(2, 8, 6, 6), (2, 8, 6, 6), (2, 16, 6, 6), (2, 12, 5, 7), (2, 12, 5, 7)]


def test_timing_sessions_do_not_spin_and_others_do():
    spec, node = key_spec(SHUFFLE)
    model = node_model(spec, node)
    quiet = session(model, threads=1, spinning=False).get_session_options()
    assert quiet.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = session(model, threads=1).get_session_options()
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime raises its own error for an unset entry
        default.get_session_config_entry("session.intra_op.allow_spinning")
