"""A whole-model summary of an ONNX model: every computing node's params, MACs, FLOPs and output shape.

The same rows, totals and renderings as the PyTorch summary (:mod:`osc_design.networks.summary`:
:class:`~osc_design.networks.summary.Summary`, table, JSON and CSV), for any ``.onnx`` file. Output
shapes come from ONNX shape inference (``onnx.shape_inference.infer_shapes`` with data propagation,
repeated while shape arithmetic -- ``Shape`` of a tensor of known shape, nodes of small constants -- is
evaluated into constants with ``onnx.reference``: such nodes get no row) after the input's symbolic
dimensions are fixed: the first one is the batch, the others must be
fixed in the file or given as ``input_size`` (one sample, without the batch). Only the ``onnx``
package is needed (no onnxruntime, no torch).

Rows: one per node that computes, in graph order. Data movement and shape arithmetic (``Reshape``,
``Transpose``, ``Flatten``, ``Squeeze``, ``Unsqueeze``, ``Concat``, ``Split``, ``Slice``, ``Gather``,
``Pad``, ``Shape``, ``Constant``, ``Identity``, ``Cast``, ``Dropout``...: :data:`NON_COMPUTING`)
gets no row, as in the PyTorch summary a view or a ``torch.cat`` in a ``forward`` belongs to none.

Conventions (the PyTorch summary's; exact integers, for the whole batch)

======================  ================================================================================
node                    MACs of one call
======================  ================================================================================
Conv                    output elements x (C_in / group) x kernel elements (padding taps included,
                        bias not counted)
ConvTranspose           input elements x (C_out / group) x kernel elements
Gemm, MatMul            output elements x K (the reduced dimension); Gemm's ``C`` (bias) not counted
norms, pools            0 (``BatchNormalization``, ``LayerNormalization``, ..., ``MaxPool``, ...)
activations, others     0 (element-wise ``Add``, ``Mul``, ... named, with their output shape)
======================  ================================================================================

``params`` of a node: the floating-point constants (initializers or ``Constant`` outputs) it reads
as weights: ``Conv``/``ConvTranspose`` weight and bias, ``Gemm`` ``B`` and ``C``, a constant operand
of ``MatMul``, a normalisation's scale and shift (not ``BatchNormalization``'s running mean and
variance: buffers in PyTorch), ``PRelu``'s slope. Shape constants, indices, pads and the scalars
of element-wise ops are not parameters. Each constant of the file counts once (at its first reader,
also when others read it through an ``Identity``), so the total is the sum over rows.

Differences from onnx-tool (``onnx_tool.Model(...).graph.profile()``), on the same file:

* onnx-tool counts every initializer a node reads as a parameter: the running mean and variance of
  ``BatchNormalization`` (``2 x C`` per norm), the ``int64`` shape constants of ``Reshape`` (and the
  indices of ``Gather``, the bounds of ``Slice``, the pads of ``Pad``...);
* onnx-tool adds one MAC per output element for a bias (``Conv`` with three inputs, ``Gemm`` with
  ``C``), and counts element-wise work as MACs (``BatchNormalization``, ``Relu``, ``Add``, pools,
  ``Softmax``...: one or more per element), where this summary counts multiply-accumulates of
  products only (0 for those, like the PyTorch summary and FlopCounterMode);
* onnx-tool gives shape arithmetic (``Shape`` -> ``Gather`` -> ``Div`` -> ``Reshape`` chains of a
  traced ``view``) rows and a few MACs; here it is evaluated into constants (no row, no MACs);
* onnx-tool counts a weight shared through an ``Identity`` at the ``Identity``; here at the node
  that uses it (the totals agree).

Against the PyTorch summary of the model the file was exported from: ``torch.onnx.export`` in eval
mode folds each batch norm into the conv before it (the conv gains a bias of ``C``, the norm's ``2C``
scale and shift vanish, so ONNX params are ``C`` fewer per folded norm, and its row is gone).
"""

from __future__ import annotations

import math

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OptionError, SpecError
from .summary import KINDS, Summary, SummaryRow

__all__ = ["NON_COMPUTING", "KIND_OF", "summary_onnx", "load_onnx"]

