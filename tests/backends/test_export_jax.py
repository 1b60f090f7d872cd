"""Exported JAX source: the file written to disk, imported, checked with XLA's cost analysis and against the
runtime module and the numpy reference; runs without osc_design; needs only JAX and Flax."""

from __future__ import annotations

import numpy as np
import pytest
from requested import require

require("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from backend_cases import (  # noqa: E402
    CASES,
    case,
    load_export,
    np_evaluate,
    run_standalone,
    xla_expected,
)
from flax import nnx  # noqa: E402

from osc_design import cost  # noqa: E402
from osc_design.backends import jax as jb  # noqa: E402
from osc_design.backends import random_weights, resolve_input_size  # noqa: E402


@pytest.mark.parametrize("name", CASES)
def test_jax_export_counts(tmp_path, name):
    spec = case(name)
    mod, _ = load_export(tmp_path, spec, "jax")
    m = mod.OscDesign()
    size = resolve_input_size(spec)
    graphdef, state = nnx.split(m)
    x = jax.ShapeDtypeStruct((2, *size, spec.target.in_channels), jnp.float32)
    lowered = jax.jit(lambda s, v: nnx.merge(graphdef, s)(v)).lower(state, x)
    c = cost(spec, size)
    assert sum(v.size for v in jax.tree.leaves(nnx.state(m, nnx.Param))) == c.total_params
    assert lowered.cost_analysis().get("flops", 0) == xla_expected(spec, size, 2, compiled=False)
    compiled = xla_expected(spec, size, 2, compiled=True)
    if compiled is not None:
        assert lowered.compile().cost_analysis().get("flops", 0) == compiled


@pytest.mark.parametrize("name", CASES)
def test_exported_module_is_the_runtime_module_and_the_reference(tmp_path, name):
    spec = case(name)
    exported, _ = load_export(tmp_path, spec, "jax")
    exported = exported.OscDesign()
    runtime = jb.build_module(spec)
    assert jax.tree.structure(nnx.state(exported)) == jax.tree.structure(nnx.state(runtime))
    weights = random_weights(spec, seed=4)
    jb.set_weights(exported, spec, weights)
    jb.set_weights(runtime, spec, weights)
    x = np.random.default_rng(0).standard_normal((2, spec.target.in_channels, *resolve_input_size(spec)))
    xj = jnp.asarray(x.transpose(0, 2, 3, 1).astype(np.float32))
    y = np.asarray(exported(xj))
    np.testing.assert_array_equal(y, np.asarray(runtime(xj)))
    np.testing.assert_allclose(y.transpose(0, 3, 1, 2), np_evaluate(spec, x, weights), rtol=1e-4, atol=1e-5)


def test_exported_jax_module_options(tmp_path):
    spec = case("rect-even")
    mod, _ = load_export(tmp_path, spec, "jax")
    a, b = mod.OscDesign(rngs=nnx.Rngs(1)), mod.OscDesign(rngs=nnx.Rngs(1))
    np.testing.assert_array_equal(a.conv1.kernel[...], b.conv1.kernel[...])
    assert mod.OscDesign(dtype=jnp.bfloat16).conv1.kernel[...].dtype == jnp.bfloat16
    x = jnp.ones((1, 9, 13, 6))
    assert nnx.jit(lambda m, v: m(v))(a, x).shape == (1, 10, 14, 4)


def test_exported_file_runs_without_osc_design(tmp_path):
    _, path = load_export(tmp_path, case("all-ops"), "jax", name="standalone")
    shape = run_standalone(path, "import jax.numpy as jnp", "tuple(m.OscDesign()(jnp.ones((1, 16, 16, 8))).shape)",
                           tmp_path)
    assert shape == "(1, 8, 9, 12)"
