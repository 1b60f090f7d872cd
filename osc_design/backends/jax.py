"""JAX backend: a layer spec as a Flax NNX module (NHWC), with exact parameter and XLA FLOP checks.

Why Flax NNX rather than Linen
------------------------------
NNX is Flax's current API (Linen is in maintenance mode since Flax 0.10). An NNX module is an
ordinary Python object that owns its parameters, exactly like a ``torch.nn.Module``: it is built
eagerly with its sizes baked in (``OscDesign()`` needs no ``init(rng, x)`` call and no sample input),
weights are loaded in place from another framework, and parameters are counted by filtering the
state for ``nnx.Param``. ``nnx.split`` / ``nnx.merge`` still turn it into a pure function of
``(state, x)``, which is what ``jax.jit`` compiles for the cost analysis, with the weights as
arguments (weights baked in as constants would be folded by XLA and change the counts).

Layout and ops
--------------
Tensors are NHWC and kernels HWIO, the layout of Flax, XLA and ``nnx.Conv`` (on CPU, XLA's NHWC
convolutions measured 1.7x faster than NCHW for a 256-channel 3x3 conv at 56x56). Channel ops work
on the last axis. :class:`Conv2d` calls ``jax.lax.conv_general_dilated`` with
``feature_group_count`` and symmetric explicit padding (PyTorch's, not ``"SAME"``, which differs
for even kernels and strides); its init is PyTorch's default (uniform in ``+-1/sqrt(fan_in)``).
:class:`BatchNorm2d` is inference batch norm (running statistics), computed as ``x * a + b`` with
``a = scale / sqrt(var + eps)`` and ``b = shift - mean * a``. Shifts are ``lax.pad`` with a negative
pad on the far side; permutations gather with constant indices (the permutation is structure, not a
weight).

Each op is one entry of the op table :data:`OPS` (see :class:`osc_design.backends.program.Op`): how
:class:`SpecModule` builds and runs it, and the lines :func:`osc_design.backends.export_source` writes
for it (the helpers above are copied verbatim into the exported file). :data:`BACKEND` (a
:class:`JaxBackend`) is what :func:`osc_design.backends.get_backend` returns.

What XLA counts (``cost_analysis()["flops"]``, measured on CPU with jax 0.10.2)
------------------------------------------------------------------------------
Per op, identical before (``lower(...).cost_analysis()``) and after (``compile().cost_analysis()``)
XLA's optimisation passes:

=====================  =====================================================================
conv2d                 ``2 * C_out * C_in/groups * valid_taps_h * valid_taps_w`` per sample:
                       only taps on real input pixels (any stride, dilation, padding, groups,
                       even and rectangular kernels), i.e. ``2 * macs_valid``
conv bias              1 per output element (``bias_adds``)
add (k inputs)         ``k - 1`` per output element (``adds``)
batch_norm             2 per element and sample (multiply, add), plus ``4 C`` per call for
                       ``a`` and ``b`` (independent of the batch); ``C`` transcendentals
slice, concat, shift   0 (``slice``, ``concatenate``, ``pad`` move data)
permute, shuffle       0 (gather with constant in-range indices (``mode="clip"``: the default
                       ``"fill"`` mode adds index arithmetic before optimisation), reshape/transpose)
identity               0
=====================  =====================================================================

Whole-program effects: a node whose every output channel is sliced away is not counted (dead
code). After the passes only: a 1x1 conv with stride 1, dilation 1, no padding and one input and one
output channel per group becomes a multiply (1 flop per output, not 2; ``Cost.xla_flops`` counts it so,
``Cost.xla_flops_unoptimized`` does not: :func:`osc_design.cost.xla_multiplies`); an element-wise op (add,
batch norm, bias) whose result is read by several fused consumers is recomputed, and counted, in
each; identical adds of the same operands are merged (CSE). XLA leaves out the ``"flops"`` key when
the count is 0.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from ..cost import cost, xla_flops
from ..errors import OscDesignError, SpecError
from ..ops import BatchNorm, Conv2d as ConvOp
from ..spec import LayerSpec, Pair
from . import usable_cpus
from .program import FLAX_BATCH_NORM, Op, Step, op_of, program, resolve_input_size
from .report import Check

__all__ = [
    "OPS",
    "BACKEND",
    "JaxBackend",
    "Conv2d",
    "BatchNorm2d",
    "SpecModule",
    "build_module",
    "shift2d",
    "channel_shuffle",
    "permute_channels",
    "count_params",
    "count_flops",
    "xla_flop_counts",
    "output_shape",
    "cost_analysis_flops",
    "reference_output_shape",
    "get_weights",
    "set_weights",
]

NAME = "jax"
LAYOUT = "NHWC"

# What osc_design.backends.export writes around the op lines; read from this file's text (not imported),
# so literals only. The class template is filled with the target's fields, ``family`` and ``class_name``.
SOURCE = {
    "title": "JAX / Flax NNX",
    "needs": "jax, flax and numpy",
    "layout": "NHWC input (N, H, W, C_in), HWIO kernels (kh, kw, I/groups, O); jax.lax.conv_general_dilated",
    "imports": ("from __future__ import annotations", "", "import math", "from collections.abc import Sequence",
                "from typing import Any", "", "import jax", "import jax.numpy as jnp", "import numpy as np",
                "from flax import nnx", "from jax import lax"),
    "helpers": ("shift2d", "channel_shuffle", "permute_channels", "Conv2d", "BatchNorm2d"),
    "class": (
        "class {class_name}(nnx.Module):",
        '    """{family} replacement of a {in_channels} -> {out_channels} convolution, '
        "kernel {kernel_size}, stride {stride}, padding {padding}.",
        "",
        "    Input ``(N, H, W, C_in)`` (NHWC), output ``(N, H_out, W_out, C_out)``. Batch norms use their running",
        "    statistics (inference).",
        '    """',
        "",
        "    def __init__(self, *, rngs: nnx.Rngs | None = None, dtype: jnp.dtype = jnp.float32) -> None:",
        "        rngs = nnx.Rngs(0) if rngs is None else rngs",
    ),
    "call": "    def __call__(self, {x}: jax.Array) -> jax.Array:",
}


