"""Standalone source export of layer specs.

:func:`export_source` writes a self-contained Python file that defines the design as a PyTorch
``nn.Module`` or a Flax NNX module (class ``OscDesign`` by default, constructible with no
arguments). The file imports only the framework (``torch``, or ``jax`` + ``flax`` + ``numpy``),
never ``osc_design``: drop it into a project and use it. Its ``forward`` / ``__call__`` has one
line per node of the spec graph (:func:`~osc_design.backends.program.program`, the op sequence the
runtime modules run too).

Everything framework-specific comes from the backend module (:mod:`osc_design.backends.torch`,
:mod:`osc_design.backends.jax`), read from its text, never imported, so generating source imports
no framework: each op's ``init`` and ``line`` templates from its op table ``OPS``, the surrounding
text from its ``SOURCE`` (imports, class head, layout), and the helpers the lines call (zero-filled
shift, channel shuffle, and for JAX the conv and batch-norm modules), copied verbatim, so the runtime
modules and the exported files run the very same code.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..cost import cost
from ..errors import OscDesignError, SpecError, UnknownBackendError, check_type
from ..ops import Permute
from ..spec import LayerSpec, Pair
from .program import RESERVED_NAMES, Step, program, python_names, resolve_input_size

__all__ = ["CLASS_NAME", "export_source", "backend_source"]

CLASS_NAME = "OscDesign"
"""Default class name of exported modules."""
SOURCE_TARGETS = ("torch", "jax")
"""The backends whose modules are exported as Python source (ONNX is a binary model: :mod:`.onnx`)."""


# ------------------------------------------------------------------------------------------ backends' source


@dataclass(frozen=True)
class BackendSource:
    """What the exporter takes from a backend module's text (see :func:`backend_source`).

    Attributes
    ----------
    layout:
        The module's ``LAYOUT`` (``"NCHW"``, ``"NHWC"``).
    text:
        Its ``SOURCE``: ``title``, ``needs``, ``layout`` (header lines), ``imports``, ``helpers`` (names),
        ``class`` (the class head, a template), ``call`` (the forward signature, a template).
    ops:
        Op name -> ``(init, line)`` templates of its ``OPS`` entries.
    helpers:
        The source of the helpers named in ``text["helpers"]``, in that order.
    """

    layout: str
    text: dict[str, Any]
    ops: dict[str, tuple[str, str]]
    helpers: str


def _literal(node: ast.expr, what: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:  # pragma: no cover - a backend module written against the rule
        raise OscDesignError(f"{what} must be a literal: the exporter reads it without importing the module") from None


def _op_templates(table: ast.expr, backend: str) -> dict[str, tuple[str, str]]:
    """``{op: (init, line)}`` from the ``OPS = {"op": Op(..., line=..., init=...), ...}`` literal of a module."""
    if not isinstance(table, ast.Dict):  # pragma: no cover - a backend module written against the rule
        raise OscDesignError(f"osc_design.backends.{backend}.OPS must be a dict display")
    out = {}
    for key, value in zip(table.keys, table.values, strict=True):
        kw = {k.arg: k.value for k in value.keywords} if isinstance(value, ast.Call) else {}
        op = _literal(key, f"an op name of osc_design.backends.{backend}.OPS")  # type: ignore[arg-type]
        where = f"the templates of {op!r} in osc_design.backends.{backend}.OPS"
        out[op] = (_literal(kw["init"], where) if "init" in kw else "", _literal(kw["line"], where))
    return out


@functools.lru_cache(maxsize=None)
def backend_source(backend: str) -> BackendSource:
    """The export material of backend module ``osc_design.backends.<backend>``, read from its file, not imported."""
    found = importlib.util.find_spec(f"osc_design.backends.{backend}")
    if found is None or found.origin is None:  # pragma: no cover - the package ships both files
        raise UnknownBackendError(f"backend module for {backend!r} not found")
    text = Path(found.origin).read_text(encoding="utf-8")
    tree = ast.parse(text)
    assigned: dict[str, ast.expr] = {}
    defined: dict[str, str] = {}
    for n in tree.body:
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            assigned[n.targets[0].id] = n.value
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None:
            assigned[n.target.id] = n.value
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            defined[n.name] = ast.get_source_segment(text, n) or ""
    source = _literal(assigned["SOURCE"], f"osc_design.backends.{backend}.SOURCE")
    helpers = "\n\n\n".join(defined[name] for name in source["helpers"])
    return BackendSource(_literal(assigned["LAYOUT"], f"osc_design.backends.{backend}.LAYOUT"), source,
                         _op_templates(assigned["OPS"], backend), helpers)


# ------------------------------------------------------------------------------------------ code generation


def _tuple(p: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in p) + ("," if len(p) == 1 else "") + ")"


def _wrap_ints(values: tuple[int, ...], indent: str, width: int = 100) -> str:
    """A tuple literal of ints wrapped over several lines."""
    lines, line = [], ""
    for v in values:
        piece = f"{v}, "
        if len(indent) + len(line) + len(piece) > width:
            lines.append(indent + line.rstrip())
            line = ""
        line += piece
    lines.append(indent + line.rstrip())
    return "(\n" + "\n".join(lines) + "\n" + indent[:-4] + ")"


def _header(spec: LayerSpec, src: BackendSource, size: Pair, class_name: str) -> list[str]:
    from .. import __version__

    t = spec.target
    pad = t.padding
    c = cost(spec, size)
    opts = ", ".join(f"{k}={v!r}" for k, v in spec.options_dict.items()) or "none"
    h, w = size
    rows = [
        f"{class_name}: {src.text['title']} module generated by osc-design {__version__}.",
        f"Standalone: needs only {src.text['needs']}, not osc_design.",
        "",
        f"target     {t.describe()}  (padding {pad[0]}x{pad[1]}, "
        f"equivalent to nn.Conv2d({t.in_channels}, {t.out_channels}, {t.kernel_size}, stride={t.stride}, "
        f"padding={t.padding}))",
        f"family     {spec.family}  (options: {opts})",
        f"graph      {len(spec.nodes)} nodes, {len(spec.convs)} convolutions, {spec.stages} stage(s)",
        f"layout     {src.text['layout']}",
        "",
        f"exact costs, per sample, at input {h}x{w} -> output {spec.spatial_sizes(size)[spec.output][0]}x"
        f"{spec.spatial_sizes(size)[spec.output][1]}:",
        f"  params        {c.params:>16,}   weights (conv kernels; batch norm scale + shift)",
        f"  bias params   {c.bias_params:>16,}   conv biases",
        f"  total params  {c.total_params:>16,}   = sum(numel) of the trainable parameters",
        f"  MACs          {c.macs:>16,}   every kernel tap at every output, zero padding included",
        f"  FLOPs         {c.flops:>16,}   = 2 x MACs (torch.utils.flop_counter.FlopCounterMode, forward)",
        f"  MACs valid    {c.macs_valid:>16,}   taps on real (non-padding) input pixels only",
        f"  bias adds     {c.bias_adds:>16,}",
        f"  element adds  {c.adds:>16,}   additions of add nodes",
        f"  norm ops      {c.norm_ops:>16,}   batch norm as x * a + b, 2 per element",
        f"  XLA FLOPs     {c.xla_flops:>16,}   = 2 x MACs valid + bias adds + element adds + norm ops "
        "(jax compile().cost_analysis(); + 4 per batch-norm channel and call)"
        + (f", less {c.xla_multiplies:,} for the depthwise 1x1 convs XLA computes as multiplies"
           if c.xla_multiplies else ""),
        "Shifts, slices, concatenations, channel permutations and identities cost nothing.",
    ]
    return ["# " + r if r else "#" for r in rows]


def _constants(spec: LayerSpec, layout: str, size: Pair, steps: tuple[Step, ...]) -> list[str]:
    t = spec.target
    c = cost(spec, size)
    lines = [
        f"FAMILY = {spec.family!r}",
        "TARGET = {"
        f"'in_channels': {t.in_channels}, 'out_channels': {t.out_channels}, "
        f"'kernel_size': {_tuple(t.kernel_size)}, 'stride': {_tuple(t.stride)}, "
        f"'padding': {_tuple(t.padding)}"
        "}",
        f"INPUT_SIZE = {_tuple(size)}",
        "COST = {" + ", ".join(f"{k!r}: {v}" for k, v in c.to_dict().items()) + "}",
        f"LAYOUT = {layout!r}",
    ]
    perms = [(s.name, s.node.perm) for s in steps if isinstance(s.node, Permute)]
    if perms:
        lines.append("PERMS = {")
        for name, perm in perms:
            lines.append(f"    {name!r}: {_wrap_ints(perm, ' ' * 8)},")
        lines.append("}")
    return lines


def _renamed(step: Step) -> str:
    """A trailing comment with the node id when the Python name differs from it."""
    return "" if step.name == step.node.id else f"  # node {step.node.id!r}"


def _line(src: BackendSource, step: Step, which: int) -> str:
    """The ``init`` (``which=0``) or ``line`` (1) of ``step`` in ``src``'s op table, filled in."""
    if step.op not in src.ops:
        raise SpecError(f"node {step.node.id!r}: op {step.op!r} has no {src.text['title']} export")
    return src.ops[step.op][which].format(**step.fields)


