"""Standalone source export of layer specs, and the execution plan shared with the runtime backends.

:func:`export_source` writes a self-contained Python file that defines the design as a PyTorch
``nn.Module`` or a Flax NNX module (class ``OscDesign`` by default, constructible with no
arguments). The file imports only the framework (``torch``, or ``jax`` + ``flax`` + ``numpy``),
never ``osc_design``: drop it into a project and use it. Its ``forward`` / ``__call__`` has one
line per node of the spec graph, and the small helpers it needs (zero-filled shift, channel
shuffle, and for JAX the conv and batch-norm modules) are copied verbatim from
:mod:`osc_design.backends.torch` / :mod:`osc_design.backends.jax`, so the runtime modules and the
exported files run the very same code. Generating source imports neither framework.

:func:`plan` turns a spec into :class:`Step` records with Python-safe names; the runtime modules
and the exporter both use it, so a runtime module and the exported module of the same spec have
the same attribute names and the same ``state_dict`` / NNX state keys.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..cost import cost
from ..errors import SpecError, UnknownBackendError
from ..ops import (
    Add,
    BatchNorm,
    ChannelShuffle,
    Concat,
    Conv2d,
    Identity,
    Node,
    Permute,
    Shift,
    Slice,
)
from ..spec import LayerSpec, Pair

__all__ = ["CLASS_NAME", "Step", "plan", "python_names", "export_source", "resolve_input_size", "default_input_size"]

CLASS_NAME = "OscDesign"
"""Default class name of exported modules."""

# Names a node may not take: Python keywords and builtins, the framework aliases and helpers used by the
# generated code, and the public attributes of ``torch.nn.Module`` (torch 2.13) and ``flax.nnx.Module``
# (flax 0.12), which a submodule attribute would shadow or be shadowed by.
_HELPERS = ("shift2d", "channel_shuffle", "permute_channels", "Conv2d", "BatchNorm2d")
_FRAMEWORK_NAMES = (
    "annotations", "self", "torch", "nn", "F", "jax", "jnp", "lax", "nnx", "np", "math", "dtype", "device",
    "rngs", "factory", "PERMS", "INPUT_SIZE", "TARGET", "FAMILY", "COST", "CONVENTIONS", "LAYOUT",
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
    """One node of the execution plan: the op, its Python name and the names of its inputs."""

    node: Node
    name: str
    inputs: tuple[str, ...]

    @property
    def op(self) -> str:
        """The op name (``"conv2d"``, ``"shift"``...)."""
        return self.node.op

    @property
    def arg(self) -> tuple[int, ...]:
        """The op's static arguments, as a module's forward uses them: ``(groups,)`` of a shuffle,
        ``(start, stop)`` of a slice, ``(dy, dx)`` of a shift, the permutation; ``()`` otherwise."""
        n = self.node
        if isinstance(n, ChannelShuffle):
            return (n.groups,)
        if isinstance(n, Slice):
            return (n.start, n.stop)
        if isinstance(n, Shift):
            return tuple(n.shift)
        if isinstance(n, Permute):
            return tuple(n.perm)
        return ()


def plan(spec: LayerSpec) -> tuple[Step, ...]:
    """The nodes of ``spec`` in topological order, with safe names (the input node comes first)."""
    names = python_names(spec)
    return tuple(
        Step(spec.node_map[nid], names[nid], tuple(names[i] for i in spec.node_map[nid].inputs))
        for nid in spec.order
    )


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

    given = None if input_size is None else pair(input_size, "input_size", minimum=1)
    own = spec.target.input_size
    if own is not None:
        if given is not None and given != own:
            raise SpecError(f"`input_size` (={given}) differs from the target's input size {own}")
        return own
    size = given if given is not None else default_input_size(spec)
    spec.spatial_sizes(size)  # raises SpecError naming the node when the size is too small
    return size


# ------------------------------------------------------------------------------------------ helpers' source

_HELPER_NAMES = {
    "torch": ("shift2d", "channel_shuffle"),
    "jax": ("shift2d", "channel_shuffle", "permute_channels", "Conv2d", "BatchNorm2d"),
}


def _helper_source(backend: str) -> str:
    """The source of the helpers of ``osc_design.backends.<backend>`` (read from the file, not imported)."""
    found = importlib.util.find_spec(f"osc_design.backends.{backend}")
    if found is None or found.origin is None:  # pragma: no cover - the package ships both files
        raise UnknownBackendError(f"backend module for {backend!r} not found")
    text = Path(found.origin).read_text(encoding="utf-8")
    tree = ast.parse(text)
    wanted = _HELPER_NAMES[backend]
    by_name = {
        n.name: ast.get_source_segment(text, n)
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in wanted
    }
    return "\n\n\n".join(by_name[name] for name in wanted)  # type: ignore[misc]


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


def _header(spec: LayerSpec, to: str, size: Pair, class_name: str) -> list[str]:
    from .. import __version__

    t = spec.target
    c = cost(spec, size)
    layout = (
        "NCHW input (N, C_in, H, W), torch.nn.Conv2d weight layout (O, I/groups, kh, kw)"
        if to == "torch"
        else "NHWC input (N, H, W, C_in), HWIO kernels (kh, kw, I/groups, O); jax.lax.conv_general_dilated"
    )
    opts = ", ".join(f"{k}={v!r}" for k, v in spec.options_dict.items()) or "none"
    h, w = size
    rows = [
        f"{class_name}: {'PyTorch' if to == 'torch' else 'JAX / Flax NNX'} module "
        f"generated by osc-design {__version__}.",
        "Standalone: needs only " + ("torch" if to == "torch" else "jax, flax and numpy") + ", not osc_design.",
        "",
        f"target     {t.describe()}  (padding {t.padding[0]}x{t.padding[1]}, "
        f"equivalent to nn.Conv2d({t.in_channels}, {t.out_channels}, {t.kernel_size}, stride={t.stride}, "
        f"padding={t.padding}))",
        f"family     {spec.family}  (options: {opts})",
        f"graph      {len(spec.nodes)} nodes, {len(spec.convs)} convolutions, {spec.stages} stage(s)",
        f"layout     {layout}",
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
        "(jax cost_analysis; + 4 per batch-norm channel and call)",
        "Shifts, slices, concatenations, channel permutations and identities cost nothing.",
    ]
    return ["# " + r if r else "#" for r in rows]


def _constants(spec: LayerSpec, to: str, size: Pair, steps: tuple[Step, ...]) -> list[str]:
    t = spec.target
    c = cost(spec, size)
    lines = [
        f"FAMILY = {spec.family!r}",
        "TARGET = {"
        f"'in_channels': {t.in_channels}, 'out_channels': {t.out_channels}, "
        f"'kernel_size': {_tuple(t.kernel_size)}, 'stride': {_tuple(t.stride)}, "
        f"'padding': {_tuple(t.padding)}"  # type: ignore[arg-type]
        "}",
        f"INPUT_SIZE = {_tuple(size)}",
        "COST = {" + ", ".join(f"{k!r}: {v}" for k, v in c.to_dict().items()) + "}",
        f"LAYOUT = {'NCHW' if to == 'torch' else 'NHWC'!r}",
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


def _torch_init(step: Step) -> list[str]:
    n = step.node
    if isinstance(n, Conv2d):
        return [
            f"self.{step.name} = nn.Conv2d({n.in_channels}, {n.out_channels}, kernel_size={_tuple(n.kernel_size)}, "
            f"stride={_tuple(n.stride)}, padding={_tuple(n.padding)}, dilation={_tuple(n.dilation)}, "
            f"groups={n.groups}, bias={n.bias}, **factory)"
        ]
    if isinstance(n, BatchNorm):
        return [f"self.{step.name} = nn.BatchNorm2d({n.num_features}, **factory)"]
    if isinstance(n, Permute):
        return [
            f"self.register_buffer({step.name!r}, torch.tensor(PERMS[{step.name!r}], dtype=torch.long, device=device))"
        ]
    return []


def _torch_line(step: Step) -> str:
    n, v, ins = step.node, step.name, step.inputs
    if isinstance(n, (Conv2d, BatchNorm)):
        return f"{v} = self.{v}({ins[0]})"
    if isinstance(n, ChannelShuffle):
        return f"{v} = channel_shuffle({ins[0]}, {n.groups})"
    if isinstance(n, Permute):
        return f"{v} = {ins[0]}.index_select(1, self.{v})"
    if isinstance(n, Slice):
        return f"{v} = {ins[0]}[:, {n.start}:{n.stop}]"
    if isinstance(n, Concat):
        return f"{v} = torch.cat([{', '.join(ins)}], dim=1)"
    if isinstance(n, Add):
        return f"{v} = {' + '.join(ins)}"
    if isinstance(n, Shift):
        return f"{v} = shift2d({ins[0]}, {n.shift[0]}, {n.shift[1]})"
    if isinstance(n, Identity):
        return f"{v} = {ins[0]}"
    raise SpecError(f"node {n.id!r}: op {n.op!r} has no PyTorch export")  # pragma: no cover


def _jax_init(step: Step) -> list[str]:
    n = step.node
    if isinstance(n, Conv2d):
        return [
            f"self.{step.name} = Conv2d({n.in_channels}, {n.out_channels}, {_tuple(n.kernel_size)}, "
            f"stride={_tuple(n.stride)}, padding={_tuple(n.padding)}, dilation={_tuple(n.dilation)}, "
            f"groups={n.groups}, bias={n.bias}, rngs=rngs, dtype=dtype)"
        ]
    if isinstance(n, BatchNorm):
        return [f"self.{step.name} = BatchNorm2d({n.num_features}, dtype=dtype)"]
    return []


def _jax_line(step: Step) -> str:
    n, v, ins = step.node, step.name, step.inputs
    if isinstance(n, (Conv2d, BatchNorm)):
        return f"{v} = self.{v}({ins[0]})"
    if isinstance(n, ChannelShuffle):
        return f"{v} = channel_shuffle({ins[0]}, {n.groups})"
    if isinstance(n, Permute):
        return f"{v} = permute_channels({ins[0]}, PERMS[{v!r}])"
    if isinstance(n, Slice):
        return f"{v} = {ins[0]}[..., {n.start}:{n.stop}]"
    if isinstance(n, Concat):
        return f"{v} = jnp.concatenate([{', '.join(ins)}], axis=-1)"
    if isinstance(n, Add):
        return f"{v} = {' + '.join(ins)}"
    if isinstance(n, Shift):
        return f"{v} = shift2d({ins[0]}, {n.shift[0]}, {n.shift[1]})"
    if isinstance(n, Identity):
        return f"{v} = {ins[0]}"
    raise SpecError(f"node {n.id!r}: op {n.op!r} has no JAX export")  # pragma: no cover


def _torch_source(spec: LayerSpec, size: Pair, class_name: str) -> list[str]:
    steps = plan(spec)
    t = spec.target
    out = [
        "from __future__ import annotations",
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
        *_constants(spec, "torch", size, steps),
        "",
        "",
        _helper_source("torch"),
        "",
        "",
        f"class {class_name}(nn.Module):",
        f'    """{spec.family} replacement of nn.Conv2d({t.in_channels}, {t.out_channels}, {t.kernel_size}, '
        f'stride={t.stride}, padding={t.padding}).',
        "",
        "    Input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` as the target convolution.",
        "    Channel permutations are buffers (not trainable, not counted as parameters).",
        '    """',
        "",
        "    def __init__(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:",
        "        super().__init__()",
        '        factory = {"device": device, "dtype": dtype}',
    ]
    for step in steps:
        out += ["        " + line for line in _torch_init(step)]
    out += ["", "    def forward(self, " + steps[0].name + ": torch.Tensor) -> torch.Tensor:"]
    for step in steps[1:]:
        out.append("        " + _torch_line(step) + _renamed(step))
    out.append("        return " + next(s.name for s in steps if s.node.id == spec.output))
    return out


