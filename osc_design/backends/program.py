"""The op sequence a layer spec becomes, shared by the runtime modules and the exporter (no framework).

:func:`program` turns a spec into :class:`Step` records with Python-safe names (:func:`python_names`);
a runtime module (:mod:`osc_design.backends.torch`, :mod:`osc_design.backends.jax`) and the exported
source of the same spec (:mod:`osc_design.backends.export`) both walk it, so they have the same
attribute names and the same ``state_dict`` / NNX state keys.

What each op *does* in a framework is that framework module's op table ``OPS``: one :class:`Op` per
op name, holding the runtime callables (``make`` builds the node's submodule or buffer, ``run``
computes its output) and the export templates (``init``, ``line``), filled in by :attr:`Step.fields`.
The exporter reads the templates from the module's text (they are literals), so exporting imports
no framework. Adding an op means one ``OPS`` entry per framework module.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import SpecError, check_type
from ..spec import LayerSpec, Pair

__all__ = [
    "RESERVED_NAMES",
    "Op",
    "op_of",
    "Step",
    "Program",
    "program",
    "plan",
    "python_names",
    "default_input_size",
    "resolve_input_size",
    "FLAX_BATCH_NORM",
]

FLAX_BATCH_NORM = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
"""A batch norm's PyTorch parameter and buffer names -> Flax NNX ``BatchNorm`` attribute names."""

# Names a node may not take: Python keywords and builtins, the framework aliases and helpers used by the
# generated code, and the public attributes of ``torch.nn.Module`` (torch 2.13) and ``flax.nnx.Module``
# (flax 0.12), which a submodule attribute would shadow or be shadowed by. Fixed (not derived from the
# backends): a change renames attributes, hence state keys. tests/backends checks that every backend's
# helpers and import aliases are in it.
_HELPERS = ("shift2d", "channel_shuffle", "permute_channels", "Conv2d", "BatchNorm2d")
_FRAMEWORK_NAMES = (
    "annotations", "self", "torch", "nn", "F", "jax", "jnp", "lax", "nnx", "np", "math", "dtype", "device",
    "rngs", "factory", "PERMS", "INPUT_SIZE", "TARGET", "FAMILY", "COST", "CONVENTIONS", "LAYOUT", "Sequence", "Any",
)
_MODULE_ATTRS = (
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad", "iter_children", "iter_modules", "perturb", "set_attributes", "sow", "spec", "family",
)
RESERVED_NAMES = frozenset(
    {*keyword.kwlist, *keyword.softkwlist, *dir(builtins), *_HELPERS, *_FRAMEWORK_NAMES, *_MODULE_ATTRS}
)
"""Identifiers that :func:`python_names` never hands out (a suffix ``_1``, ``_2``... is added instead)."""


def python_names(spec: LayerSpec) -> dict[str, str]:
    """A unique, safe Python identifier for every node id of ``spec`` (used for attributes and locals).

    Ids that are already plain identifiers are kept (``conv1`` stays ``conv1``); other characters become
    ``_``, a leading digit or underscore gets an ``n`` prefix, and reserved or repeated names get a
    numeric suffix.

    >>> from osc_design.spec import GraphBuilder, Target
    >>> b = GraphBuilder(Target(4, 4, 3), input_id="in")
    >>> spec = b.build(b.conv2d(b.input, 4, 3, padding=1, name="stage-1"))
    >>> python_names(spec)
    {'in': 'in_1', 'stage-1': 'stage_1'}
    """
    names: dict[str, str] = {}
    used: set[str] = set()
    for nid in spec.order:
        base = re.sub(r"\W", "_", nid, flags=re.ASCII)
        if base[0].isdigit() or base[0] == "_":
            base = "n" + base
        name, k = base, 0
        while name in RESERVED_NAMES or name in used:
            k += 1
            name = f"{base}_{k}"
        names[nid] = name
        used.add(name)
    return names


