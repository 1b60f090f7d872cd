"""Exported source as text, with no framework: header, constants, one line per node, errors, and that
generating it imports no framework (test_export_torch.py / test_export_jax.py run the files)."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest
from backend_cases import CASES, case

from osc_design import GraphBuilder, SpecError, Target, UnknownBackendError, cost
from osc_design.backends import export_source
from osc_design.backends.export import backend_source
from osc_design.backends.program import RESERVED_NAMES


def class_body(source, method):
    """Statements of ``OscDesign.<method>`` in the source."""
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "OscDesign")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)
    return fn.body


@pytest.mark.parametrize("to, method", [("torch", "forward"), ("jax", "__call__")])
@pytest.mark.parametrize("name", CASES)
def test_one_statement_per_node(name, to, method):
    spec = case(name)
    body = class_body(export_source(spec, to), method)
    # one assignment per node (all but the input), named after it, plus the return
    assert len(body) == len(spec.nodes)
    assert isinstance(body[-1], ast.Return)
    assert all(isinstance(s, ast.Assign) for s in body[:-1])


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
        assert f"LAYOUT = {'NCHW' if to == 'torch' else 'NHWC'!r}" in text


@pytest.mark.parametrize("to, line", [
    ("torch", "slice1 = a[:, 0:4]"), ("torch", "slice2 = a[:, 4:8]"), ("torch", "sh = shift2d(p, 1, -2)"),
    ("torch", "concat1 = torch.cat([c2, c3], dim=1)"), ("torch", "a = bn + identity1"),
    ("jax", "slice1 = a[..., 0:4]"), ("jax", "slice2 = a[..., 4:8]"), ("jax", "sh = shift2d(p, 1, -2)"),
    ("jax", "concat1 = jnp.concatenate([c2, c3], axis=-1)"), ("jax", "p = permute_channels(s, PERMS['p'])"),
])
def test_op_lines_as_written(to, line):
    # the lines of the hand-written all-ops spec, with ids chosen here so that every line is readable
    b = GraphBuilder(Target(8, 12, (3, 4), stride=2, input_size=16))
    c1 = b.conv2d(b.input, 8, (3, 1), padding=(1, 0), groups=2, bias=True, name="c1")
    s = b.channel_shuffle(c1, 2, name="s")
    p = b.permute(s, [7, 2, 5, 4, 3, 6, 1, 0], name="p")
    bn = b.batch_norm(b.shift(p, (1, -2), name="sh"), name="bn")
    a = b.add([bn, b.identity(p)], name="a")
    c2 = b.conv2d(b.slice(a, 0, 4), 6, (1, 4), stride=2, padding=(0, 2), name="c2")
    c3 = b.conv2d(b.slice(a, 4, 8), 6, (3, 4), stride=2, padding=(2, 4), dilation=2, groups=2, name="c3")
    text = export_source(b.build(b.concat([c2, c3])), to)
    assert "        " + line + "\n" in text


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
    assert "class Layer(nnx.Module)" in export_source(spec, "jax", class_name="Layer")


def test_long_permutations_are_wrapped():
    b = GraphBuilder(Target(256, 256, 1, input_size=4))
    perm = list(np.random.default_rng(0).permutation(256).tolist())
    spec = b.build(b.conv2d(b.permute(b.input, perm), 256, 1, groups=16))
    text = export_source(spec, "torch")
    lines = text.splitlines()
    start = lines.index("PERMS = {")
    block = lines[start:lines.index("}", start) + 1]
    assert len(block) > 10 and max(len(line) for line in block) <= 100
    namespace: dict = {}
    exec("\n".join(block), namespace)  # the literal alone, without the framework
    assert namespace["PERMS"]["perm1"] == tuple(perm)


@pytest.mark.parametrize("to", ["torch", "jax"])
def test_backend_names_and_helpers_are_reserved(to):
    # a node named like a helper or an import alias of the generated file would shadow it
    src = backend_source(to)
    assert set(src.text["helpers"]) <= RESERVED_NAMES
    aliases = set()
    for node in ast.parse("\n".join(src.text["imports"])).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            aliases |= {(a.asname or a.name).split(".")[0] for a in node.names}
    assert aliases <= RESERVED_NAMES
    assert set(src.ops) == {"conv2d", "batch_norm", "channel_shuffle", "permute", "slice", "concat", "add", "shift",
                            "identity"}


def test_export_needs_no_framework():
    # torch, jax and flax made unimportable: source for both still comes out, and is valid Python
    code = ("import sys\n"
            "for m in ('torch', 'jax', 'jaxlib', 'flax'): sys.modules[m] = None\n"
            "from osc_design.backends import export_source, available_backends\n"
            "from osc_design import GraphBuilder, Target\n"
            "b = GraphBuilder(Target(4, 4, 3)); x = b.slice(b.conv2d(b.input, 8, 3, padding=1), 2, 6)\n"
            "s = b.build(b.add([x, b.shift(x, 1)]))\n"
            "for to in ('torch', 'jax'): compile(export_source(s, to), to, 'exec')\n"
            "assert available_backends() == ['onnxruntime'], available_backends()\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'jaxlib', 'flax')\n"
            "             and sys.modules[m] is not None)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