def shift2d(x: jax.Array, dy: int, dx: int) -> jax.Array:
    """Zero-filled spatial shift of an NHWC array: ``out[:, y, x, :] = x[:, y - dy, x - dx, :]``."""
    h, w = x.shape[1], x.shape[2]
    dy, dx = max(-h, min(h, dy)), max(-w, min(w, dx))
    return lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (dy, -dy, 0), (dx, -dx, 0), (0, 0, 0)))


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
    """ShuffleNet channel shuffle on the last axis: output channel ``j`` is input ``(j % g) * (C / g) + j // g``."""
    c = x.shape[-1]
    return x.reshape(*x.shape[:-1], groups, c // groups).swapaxes(-1, -2).reshape(x.shape)


def permute_channels(x: jax.Array, perm: Sequence[int]) -> jax.Array:
    """Channel permutation on the last axis: output channel ``j`` is input channel ``perm[j]``."""
    return jnp.take(x, np.asarray(perm, dtype=np.int32), axis=-1, mode="clip")


class Conv2d(nnx.Module):
    """``torch.nn.Conv2d`` on NHWC inputs: HWIO kernel, ``jax.lax.conv_general_dilated`` with groups.

    The kernel has shape ``(kh, kw, in_channels // groups, out_channels)``; weights and bias are drawn
    uniformly from ``+-1/sqrt(fan_in)`` (PyTorch's default init), by numpy from a seed taken from
    ``rngs.params()`` (``jax.random`` compiles its generator for every new shape: seconds per kernel
    shape on CPU). Padding is symmetric and explicit.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], *,
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1, bias: bool = False,
                 rngs: nnx.Rngs, dtype: Any = jnp.float32) -> None:
        kh, kw = kernel_size
        bound = 1.0 / math.sqrt(in_channels // groups * kh * kw)  # 1 / sqrt(fan_in)
        # numpy draws from a seed taken from ``rngs``: jax.random would compile anew for every kernel shape
        gen = np.random.default_rng(np.asarray(jax.random.key_data(rngs.params())))
        kernel = gen.uniform(-bound, bound, (kh, kw, in_channels // groups, out_channels))
        self.kernel = nnx.Param(jnp.asarray(kernel, dtype))
        self.bias = nnx.Param(jnp.asarray(gen.uniform(-bound, bound, out_channels), dtype)) if bias else None
        self.stride = tuple(stride)
        self.padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.dilation = tuple(dilation)
        self.groups = groups

    def __call__(self, x: jax.Array) -> jax.Array:
        y = lax.conv_general_dilated(
            x, self.kernel[...], self.stride, self.padding, rhs_dilation=self.dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups,
        )
        if self.bias is not None:
            y = y + self.bias[...]
        return y


class BatchNorm2d(nnx.Module):
    """Inference batch norm on the last axis: ``(x - mean) / sqrt(var + eps) * scale + bias``.

    ``scale`` and ``bias`` are parameters (``nnx.Param``), ``mean`` and ``var`` running statistics
    (``nnx.BatchStat``), initialised like ``torch.nn.BatchNorm2d`` (1, 0, 0, 1).
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, dtype: Any = jnp.float32) -> None:
        self.scale = nnx.Param(jnp.ones((num_features,), dtype))
        self.bias = nnx.Param(jnp.zeros((num_features,), dtype))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), dtype))
        self.var = nnx.BatchStat(jnp.ones((num_features,), dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        a = self.scale[...] * lax.rsqrt(self.var[...] + self.eps)
        return x * a + (self.bias[...] - self.mean[...] * a)


# ------------------------------------------------------------------------------------------ the op table


def _make_conv(module: nnx.Module, step: Step, factory: dict[str, Any]) -> None:
    n = step.node
    setattr(module, step.name, Conv2d(
        n.in_channels, n.out_channels, n.kernel_size, stride=n.stride, padding=n.padding,
        dilation=n.dilation, groups=n.groups, bias=n.bias, **factory,
    ))


def _make_batch_norm(module: nnx.Module, step: Step, factory: dict[str, Any]) -> None:
    setattr(module, step.name, BatchNorm2d(step.node.num_features, dtype=factory["dtype"]))


def _submodule(module: nnx.Module, step: Step, xs: list[jax.Array]) -> jax.Array:
    return getattr(module, step.name)(xs[0])


OPS: dict[str, Op] = {
    "conv2d": Op(
        make=_make_conv, run=_submodule, line="{name} = self.{name}({x})",
        init="self.{name} = Conv2d({in_channels}, {out_channels}, {kernel_size}, stride={stride}, "
             "padding={padding}, dilation={dilation}, groups={groups}, bias={bias}, rngs=rngs, dtype=dtype)",
    ),
    "batch_norm": Op(
        make=_make_batch_norm, run=_submodule, line="{name} = self.{name}({x})",
        init="self.{name} = BatchNorm2d({num_features}, dtype=dtype)",
    ),
    "channel_shuffle": Op(
        run=lambda m, step, xs: channel_shuffle(xs[0], step.node.groups),
        line="{name} = channel_shuffle({x}, {groups})",
    ),
    "permute": Op(
        run=lambda m, step, xs: permute_channels(xs[0], step.node.perm),
        line="{name} = permute_channels({x}, PERMS[{name!r}])",
    ),
    "slice": Op(
        run=lambda m, step, xs: xs[0][..., step.node.start:step.node.stop],
        line="{name} = {x}[..., {start}:{stop}]",
    ),
    "concat": Op(run=lambda m, step, xs: jnp.concatenate(xs, axis=-1),
                 line="{name} = jnp.concatenate([{xs}], axis=-1)"),
    "add": Op(run=lambda m, step, xs: functools.reduce(operator.add, xs), line="{name} = {plus}"),
    "shift": Op(
        run=lambda m, step, xs: shift2d(xs[0], *step.node.shift),
        line="{name} = shift2d({x}, {shift[0]}, {shift[1]})",
    ),
    "identity": Op(run=lambda m, step, xs: xs[0], line="{name} = {x}"),
}
"""Op name -> how :class:`SpecModule` builds and runs it and what the exported source says for it."""


class SpecModule(nnx.Module):
    """A layer spec as a Flax NNX module: ``(N, H, W, C_in) -> (N, H_out, W_out, C_out)``.

    Conv and batch-norm nodes are submodules named after the node ids (as in the exported source);
    the other ops are static structure.

    Parameters
    ----------
    spec:
        The design.
    rngs:
        Random streams for the initial weights (default ``nnx.Rngs(0)``).
    dtype:
        Parameter dtype.
    """

    def __init__(self, spec: LayerSpec, *, rngs: nnx.Rngs | None = None, dtype: Any = jnp.float32) -> None:
        self._program = program(spec)
        factory = {"rngs": nnx.Rngs(0) if rngs is None else rngs, "dtype": dtype}
        for step in self._program.steps:
            make = op_of(OPS, step, "JAX").make
            if make is not None:
                make(self, step, factory)
        self.family = spec.family

    def __call__(self, x: jax.Array) -> jax.Array:
        """Run the graph on ``x`` of shape ``(N, H, W, C_in)``."""
        env = {self._program.input: x}
        for step in self._program.steps:
            env[step.name] = OPS[step.op].run(self, step, [env[i] for i in step.inputs])
        return env[self._program.output]


def build_module(spec: LayerSpec, *, seed: int = 0, dtype: Any = jnp.float32) -> SpecModule:
    """The Flax NNX module of ``spec`` (see :class:`SpecModule`), initialised from ``nnx.Rngs(seed)``."""
    return SpecModule(spec, rngs=nnx.Rngs(seed), dtype=dtype)


def count_params(module: nnx.Module) -> int:
    """Total size of the module's ``nnx.Param`` leaves (batch-norm running statistics excluded)."""
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(module, nnx.Param)))


