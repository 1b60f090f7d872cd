"""PyTorch backend: a layer spec as a ``torch.nn.Module`` (NCHW), with exact parameter and FLOP checks.

Every op of the spec graph runs natively:

=================  ========================================================================
op                 PyTorch
=================  ========================================================================
conv2d             ``nn.Conv2d`` (groups, dilation, stride, zero padding, optional bias);
                   default ``nn.Conv2d`` init (kaiming-uniform)
batch_norm         ``nn.BatchNorm2d`` (scale and shift trainable, running statistics buffers)
channel_shuffle    :func:`channel_shuffle` (view, transpose, flatten: no buffer needed)
permute            ``index_select`` on channels, the permutation a ``long`` buffer
slice / concat     channel slicing / ``torch.cat``
add                ``a + b + ...``
shift              :func:`shift2d` (``F.pad`` on one side, a crop on the other: zero fill)
identity           the input itself
=================  ========================================================================

Each op is one entry of the op table :data:`OPS` (see :class:`osc_design.backends.program.Op`): how
:class:`SpecModule` builds and runs it, and the lines :func:`osc_design.backends.export_source` writes
for it. :func:`build_module`, the one build path (verification, export checks, latency, network
conversion), records those ``run`` functions once into standard PyTorch (:func:`standard_module`): an
``nn.Sequential`` for a chain of convs and batch norms, else a ``torch.fx.GraphModule`` of
``nn.Conv2d`` / ``nn.BatchNorm2d`` submodules and plain tensor ops. It loads with torch alone, has no
data-dependent control flow, and passes ``torch.export.export``, ``torch.compile(fullgraph=True)`` and
``torch.jit.script``. Submodules and buffers are named after the node ids (see
:func:`osc_design.backends.program.python_names`), like the modules written by
:func:`osc_design.backends.export_source`, so their ``state_dict`` s are interchangeable.
:data:`BACKEND` (a :class:`TorchBackend`) is what :func:`osc_design.backends.get_backend` returns.

``torch.utils.flop_counter.FlopCounterMode`` counts ``2 * macs`` for the forward pass: every
output position times every kernel tap, zero padding included, bias ignored; the other ops count
nothing. :func:`count_flops` measures it.
"""

from __future__ import annotations

import functools
import operator
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's usual alias, also in the exported source
from torch import nn

from ..cost import cost
from ..errors import SpecError
from ..ops import BatchNorm, Conv2d
from ..spec import LayerSpec, Pair
from .program import Op, Program, Step, op_of, program, resolve_input_size
from .report import Check

__all__ = [
    "OPS",
    "BACKEND",
    "TorchBackend",
    "SpecModule",
    "CLASS_NAME",
    "standard_module",
    "build_module",
    "channel_shuffle",
    "shift2d",
    "count_params",
    "count_flops",
    "reference_output_shape",
    "get_weights",
    "set_weights",
]

NAME = "torch"
LAYOUT = "NCHW"

# What osc_design.backends.export writes around the op lines; read from this file's text (not imported),
# so literals only. The class template is filled with the target's fields, ``family`` and ``class_name``.
SOURCE = {
    "title": "PyTorch",
    "needs": "torch",
    "layout": "NCHW input (N, C_in, H, W), torch.nn.Conv2d weight layout (O, I/groups, kh, kw)",
    "imports": ("from __future__ import annotations", "", "import torch", "import torch.nn.functional as F",
                "from torch import nn"),
    "helpers": ("shift2d", "channel_shuffle"),
    "class": (
        "class {class_name}(nn.Module):",
        '    """{family} replacement of nn.Conv2d({in_channels}, {out_channels}, {kernel_size}, '
        'stride={stride}, padding={padding}).',
        "",
        "    Input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` as the target convolution.",
        "    Channel permutations are buffers (not trainable, not counted as parameters).",
        '    """',
        "",
        "    def __init__(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:",
        "        super().__init__()",
        '        factory = {{"device": device, "dtype": dtype}}',
    ),
    "call": "    def forward(self, {x}: torch.Tensor) -> torch.Tensor:",
}