def _jax_source(spec: LayerSpec, size: Pair, class_name: str) -> list[str]:
    steps = plan(spec)
    t = spec.target
    out = [
        "from __future__ import annotations",
        "",
        "import math",
        "",
        "import jax",
        "import jax.numpy as jnp",
        "import numpy as np",
        "from flax import nnx",
        "from jax import lax",
        "",
        *_constants(spec, "jax", size, steps),
        "",
        "",
        _helper_source("jax"),
        "",
        "",
        f"class {class_name}(nnx.Module):",
        f'    """{spec.family} replacement of a {t.in_channels} -> {t.out_channels} convolution, '
        f"kernel {t.kernel_size}, stride {t.stride}, padding {t.padding}.",
        "",
        "    Input ``(N, H, W, C_in)`` (NHWC), output ``(N, H_out, W_out, C_out)``. Batch norms use their running",
        "    statistics (inference).",
        '    """',
        "",
        "    def __init__(self, *, rngs: nnx.Rngs | None = None, dtype: jnp.dtype = jnp.float32) -> None:",
        "        rngs = nnx.Rngs(0) if rngs is None else rngs",
    ]
    inits = [line for step in steps for line in _jax_init(step)]
    out += ["        " + line for line in inits]
    out += ["", "    def __call__(self, " + steps[0].name + ": jax.Array) -> jax.Array:"]
    for step in steps[1:]:
        out.append("        " + _jax_line(step) + _renamed(step))
    out.append("        return " + next(s.name for s in steps if s.node.id == spec.output))
    return out