def cost_analysis_flops(analysis: Any) -> int:
    """The ``"flops"`` of a ``Compiled.cost_analysis()`` result, whatever its form.

    jax returns a dict (current versions), a list with one dict per HLO module (older versions; the
    entries are summed) or ``None`` (backends without a cost model). XLA omits zero-valued counters,
    so a dict without ``"flops"`` means 0 flops; a negative value means "unknown".

    Raises
    ------
    OscDesignError
        When the analysis is ``None``, of an unknown type, or reports an unknown (negative) count.
    """
    where = f"(jax {jax.__version__}, backend {jax.default_backend()!r})"
    if analysis is None:
        raise OscDesignError(f"XLA cost analysis returned None {where}: this backend has no cost model")
    entries = [analysis] if isinstance(analysis, Mapping) else analysis
    if not isinstance(entries, (list, tuple)) or not all(isinstance(e, Mapping) for e in entries):
        raise OscDesignError(
            f"XLA cost analysis returned a {type(analysis).__name__} {where}; expected a dict or a list of dicts"
        )
    total = 0.0
    for entry in entries:
        flops = float(entry.get("flops", 0.0))
        if flops < 0:
            raise OscDesignError(f"XLA cost analysis reports an unknown flop count ({flops}) {where}")
        total += flops
    if total != int(total):
        raise OscDesignError(f"XLA cost analysis reports a fractional flop count {total} {where}")
    return int(total)


