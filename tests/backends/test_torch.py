"""PyTorch backend: shapes, parameters and FlopCounterMode against the closed forms, numerics against numpy,
torch.export / torch.compile, buffers, weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from requested import require

require("torch")

import torch  # noqa: E402
from backend_cases import (  # noqa: E402
    CASES,
    FAMILY_TARGETS,
    build_family,
    case,
    family_cases,
    np_evaluate,
    random_specs,
    solver_designs,
)
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from osc_design import GraphBuilder, SpecError, Target, cost  # noqa: E402
from osc_design.backends import random_weights, resolve_input_size, verify  # noqa: E402
from osc_design.backends import torch as tb  # noqa: E402
from osc_design.ops import shuffle_permutation  # noqa: E402


def measured(spec, batch=2, module=None):
    """(params, FlopCounterMode flops, output shape, plain nn.Conv2d output shape) at the resolved size."""
    size = resolve_input_size(spec)
    m = tb.build_module(spec, seed=0).eval() if module is None else module
    x = torch.randn(batch, spec.target.in_channels, *size)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = m(x)
    t = spec.target
    ref = nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size, t.stride, t.padding)(x).shape
    return sum(p.numel() for p in m.parameters()), fc.get_total_flops(), tuple(y.shape), tuple(ref), size


def assert_counts(spec, batch=2):
    params, flops, shape, ref, size = measured(spec, batch)
    c = cost(spec, size)
    assert params == c.params + c.bias_params
    assert flops == 2 * c.macs * batch
    assert shape == ref


@pytest.mark.parametrize("name", CASES)
def test_counts_and_shape_match_closed_form(name):
    assert_counts(case(name))


@pytest.mark.parametrize("name", CASES)
def test_output_matches_numpy_reference(name):
    spec = case(name)
    size = resolve_input_size(spec)
    weights = random_weights(spec, seed=3)
    m = tb.build_module(spec).eval()
    tb.set_weights(m, spec, weights)
    x = np.random.default_rng(0).standard_normal((2, spec.target.in_channels, *size)).astype(np.float32)
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, np_evaluate(spec, x, weights), rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_specs())
def test_random_graphs(spec):
    assert_counts(spec, batch=1)
    weights = random_weights(spec, seed=1)
    m = tb.build_module(spec).eval()
    tb.set_weights(m, spec, weights)
    x = np.random.default_rng(1).standard_normal((1, spec.target.in_channels, *spec.target.input_size))
    with torch.no_grad():
        y = m(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(y, np_evaluate(spec, x, weights), rtol=1e-4, atol=1e-5)


def test_shift_is_zero_filled_translation():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    for dy, dx in [(1, 2), (-1, 0), (0, -4), (3, -3), (4, 0), (-9, 7), (0, 0)]:
        y = tb.shift2d(x, dy, dx)
        for yy in range(4):
            for xx in range(5):
                src = (yy - dy, xx - dx)
                want = x[:, :, src[0], src[1]] if 0 <= src[0] < 4 and 0 <= src[1] < 5 else torch.zeros(2, 3)
                assert torch.equal(y[:, :, yy, xx], want), (dy, dx, yy, xx)


@pytest.mark.parametrize("channels, groups", [(6, 2), (6, 3), (8, 4), (5, 1), (4, 4)])
def test_channel_shuffle_is_the_spec_permutation(channels, groups):
    x = torch.randn(2, channels, 3, 3)
    perm = shuffle_permutation(channels, groups)
    assert torch.equal(tb.channel_shuffle(x, groups), x[:, list(perm)])


def test_permutations_are_buffers_not_parameters():
    spec = case("all-ops")
    m = tb.build_module(spec)
    buffers = dict(m.named_buffers())
    assert torch.equal(buffers["perm1"], torch.tensor([7, 2, 5, 4, 3, 6, 1, 0]))
    assert buffers["perm1"].dtype == torch.long
    assert not buffers["perm1"].requires_grad
    assert all(not name.startswith("perm") for name, _ in m.named_parameters())
    assert "perm1" in m.state_dict()


def test_default_init_is_kaiming_uniform_like_conv2d():
    b = GraphBuilder(Target(64, 32, 3))
    spec = b.build(b.conv2d(b.input, 32, 3, padding=1, groups=2, bias=True))
    m = tb.build_module(spec, seed=0)
    w, bias = m.conv1.weight, m.conv1.bias
    bound = 1 / (32 * 9) ** 0.5  # 1/sqrt(fan_in), fan_in = C_in/groups * kh * kw
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert bias.abs().max() <= bound
    assert abs(w.std().item() - bound / 3**0.5) < 0.05 * bound  # uniform(-b, b) has std b/sqrt(3)


def test_seed_makes_init_reproducible_and_leaves_global_rng_alone():
    spec = case("rect-even")
    state = torch.random.get_rng_state()
    a, b = tb.build_module(spec, seed=5), tb.build_module(spec, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_weights_round_trip():
    spec = case("depthwise-large")
    weights = random_weights(spec, seed=2)
    m = tb.build_module(spec)
    tb.set_weights(m, spec, weights)
    back = tb.get_weights(m, spec)
    assert back.keys() == weights.keys()
    for nid in weights:
        assert back[nid].keys() == weights[nid].keys()
        for k in weights[nid]:
            np.testing.assert_array_equal(back[nid][k], weights[nid][k])


def test_set_weights_rejects_wrong_shapes_and_nodes():
    spec = case("rect-even")
    m = tb.build_module(spec)
    with pytest.raises(SpecError, match="shape"):
        tb.set_weights(m, spec, {"conv1": {"weight": np.zeros((1, 1, 1, 1))}})
    with pytest.raises(SpecError, match="not a conv2d or batch_norm"):
        tb.set_weights(m, spec, {"shuffle1": {"weight": np.zeros(1)}})
    with pytest.raises(SpecError, match="no tensor"):
        tb.set_weights(m, spec, {"conv1": {"running_mean": np.zeros(6)}})


def test_odd_node_ids_become_safe_attribute_names():
    spec = case("odd-ids")
    m = tb.build_module(spec)
    names = {n for n, _ in m.named_children()}
    assert names == {"stage_1", "n1st_bn", "n_private"}
    assert "forward_1" in dict(m.named_buffers())
    assert callable(m.forward) and not isinstance(m.forward, nn.Module)


@pytest.mark.parametrize("name", ["all-ops", "shift-add"])
def test_torch_export(name):
    spec = case(name)
    m = tb.build_module(spec, seed=0).eval()
    x = torch.randn(2, spec.target.in_channels, *resolve_input_size(spec))
    ep = torch.export.export(m, (x,))
    torch.testing.assert_close(ep.module()(x), m(x))
    # the exported graph keeps the permutation as a buffer, not a parameter
    assert sum(p.numel() for p in ep.module().parameters()) == cost(spec).total_params


def test_torch_compile_fullgraph_traces_in_one_graph():
    spec = case("all-ops")
    m = tb.build_module(spec, seed=0).eval()
    x = torch.randn(2, 8, 16, 16)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), m(x))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_compile_inductor():
    b = GraphBuilder(Target(4, 4, 3))
    y = b.conv2d(b.input, 4, (3, 1), padding=(1, 0), groups=2)
    y = b.permute(b.channel_shuffle(y, 2), [1, 0, 3, 2])
    y = b.conv2d(b.shift(y, (1, 0)), 4, (1, 3), padding=(0, 1), groups=2)
    spec = b.build(y)
    m = tb.build_module(spec, seed=0).eval()
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(torch.compile(m)(x), m(x))


def test_verify_torch_report():
    spec = case("all-ops")
    report = verify(spec, "torch", batch=3)
    assert report.ok, str(report)
    rows = report.to_rows()
    assert [r["quantity"] for r in rows] == ["params", "flops", "output_shape"]
    c = cost(spec)
    assert rows[0]["closed_form"] == rows[0]["measured"] == c.total_params
    assert rows[1]["closed_form"] == 3 * c.flops
    assert rows[2]["measured"] == (3, 12, 8, 9)
    assert all(set(r) == {"backend", "quantity", "convention", "closed_form", "measured", "ok"} for r in rows)


def test_verify_flags_a_wrong_module():
    spec = case("rect-even")
    other = tb.build_module(case("depthwise-large"))
    with pytest.raises(RuntimeError):  # the module does not fit the spec's input
        verify(spec, "torch", module=other)
    b = GraphBuilder(Target(6, 4, (2, 4), input_size=(9, 13)))
    bigger = b.build(b.conv2d(b.input, 4, (2, 4), padding=(1, 2), bias=True))
    report = verify(spec, "torch", module=tb.build_module(bigger))
    assert not report.ok
    assert {c.quantity for c in report.failures} == {"params", "flops"}


def test_verify_restores_training_mode():
    spec = case("depthwise-large")
    m = tb.build_module(spec)
    assert m.training
    assert verify(spec, "torch", module=m, batch=1).ok  # batch 1 with batch norm needs eval mode
    assert m.training


# ------------------------------------------------------------------------------------------ families, solver


@pytest.mark.parametrize("fid, tid", family_cases())
def test_registered_families(fid, tid):
    spec = build_family(fid, FAMILY_TARGETS[tid])
    if spec is None:
        pytest.skip(f"{fid} does not apply to {FAMILY_TARGETS[tid].describe()}")
    assert_counts(spec, batch=1)


def test_random_solver_designs():
    specs = solver_designs(100, seed=1)
    assert len(specs) == 100
    for spec in specs:
        params, flops, shape, ref, size = measured(spec, batch=1)
        c = cost(spec, size)
        assert (params, flops, shape) == (c.total_params, 2 * c.macs, ref), spec.target.describe()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:The TorchScript type system:UserWarning")
@pytest.mark.parametrize("name", CASES)
def test_built_modules_are_standard_pytorch(name):
    """Only torch classes (a chain of convs and batch norms: nn.Sequential; else a torch.fx GraphModule), the
    state_dict keys of the interpreted SpecModule, scriptable, and a pickle round trip computes the same."""
    import io

    spec = case(name)
    m = tb.build_module(spec, seed=0).eval()
    assert all(type(sub).__module__.startswith("torch.") for sub in m.modules())
    ids = list(spec.order)
    chain = ids[-1] == spec.output and all(
        spec.node_map[b].op in ("conv2d", "batch_norm") and spec.node_map[b].inputs == (a,)
        for a, b in zip(ids, ids[1:], strict=False))
    assert isinstance(m, nn.Sequential if chain else torch.fx.GraphModule)
    assert list(m.state_dict()) == list(tb.SpecModule(spec).state_dict())
    x = torch.randn(2, spec.target.in_channels, *resolve_input_size(spec))
    reference = tb.SpecModule(spec).eval()
    reference.load_state_dict(m.state_dict())
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        y = m(x)
        torch.testing.assert_close(y, reference(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded(x), y, rtol=0, atol=0)
        torch.testing.assert_close(torch.jit.script(m)(x), y)