def shift2d(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Zero-filled spatial shift of an NCHW tensor: ``out[:, :, y, x] = x[:, :, y - dy, x - dx]``.

    Pads ``|dy|``, ``|dx|`` zeros on the side the image moves away from, then crops as many from the
    other side: constant arguments only (no size arithmetic), so it traces (``torch.fx``), scripts and
    exports, and is exact at every input size (a shift beyond the image leaves zeros).

    >>> shift2d(torch.arange(4.0).view(1, 1, 1, 4), 0, 1).tolist()
    [[[[0.0, 0.0, 1.0, 2.0]]]]
    """
    top, bottom, left, right = max(dy, 0), max(-dy, 0), max(dx, 0), max(-dx, 0)
    y = F.pad(x, (left, right, top, bottom))
    return y[:, :, bottom:-top if top else None, right:-left if left else None]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle of an NCHW tensor: output channel ``j`` is input ``(j % g) * (C / g) + j // g``."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


# ------------------------------------------------------------------------------------------ the op table


def _make_conv(module: nn.Module, step: Step, factory: dict[str, Any]) -> None:
    n = step.node
    module.add_module(step.name, nn.Conv2d(
        n.in_channels, n.out_channels, n.kernel_size, stride=n.stride, padding=n.padding,
        dilation=n.dilation, groups=n.groups, bias=n.bias, **factory,
    ))


def _make_batch_norm(module: nn.Module, step: Step, factory: dict[str, Any]) -> None:
    module.add_module(step.name, nn.BatchNorm2d(step.node.num_features, **factory))


def _make_permutation(module: nn.Module, step: Step, factory: dict[str, Any]) -> None:
    module.register_buffer(step.name, torch.tensor(step.node.perm, dtype=torch.long, device=factory["device"]))


def _submodule(module: nn.Module, step: Step, xs: list[torch.Tensor]) -> torch.Tensor:
    return getattr(module, step.name)(xs[0])


OPS: dict[str, Op] = {
    "conv2d": Op(
        make=_make_conv, run=_submodule, line="{name} = self.{name}({x})",
        init="self.{name} = nn.Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}, "
             "padding={padding}, dilation={dilation}, groups={groups}, bias={bias}, **factory)",
    ),
    "batch_norm": Op(
        make=_make_batch_norm, run=_submodule, line="{name} = self.{name}({x})",
        init="self.{name} = nn.BatchNorm2d({num_features}, **factory)",
    ),
    "channel_shuffle": Op(
        run=lambda m, step, xs: channel_shuffle(xs[0], step.node.groups),
        line="{name} = channel_shuffle({x}, {groups})",
    ),
    "permute": Op(
        make=_make_permutation, run=lambda m, step, xs: xs[0].index_select(1, getattr(m, step.name)),
        line="{name} = {x}.index_select(1, self.{name})",
        init="self.register_buffer({name!r}, torch.tensor(PERMS[{name!r}], dtype=torch.long, device=device))",
    ),
    "slice": Op(
        run=lambda m, step, xs: xs[0][:, step.node.start:step.node.stop],
        line="{name} = {x}[:, {start}:{stop}]",
    ),
    "concat": Op(run=lambda m, step, xs: torch.cat(xs, dim=1), line="{name} = torch.cat([{xs}], dim=1)"),
    "add": Op(run=lambda m, step, xs: functools.reduce(operator.add, xs), line="{name} = {plus}"),
    "shift": Op(
        run=lambda m, step, xs: shift2d(xs[0], *step.node.shift),
        line="{name} = shift2d({x}, {shift[0]}, {shift[1]})",
    ),
    "identity": Op(run=lambda m, step, xs: xs[0], line="{name} = {x}"),
}
"""Op name -> how :class:`SpecModule` builds and runs it and what the exported source says for it."""


class SpecModule(nn.Module):
    """A layer spec interpreted step by step: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.

    The reference runner of :data:`OPS` (``forward`` walks the spec's op sequence). It is what
    :func:`build_module` traces into a standard module; use :func:`build_module` to get a module to
    keep, save or convert a model with (this class needs osc-design to load).

    Parameters
    ----------
    spec:
        The design.
    device, dtype:
        Passed to every ``nn.Conv2d`` / ``nn.BatchNorm2d`` (and ``device`` to the permutation buffers).

    Attributes
    ----------
    spec:
        The layer spec it was built from.
    """

    def __init__(self, spec: LayerSpec, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self._program = program(spec)
        self.spec = spec
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        for step in self._program.steps:
            make = op_of(OPS, step, "PyTorch").make
            if make is not None:
                make(self, step, factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on ``x`` of shape ``(N, C_in, H, W)``."""
        env = {self._program.input: x}
        for step in self._program.steps:
            env[step.name] = OPS[step.op].run(self, step, [env[i] for i in step.inputs])
        return env[self._program.output]

    def extra_repr(self) -> str:
        return f"family={self.spec.family!r}, target={self.spec.target.describe()!r}"


CLASS_NAME = "OscDesign"
"""Class name of the ``torch.fx.GraphModule`` s :func:`build_module` returns (as exported modules)."""


def _is_chain(prog: Program) -> bool:
    """Whether every step is a conv or batch norm reading the step before it (the first reads the input)."""
    before = prog.input
    for step in prog.steps:
        if step.op not in ("conv2d", "batch_norm") or step.inputs != (before,):
            return False
        before = step.name
    return before == prog.output


class _GraphView:
    """What the op table's ``run`` functions see while :func:`standard_module` records them into an fx graph:
    a submodule of the reference is a ``call_module`` node, a buffer a ``get_attr`` node; the inputs are
    ``torch.fx.Proxy`` s, so every tensor operation of ``run`` is recorded as it is written."""

    def __init__(self, graph: Any, reference: nn.Module) -> None:
        from torch import fx

        self._graph, self._reference, self._fx = graph, reference, fx
        self.tracer = fx.proxy.GraphAppendingTracer(graph)

    def proxy(self, node: Any) -> Any:
        return self._fx.Proxy(node, self.tracer)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._reference, name)
        if isinstance(value, nn.Module):
            return lambda x: self.proxy(self._graph.call_module(name, (x.node,)))
        return self.proxy(self._graph.get_attr(name))


def standard_module(reference: SpecModule) -> nn.Module:
    """``reference`` as standard PyTorch, sharing its submodules and buffers (same names, same ``state_dict``).

    A chain of convs and batch norms becomes an ``nn.Sequential`` of them, named after the nodes;
    any other graph a ``torch.fx.GraphModule`` (class name :data:`CLASS_NAME`) recorded from the op
    table's ``run`` functions: ``nn.Conv2d`` / ``nn.BatchNorm2d`` submodules, permutations as ``long``
    buffers, the other ops plain tensor operations with constant arguments in its generated code
    (``index_select``, slicing, ``torch.cat``, ``+``, ``F.pad``, and ``unflatten`` / ``transpose`` /
    ``flatten`` for the channel shuffle, which ONNX exporters know, unlike ``aten::channel_shuffle``).
    Both kinds load with torch alone (a pickled ``GraphModule`` regenerates its code), and pass
    ``torch.export.export`` and ``torch.jit.script``.
    """
    from torch import fx

    prog = reference._program
    if _is_chain(prog):
        return nn.Sequential(OrderedDict((step.name, getattr(reference, step.name)) for step in prog.steps))
    graph = fx.Graph()
    view = _GraphView(graph, reference)
    env = {prog.input: view.proxy(graph.placeholder(prog.input))}
    for step in prog.steps:
        env[step.name] = OPS[step.op].run(view, step, [env[i] for i in step.inputs])
    graph.output(env[prog.output].node)
    return fx.GraphModule(reference, graph, class_name=CLASS_NAME)


def build_module(spec: LayerSpec, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, seed: int | None = None) -> nn.Module:
    """The standard ``nn.Module`` of ``spec`` (see :func:`standard_module`); ``seed`` makes the default init
    reproducible.

    Submodules and buffers are named after the node ids (:func:`~osc_design.backends.program.python_names`),
    as in :func:`~osc_design.backends.export_source`'s modules, so ``state_dict`` s are interchangeable.

    >>> from osc_design import get_family, Target
    >>> m = build_module(get_family("osc").design(Target(8, 8, 3)).spec, seed=0)
    >>> type(m).__module__, type(m).__name__
    ('torch.fx.graph_module', 'OscDesign')
    >>> tuple(m(torch.zeros(1, 8, 6, 6)).shape)
    (1, 8, 6, 6)
    """
    if seed is None:
        return standard_module(SpecModule(spec, device=device, dtype=dtype))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return standard_module(SpecModule(spec, device=device, dtype=dtype))


def count_params(module: nn.Module) -> int:
    """``sum(p.numel() for p in module.parameters())``: trainable weights, biases, batch-norm scale and shift."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Forward FLOPs of ``module(x)`` measured by ``torch.utils.flop_counter.FlopCounterMode``, and the output."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = module(x)
    return int(counter.get_total_flops()), y


def reference_output_shape(spec: LayerSpec, input_size: Pair, batch: int = 1) -> tuple[int, ...]:
    """Output shape of the target's plain ``nn.Conv2d`` on an ``(batch, C_in, *input_size)`` input (meta device)."""
    t = spec.target
    conv = nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding,
                     dilation=t.dilation, bias=False, device="meta")
    return tuple(conv(torch.empty(batch, t.in_channels, *input_size, device="meta")).shape)