def _lower(module: nnx.Module, x: jax.Array | jax.ShapeDtypeStruct) -> Any:
    graphdef, state = nnx.split(module)

    def apply(state: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x)

    return jax.jit(apply).lower(state, x)


def count_flops(module: nnx.Module, x: jax.Array | jax.ShapeDtypeStruct) -> int:
    """XLA's ``jax.jit(f).lower(state, x).compile().cost_analysis()`` flops of ``module(x)``.

    The weights are arguments of ``f``, not constants. ``x`` may be an array or a ``jax.ShapeDtypeStruct``
    (nothing is executed). This is the optimised program: XLA's common-subexpression elimination and
    fusion have run (see the module docstring for when that moves the count).
    """
    return cost_analysis_flops(_lower(module, x).compile().cost_analysis())


def xla_flop_counts(module: nnx.Module, x: jax.Array | jax.ShapeDtypeStruct) -> tuple[int, int]:
    """``(compiled, unoptimized)`` XLA flops of ``module(x)``, from one lowering.

    ``compiled`` is :func:`count_flops`; ``unoptimized`` is ``lower(...).cost_analysis()``, the same
    HLO cost model on the program as written, before any XLA pass (no CSE, no fusion).
    """
    lowered = _lower(module, x)
    return cost_analysis_flops(lowered.compile().cost_analysis()), cost_analysis_flops(lowered.cost_analysis())


def output_shape(module: nnx.Module, x: jax.Array | jax.ShapeDtypeStruct) -> tuple[int, ...]:
    """Shape of ``module(x)`` (abstract evaluation: nothing is computed)."""
    graphdef, state = nnx.split(module)
    return tuple(jax.eval_shape(lambda s, v: nnx.merge(graphdef, s)(v), state, x).shape)


