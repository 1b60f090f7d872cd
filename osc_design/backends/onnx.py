"""ONNX backend: a layer spec as an ONNX graph (built with the ``onnx`` package, no torch), run by onnxruntime.

Every op of the spec graph becomes standard ONNX (default domain, opset :data:`OPSET`):

=================  ========================================================================
op                 ONNX
=================  ========================================================================
conv2d             ``Conv`` (``group``, ``dilations``, ``strides``, symmetric ``pads``; bias
                   as its third input)
batch_norm         ``BatchNormalization`` (inference: scale, shift, running mean and variance;
                   ``epsilon`` 1e-5 as ``nn.BatchNorm2d``)
channel_shuffle    ``Reshape`` ``(N, g, C/g, H*W)``, ``Transpose`` ``(0, 2, 1, 3)``, ``Reshape``
                   ``(N, C, H, W)`` (ONNX has no channel-shuffle op); or *folded*: see below
permute            ``Gather`` on axis 1 (the permutation an ``int64`` initializer); or folded
slice / concat     ``Slice`` on axis 1 / ``Concat`` on axis 1
add                ``Add`` (two inputs) or ``Sum`` (more)
shift              ``Pad`` with negative pads on the far side (zero fill, like ``shift2d``)
identity           ``Identity``
=================  ========================================================================

Each op is one entry of the op table :data:`OPS`: a function that appends the node(s) computing the
step to a :class:`GraphBuilder`. The graph's input is ``input`` ``(N, C_in, H, W)`` (``N`` symbolic
unless a batch is given, ``H``, ``W`` fixed: the shuffles' shapes and the shifts' clamps depend on
them), its output ``output``; initializers are named like the PyTorch ``state_dict`` (``conv1.weight``).

Folding. A channel shuffle or permutation next to a dense conv (``groups = 1``) is a permutation of
that conv's output channels (the shuffle is the conv's only consumer) or of its input channels (the
conv is the shuffle's only consumer); with ``fold=True`` (the default of :func:`to_onnx`) it is
applied to the conv's weights (and bias) and the op disappears from the graph. The outputs are the
same products summed (an output-side fold gives the very same floats, an input-side one sums the
channels in another order: equal to float32 rounding).

Weights are exchanged in the canonical PyTorch form ``{node id: {name: array}}``
(:func:`osc_design.backends.random_weights`); :func:`get_weights` undoes the folding.

:data:`BACKEND` (an :class:`OnnxBackend`, name ``"onnxruntime"``) is what
:func:`osc_design.backends.get_backend` returns; its modules are :class:`OnnxModule` holders (spec and
weights) whose model is built, checked and run in an ``onnxruntime.InferenceSession`` on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..cost import cost
from ..errors import SpecError, check_type
from ..geometry import conv_output_pair
from ..ops import BatchNorm, ChannelShuffle, Conv2d, Permute, shuffle_permutation
from ..spec import LayerSpec, Pair
from .program import Step, program, resolve_input_size
from .report import Check

__all__ = [
    "OPS",
    "OPSET",
    "BACKEND",
    "OnnxBackend",
    "OnnxModule",
    "OnnxTimer",
    "GraphBuilder",
    "to_onnx",
    "export_onnx",
    "node_model",
    "chain_model",
    "fold_plan",
    "get_weights",
    "set_weights",
    "session",
    "providers_for",
    "Fold",
]

NAME = "onnxruntime"
LAYOUT = "NCHW"
OPSET = 17
"""ONNX opset of the exported graphs (``Pad`` with negative pads, ``Slice`` with tensor inputs...)."""
IR_VERSION = 8
"""ONNX IR version written (opset 17 needs at least 8; every onnxruntime since 1.10 reads it)."""
INPUT, OUTPUT = "input", "output"
BN_EPSILON = 1e-5


def _perm_of(node: Any, channels: int) -> np.ndarray | None:
    """Input channel read by each output channel of a shuffle or permutation (``None`` for other ops)."""
    if isinstance(node, ChannelShuffle):
        return np.asarray(shuffle_permutation(channels, node.groups), dtype=np.int64)
    if isinstance(node, Permute):
        return np.asarray(node.perm, dtype=np.int64)
    return None


# ------------------------------------------------------------------------------------------ folding


@dataclass(frozen=True)
class Fold:
    """A permutation folded into a dense conv: ``side`` ``"out"`` (the conv's output channels, ``W[perm]``)
    or ``"in"`` (its input channels, ``W[:, argsort(perm)]``)."""

    node: str
    conv: str
    side: str
    perm: tuple[int, ...]


def fold_plan(spec: LayerSpec) -> dict[str, Fold]:
    """The permutations :func:`to_onnx` folds, by permutation node id (see the module docstring).

    >>> from osc_design.spec import GraphBuilder, Target
    >>> b = GraphBuilder(Target(4, 4, 3))
    >>> y = b.conv2d(b.channel_shuffle(b.conv2d(b.input, 4, 1, groups=2), 2, name="s"), 4, 3, padding=1, name="c")
    >>> fold_plan(b.build(y))["s"].conv, fold_plan(b.build(y))["s"].side
    ('c', 'in')
    """
    consumers: dict[str, list[str]] = {nid: [] for nid in spec.order}
    for nid in spec.order:
        for i in spec.node_map[nid].inputs:
            consumers[i].append(nid)

    def dense(nid: str) -> bool:
        node = spec.node_map[nid]
        return isinstance(node, Conv2d) and node.groups == 1

    plan: dict[str, Fold] = {}
    taken: set[tuple[str, str]] = set()
    for nid in spec.order:
        node = spec.node_map[nid]
        perm = _perm_of(node, spec.channels(nid))
        if perm is None:
            continue
        src, users = node.inputs[0], consumers[nid]
        if dense(src) and consumers[src] == [nid] and (src, "out") not in taken:
            plan[nid] = Fold(nid, src, "out", tuple(int(v) for v in perm))
        elif nid != spec.output and len(users) == 1 and dense(users[0]) and (users[0], "in") not in taken \
                and spec.node_map[users[0]].inputs.count(nid) == 1:
            plan[nid] = Fold(nid, users[0], "in", tuple(int(v) for v in perm))
        else:
            continue
        taken.add((plan[nid].conv, plan[nid].side))
    return plan


def _fold_arrays(arrays: Mapping[str, np.ndarray], folds: list[Fold], inverse: bool = False) -> dict[str, np.ndarray]:
    """A conv's ``weight``/``bias`` with its folds applied (``inverse``: undone)."""
    out = {k: np.asarray(v) for k, v in arrays.items()}
    for f in folds:  # at most one per side, and the two sides commute
        perm = np.asarray(f.perm)
        inv = np.argsort(perm)
        if f.side == "out":  # output j of the folded conv is output perm[j] of the original
            index = inv if inverse else perm
            out["weight"] = out["weight"][index]
            if "bias" in out:
                out["bias"] = out["bias"][index]
        else:  # sum_i W[o, i] x[perm[i]] = sum_k W[o, inv[k]] x[k]
            out["weight"] = out["weight"][:, perm if inverse else inv]
    return out


# ------------------------------------------------------------------------------------------ the op table


class GraphBuilder:
    """Nodes and initializers of one ONNX graph under construction, with the spec's shapes at one input size.

    Attributes
    ----------
    names:
        Step name -> the tensor holding its value (a folded permutation's name points at its neighbour's).
    """

    def __init__(self, spec: LayerSpec, size: Pair, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        self.spec, self.weights = spec, weights
        self.sizes = spec.spatial_sizes(size)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: dict[str, str] = {}

    def tensor(self, name: str, array: np.ndarray) -> str:
        """Add initializer ``name`` and return its name."""
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, name: str, values: Any) -> str:
        """An ``int64`` initializer (shapes, indices, pads: never parameters)."""
        return self.tensor(name, np.asarray(values, dtype=np.int64))

    def add(self, op_type: str, inputs: list[str], output: str, name: str, **attrs: Any) -> str:
        """Append node ``name`` of ``op_type``; returns ``output``."""
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output

    def ins(self, step: Step) -> list[str]:
        return [self.names[i] for i in step.inputs]

    def shape(self, step: Step) -> tuple[int, int, int]:
        """``(C, H, W)`` of the step's (first) input."""
        src = step.node.inputs[0]
        h, w = self.sizes[src]
        return self.spec.channels(src), h, w


def _conv(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    n = step.node
    arrays = _fold_arrays(g.weights[n.id], folds)
    inputs = [*g.ins(step), g.tensor(f"{step.name}.weight", arrays["weight"].astype(np.float32))]
    if n.bias:
        inputs.append(g.tensor(f"{step.name}.bias", arrays["bias"].astype(np.float32)))
    (ph, pw), (kh, kw) = n.padding, n.kernel_size
    g.add("Conv", inputs, step.name, step.name, kernel_shape=[kh, kw], strides=list(n.stride),
          pads=[ph, pw, ph, pw], dilations=list(n.dilation), group=n.groups)


def _batch_norm(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    w = g.weights[step.node.id]
    names = [g.tensor(f"{step.name}.{k}", np.asarray(w[k], dtype=np.float32))
             for k in ("weight", "bias", "running_mean", "running_var")]
    g.add("BatchNormalization", [*g.ins(step), *names], step.name, step.name, epsilon=BN_EPSILON)


def _shuffle(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    c, h, w = g.shape(step)
    groups, name = step.node.groups, step.name
    a = g.add("Reshape", [*g.ins(step), g.ints(f"{name}.split", [0, groups, c // groups, -1])], f"{name}/split",
              f"{name}/split")
    t = g.add("Transpose", [a], f"{name}/transpose", f"{name}/transpose", perm=[0, 2, 1, 3])
    g.add("Reshape", [t, g.ints(f"{name}.merge", [0, c, h, w])], name, name)


def _permute(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    g.add("Gather", [*g.ins(step), g.ints(f"{step.name}.perm", step.node.perm)], step.name, step.name, axis=1)


def _slice(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    name, n = step.name, step.node
    g.add("Slice", [*g.ins(step), g.ints(f"{name}.starts", [n.start]), g.ints(f"{name}.ends", [n.stop]),
                    g.ints(f"{name}.axes", [1])], name, name)


def _add(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    xs = g.ins(step)
    g.add("Add" if len(xs) == 2 else "Sum", xs, step.name, step.name)


def _shift(g: GraphBuilder, step: Step, folds: list[Fold]) -> None:
    _, h, w = g.shape(step)
    dy, dx = step.node.shift
    dy, dx = max(-h, min(h, dy)), max(-w, min(w, dx))
    g.add("Pad", [*g.ins(step), g.ints(f"{step.name}.pads", [0, 0, dy, dx, 0, 0, -dy, -dx])], step.name, step.name)


OPS: dict[str, Callable[[GraphBuilder, Step, list[Fold]], Any]] = {
    "conv2d": _conv,
    "batch_norm": _batch_norm,
    "channel_shuffle": _shuffle,
    "permute": _permute,
    "slice": _slice,
    "concat": lambda g, step, folds: g.add("Concat", g.ins(step), step.name, step.name, axis=1),
    "add": _add,
    "shift": _shift,
    "identity": lambda g, step, folds: g.add("Identity", g.ins(step), step.name, step.name),
}
"""Op name -> ``emit(graph, step, folds)``: appends the nodes computing ``step`` (``folds``: those of a conv)."""


def _emitter(step: Step) -> Callable[[GraphBuilder, Step, list[Fold]], Any]:
    """The :data:`OPS` entry of ``step``'s op; :class:`~osc_design.SpecError` when it has none."""
    try:
        return OPS[step.op]
    except KeyError:
        raise SpecError(f"node {step.node.id!r}: op {step.op!r} has no ONNX implementation") from None


# ------------------------------------------------------------------------------------------ models


def _value_info(name: str, channels: int, size: Pair, batch: int | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N" if batch is None else batch, channels, *size])


def _finish(g: GraphBuilder, last: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
            graph_name: str, doc: str = "") -> onnx.ModelProto:
    """The checked model of ``g``'s nodes, tensor ``last`` renamed to the graph's output."""
    final = outputs[0].name
    if last != final:
        for node in g.nodes:
            node.input[:] = [final if i == last else i for i in node.input]
            node.output[:] = [final if o == last else o for o in node.output]
    graph = helper.make_graph(g.nodes, graph_name, inputs, outputs, g.initializers, doc_string=doc)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="osc-design",
                              ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model


def _check_weights(spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]] | None,
                   seed: int) -> Mapping[str, Mapping[str, np.ndarray]]:
    from . import random_weights

    expected = random_weights(spec, seed)
    if weights is None:
        return expected
    for nid, arrays in expected.items():
        given = weights.get(nid)
        if given is None:
            raise SpecError(f"no weights for node {nid!r}")
        for k, a in arrays.items():
            if k not in given or tuple(np.shape(given[k])) != a.shape:
                raise SpecError(f"node {nid!r}: {k!r} must have shape {a.shape}, got "
                                f"{None if k not in given else np.shape(given[k])}")
    return weights


def to_onnx(  # long: one straight walk over the program, folding and metadata
    spec: LayerSpec,
    weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    *,
    input_size: int | Pair | None = None,
    batch: int | None = None,
    fold: bool = True,
    seed: int = 0,
    graph_name: str = "OscDesign",
) -> onnx.ModelProto:
    """The ONNX model of ``spec``, checked with ``onnx.checker.check_model(full_check=True)``.

    Parameters
    ----------
    spec:
        The design.
    weights:
        Canonical weights ``{node id: {name: array}}`` (PyTorch layout); default
        :func:`osc_design.backends.random_weights` of ``seed``.
    input_size:
        ``H x W`` of the graph's input, resolved as in :func:`osc_design.backends.verify`.
    batch:
        A fixed batch size; default a symbolic ``N``.
    fold:
        Fold channel shuffles and permutations into adjacent dense convs (module docstring).
    graph_name:
        The graph's name.

    >>> from osc_design import Target, get_family
    >>> m = to_onnx(get_family("osc").build(Target(16, 16, 3)))
    >>> [n.op_type for n in m.graph.node], m.opset_import[0].version
    (['Conv', 'Conv', 'Conv', 'Reshape', 'Transpose', 'Reshape', 'Conv'], 17)
    """
    from .. import __version__

    check_type(spec, LayerSpec, "spec")
    size = resolve_input_size(spec, input_size)
    if batch is not None and (type(batch) is not int or batch < 1):
        raise SpecError(f"`batch` (={batch!r}) must be a positive integer or None")
    g = GraphBuilder(spec, size, _check_weights(spec, weights, seed))
    prog = program(spec)
    folds = fold_plan(spec) if fold else {}
    by_conv: dict[str, list[Fold]] = {}
    for f in folds.values():
        by_conv.setdefault(f.conv, []).append(f)
    g.names[prog.input] = INPUT
    for step in prog.steps:
        if step.node.id in folds:  # folded: its name points at its input
            g.names[step.name] = g.names[step.inputs[0]]
            continue
        g.names[step.name] = step.name
        _emitter(step)(g, step, by_conv.get(step.node.id, []))
    t = spec.target
    out_size = spec.spatial_sizes(size)[spec.output]
    c = cost(spec, size)
    doc = (f"{spec.family} replacement of Conv2d({t.in_channels}, {t.out_channels}, {t.kernel_size}, "
           f"stride={t.stride}, padding={t.padding}) at {size[0]}x{size[1]}, generated by osc-design {__version__}")
    model = _finish(g, g.names[prog.output], [_value_info(INPUT, t.in_channels, size, batch)],
                    [_value_info(OUTPUT, t.out_channels, out_size, batch)], graph_name, doc)
    meta = {"family": spec.family, "target": t.describe(), "input_size": f"{size[0]}x{size[1]}",
            "params": str(c.total_params), "macs": str(c.macs), "folded": ",".join(sorted(folds)) or "none"}
    helper.set_model_props(model, meta)
    return model


def export_onnx(spec: LayerSpec, path: Any, weights: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                **options: Any) -> onnx.ModelProto:
    """Write :func:`to_onnx` of ``spec`` to ``path`` (atomically) and return the model."""
    from ..io import write_bytes

    model = to_onnx(spec, weights, **options)
    write_bytes(path, model.SerializeToString())
    return model


def node_model(spec: LayerSpec, node_id: str, seed: int = 0, batch: int | None = None) -> onnx.ModelProto:
    """A model computing node ``node_id`` of ``spec`` alone, from one graph input per input slot (never folded).

    Inputs ``in0``, ``in1``... have the shapes of the node's inputs at the spec's resolved input size
    (an add of one tensor twice reads two tensors); the output is ``output``.
    """
    size = resolve_input_size(spec)
    g = GraphBuilder(spec, size, _check_weights(spec, None, seed))
    step = program(spec).step(node_id)
    node, sizes = spec.node_map[node_id], g.sizes
    inputs = [_value_info(f"in{k}", spec.channels(i), sizes[i], batch) for k, i in enumerate(node.inputs)]
    step = Step(node, step.name, tuple(f"in{k}" for k in range(len(node.inputs))))
    g.names.update({v.name: v.name for v in inputs})
    _emitter(step)(g, step, [])
    return _finish(g, step.name, inputs, [_value_info(OUTPUT, spec.channels(node_id), sizes[node_id], batch)], "node")


def chain_model(spec: LayerSpec, node_id: str, copies: int, seed: int = 0) -> onnx.ModelProto:
    """``copies`` of node ``node_id`` of ``spec`` one after the other, from input ``in0`` (never folded).

    The node must read one tensor and give one of the same shape (see
    :func:`osc_design.latency.opkeys.chainable`); copy ``r`` has the node's weights times ``1 + r/1000``
    (onnxruntime shares identical initializers between nodes). What :class:`OnnxTimer` times to find an
    op's cost inside a graph: the difference of two chain lengths leaves out the session call, the
    input and output and the layout changes at the graph's edges.
    """
    if type(copies) is not int or copies < 1:
        raise SpecError(f"`copies` (={copies!r}) must be a positive integer")
    size = resolve_input_size(spec)
    weights = _check_weights(spec, None, seed)
    g = GraphBuilder(spec, size, weights)
    node, sizes = spec.node_map[node_id], g.sizes
    src = node.inputs[0] if len(node.inputs) == 1 else None
    if src is None or spec.channels(src) != spec.channels(node_id) or sizes[src] != sizes[node_id]:
        raise SpecError(f"node {node_id!r} does not map one tensor to one of the same shape: it cannot be chained")
    step, prev = program(spec).step(node_id), "in0"
    g.names[prev] = prev
    for r in range(copies):
        g.weights = {nid: {k: v * np.float32(1 + r / 1000) for k, v in arrays.items()}
                     for nid, arrays in weights.items()}
        link = Step(node, f"{step.name}{r}", (prev,))
        g.names[link.name] = link.name
        _emitter(link)(g, link, [])
        prev = link.name
    shape = (spec.channels(node_id), sizes[node_id])
    return _finish(g, prev, [_value_info("in0", shape[0], shape[1], None)],
                   [_value_info(OUTPUT, shape[0], shape[1], None)], "chain")


# ------------------------------------------------------------------------------------------ weights


def get_weights(module: Any, spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
    """Canonical weights ``{node id: {name: array}}`` of an :class:`OnnxModule` or of an ``onnx.ModelProto``
    exported from ``spec`` by :func:`to_onnx` (initializers read by name, folding undone)."""
    if isinstance(module, OnnxModule):
        return {nid: {k: v.copy() for k, v in arrays.items()} for nid, arrays in module.weights.items()}
    if not isinstance(module, onnx.ModelProto):
        raise SpecError(f"expected an OnnxModule or an onnx.ModelProto, got {type(module).__name__}")
    inits = {t.name: numpy_helper.to_array(t) for t in module.graph.initializer}
    names = {s.node.id: s.name for s in program(spec).steps}
    plan = fold_plan(spec)
    present = {n.name for n in module.graph.node}
    by_conv: dict[str, list[Fold]] = {}
    for f in plan.values():
        if names[f.node] not in present:  # folded in this model
            by_conv.setdefault(f.conv, []).append(f)
    out: dict[str, dict[str, np.ndarray]] = {}
    for nid in spec.order:
        node = spec.node_map[nid]
        keys = ("weight", "bias") if isinstance(node, Conv2d) else (
            ("weight", "bias", "running_mean", "running_var") if isinstance(node, BatchNorm) else ())
        arrays = {k: inits[f"{names[nid]}.{k}"].copy() for k in keys if f"{names[nid]}.{k}" in inits}
        if arrays:
            out[nid] = _fold_arrays(arrays, by_conv.get(nid, []), inverse=True)
    return out


def set_weights(module: Any, spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Load canonical weights into an :class:`OnnxModule` of ``spec``, in place (its model is rebuilt)."""
    if not isinstance(module, OnnxModule):
        raise SpecError(f"expected an OnnxModule, got {type(module).__name__}")
    current = module.weights
    for nid, arrays in weights.items():
        if nid not in current:
            raise SpecError(f"weights for {nid!r}, which is not a conv2d or batch_norm node of the spec")
        for k, value in arrays.items():
            if k not in current[nid]:
                raise SpecError(f"node {nid!r} has no tensor {k!r}")
            if current[nid][k].shape != np.shape(value):
                raise SpecError(f"node {nid!r}: {k!r} has shape {current[nid][k].shape}, got {np.shape(value)}")
            current[nid][k] = np.asarray(value, dtype=np.float32).copy()
    module.invalidate()


@dataclass
class OnnxModule:
    """A spec with its canonical weights; its ONNX model (per input size) and session are built on demand."""

    spec: LayerSpec
    weights: dict[str, dict[str, np.ndarray]]
    fold: bool = True
    _models: dict[Pair, onnx.ModelProto] = field(default_factory=dict, repr=False)
    _sessions: dict[tuple[Pair, int | None], Any] = field(default_factory=dict, repr=False)

    def invalidate(self) -> None:
        self._models.clear()
        self._sessions.clear()

    def model(self, size: Pair | None = None) -> onnx.ModelProto:
        """The checked ONNX model at input size ``size`` (default: the spec's resolved one)."""
        size = resolve_input_size(self.spec, size)
        if size not in self._models:
            self._models[size] = to_onnx(self.spec, self.weights, input_size=size, fold=self.fold)
        return self._models[size]

    def session(self, size: Pair | None = None, threads: int | None = None) -> Any:
        """An ``onnxruntime.InferenceSession`` of :meth:`model` (CPU)."""
        size = resolve_input_size(self.spec, size)
        key = (size, threads)
        if key not in self._sessions:
            self._sessions[key] = session(self.model(size), threads=threads)
        return self._sessions[key]


# ------------------------------------------------------------------------------------------ runtime


def providers_for(device: str) -> list[str]:
    """The onnxruntime execution providers of ``device`` (``cpu``, ``cuda``); a missing one is a SpecError."""
    import onnxruntime as ort

    provider = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}.get(device)
    if provider is None:
        raise SpecError(f"`device` (={device!r}) must be cpu or cuda")
    if provider not in ort.get_available_providers():
        raise SpecError(f"`device` {device!r} was asked for, but onnxruntime has no {provider} here "
                        f"(available: {', '.join(ort.get_available_providers())})")
    return [provider] if device == "cpu" else [provider, "CPUExecutionProvider"]


def session(model: onnx.ModelProto, *, threads: int | None = None, device: str = "cpu",
            spinning: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model``: sequential execution, ``threads`` intra-op threads
    (default: onnxruntime's), one inter-op thread, every graph optimisation on; ``spinning=False`` has
    idle intra-op threads block at once instead of busy-waiting (``session.intra_op.allow_spinning=0``,
    what :class:`OnnxTimer` uses)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=providers_for(device))


class OnnxTimer:
    """Timed onnxruntime calls of whole specs, single nodes and chains of a node (see :meth:`OnnxBackend.timer`).

    Sessions run sequentially with ``threads`` intra-op threads on the device's execution provider,
    every graph optimisation on, and without spinning threads (``spinning=False`` of :func:`session`):
    each session has its own intra-op pool, whose threads otherwise busy-wait after every call, on the
    cores the next session timed round-robin needs (a ``64 -> 64``, ``7 x 7`` conv at ``28 x 28``, batch
    8, 2 threads on 2 cores: 16 ms alone, 46 ms round-robin with three other sessions; 17 ms either
    way without spinning). The graphs are not folded, so a module runs the ops its prediction adds up.
    Only float32 is timed.
    """

    def __init__(self, device: str, dtype: str, threads: int, batch: int) -> None:
        if dtype != "float32":
            raise SpecError(f"`dtype` (={dtype!r}): the onnxruntime backend times float32 only")
        providers_for(device)
        self.device, self.threads, self.batch = device, threads, batch
        self.sync: Callable[[Any], Any] | None = None

    def __enter__(self) -> OnnxTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _call(self, model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        sess = session(model, threads=self.threads, device=self.device, spinning=False)
        return lambda: sess.run(None, feeds)[0]

    def module_call(self, spec: LayerSpec, module: Any = None, seed: int = 0) -> Callable[[], Any]:
        """The session of ``spec``'s unfolded model (or of ``module``: an :class:`OnnxModule` or ``ModelProto``)."""
        size = resolve_input_size(spec)
        if module is None:
            model = to_onnx(spec, seed=seed, fold=False)
        else:
            model = module.model(size) if isinstance(module, OnnxModule) else module
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, spec.target.in_channels, *size), dtype=np.float32)
        return self._call(model, {INPUT: x})

    def node_call(self, spec: LayerSpec, node_id: str, seed: int = 0) -> Callable[[], Any]:
        """The session of :func:`node_model` of ``spec``, on a fresh input per input slot."""
        rng, sizes = np.random.default_rng(seed), spec.spatial_sizes(resolve_input_size(spec))
        feeds = {f"in{k}": rng.standard_normal((self.batch, spec.channels(i), *sizes[i]), dtype=np.float32)
                 for k, i in enumerate(spec.node_map[node_id].inputs)}
        return self._call(node_model(spec, node_id, seed), feeds)

    def chain_call(self, spec: LayerSpec, node_id: str, copies: int, seed: int = 0) -> Callable[[], Any]:
        """The session of :func:`chain_model` (``copies`` of the node in a row), on a fresh input."""
        rng, sizes = np.random.default_rng(seed), spec.spatial_sizes(resolve_input_size(spec))
        src = spec.node_map[node_id].inputs[0]
        x = rng.standard_normal((self.batch, spec.channels(src), *sizes[src]), dtype=np.float32)
        return self._call(chain_model(spec, node_id, copies, seed), {"in0": x})


# ------------------------------------------------------------------------------------------ the backend


def _torch_output(spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]], x: np.ndarray) -> np.ndarray | None:
    """The PyTorch module's output with the same weights, or ``None`` when torch is not installed."""
    from . import BackendUnavailableError, get_backend

    try:
        get_backend("torch")
    except BackendUnavailableError:
        return None
    from . import torch as tb

    module = tb.build_module(spec)
    tb.set_weights(module, spec, weights)
    return tb.BACKEND.run(module, x)


class OnnxBackend:
    """The ONNX backend (an :class:`osc_design.backends.Backend`): :class:`OnnxModule` s run by onnxruntime."""

    name = NAME
    layout = LAYOUT

    def build(self, spec: LayerSpec, *, seed: int = 0) -> OnnxModule:
        """An :class:`OnnxModule` with :func:`osc_design.backends.random_weights` of ``seed``."""
        from . import random_weights

        check_type(spec, LayerSpec, "spec")
        return OnnxModule(spec, random_weights(spec, seed))

    get_weights = staticmethod(get_weights)
    set_weights = staticmethod(set_weights)

    def owns(self, module: Any) -> bool:
        """Whether ``module`` is an :class:`OnnxModule`."""
        return isinstance(module, OnnxModule)

    def run(self, module: Any, x: np.ndarray) -> np.ndarray:
        """The module's output for an NCHW float32 array, run by onnxruntime at ``x``'s size."""
        size = (int(x.shape[2]), int(x.shape[3]))
        return np.asarray(module.session(size).run(None, {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0])

    def verify_counts(self, spec: LayerSpec, size: Pair, batch: int, *, module: Any = None,
                      seed: int = 0) -> list[Check]:
        """Checker, params (weight initializers), Conv-node MACs, output shape, outputs against PyTorch."""
        from ..networks.onnx_summary import summary_onnx

        m = self.build(spec, seed=seed) if module is None else module
        if not isinstance(m, OnnxModule):
            raise SpecError(f"`module` must be an OnnxModule for the onnxruntime backend, got {type(m).__name__}")
        model = m.model(size)
        c = cost(spec, size)
        s = summary_onnx(model, batch=batch)
        conv_macs = sum(r.macs for r in s.rows if r.layer == "Conv")
        x = np.random.default_rng(seed + 1).standard_normal((batch, spec.target.in_channels, *size)).astype(np.float32)
        y = self.run(m, x)
        t = spec.target
        ref = (batch, t.out_channels, *conv_output_pair(size, t.kernel_size, t.stride, t.padding, t.dilation))
        folded = len(fold_plan(spec)) if m.fold else 0
        checks = [
            Check(NAME, "checker", f"onnx.checker full_check, opset {OPSET} ({folded} permutation(s) folded)",
                  "passed", "passed", True),
            Check(NAME, "params", "sum of the weight initializers (conv weight and bias, batch-norm scale and shift)",
                  c.total_params, s.params, s.params == c.total_params),
            Check(NAME, "macs", "Conv nodes: output elements x C_in/groups x kernel taps (shape inference)",
                  batch * c.macs, conv_macs, conv_macs == batch * c.macs),  # type: ignore[operator]
            Check(NAME, "output_shape", "NCHW, as Conv2d of the target", ref, tuple(y.shape), tuple(y.shape) == ref),
        ]
        ty = _torch_output(spec, m.weights, x)
        if ty is not None:
            rel = float(np.max(np.abs(y - ty)) / max(float(np.max(np.abs(ty))), 1e-30)) if ty.size else 0.0
            checks.append(Check(NAME, "outputs", "against the PyTorch module with the same weights: "
                                "max |diff| / max |y| <= 1e-5", "<= 1e-05", f"{rel:.3g}", rel <= 1e-5))
        return checks

    def timer(self, device: str, dtype: str, threads: int, batch: int) -> OnnxTimer:
        """An :class:`OnnxTimer`."""
        return OnnxTimer(device, dtype, threads, batch)


BACKEND = OnnxBackend()
"""The ONNX :class:`~osc_design.backends.Backend` (``"onnxruntime"``)."""