@dataclass(frozen=True)
class Step:
    """One node of the op sequence: the op, its Python name and the names of its inputs."""

    node: Any  # an osc_design.ops.Node
    name: str
    inputs: tuple[str, ...]

    @property
    def op(self) -> str:
        """The op name (``"conv2d"``, ``"shift"``...)."""
        return str(self.node.op)

    @property
    def fields(self) -> dict[str, Any]:
        """What an op table's templates are filled with: the node's own fields (``in_channels``,
        ``kernel_size``, ``groups``, ``start``, ``shift``, ...) and ``name`` (the step's name), ``x``
        (its first input), ``xs`` (its inputs joined by ``", "``) and ``plus`` (joined by ``" + "``).

        >>> from osc_design.ops import Slice
        >>> s = Step(Slice(id="s", inputs=("a",), start=2, stop=5), "s", ("a",))
        >>> "{name} = {x}[:, {start}:{stop}]".format(**s.fields)
        's = a[:, 2:5]'
        """
        own = {f.name: getattr(self.node, f.name) for f in fields(self.node) if f.name not in ("id", "inputs")}
        x = self.inputs[0] if self.inputs else ""
        return {**own, "name": self.name, "x": x, "xs": ", ".join(self.inputs), "plus": " + ".join(self.inputs)}


@dataclass(frozen=True)
class Op:
    """How one framework runs one op (an entry of a framework module's ``OPS`` table).

    Attributes
    ----------
    run:
        ``run(module, step, xs) -> y``: the node's output from its inputs ``xs`` (a list), inside the
        module built from the spec.
    line:
        Export template of the line computing the node in the generated ``forward`` / ``__call__``
        (filled with :attr:`Step.fields`; the exporter reads it from the module's text, so a literal).
    init:
        Export template of the line creating the node's submodule or buffer in the generated
        ``__init__``; ``""`` for ops without state.
    make:
        ``make(module, step, factory)``: creates the node's submodule or buffer in the runtime module
        (``None`` for ops without state); ``factory`` holds the framework's construction arguments.
    """

    run: Callable[[Any, Step, list[Any]], Any]
    line: str
    init: str = ""
    make: Callable[[Any, Step, dict[str, Any]], None] | None = None


def op_of(table: Mapping[str, Op], step: Step, framework: str) -> Op:
    """The entry of ``step``'s op in a framework's op table; :class:`~osc_design.SpecError` when it has none."""
    try:
        return table[step.op]
    except KeyError:
        raise SpecError(f"node {step.node.id!r}: op {step.op!r} has no {framework} implementation") from None


@dataclass(frozen=True)
class Program:
    """The op sequence of a spec: the input's name, the steps in topological order, the output's name."""

    input: str
    steps: tuple[Step, ...]
    output: str

    def step(self, node_id: str) -> Step:
        """The step of node ``node_id``."""
        for s in self.steps:
            if s.node.id == node_id:
                return s
        raise SpecError(f"{node_id!r} is not a node of the program (or is its input)")


def plan(spec: LayerSpec) -> tuple[Step, ...]:
    """The nodes of ``spec`` in topological order, with safe names (the input node comes first)."""
    names = python_names(spec)
    return tuple(
        Step(spec.node_map[nid], names[nid], tuple(names[i] for i in spec.node_map[nid].inputs))
        for nid in spec.order
    )


def program(spec: LayerSpec) -> Program:
    """The :class:`Program` of ``spec``: :func:`plan` with the input step split off."""
    check_type(spec, LayerSpec, "spec")
    steps = plan(spec)
    output = next(s.name for s in steps if s.node.id == spec.output)
    return Program(steps[0].name, steps[1:], output)


def default_input_size(spec: LayerSpec) -> Pair:
    """The input size used when neither the target nor the caller gives one: ``n x n``, ``n = max(16, 2K)``.

    ``K`` is the larger side of the target's kernel. At least ``2K`` so that every kernel tap both lands
    on the zero border at some outputs and inside the image at others (padding-aware and naive counts
    then differ and a check can tell them apart); at least 16 so that small kernels see an interior.
    """
    n = max(16, 2 * max(spec.target.kernel_size))
    return (n, n)


def resolve_input_size(spec: LayerSpec, input_size: int | Pair | None = None) -> Pair:
    """The input size of a check or an export: the target's, else ``input_size``, else :func:`default_input_size`.

    Raises :class:`~osc_design.SpecError` when both the target and the caller give a size and they differ.
    """
    from ..geometry import pair

    check_type(spec, LayerSpec, "spec")
    given = None if input_size is None else pair(input_size, "input_size", minimum=1)
    own = spec.target.input_size
    if own is not None:
        if given is not None and given != own:
            raise SpecError(f"`input_size` (={given}) differs from the target's input size {own}")
        return own
    size = given if given is not None else default_input_size(spec)
    spec.spatial_sizes(size)  # raises SpecError naming the node when the size is too small
    return size
