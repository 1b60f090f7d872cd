"""JAX backend: parameters and XLA cost analysis against the closed forms, numerics against numpy,
cost-analysis parsing, weights as arguments, what XLA counts for each op."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from requested import require

require("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from backend_cases import (  # noqa: E402
    CASES,
    FAMILY_TARGETS,
    build_family,
    case,
    family_cases,
    np_evaluate,
    random_specs,
    solver_designs,
    xla_expected,
)
from flax import nnx  # noqa: E402
from jax import lax  # noqa: E402

from osc_design import GraphBuilder, OscDesignError, SpecError, Target, cost  # noqa: E402
from osc_design.backends import jax as jb  # noqa: E402
from osc_design.backends import random_weights, resolve_input_size, verify  # noqa: E402
from osc_design.cost import xla_flops as od_xla_flops  # noqa: E402
from osc_design.ops import shuffle_permutation  # noqa: E402


def xla_counts(module, x):
    """(compiled, unoptimised) cost-analysis flops with the module state as an argument (measured here)."""
    graphdef, state = nnx.split(module)
    lowered = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v)).lower(state, x)
    return lowered.compile().cost_analysis().get("flops", 0.0), lowered.cost_analysis().get("flops", 0.0)


def check_counts(spec, batch=2):
    """Parameters, both XLA counts and the output shape; returns (compiled, lowered) flops."""
    size = resolve_input_size(spec)
    m = jb.build_module(spec)
    x = jax.ShapeDtypeStruct((batch, *size, spec.target.in_channels), jnp.float32)
    compiled, lowered = xla_counts(m, x)
    c = cost(spec, size)
    params = sum(v.size for v in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert params == c.params + c.bias_params
    assert lowered == xla_expected(spec, size, batch, compiled=False)
    expected = xla_expected(spec, size, batch, compiled=True)
    if expected is not None:
        assert compiled == expected
    t = spec.target
    ref = jax.eval_shape(
        lambda v, w: lax.conv_general_dilated(v, w, t.stride, [(p, p) for p in t.padding],
                                             dimension_numbers=("NHWC", "HWIO", "NHWC")),
        x, jax.ShapeDtypeStruct((*t.kernel_size, t.in_channels, t.out_channels), jnp.float32))
    assert jb.output_shape(m, x) == ref.shape
    return compiled, lowered


def check_plain(spec, batch=1):
    """For graphs where no XLA rule applies (no batch norm, no dead code, ...): the closed form itself holds."""
    compiled, lowered = check_counts(spec, batch)
    assert compiled == lowered == batch * cost(spec, resolve_input_size(spec)).xla_flops


@pytest.mark.parametrize("name", CASES)
def test_counts_and_shape_match_closed_form(name):
    check_counts(case(name))


@pytest.mark.parametrize("name", ["grouped-dilated-strided", "rect-even", "shift-add", "concat3-no-pad"])
def test_closed_form_holds_exactly_without_batch_norm(name):
    check_plain(case(name), batch=2)


def test_fusion_recomputes_shared_elementwise_work():
    # all-ops: bn1 + identity -> add1, read by two slices: XLA fuses the batch norm and the add into both
    # slice fusions and counts them twice: (2 + 1) x 8 channels x 16 x 16 per sample, plus the 3 x 8
    # per-channel ops of the folded batch norm
    spec = case("all-ops")
    compiled, lowered = check_counts(spec, batch=2)
    assert compiled - lowered == 2 * (3 * 8 * 16 * 16) + 3 * 8


def test_cse_merges_identical_adds():
    b = GraphBuilder(Target(4, 8, 1, input_size=6))
    y = b.conv2d(b.input, 4, 1)
    z = b.conv2d(b.input, 4, 1)
    spec = b.build(b.concat([b.add([y, z]), b.add([z, y])]))
    compiled, lowered = check_counts(spec, batch=1)
    assert lowered == cost(spec).xla_flops
    assert lowered - compiled == 4 * 6 * 6


def test_dead_code_is_not_counted():
    # conv1's only consumer is a concat whose conv1 half is sliced away
    b = GraphBuilder(Target(2, 1, 1, input_size=8))
    c = b.conv2d(b.slice(b.input, 1, 2), 1, 3, padding=1)
    spec = b.build(b.slice(b.concat([c, b.slice(b.input, 0, 1)]), 1, 2))
    compiled, lowered = check_counts(spec, batch=1)
    assert compiled == lowered == 0 < cost(spec).xla_flops


def test_per_channel_pointwise_conv_becomes_a_multiply():
    b = GraphBuilder(Target(4, 4, 1, input_size=(5, 6)))
    spec = b.build(b.conv2d(b.input, 4, 1, groups=4))
    compiled, lowered = check_counts(spec, batch=2)
    assert lowered == 2 * (2 * 4 * 5 * 6) == 2 * cost(spec).xla_flops_unoptimized
    assert compiled == 2 * 4 * 5 * 6 == 2 * cost(spec).xla_flops  # one multiply per output element


def dw_flops(c_in, c_out, groups, *, stride=1, padding=0, dilation=1, bias=False, batch=1, size=(5, 6)):
    """(compiled, lowered) flops of one ``lax.conv_general_dilated`` (plus a bias add), measured here."""
    x = jax.ShapeDtypeStruct((batch, *size, c_in), jnp.float32)
    w = jax.ShapeDtypeStruct((1, 1, c_in // groups, c_out), jnp.float32)
    b = jax.ShapeDtypeStruct((c_out,), jnp.float32)

    def f(x, w, b):
        y = lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2, rhs_dilation=(dilation,) * 2,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)
        return y + b if bias else y

    lowered = jax.jit(f).lower(x, w, b)
    return lowered.compile().cost_analysis().get("flops", 0.0), lowered.cost_analysis().get("flops", 0.0)


@pytest.mark.parametrize("c_in, c_out, groups, kw", [
    (17, 17, 17, {}), (17, 17, 17, {"bias": True}), (17, 17, 17, {"batch": 3}), (1, 1, 1, {}),
    (8, 16, 8, {}), (16, 16, 8, {}), (1, 8, 1, {}), (17, 17, 17, {"stride": 2}), (17, 17, 17, {"padding": 1}),
    (17, 17, 17, {"dilation": 2}), (8, 16, 8, {"bias": True, "batch": 2}),
])
def test_xla_flops_models_the_depthwise_pointwise_multiply(c_in, c_out, groups, kw):
    # which 1x1 convs XLA's passes turn into a multiply, measured on a bare lax conv; xla_flops must agree
    compiled, lowered = dw_flops(c_in, c_out, groups, **kw)
    b = GraphBuilder(Target(c_in, c_out, 1, kw.get("stride", 1), kw.get("padding", 0), input_size=(5, 6)))
    conv_kw = {k: v for k, v in kw.items() if k != "batch"}
    spec = b.build(b.conv2d(b.input, c_out, 1, groups=groups, **conv_kw))
    batch = kw.get("batch", 1)
    assert compiled == od_xla_flops(spec, batch) and lowered == od_xla_flops(spec, batch, optimized=False)


def test_verify_grouped_one_channel_per_group_at_k1():
    # the case: `verify --backend jax` of grouped 17->17, 17 groups, K=1 (measured 3,927 = 17 x 11 x 21)
    from osc_design.registry import get_family

    spec = get_family("grouped").design(Target(17, 17, 1, input_size=(11, 21))).spec
    assert spec.nodes[-1].groups == 17
    checks = {c.quantity: c for c in verify(spec, "jax").checks}
    assert checks["xla_flops"].measured == 3927 == checks["xla_flops"].expected and checks["xla_flops"].ok
    assert checks["xla_flops_hlo"].measured == 7854 == checks["xla_flops_hlo"].expected


@pytest.mark.parametrize("name", CASES)
def test_output_matches_numpy_reference(name):
    spec = case(name)
    size = resolve_input_size(spec)
    weights = random_weights(spec, seed=3)
    m = jb.build_module(spec)
    jb.set_weights(m, spec, weights)
    x = np.random.default_rng(0).standard_normal((2, spec.target.in_channels, *size)).astype(np.float32)
    y = np.asarray(m(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, np_evaluate(spec, x, weights), rtol=1e-4, atol=1e-5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_specs())
def test_random_graphs(spec):
    check_counts(spec, batch=1)
    weights = random_weights(spec, seed=1)
    m = jb.build_module(spec)
    jb.set_weights(m, spec, weights)
    x = np.random.default_rng(1).standard_normal((1, spec.target.in_channels, *spec.target.input_size))
    y = np.asarray(m(jnp.asarray(x.transpose(0, 2, 3, 1).astype(np.float32)))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, np_evaluate(spec, x, weights), rtol=1e-4, atol=1e-5)


def test_weights_are_arguments_not_constants():
    spec = case("all-ops")
    m = jb.build_module(spec)
    x = jax.ShapeDtypeStruct((1, 16, 16, 8), jnp.float32)
    lowered = jb._lower(m, x)
    leaves = jax.tree.leaves(nnx.state(m))
    # one HLO parameter per state leaf (conv kernels, bias, batch-norm scale/bias/mean/var) plus the input
    assert len(jax.tree.leaves(lowered.args_info)) == len(leaves) + 1
    assert sum(np.prod(a.shape) for a in leaves) == cost(spec).total_params + 2 * 8  # + running mean and var


def test_permutation_and_shuffle_semantics():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 3, 6)), jnp.float32)
    for g in (1, 2, 3, 6):
        np.testing.assert_array_equal(jb.channel_shuffle(x, g), x[..., list(shuffle_permutation(6, g))])
    perm = [4, 0, 5, 1, 3, 2]
    np.testing.assert_array_equal(jb.permute_channels(x, perm), np.asarray(x)[..., perm])


def test_shift_is_zero_filled_translation():
    x = jnp.arange(2 * 4 * 5 * 3, dtype=jnp.float32).reshape(2, 4, 5, 3)
    for dy, dx in [(1, 2), (-1, 0), (0, -4), (3, -3), (4, 0), (-9, 7), (0, 0)]:
        y = np.asarray(jb.shift2d(x, dy, dx))
        ref = np.zeros_like(y)
        for yy in range(4):
            for xx in range(5):
                if 0 <= yy - dy < 4 and 0 <= xx - dx < 5:
                    ref[:, yy, xx] = np.asarray(x)[:, yy - dy, xx - dx]
        np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("build, flops", [
    # every op except conv/bias/add/bn is data movement: 0 flops, both before and after XLA's passes
    (lambda x: x[..., 1:3], 0),
    (lambda x: jnp.concatenate([x, x], axis=-1), 0),
    (lambda x: jb.shift2d(x, 2, -1), 0),
    (lambda x: jb.permute_channels(x, [3, 1, 0, 2]), 0),
    (lambda x: jb.channel_shuffle(x, 2), 0),
    (lambda x: x + x[..., ::-1], 2 * 5 * 7 * 4),
])
def test_what_xla_counts_for_free_ops_and_add(build, flops):
    x = jax.ShapeDtypeStruct((2, 5, 7, 4), jnp.float32)
    lowered = jax.jit(build).lower(x)
    assert jb.cost_analysis_flops(lowered.cost_analysis()) == flops
    assert jb.cost_analysis_flops(lowered.compile().cost_analysis()) == flops


def test_batch_norm_counts_two_per_element_plus_four_per_channel():
    bn = jb.BatchNorm2d(6)
    x = jax.ShapeDtypeStruct((3, 5, 7, 6), jnp.float32)
    compiled, lowered = xla_counts(bn, x)
    assert compiled == lowered == 2 * 3 * 5 * 7 * 6 + 4 * 6


def test_cost_analysis_flops_forms():
    assert jb.cost_analysis_flops({"flops": 12.0, "bytes accessed": 3.0}) == 12
    assert jb.cost_analysis_flops([{"flops": 12.0}, {"flops": 3.0}]) == 15
    assert jb.cost_analysis_flops({"bytes accessed": 3.0}) == 0  # XLA omits zero counters
    with pytest.raises(OscDesignError, match="returned None.*no cost model"):
        jb.cost_analysis_flops(None)
    with pytest.raises(OscDesignError, match="expected a dict or a list of dicts"):
        jb.cost_analysis_flops("flops")
    with pytest.raises(OscDesignError, match="unknown flop count"):
        jb.cost_analysis_flops({"flops": -1.0})


def test_default_init_is_pytorch_like():
    m = jb.Conv2d(64, 32, (3, 3), groups=2, bias=True, rngs=nnx.Rngs(0))
    bound = 1 / (32 * 9) ** 0.5
    w = np.asarray(m.kernel[...])
    assert w.shape == (3, 3, 32, 32)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(np.asarray(m.bias[...])).max() <= bound


def test_weights_round_trip_and_errors():
    spec = case("all-ops")
    weights = random_weights(spec, seed=2)
    m = jb.build_module(spec)
    jb.set_weights(m, spec, weights)
    back = jb.get_weights(m, spec)
    for nid in weights:
        assert back[nid].keys() == weights[nid].keys()
        for k in weights[nid]:
            np.testing.assert_array_equal(back[nid][k], weights[nid][k])
    with pytest.raises(SpecError, match="shape"):
        jb.set_weights(m, spec, {"conv1": {"weight": np.zeros((8, 4, 1, 3))}})
    with pytest.raises(SpecError, match="no tensor"):
        jb.set_weights(m, spec, {"conv2": {"bias": np.zeros(6)}})
    with pytest.raises(SpecError, match="not a conv2d or batch_norm"):
        jb.set_weights(m, spec, {"perm1": {"weight": np.zeros(1)}})


def test_verify_jax_report():
    spec = case("rect-even")
    report = verify(spec, "jax", batch=2)
    assert report.ok, str(report)
    assert [r["quantity"] for r in report.to_rows()] == ["params", "xla_flops", "xla_flops_hlo", "output_shape"]
    assert report.to_rows()[1]["measured"] == 2 * cost(spec).xla_flops


def test_verify_jax_batch_norm_counts():
    spec = case("depthwise-large")
    report = verify(spec, "jax", batch=2)
    checks = {c.quantity: c for c in report.checks}
    assert checks["xla_flops"].measured == xla_expected(spec, (10, 10), 2, compiled=True)
    assert checks["xla_flops_hlo"].measured == xla_expected(spec, (10, 10), 2, compiled=False)
    assert checks["params"].ok and checks["output_shape"].ok
    assert report.ok == (checks["xla_flops"].measured == checks["xla_flops"].expected)


# ------------------------------------------------------------------------------------------ families, solver


@pytest.mark.parametrize("fid, tid", family_cases())
def test_registered_families(fid, tid):
    spec = build_family(fid, FAMILY_TARGETS[tid])
    if spec is None:
        pytest.skip(f"{fid} does not apply to {FAMILY_TARGETS[tid].describe()}")
    check_plain(spec, batch=1)


def test_random_solver_designs():
    specs = solver_designs(100, seed=1)
    assert len(specs) == 100
    for spec in specs:
        check_counts(spec, batch=1)