def _source(spec: LayerSpec, src: BackendSource, size: Pair, class_name: str) -> list[str]:
    prog = program(spec)
    t = spec.target
    head = {"class_name": class_name, "family": spec.family, "in_channels": t.in_channels,
            "out_channels": t.out_channels, "kernel_size": t.kernel_size, "stride": t.stride, "padding": t.padding}
    out = [*src.text["imports"], "", *_constants(spec, src.layout, size, prog.steps), "", "", src.helpers, "", "",
           *(line.format(**head) for line in src.text["class"])]
    out += ["        " + line for line in (_line(src, step, 0) for step in prog.steps) if line]
    out += ["", src.text["call"].format(x=prog.input)]
    out += ["        " + _line(src, step, 1) + _renamed(step) for step in prog.steps]
    out.append("        return " + prog.output)
    return out


def export_source(
    spec: LayerSpec,
    to: Literal["torch", "jax"] = "torch",
    *,
    class_name: str = CLASS_NAME,
    input_size: int | Pair | None = None,
    weights: Any = None,
) -> str:
    """Standalone Python source defining ``spec`` as a module of framework ``to``.

    Parameters
    ----------
    spec:
        The design.
    to:
        ``"torch"`` (an ``nn.Module``, NCHW) or ``"jax"`` (a Flax NNX module, NHWC).
    class_name:
        Name of the generated class (a Python identifier).
    input_size:
        Input size for the costs in the header and ``COST``; resolved as in
        :func:`osc_design.backends.verify` (the target's, else this, else ``max(16, 2K)`` square).
    weights:
        Optional ``{node id: {name: array}}`` (e.g. :attr:`osc_design.weights.Projection.params`): the module
        then loads them when constructed (see :func:`osc_design.weights.files.with_trained_weights`).

    Returns
    -------
    str
        The file's text: a header comment with target, family and exact costs with their conventions;
        constants ``FAMILY``, ``TARGET``, ``INPUT_SIZE``, ``COST``, ``LAYOUT`` (and ``PERMS``); the helpers;
        and the class, with one line per graph node in its forward pass.
    """
    check_type(spec, LayerSpec, "spec")
    if not isinstance(to, str) or to not in SOURCE_TARGETS:
        raise UnknownBackendError(f"`to`: unknown export target {to!r}; expected one of {', '.join(SOURCE_TARGETS)} "
                                  "(ONNX models: osc_design.backends.onnx.to_onnx)")
    if not isinstance(class_name, str) or not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise SpecError(f"`class_name` (={class_name!r}) must be a Python identifier")
    if class_name in RESERVED_NAMES or class_name in python_names(spec).values():
        raise SpecError(f"`class_name` (={class_name!r}) clashes with a name used in the generated code")
    size = resolve_input_size(spec, input_size)
    src = backend_source(to)
    text = "\n".join([*_header(spec, src, size, class_name), *_source(spec, src, size, class_name)]) + "\n"
    compile(text, f"<{class_name}>", "exec")  # generated code must always be valid Python
    if weights is not None:
        from ..weights.files import with_trained_weights

        text = with_trained_weights(text, spec, weights, to)
    return text