def _named(module: nn.Module, spec: LayerSpec) -> dict[str, nn.Module]:
    out = {}
    for step in program(spec).steps:
        if isinstance(step.node, (Conv2d, BatchNorm)):
            sub = getattr(module, step.name, None)
            if not isinstance(sub, nn.Module):
                raise SpecError(f"module has no submodule {step.name!r} for node {step.node.id!r}")
            out[step.node.id] = sub
    return out


def get_weights(module: nn.Module, spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
    """The weights of a module of ``spec`` as numpy arrays: ``{node id: {name: array}}``.

    Canonical names and layouts (PyTorch's): conv ``weight`` ``(O, I/groups, kh, kw)`` and ``bias``
    ``(O,)``; batch norm ``weight``, ``bias``, ``running_mean``, ``running_var`` ``(C,)``. Works on
    :class:`SpecModule` and on modules written by :func:`~osc_design.backends.export_source`.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for nid, sub in _named(module, spec).items():
        names = ("weight", "bias", "running_mean", "running_var")
        out[nid] = {
            k: getattr(sub, k).detach().cpu().numpy().copy() for k in names if getattr(sub, k, None) is not None
        }
    return out


def set_weights(module: nn.Module, spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Load ``{node id: {name: array}}`` (see :func:`get_weights`) into a module of ``spec``, in place."""
    subs = _named(module, spec)
    for nid, arrays in weights.items():
        if nid not in subs:
            raise SpecError(f"weights for {nid!r}, which is not a conv2d or batch_norm node of the spec")
        sub = subs[nid]
        for k, value in arrays.items():
            current = getattr(sub, k, None)
            if not isinstance(current, torch.Tensor):
                raise SpecError(f"node {nid!r} has no tensor {k!r}")
            if tuple(current.shape) != tuple(np.shape(value)):
                raise SpecError(f"node {nid!r}: {k!r} has shape {tuple(current.shape)}, got {np.shape(value)}")
            with torch.no_grad():
                current.copy_(torch.as_tensor(np.asarray(value), dtype=current.dtype))


# ------------------------------------------------------------------------------------------ the backend


class TorchTimer:
    """Timed calls of modules and of single nodes on ``device`` / ``dtype`` (see :meth:`TorchBackend.timer`).

    Used as a context manager: inside, autograd is off and ``torch.set_num_threads(threads)`` holds
    (restored on exit). Modules run in eval mode on fresh standard-normal inputs of ``batch`` samples.
    """

    def __init__(self, device: str, dtype: str, threads: int, batch: int) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise SpecError("`device` 'cuda' was asked for, but torch sees no CUDA device")
        self.device, self.dtype = torch.device(device), getattr(torch, dtype)
        self.threads, self.batch = threads, batch
        self.sync: Callable[[Any], Any] | None = (lambda _: torch.cuda.synchronize()) if device == "cuda" else None
        self._stack = ExitStack()

    def __enter__(self) -> TorchTimer:
        self._stack.enter_context(torch.no_grad())
        self._stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _input(self, channels: int, size: Pair, rng: np.random.Generator) -> torch.Tensor:
        x = rng.standard_normal((self.batch, channels, *size), dtype=np.float32)
        return torch.from_numpy(x).to(device=self.device, dtype=self.dtype)

    def _ready(self, module: nn.Module) -> nn.Module:
        return module.to(device=self.device, dtype=self.dtype).eval()

    def module_call(self, spec: LayerSpec, module: Any = None, seed: int = 0) -> Callable[[], Any]:
        """``module(x)`` (default :func:`build_module` of ``spec``), ``x`` of the spec's resolved input size."""
        m = self._ready(build_module(spec, seed=seed) if module is None else module)
        x = self._input(spec.target.in_channels, resolve_input_size(spec), np.random.default_rng(seed))
        return lambda: m(x)

    def node_call(self, spec: LayerSpec, node_id: str, seed: int = 0) -> Callable[[], Any]:
        """Node ``node_id`` of :func:`build_module` of ``spec``, as its ``forward`` runs it, on a fresh input
        per input slot (so an add of one tensor twice reads two tensors)."""
        built = build_module(spec, seed=seed)
        step, run = program(spec).step(node_id), OPS[spec.node_map[node_id].op].run
        m = self._ready(built)
        rng, sizes = np.random.default_rng(seed), spec.spatial_sizes()
        xs = [self._input(spec.channels(i), sizes[i], rng) for i in spec.node_map[node_id].inputs]
        return lambda: run(m, step, xs)


class TorchBackend:
    """The PyTorch backend (an :class:`osc_design.backends.Backend`): NCHW ``nn.Module`` s."""

    name = NAME
    layout = LAYOUT

    def build(self, spec: LayerSpec, *, seed: int = 0) -> nn.Module:
        """:func:`build_module` with a reproducible init."""
        return build_module(spec, seed=seed)

    get_weights = staticmethod(get_weights)
    set_weights = staticmethod(set_weights)

    def owns(self, module: Any) -> bool:
        """Whether ``module`` is a ``torch.nn.Module``."""
        return isinstance(module, nn.Module)

    def run(self, module: Any, x: np.ndarray) -> np.ndarray:
        """``module(x)`` in eval mode, without autograd, for an NCHW float32 array (returned NCHW)."""
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()
        finally:
            module.train(was_training)

    def verify_counts(self, spec: LayerSpec, size: Pair, batch: int, *, module: Any = None,
                      seed: int = 0) -> list[Check]:
        """Parameters, FlopCounterMode FLOPs and output shape of ``module`` (default: built) on ``batch`` inputs."""
        m = build_module(spec, seed=seed) if module is None else module
        c = cost(spec, size)
        x = torch.randn(batch, spec.target.in_channels, *size, generator=torch.Generator().manual_seed(seed))
        was_training = m.training
        m.eval()
        try:
            flops, y = count_flops(m, x)
        finally:
            m.train(was_training)
        params, shape = count_params(m), tuple(y.shape)
        ref = reference_output_shape(spec, size, batch)
        return [
            Check(NAME, "params", "sum(p.numel()) = params + bias_params", c.total_params, params,
                  params == c.total_params),
            Check(NAME, "flops", "FlopCounterMode forward = 2 * macs (padding taps included, bias ignored)",
                  batch * c.flops, flops, flops == batch * c.flops),  # type: ignore[operator]
            Check(NAME, "output_shape", "NCHW, as nn.Conv2d of the target", ref, shape, shape == ref),
        ]

    def timer(self, device: str, dtype: str, threads: int, batch: int) -> TorchTimer:
        """A :class:`TorchTimer`."""
        return TorchTimer(device, dtype, threads, batch)


BACKEND = TorchBackend()
"""The PyTorch :class:`~osc_design.backends.Backend`."""