def export_source(
    spec: LayerSpec,
    to: Literal["torch", "jax"] = "torch",
    *,
    class_name: str = CLASS_NAME,
    input_size: int | Pair | None = None,
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

    Returns
    -------
    str
        The file's text: a header comment with target, family and exact costs with their conventions;
        constants ``FAMILY``, ``TARGET``, ``INPUT_SIZE``, ``COST``, ``LAYOUT`` (and ``PERMS``); the helpers;
        and the class, with one line per graph node in its forward pass.
    """
    if to not in _HELPER_NAMES:
        raise UnknownBackendError(f"unknown export target {to!r}; expected one of {', '.join(_HELPER_NAMES)}")
    if not isinstance(class_name, str) or not class_name.isidentifier() or keyword.iskeyword(class_name):
        raise SpecError(f"`class_name` (={class_name!r}) must be a Python identifier")
    if class_name in RESERVED_NAMES or class_name in python_names(spec).values():
        raise SpecError(f"`class_name` (={class_name!r}) clashes with a name used in the generated code")
    size = resolve_input_size(spec, input_size)
    body = _torch_source(spec, size, class_name) if to == "torch" else _jax_source(spec, size, class_name)
    text = "\n".join([*_header(spec, to, size, class_name), *body]) + "\n"
    compile(text, f"<{class_name}>", "exec")  # generated code must always be valid Python
    return text