def reference_output_shape(spec: LayerSpec, input_size: Pair, batch: int = 1) -> tuple[int, ...]:
    """Output shape (NHWC) of the target's plain ``lax.conv_general_dilated`` on ``(batch, *input_size, C_in)``."""
    t = spec.target
    x = jax.ShapeDtypeStruct((batch, *input_size, t.in_channels), jnp.float32)
    w = jax.ShapeDtypeStruct((*t.kernel_size, t.in_channels, t.out_channels), jnp.float32)
    pad = tuple((p, p) for p in t.padding)

    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return lax.conv_general_dilated(x, w, t.stride, pad, rhs_dilation=t.dilation,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    return tuple(jax.eval_shape(conv, x, w).shape)


def _named(module: nnx.Module, spec: LayerSpec) -> dict[str, tuple[Any, bool]]:
    out = {}
    for step in program(spec).steps:
        if isinstance(step.node, (ConvOp, BatchNorm)):
            sub = getattr(module, step.name, None)
            if not isinstance(sub, nnx.Module):
                raise SpecError(f"module has no submodule {step.name!r} for node {step.node.id!r}")
            out[step.node.id] = (sub, isinstance(step.node, ConvOp))
    return out




def get_weights(module: nnx.Module, spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
    """The weights of a module of ``spec`` as ``{node id: {name: array}}`` in the canonical PyTorch layout.

    Conv kernels are transposed from HWIO to ``(O, I/groups, kh, kw)``; batch-norm ``scale``, ``bias``,
    ``mean``, ``var`` become ``weight``, ``bias``, ``running_mean``, ``running_var``
    (see :func:`osc_design.backends.torch.get_weights`).
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for nid, (sub, is_conv) in _named(module, spec).items():
        if is_conv:
            arrays = {"weight": np.asarray(sub.kernel[...]).transpose(3, 2, 0, 1).copy()}
            if sub.bias is not None:
                arrays["bias"] = np.asarray(sub.bias[...]).copy()
        else:
            arrays = {k: np.asarray(getattr(sub, v)[...]).copy() for k, v in FLAX_BATCH_NORM.items()}
        out[nid] = arrays
    return out


def set_weights(module: nnx.Module, spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Load canonical ``{node id: {name: array}}`` weights (PyTorch layout) into a module of ``spec``, in place."""
    subs = _named(module, spec)
    for nid, arrays in weights.items():
        if nid not in subs:
            raise SpecError(f"weights for {nid!r}, which is not a conv2d or batch_norm node of the spec")
        sub, is_conv = subs[nid]
        for k, value in arrays.items():
            value = np.asarray(value)
            if is_conv and k == "weight":
                var, value = sub.kernel, value.transpose(2, 3, 1, 0)
            elif is_conv and k == "bias":
                var = sub.bias
            elif not is_conv and k in FLAX_BATCH_NORM:
                var = getattr(sub, FLAX_BATCH_NORM[k])
            else:
                var = None
            if var is None:
                raise SpecError(f"node {nid!r} has no tensor {k!r}")
            if tuple(var.shape) != value.shape:
                raise SpecError(
                    f"node {nid!r}: {k!r} has shape {tuple(var.shape)}, got {value.shape} after layout change"
                )
            var[...] = jnp.asarray(value, dtype=var.dtype)


# ------------------------------------------------------------------------------------------ the backend


class JaxTimer:
    """Timed ``jax.jit`` calls of modules and of single nodes on ``device`` / ``dtype`` (see :meth:`JaxBackend.timer`).

    Each call is one compiled function of ``(state, inputs)``: the module's weights are arguments, as in
    :func:`count_flops`, on fresh standard-normal NHWC inputs of ``batch`` samples. On CPU XLA's thread pool
    is fixed at start-up (one thread per usable core), so ``threads`` must be that number.
    """

    def __init__(self, device: str, dtype: str, threads: int, batch: int) -> None:
        if device == "cuda":
            try:
                self.device = jax.devices("gpu")[0]
            except RuntimeError:
                raise SpecError("`device` 'cuda' was asked for, but jax sees no GPU") from None
        else:
            self.device = jax.devices("cpu")[0]
        if device == "cpu" and threads != usable_cpus():
            raise SpecError(
                f"`threads` (={threads}) cannot be set for JAX on CPU: XLA uses one thread per usable core "
                f"({usable_cpus()} here); run under `taskset` to change it and leave `threads` at its default"
            )
        self.dtype, self.batch = getattr(jnp, dtype), batch
        self.sync: Callable[[Any], Any] | None = jax.block_until_ready

    def __enter__(self) -> JaxTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _input(self, channels: int, size: Pair, rng: np.random.Generator) -> jax.Array:
        x = rng.standard_normal((self.batch, *size, channels))
        return jax.device_put(jnp.asarray(x, self.dtype), self.device)

    def _compiled(self, module: nnx.Module, fn: Callable[[nnx.Module, Any], Any]) -> Callable[[Any], Any]:
        graphdef, state = nnx.split(module)
        state = jax.device_put(state, self.device)
        f = jax.jit(lambda s, v: fn(nnx.merge(graphdef, s), v))
        return lambda v: f(state, v)

    def module_call(self, spec: LayerSpec, module: Any = None, seed: int = 0) -> Callable[[], Any]:
        """``module(x)`` (default :func:`build_module` of ``spec``), ``x`` of the spec's resolved input size."""
        m = build_module(spec, seed=seed, dtype=self.dtype) if module is None else module
        f = self._compiled(m, lambda mod, v: mod(v))
        x = self._input(spec.target.in_channels, resolve_input_size(spec), np.random.default_rng(seed))
        return lambda: f(x)

    def node_call(self, spec: LayerSpec, node_id: str, seed: int = 0) -> Callable[[], Any]:
        """Node ``node_id`` of :func:`build_module` of ``spec``, as its ``__call__`` runs it, on a fresh input
        per input slot (so an add of one tensor twice reads two arrays)."""
        m = build_module(spec, seed=seed, dtype=self.dtype)
        step, run = m._program.step(node_id), OPS[spec.node_map[node_id].op].run
        f = self._compiled(m, lambda mod, xs: run(mod, step, xs))
        rng, sizes = np.random.default_rng(seed), spec.spatial_sizes()
        xs = [self._input(spec.channels(i), sizes[i], rng) for i in spec.node_map[node_id].inputs]
        return lambda: f(xs)


class JaxBackend:
    """The JAX backend (an :class:`osc_design.backends.Backend`): NHWC Flax NNX modules."""

    name = NAME
    layout = LAYOUT

    build = staticmethod(build_module)
    get_weights = staticmethod(get_weights)
    set_weights = staticmethod(set_weights)

    def owns(self, module: Any) -> bool:
        """Whether ``module`` is a ``flax.nnx.Module``."""
        return isinstance(module, nnx.Module)

    def run(self, module: Any, x: np.ndarray) -> np.ndarray:
        """``module(x)`` for an NCHW float32 array (transposed to NHWC and back), at full matmul precision."""
        with jax.default_matmul_precision("highest"):  # no TF32 / bf16 passes on accelerators
            return np.asarray(module(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)

    def verify_counts(self, spec: LayerSpec, size: Pair, batch: int, *, module: Any = None,
                      seed: int = 0) -> list[Check]:
        """Parameters, XLA FLOPs (compiled and as lowered) and output shape of ``module`` (default: built)."""
        m = build_module(spec, seed=seed) if module is None else module
        c = cost(spec, size)
        x = jax.ShapeDtypeStruct((batch, *size, spec.target.in_channels), jnp.float32)
        compiled, unoptimized = xla_flop_counts(m, x)
        params, shape = count_params(m), output_shape(m, x)
        ref = reference_output_shape(spec, size, batch)
        expected, as_lowered = xla_flops(spec, batch, size), xla_flops(spec, batch, size, optimized=False)
        return [
            Check(NAME, "params", "nnx.Param sizes = params + bias_params", c.total_params, params,
                  params == c.total_params),
            Check(NAME, "xla_flops",
                  "compile().cost_analysis() flops = 2 * macs_valid - xla_multiplies + bias_adds + adds + norm_ops",
                  expected, compiled, compiled == expected),
            Check(NAME, "xla_flops_hlo", "lower().cost_analysis() flops (before XLA passes: no conv rewritten "
                  "into a multiply) = 2 * macs_valid + bias_adds + adds + norm_ops",
                  as_lowered, unoptimized, unoptimized == as_lowered),
            Check(NAME, "output_shape", "NHWC, as lax.conv_general_dilated of the target", ref, shape, shape == ref),
        ]

    def timer(self, device: str, dtype: str, threads: int, batch: int) -> JaxTimer:
        """A :class:`JaxTimer`."""
        return JaxTimer(device, dtype, threads, batch)


BACKEND = JaxBackend()
"""The JAX :class:`~osc_design.backends.Backend`."""
