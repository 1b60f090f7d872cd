"""Exported source: standalone files written to disk, imported, and checked again with the frameworks'
own counters (FlopCounterMode, XLA cost analysis); same state layout and outputs as the runtime modules."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'osc-design[torch]')")
jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'osc-design[jax]')")
pytest.importorskip("flax", reason="Flax is not installed (pip install 'osc-design[jax]')")

import jax.numpy as jnp  # noqa: E402
from backend_cases import CASES, FAMILY_TARGETS, build_family, case, xla_expected  # noqa: E402
from flax import nnx  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from osc_design import SpecError, UnknownBackendError, cost  # noqa: E402
from osc_design.backends import cross_check, export_source, resolve_input_size, verify  # noqa: E402
from osc_design.backends import torch as tb  # noqa: E402
from osc_design.registry import family_ids  # noqa: E402


def load(tmp_path, spec, to, name="design"):
    """Write the exported source to ``tmp_path/<name>_<to>.py`` and import it as a fresh module."""
    path = tmp_path / f"{name}_{to}.py"
    path.write_text(export_source(spec, to))
    module_spec = importlib.util.spec_from_file_location(f"{name}_{to}_{tmp_path.name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, path


def forward_lines(source, method):
    """Statements of ``OscDesign.<method>`` in the source."""
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "OscDesign")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)
    return fn.body


@pytest.mark.parametrize("name", CASES)
def test_torch_export_counts(tmp_path, name):
    spec = case(name)
    mod, path = load(tmp_path, spec, "torch")
    m = mod.OscDesign().eval()
    size = resolve_input_size(spec)
    assert mod.INPUT_SIZE == size
    x = torch.randn(2, spec.target.in_channels, *size)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = m(x)
    c = cost(spec, size)
    assert sum(p.numel() for p in m.parameters()) == c.total_params
    assert fc.get_total_flops() == 2 * 2 * c.macs
    t = spec.target
    assert y.shape == torch.nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size, t.stride, t.padding)(x).shape
    assert mod.COST["macs"] == c.macs and mod.COST["xla_flops"] == c.xla_flops
    # one statement per node (all but the input) plus the return
    assert len(forward_lines(path.read_text(), "forward")) == len(spec.nodes)


@pytest.mark.parametrize("name", CASES)
def test_jax_export_counts(tmp_path, name):
    spec = case(name)
    mod, path = load(tmp_path, spec, "jax")
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
    assert len(forward_lines(path.read_text(), "__call__")) == len(spec.nodes)


@pytest.mark.parametrize("name", ["all-ops", "odd-ids", "depthwise-large"])
def test_exported_modules_match_runtime_modules(tmp_path, name):
    spec = case(name)
    mod_t, _ = load(tmp_path, spec, "torch")
    exported = mod_t.OscDesign()
    runtime = tb.build_module(spec, seed=0)
    assert list(exported.state_dict()) == list(runtime.state_dict())
    exported.load_state_dict(runtime.state_dict())
    exported.eval(), runtime.eval()
    x = torch.randn(2, spec.target.in_channels, *resolve_input_size(spec))
    torch.testing.assert_close(exported(x), runtime(x), rtol=0, atol=0)
    # exported torch vs exported jax, through the canonical weights
    mod_j, _ = load(tmp_path, spec, "jax")
    result = cross_check(spec, torch_module=exported, jax_module=mod_j.OscDesign(), seed=2)
    assert result.ok, result


def test_verify_accepts_exported_modules(tmp_path):
    spec = case("shift-add")
    mod_t, _ = load(tmp_path, spec, "torch")
    mod_j, _ = load(tmp_path, spec, "jax")
    assert verify(spec, "torch", module=mod_t.OscDesign()).ok
    assert verify(spec, "jax", module=mod_j.OscDesign()).ok


def test_exported_torch_module_exports_and_scripts(tmp_path):
    spec = case("all-ops")
    mod, _ = load(tmp_path, spec, "torch")
    m = mod.OscDesign().eval()
    x = torch.randn(1, 8, 16, 16)
    ep = torch.export.export(m, (x,))
    torch.testing.assert_close(ep.module()(x), m(x))


def test_exported_jax_module_options(tmp_path):
    spec = case("rect-even")
    mod, _ = load(tmp_path, spec, "jax")
    a, b = mod.OscDesign(rngs=nnx.Rngs(1)), mod.OscDesign(rngs=nnx.Rngs(1))
    np.testing.assert_array_equal(a.conv1.kernel[...], b.conv1.kernel[...])
    assert mod.OscDesign(dtype=jnp.bfloat16).conv1.kernel[...].dtype == jnp.bfloat16
    x = jnp.ones((1, 9, 13, 6))
    assert nnx.jit(lambda m, v: m(v))(a, x).shape == (1, 10, 14, 4)


@pytest.mark.parametrize("to", ["torch", "jax"])
def test_exported_file_runs_without_osc_design(tmp_path, to):
    spec = case("all-ops")
    path = tmp_path / f"standalone_{to}.py"
    path.write_text(export_source(spec, to))
    if to == "torch":
        framework, x = "torch", "torch.randn(1, 8, 16, 16)"
    else:
        framework, x = "jax.numpy as jnp", "jnp.ones((1, 16, 16, 8))"
    code = "\n".join([
        "import sys",
        "sys.modules['osc_design'] = None",  # any import of osc_design would now fail
        "import importlib.util",
        f"s = importlib.util.spec_from_file_location('standalone', {str(path)!r})",
        "m = importlib.util.module_from_spec(s)",
        "s.loader.exec_module(m)",
        f"import {framework}",
        f"print(tuple(m.OscDesign()({x}).shape))",
    ])
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == ("(1, 12, 8, 9)" if to == "torch" else "(1, 8, 9, 12)")
    assert "osc_design" not in "".join(
        line for line in path.read_text().splitlines() if line.startswith(("import", "from"))
    )


def test_header_states_target_family_costs_and_conventions():
    spec = case("all-ops")
    c = cost(spec)
    for to in ("torch", "jax"):
        text = export_source(spec, to)
        header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert "8->12 k3x4 s2 @16x16" in header and "family     all-ops" in header
        for value in (c.params, c.bias_params, c.macs, c.macs_valid, c.flops, c.xla_flops):
            assert f"{value:,}" in header
        assert "FlopCounterMode" in header and "cost_analysis" in header and "zero padding included" in header
        assert ("NCHW" if to == "torch" else "NHWC") in header


def test_export_errors():
    spec = case("rect-even")
    with pytest.raises(UnknownBackendError, match="unknown export target 'onnx'"):
        export_source(spec, "onnx")
    with pytest.raises(SpecError, match="Python identifier"):
        export_source(spec, "torch", class_name="my design")
    with pytest.raises(SpecError, match="clashes"):
        export_source(spec, "torch", class_name="conv1")
    with pytest.raises(SpecError, match="differs from the target"):
        export_source(spec, "jax", input_size=5)
    assert "class Layer(nn.Module)" in export_source(spec, "torch", class_name="Layer")


def test_long_permutations_are_wrapped(tmp_path):
    from osc_design import GraphBuilder, Target

    b = GraphBuilder(Target(256, 256, 1, input_size=4))
    perm = list(np.random.default_rng(0).permutation(256).tolist())
    spec = b.build(b.conv2d(b.permute(b.input, perm), 256, 1, groups=16))
    lines = export_source(spec, "torch").splitlines()
    start = lines.index("PERMS = {")
    block = lines[start:lines.index("}", start) + 1]
    assert len(block) > 10 and max(len(line) for line in block) <= 100
    mod, _ = load(tmp_path, spec, "torch")
    assert mod.PERMS["perm1"] == tuple(perm)


@pytest.mark.parametrize("fid", family_ids())
def test_registered_families_export(tmp_path, fid):
    spec = build_family(fid, FAMILY_TARGETS["k7-s1"])
    if spec is None:
        pytest.skip(f"{fid} does not apply to {FAMILY_TARGETS['k7-s1'].describe()}")
    mod_t, _ = load(tmp_path, spec, "torch", name=fid.replace("-", "_"))
    mod_j, _ = load(tmp_path, spec, "jax", name=fid.replace("-", "_"))
    assert verify(spec, "torch", module=mod_t.OscDesign()).ok
    assert verify(spec, "jax", module=mod_j.OscDesign()).ok
