"""Shared material of the backend tests: hand-written specs covering every op, a random-graph strategy,
an independent numpy evaluator, and the registered families / solver designs to sweep.

The numpy evaluator is written from the op semantics in ``osc_design.ops`` (NCHW, float64), without
using any backend code.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from osc_design import GraphBuilder, LayerSpec, SpecError, Target, cost_by_node
from osc_design.errors import InfeasibleDesignError
from osc_design.ops import shuffle_permutation
from tests.reference import evaluate_spec as np_evaluate  # noqa: F401 (the backend tests' numpy reference)
from tests.strategies import OP_KINDS, divisors, other_op

# ----------------------------------------------------------------------------------------- hand-written specs


def _conv_grouped_dilated_strided() -> LayerSpec:
    b = GraphBuilder(Target(8, 12, 3, stride=2))
    y = b.conv2d(b.input, 12, 3, stride=2, padding=2, dilation=2, groups=4, bias=True)
    return b.build(y, family="grouped-dilated-strided")


def _rect_even() -> LayerSpec:
    # even and rectangular kernels, asymmetric padding, grouped, with a shuffle between the stages
    b = GraphBuilder(Target(6, 4, (2, 4), input_size=(9, 13)))
    y = b.conv2d(b.input, 6, (2, 1), padding=(1, 0), groups=3)
    y = b.channel_shuffle(y, 3)
    y = b.conv2d(y, 4, (1, 4), padding=(0, 2), groups=2, bias=True)
    return b.build(y, family="rect-even")


def _all_ops() -> LayerSpec:
    b = GraphBuilder(Target(8, 12, (3, 4), stride=2, input_size=16))
    c1 = b.conv2d(b.input, 8, (3, 1), padding=(1, 0), groups=2, bias=True)
    s = b.channel_shuffle(c1, 2)
    p = b.permute(s, [7, 2, 5, 4, 3, 6, 1, 0])
    sh = b.shift(p, (1, -2))
    bn = b.batch_norm(sh)
    a = b.add([bn, b.identity(p)])
    left, right = b.slice(a, 0, 4), b.slice(a, 4, 8)
    c2 = b.conv2d(left, 6, (1, 4), stride=2, padding=(0, 2))
    c3 = b.conv2d(right, 6, (3, 4), stride=2, padding=(2, 4), dilation=2, groups=2)
    return b.build(b.concat([c2, c3]), family="all-ops")


def _shift_add() -> LayerSpec:
    # shift-wise style: one pointwise conv, slices shifted in four directions, summed (3-input add)
    b = GraphBuilder(Target(6, 4, 5))
    y = b.conv2d(b.input, 12, 1)
    parts = [b.slice(y, 4 * i, 4 * i + 4) for i in range(3)]
    shifted = [b.shift(parts[0], (2, 0)), b.shift(parts[1], (0, -2)), b.shift(parts[2], (-1, 1))]
    return b.build(b.add(shifted), family="shift-add")


def _depthwise_large() -> LayerSpec:
    # large kernel on a small input: padding-aware and naive counts differ a lot
    b = GraphBuilder(Target(16, 8, 7, input_size=10))
    y = b.conv2d(b.input, 16, 7, padding=3, groups=16)
    y = b.batch_norm(y)
    y = b.conv2d(y, 8, 1, bias=True)
    return b.build(y, family="depthwise-large")


def _concat3_no_pad() -> LayerSpec:
    # target without padding; a three-way concat of slices of differently treated branches
    b = GraphBuilder(Target(6, 6, 3, padding=0, input_size=(7, 11)))
    y = b.conv2d(b.input, 6, 3, groups=6)
    parts = [b.slice(y, 0, 2), b.permute(b.slice(y, 2, 4), [1, 0]), b.identity(b.slice(y, 4, 6))]
    y = b.concat(parts)
    y = b.conv2d(y, 6, 1, groups=3)
    return b.build(y, family="concat3-no-pad")


def _odd_ids() -> LayerSpec:
    # node ids that are keywords, builtins, module attributes or not identifiers at all
    b = GraphBuilder(Target(4, 4, 3), input_id="in")
    y = b.conv2d(b.input, 4, (3, 1), padding=(1, 0), name="stage-1")
    y = b.permute(y, [3, 1, 2, 0], name="forward")
    y = b.batch_norm(y, name="1st bn")
    y = b.conv2d(y, 4, (1, 3), padding=(0, 1), groups=2, name="_private")
    y = b.identity(y, name="len")
    return b.build(y, family="odd-ids")


CASES: dict[str, Callable[[], LayerSpec]] = {
    "grouped-dilated-strided": _conv_grouped_dilated_strided,
    "rect-even": _rect_even,
    "all-ops": _all_ops,
    "shift-add": _shift_add,
    "depthwise-large": _depthwise_large,
    "concat3-no-pad": _concat3_no_pad,
    "odd-ids": _odd_ids,
}
"""Hand-written specs; together they use every op and every conv2d field."""


def case(name: str) -> LayerSpec:
    return CASES[name]()


# ----------------------------------------------------------------------------------------- XLA bookkeeping

ELEMENTWISE_FREE = ("slice", "permute", "channel_shuffle", "shift", "identity", "concat")


ELEMENTWISE_FREE = ("slice", "permute", "channel_shuffle", "shift", "identity", "concat")


def compiled_count_is_exact(spec: LayerSpec) -> bool:
    """Whether XLA's optimised program computes every element-wise op exactly once.

    Not so when an element-wise op (add, batch norm, conv bias) reaches, through free ops only, a node
    read by several consumers (fusion then recomputes it in each consumer), when two adds read the
    same inputs (common-subexpression elimination merges them), or when only some channels of a batch
    norm are read after it (what XLA's passes then keep is not modelled here).
    """
    live = live_channels(spec, narrow_batch_norm=True)
    if any(n.op == "batch_norm" and 0 < len(live[n.id]) < n.num_features for n in spec.nodes):
        return False
    consumers: dict[str, int] = {n.id: 0 for n in spec.nodes}
    for n in spec.nodes:
        for i in n.inputs:
            consumers[i] += 1

    def has_elementwise_upstream(nid: str) -> bool:
        node = spec.node_map[nid]
        if node.op in ("add", "batch_norm"):
            return True
        if node.op == "conv2d":
            return node.bias
        if node.op in ELEMENTWISE_FREE:
            return any(has_elementwise_upstream(i) for i in node.inputs)
        return False

    for nid, k in consumers.items():
        if k > 1 and has_elementwise_upstream(nid):
            return False

    def resolve(nid: str) -> str:
        node = spec.node_map[nid]
        return resolve(node.inputs[0]) if node.op == "identity" else nid

    adds = [tuple(sorted(resolve(i) for i in n.inputs)) for n in spec.nodes if n.op == "add"]
    return len(adds) == len(set(adds))


def live_channels(spec: LayerSpec, *, narrow_batch_norm: bool = False) -> dict[str, set[int]]:
    """Output channels of every node that reach the graph output (channel-level dead-code analysis).

    A batch norm with any live channel keeps all its input channels live: XLA does not narrow it to
    the channels read after it (measured: a slice of a batch norm over a concat of a 1x1 conv and a
    slice counts the conv, 652 flops against 396 without it); ``narrow_batch_norm`` narrows it anyway,
    to find such batch norms."""
    live: dict[str, set[int]] = {nid: set() for nid in spec.order}
    live[spec.output] = set(range(spec.channels(spec.output)))
    for nid in reversed(spec.order):
        node, mine = spec.node_map[nid], live[nid]
        if not mine or not node.inputs:
            continue
        if node.op == "slice":
            live[node.inputs[0]] |= {node.start + c for c in mine}
        elif node.op == "concat":
            offset = 0
            for i in node.inputs:
                width = spec.channels(i)
                live[i] |= {c - offset for c in mine if offset <= c < offset + width}
                offset += width
        elif node.op == "permute":
            live[node.inputs[0]] |= {node.perm[c] for c in mine}
        elif node.op == "channel_shuffle":
            perm = shuffle_permutation(spec.channels(nid), node.groups)
            live[node.inputs[0]] |= {perm[c] for c in mine}
        elif node.op == "conv2d":
            per_in, per_out = node.in_channels // node.groups, node.out_channels // node.groups
            for g in {c // per_out for c in mine}:
                live[node.inputs[0]] |= set(range(g * per_in, (g + 1) * per_in))
        elif node.op == "batch_norm" and not narrow_batch_norm:
            live[node.inputs[0]] |= set(range(node.num_features))
        else:  # add, shift, identity, batch_norm: channel for channel
            for i in node.inputs:
                live[i] |= mine
    return live


def xla_expected(spec: LayerSpec, size, batch: int, *, compiled: bool) -> int | None:
    """What XLA's cost analysis reports for ``spec``, from cost.py's per-node counts and XLA's rules.

    The rules, all measured (jax 0.10.2, CPU): nodes whose every output channel is sliced away are not
    counted (dead code); batch norm counts 2 per element and sample plus 4 per channel and call. After
    XLA's passes (``compiled``), a 1x1 conv with stride 1, dilation 1 and no padding whose groups have one
    input and one output channel becomes a multiply (1 flop per output, not 2); and ``None`` is returned when fusion
    recomputes shared element-wise work or CSE merges adds (see :func:`compiled_count_is_exact`).
    """
    if compiled and not compiled_count_is_exact(spec):
        return None
    live = live_channels(spec)
    sizes = spec.spatial_sizes(size)
    per_node = cost_by_node(spec, size)
    total = 0
    for nid, c in per_node.items():
        node = spec.node_map[nid]
        if not live[nid]:
            continue
        total += batch * (2 * c.macs_valid + c.bias_adds + c.adds + c.norm_ops)
        if node.op == "batch_norm":
            h, w = sizes[nid]
            total += 2 * node.num_features * h * w * batch + 4 * node.num_features - batch * c.norm_ops
        if (compiled and node.op == "conv2d" and node.kernel_size == node.stride == node.dilation == (1, 1)
                and node.padding == (0, 0) and node.in_channels == node.groups == node.out_channels):
            total -= batch * c.macs_valid
    return total


# ----------------------------------------------------------------------------------------- random graphs


@st.composite
def random_specs(draw, max_channels: int = 6, max_blocks: int = 5) -> LayerSpec:
    """A random valid spec (with an input size) using every op, conv fields drawn widely.

    Spatial sizes stay >= 4 so that shifts (|d| <= 2) never empty a tensor.
    """
    c_in = draw(st.integers(1, max_channels))
    size = (draw(st.integers(8, 12)), draw(st.integers(8, 12)))
    b = GraphBuilder(Target(c_in, c_in, 1, input_size=size))
    x, stride = b.input, [1, 1]

    def same_conv(src: str, out: int, groups: int) -> str:
        k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        # "same" output size needs an odd effective span: d * (k - 1) even
        k = tuple(kk if (dd * (kk - 1)) % 2 == 0 else kk + 1 for kk, dd in zip(k, d, strict=True))
        return b.conv2d(src, out, k, padding=(d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2),
                        dilation=d, groups=groups, bias=draw(st.booleans()))

    for _ in range(draw(st.integers(2, max_blocks))):
        c = b.channels(x)
        kind = draw(st.sampled_from(OP_KINDS))
        if kind == "conv":
            g = draw(st.sampled_from(divisors(c)))
            out = g * draw(st.integers(1, max(1, max_channels // g)))
            s = [draw(st.integers(1, 2)) if stride[a] == 1 else 1 for a in (0, 1)]
            k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
            d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            p = (draw(st.integers(0, k[0])), draw(st.integers(0, k[1])))
            sizes = b_sizes(b, x, size)
            span = [d[a] * (k[a] - 1) + 1 for a in (0, 1)]
            if any((sizes[a] + 2 * p[a] - span[a]) // s[a] + 1 < 4 for a in (0, 1)):
                continue
            x = b.conv2d(x, out, k, stride=tuple(s), padding=p, dilation=d, groups=g, bias=draw(st.booleans()))
            stride = [stride[0] * s[0], stride[1] * s[1]]
        else:
            x = other_op(draw, b, x, kind, same_conv)
    # a target with the same stride and output size as the graph
    target = _matching_target(c_in, b.channels(x), size, b_sizes(b, x, size), tuple(stride))
    if target is None:
        return draw(st.nothing())
    b.target = target
    return b.build(x, family="random")


def b_sizes(b: GraphBuilder, node: str, size) -> tuple[int, int]:
    """Spatial size of ``node`` of a graph under construction."""
    sizes = {b.input: tuple(size)}
    for n in b.nodes:
        if n.inputs:
            sizes[n.id] = n.out_size_from([sizes[i] for i in n.inputs])
    return sizes[node]


def _matching_target(c_in, c_out, size, out, stride):
    """A target ``c_in -> c_out`` with the given stride whose output on ``size`` is ``out`` (or None)."""
    for kh in range(1, 6):
        for kw in range(1, 6):
            for ph in range(0, kh + 1):
                for pw in range(0, kw + 1):
                    t = Target(c_in, c_out, (kh, kw), stride=stride, padding=(ph, pw))
                    if t._out(size) == out:
                        return Target(c_in, c_out, (kh, kw), stride=stride, padding=(ph, pw), input_size=size)
    return None


# ----------------------------------------------------------------------------------------- families and solver

FAMILY_TARGETS = {
    "k3-s1": Target(16, 16, 3, input_size=12),
    "k7-s1": Target(32, 32, 7, input_size=14),
    "k5-s2": Target(16, 32, 5, stride=2, input_size=15),
    "k7x5-s1": Target(24, 24, (7, 5), input_size=(14, 12)),
    "k5x3-s2": Target(16, 24, (5, 3), stride=2, input_size=(16, 13)),
}
"""Targets for the family sweep: stride 1 and 2, odd square and rectangular kernels."""


def family_cases(targets: tuple[str, ...] | None = None) -> list[Any]:
    """``pytest.param(family id, target id)`` for every registered family and every target of
    :data:`FAMILY_TARGETS` (or ``targets``)."""
    import pytest

    from osc_design.registry import family_ids

    return [pytest.param(fid, tid, id=f"{fid}-{tid}") for fid in family_ids()
            for tid in (FAMILY_TARGETS if targets is None else targets)]


def build_family(fid: str, target: Target) -> LayerSpec | None:
    """The family's default design for ``target`` (SLaK-like families: a 3x3 small kernel when their default
    does not fit), or None when the family does not apply to it."""
    from osc_design.registry import get_family

    family = get_family(fid)
    attempts = [{}] + ([{"small_kernel": 3}] if "small_kernel" in family.options else [])
    for options in attempts:
        try:
            return family.build(target, **options)
        except (SpecError, InfeasibleDesignError):
            pass
    return None


def random_targets(n: int, seed: int = 0) -> list[Target]:
    """``n`` random targets: channels <= 64, kernels 1..7 (rectangular too), stride 1 or 2, inputs <= 16."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        kh, kw = rng.choice([1, 3, 5, 7]), rng.choice([1, 3, 5, 7])
        if rng.random() < 0.6:
            kw = kh
        s = rng.choice([1, 1, 2])
        size = (rng.randint(max(kh, kw, 4), 16), rng.randint(max(kh, kw, 4), 16))
        c_in = rng.choice([4, 8, 12, 16, 24, 32, 48, 64])
        c_out = rng.choice([c_in, c_in, 2 * c_in if c_in <= 32 else c_in, max(4, c_in // 2)])
        out.append(Target(c_in, c_out, (kh, kw), stride=s, input_size=size))
    return out


def solver_designs(n: int, seed: int = 0) -> list[LayerSpec]:
    """``n`` designs of the solver (family ``osc``) for random targets (targets it rejects are redrawn)."""
    from osc_design.registry import get_family

    build = get_family("osc").build

    specs: list[LayerSpec] = []
    k = 0
    while len(specs) < n and k < 5 * n:
        for t in random_targets(1, seed=seed * 100003 + k):
            try:
                specs.append(build(t))
            except (SpecError, InfeasibleDesignError):
                pass
        k += 1
    return specs


# ----------------------------------------------------------------------------------------- exported source


def load_export(tmp_path, spec: LayerSpec, to: str, name: str = "design"):
    """Write ``export_source(spec, to)`` to ``tmp_path/<name>_<to>.py`` and import it as a fresh module."""
    import importlib.util

    from osc_design.backends import export_source

    path = tmp_path / f"{name}_{to}.py"
    path.write_text(export_source(spec, to))
    module_spec = importlib.util.spec_from_file_location(f"{name}_{to}_{tmp_path.name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module, path


def run_standalone(path, framework_import: str, expression: str, cwd) -> str:
    """Import the exported file at ``path`` in a fresh interpreter where ``import osc_design`` fails, then
    print ``expression`` (``m`` is the loaded file) after ``framework_import``; the printed text."""
    import subprocess
    import sys

    code = "\n".join([
        "import sys",
        "sys.modules['osc_design'] = None",  # any import of osc_design would now fail
        "import importlib.util",
        f"s = importlib.util.spec_from_file_location('standalone', {str(path)!r})",
        "m = importlib.util.module_from_spec(s)",
        "s.loader.exec_module(m)",
        framework_import,
        f"print({expression})",
    ])
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=cwd)
    assert "osc_design" not in "".join(
        line for line in path.read_text().splitlines() if line.startswith(("import", "from"))
    )
    return out.stdout.strip()


def export_family(tmp_path, fid: str, to: str):
    """The default design of family ``fid`` for the ``k7-s1`` target and its exported module (skip where the
    family does not apply)."""
    import pytest

    spec = build_family(fid, FAMILY_TARGETS["k7-s1"])
    if spec is None:
        pytest.skip(f"{fid} does not apply to {FAMILY_TARGETS['k7-s1'].describe()}")
    mod, _ = load_export(tmp_path, spec, to, name=fid.replace("-", "_"))
    return spec, mod.OscDesign()