NON_COMPUTING = frozenset({
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "GatherND",
    "GatherElements", "Pad", "Shape", "Size", "Constant", "ConstantOfShape", "Identity", "Cast", "CastLike",
    "Dropout", "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "Range", "NonZero",
})
"""Op types that move or describe data without computing on it: no row."""

_KINDS = {
    "conv": ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv"),
    "linear": ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"),
    "norm": ("BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
             "LpNormalization", "LRN", "RMSNormalization", "MeanVarianceNormalization"),
    "pool": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool", "MaxRoiPool"),
    "activation": ("Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish",
                   "Tanh", "Softmax", "LogSoftmax", "Softplus", "Softsign", "Clip", "Gelu", "Mish", "ThresholdedRelu",
                   "Swish"),
}
KIND_OF = {op: kind for kind, ops in _KINDS.items() for op in ops}
"""ONNX op type -> summary kind (:data:`osc_design.networks.summary.KINDS`); other computing ops are ``other``."""

_PARAM_INPUTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (0, 1), "BatchNormalization": (1, 2),
    "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2), "GroupNormalization": (1, 2),
    "RMSNormalization": (1,), "PRelu": (1,),
}
"""Op type -> the input slots that are parameters when they are floating-point constants."""


def load_onnx(model: Any) -> tuple[Any, str]:
    """``(ModelProto, name)`` of a path to an ``.onnx`` file or of a ``ModelProto``."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "model"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is not a readable file")
        return onnx.load(str(path)), path.stem
    raise TypeError(f"expected a path to an .onnx file or an onnx.ModelProto, got {type(model).__name__}")


def _graph_input(model: Any) -> Any:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise OptionError(f"the model has {len(inputs)} graph inputs; a summary needs exactly one", "model",
                          "one-input")
    return inputs[0]


def _fix_input(model: Any, batch: int, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
    """Set the graph input's symbolic dimensions (in place): ``batch`` for the first, ``input_size`` after it;
    the full input shape. A ``batch`` (other than 1) or an ``input_size`` that contradicts a dimension the
    model fixes is an :class:`~osc_design.errors.OptionError` naming it, never an override."""
    dims = _graph_input(model).type.tensor_type.shape.dim
    shown = "x".join(str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?" for d in dims)
    if input_size is not None:
        if len(input_size) != len(dims) - 1:
            raise OptionError(f"input_size {tuple(input_size)} has {len(input_size)} dimensions; the model's input "
                              f"({shown}) has {len(dims) - 1} besides the batch", "input_size", "rank")
        fixed = [f"{d.dim_value} at dimension {i}" for i, (d, v) in enumerate(zip(list(dims)[1:], input_size,
                 strict=True), 1) if d.HasField("dim_value") and d.dim_value != v]
        if fixed:
            raise OptionError(f"input_size {tuple(input_size)} contradicts the model's input ({shown}), which fixes "
                              f"{', '.join(fixed)}: give the sizes it fixes, or no input_size", "input_size", "fixed")
        for d, v in zip(list(dims)[1:], input_size, strict=True):
            d.dim_value = int(v)
    if dims and not dims[0].HasField("dim_value"):
        dims[0].dim_value = batch
    elif dims and dims[0].dim_value != batch and batch != 1:
        raise OptionError(f"the model's input ({shown}) has a fixed batch of {dims[0].dim_value}, not {batch}",
                          "batch", "fixed")
    missing = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
    if missing:
        raise OptionError(f"the model's input ({shown}) has symbolic dimensions {missing}: give input_size (one "
                          "sample)", "input_size", "symbolic")
    return tuple(int(d.dim_value) for d in dims)


def _shapes(model: Any) -> dict[str, tuple[int, ...] | None]:
    """Tensor name -> static shape (``None`` where shape inference left it unknown)."""
    out: dict[str, tuple[int, ...] | None] = {}
    graph = model.graph
    for vi in (*graph.input, *graph.value_info, *graph.output):
        t = vi.type.tensor_type
        dims = t.shape.dim if t.HasField("shape") else None
        known = dims is not None and all(d.HasField("dim_value") for d in dims)
        out[vi.name] = tuple(int(d.dim_value) for d in dims) if known else out.get(vi.name)  # type: ignore[union-attr]
    for t in graph.initializer:
        out[t.name] = tuple(int(d) for d in t.dims)
    return out


def _constants(model: Any) -> dict[str, tuple[tuple[int, ...], bool, np.ndarray | None]]:
    """Constant tensor name -> (shape, floating point, value of a ``Constant`` node): initializers and
    ``Constant`` node outputs."""
    from onnx import TensorProto, helper, numpy_helper

    floats = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
    out: dict[str, tuple[tuple[int, ...], bool, np.ndarray | None]] = {
        t.name: (tuple(int(d) for d in t.dims), t.data_type in floats, None) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    a = numpy_helper.to_array(helper.get_attribute_value(attr))
                    out[node.output[0]] = (tuple(a.shape), bool(np.issubdtype(a.dtype, np.floating)), a)
    return out


_FOLD_LIMIT = 1 << 16
"""Constant subgraphs are evaluated only while their inputs hold at most this many elements (shape arithmetic,
a shared weight's ``Identity``), never the model's real computation."""


def _const_value(node: Any, shapes: dict[str, tuple[int, ...] | None],
                 constants: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """The outputs of ``node`` when they are known without running the model: ``Shape`` of a tensor of known
    shape, or a node whose inputs are all small constants (evaluated by ``onnx.reference``)."""
    if node.op_type == "Shape":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        attrs = {a.name: a.i for a in node.attribute}
        return [np.asarray(shape[attrs.get("start", 0):attrs.get("end", len(shape))], dtype=np.int64)]
    inputs = [i for i in node.input if i]
    if node.op_type in ("Constant", "RandomNormal", "RandomUniform") or not inputs or any(
            i not in constants or constants[i].size > _FOLD_LIMIT for i in inputs):
        return None
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(v) for v in ReferenceEvaluator(node).run(None, {i: constants[i] for i in inputs})]


def _propagate(model: Any) -> tuple[Any, dict[str, str]]:
    """ONNX shape inference, with shape arithmetic evaluated: until nothing changes, every node whose outputs
    are known constants (:func:`_const_value`) is replaced by initializers, and shapes are inferred again.
    Also returns the folded ``Identity`` s of constants: output -> the constant it repeats.

    Exporters compute reshape targets and pads from ``Shape`` (efficientnet-pytorch's "same" padding, a
    channel shuffle's ``view``), which ``infer_shapes`` alone leaves unknown downstream."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    aliases: dict[str, str] = {}
    for _ in range(len(model.graph.node)):
        shapes = _shapes(inferred)
        constants = {t.name: numpy_helper.to_array(t) for t in inferred.graph.initializer  # weights are never folded
                     if math.prod(t.dims) <= _FOLD_LIMIT}
        constants.update({name: v for name, (_, _, v) in _constants(inferred).items() if v is not None})
        kept, folded = [], []
        for node in inferred.graph.node:
            values = _const_value(node, shapes, constants)
            if values is None:
                kept.append(node)
            else:  # initializers precede every node: the order stays valid
                folded += [numpy_helper.from_array(v, o) for o, v in zip(node.output, values, strict=True)]
                constants.update(zip(node.output, values, strict=True))
                if node.op_type == "Identity":  # a shared constant (exporters deduplicate equal weights so)
                    aliases[node.output[0]] = aliases.get(node.input[0], node.input[0])
        if not folded:
            return inferred, aliases
        graph = inferred.graph
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend(folded)
        done = {t.name for t in graph.initializer}
        keep_info = [vi for vi in graph.value_info if vi.name not in done]
        del graph.value_info[:]
        graph.value_info.extend(keep_info)
        inferred = onnx.shape_inference.infer_shapes(inferred, strict_mode=False, data_prop=True)
    return inferred, aliases


def _numel(shape: tuple[int, ...] | None) -> int:
    return 0 if shape is None else int(np.prod(shape, dtype=np.int64)) if shape else 1


MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
"""The ops whose MACs are counted; quantised ones (ConvInteger, QLinearConv, ...) are listed with 0 MACs."""


def _macs(node: Any, shapes: dict[str, tuple[int, ...] | None]) -> int:
    """The MACs of one node (see the module docstring); :class:`SpecError` when a shape they need is unknown
    (shape inference could not follow the model at this input size), rather than a silent 0."""
    out = shapes.get(node.output[0]) if node.output else None
    ins = [shapes.get(i) if i else None for i in node.input]
    if node.op_type in MAC_OPS and (out is None or not ins or ins[0] is None or (len(ins) > 1 and ins[1] is None)):
        raise SpecError(f"node {node.name or node.output[0]!r} ({node.op_type}): ONNX shape inference gives no "
                        "shape for its input or output at this input size, so its MACs cannot be counted "
                        "(check --input-size)")
    if node.op_type in ("Conv", "ConvTranspose") and len(ins) > 1 and ins[1] is not None:
        per = _numel(ins[1][1:])  # (C_in/group) x kernel, or for a transpose (C_out/group) x kernel
        return (_numel(ins[0]) if node.op_type == "ConvTranspose" else _numel(out)) * per
    if node.op_type == "Gemm" and ins and ins[0] is not None:
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return _numel(out) * ins[0][0 if trans_a else 1]
    if node.op_type == "MatMul" and ins and ins[0] is not None:
        return _numel(out) * ins[0][-1]
    return 0


def summary_onnx(model: Any, *, batch: int = 1, input_size: tuple[int, ...] | None = None,
                 name: str | None = None) -> Summary:
    """Summarise an ONNX model (a path or a ``ModelProto``): one row per computing node.

    ``batch`` fixes the input's first symbolic dimension; ``input_size`` (one sample, without the batch,
    ``(3, 224, 224)``) the others. Dimensions the model fixes stay: an ``input_size`` that contradicts one,
    or a ``batch`` other than 1 that contradicts a fixed batch, is an :class:`~osc_design.errors.OptionError`
    (a ``ValueError``) whose ``option`` names it. Counts follow the module docstring's conventions; MACs and
    output elements are for the whole batch.

    >>> from osc_design import Target, get_family
    >>> from osc_design.backends.onnx import to_onnx
    >>> s = summary_onnx(to_onnx(get_family("osc").build(Target(16, 32, 3, input_size=8))))
    >>> [(r.layer, r.params, r.macs, r.output_shape) for r in s.rows]
    [('Conv', 96, 6144, (1, 32, 8, 8)), ('Conv', 96, 6144, (1, 32, 8, 8)), ('Conv', 128, 8192, (1, 32, 8, 8)), \
('Conv', 128, 8192, (1, 32, 8, 8))]
    """
    import onnx

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise OptionError(f"batch must be a positive integer, got {batch!r}", "batch", "type")
    if input_size is not None and (not input_size or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_size)):
        raise OptionError(f"input_size must be a non-empty tuple of positive integers, got {input_size!r}",
                          "input_size", "type")
    proto, default_name = load_onnx(model)
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    full = _fix_input(copy, batch, None if input_size is None else tuple(input_size))
    inferred, aliases = _propagate(copy)
    shapes, constants = _shapes(inferred), _constants(inferred)
    counted: set[str] = set()
    rows = []
    for k, node in enumerate(inferred.graph.node):
        if node.op_type in NON_COMPUTING:
            continue
        own = 0
        for slot in _PARAM_INPUTS.get(node.op_type, ()):
            tensor = node.input[slot] if slot < len(node.input) else ""
            if tensor in constants and constants[tensor][1] and aliases.get(tensor, tensor) not in counted:
                counted.add(aliases.get(tensor, tensor))
                own += _numel(constants[tensor][0])
        out = shapes.get(node.output[0]) if node.output else None
        rows.append(SummaryRow(node.name or f"{node.op_type}_{k}", node.op_type, KIND_OF.get(node.op_type, "other"),
                               own, _macs(node, shapes), out, sum(_numel(shapes.get(o)) for o in node.output)))
    by_kind = {kind: sum(r.macs for r in rows if r.kind == kind) for kind in KINDS}
    params = sum(r.params for r in rows)
    return Summary(name or default_name, full, tuple(rows), params, params, by_kind)
