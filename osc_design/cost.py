"""Exact integer cost model of layer specs, with every convention spelled out.

=============  ==================================================================================
field          meaning
=============  ==================================================================================
params         weights: conv kernels ``C_out * C_in/g * kh * kw``; batch norm scale+shift ``2C``
bias_params    conv biases, ``C_out`` per conv with ``bias``
macs           multiply-accumulates over every output position and every kernel tap, padding
               taps included (fvcore / thop / ptflops / torchinfo convention)
macs_valid     only the taps that land on a real (non-padding) input pixel (XLA / JAX convention)
bias_adds      one addition per output element of a conv with bias
adds           element-wise additions of ``add`` nodes: ``(k - 1) * C * H * W`` for k inputs
norm_ops       inference batch norm computed as ``x * a + b``: ``2 * C * H * W`` per batch-norm node
flops          ``2 * macs`` (``torch.utils.flop_counter.FlopCounterMode`` convention)
flops_valid    ``2 * macs_valid``
xla_flops      ``2 * macs_valid - xla_multiplies + bias_adds + adds + norm_ops``: what ``jax``
               ``jit(f).lower(x).compile().cost_analysis()["flops"]`` reports per sample (XLA adds
               ``4 * C`` per batch-norm node and call, independent of the batch: :func:`xla_flops`
               includes it)
=============  ==================================================================================

XLA's algebraic simplifier rewrites a conv into an element-wise multiply, counted 1 flop per output
element instead of 2 per MAC, exactly when the conv is **depthwise 1x1 with one channel per group**:
``in_channels == out_channels == groups``, kernel 1x1, stride 1, dilation 1 and no padding (see
:func:`xla_rewrites_to_multiply`). Bias (added after the conv) and the batch size do not matter; a channel
multiplier (``out_channels = m * groups``), a stride, a padding or a dilation keeps the conv a conv.
``xla_multiplies`` counts the output elements of those convs (measured with jax 0.10.2 on CPU); the
HLO before XLA's passes (``lower(x).cost_analysis()``) still counts them 2 per MAC:
``Cost.xla_flops_unoptimized``.

Permutations, slices, concatenations, shifts and identities cost nothing in any convention.
Counts are per sample (batch 1). ``macs`` and friends need an input size and are ``None`` without one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SpecError, check_type
from .geometry import check_int, valid_taps
from .ops import Add, BatchNorm, Conv2d, Node
from .spec import LayerSpec, Pair

__all__ = ["Cost", "node_cost", "cost_by_node", "cost", "xla_flops", "xla_rewrites_to_multiply"]

_FIELDS = ("params", "bias_params", "macs", "macs_valid", "bias_adds", "adds", "norm_ops")
"""The fields of :meth:`Cost.to_dict` (``xla_multiplies`` only feeds ``xla_flops``)."""


@dataclass(frozen=True)
class Cost:
    """Exact integer costs of an op or a graph (see the module docstring for each convention)."""

    params: int = 0
    bias_params: int = 0
    macs: int | None = None
    macs_valid: int | None = None
    bias_adds: int | None = None
    adds: int | None = None
    norm_ops: int | None = None
    xla_multiplies: int = 0
    """Output elements of the convs XLA computes as a multiply (see the module docstring)."""

    @property
    def total_params(self) -> int:
        """``params + bias_params``: what ``sum(p.numel() for p in module.parameters())`` gives."""
        return self.params + self.bias_params

    @property
    def flops(self) -> int | None:
        """``2 * macs`` (FlopCounterMode convention: bias ignored)."""
        return None if self.macs is None else 2 * self.macs

    @property
    def flops_valid(self) -> int | None:
        """``2 * macs_valid``."""
        return None if self.macs_valid is None else 2 * self.macs_valid

    @property
    def xla_flops_unoptimized(self) -> int | None:
        """``2 * macs_valid + bias_adds + adds + norm_ops``: ``lower(x).cost_analysis()["flops"]`` per sample,
        the HLO as written, before XLA's passes rewrite any conv."""
        if self.macs_valid is None:
            return None
        return 2 * self.macs_valid + (self.bias_adds or 0) + (self.adds or 0) + (self.norm_ops or 0)

    @property
    def xla_flops(self) -> int | None:
        """``xla_flops_unoptimized - xla_multiplies``: XLA's ``compile().cost_analysis()["flops"]`` per sample."""
        unoptimized = self.xla_flops_unoptimized
        return None if unoptimized is None else unoptimized - self.xla_multiplies

    def __add__(self, other: Cost) -> Cost:
        def plus(a: int | None, b: int | None) -> int | None:
            return None if a is None or b is None else a + b

        return Cost(self.params + other.params, self.bias_params + other.bias_params,
                    plus(self.macs, other.macs), plus(self.macs_valid, other.macs_valid),
                    plus(self.bias_adds, other.bias_adds), plus(self.adds, other.adds),
                    plus(self.norm_ops, other.norm_ops), self.xla_multiplies + other.xla_multiplies)

    def to_dict(self) -> dict[str, int | None]:
        """The counts of :data:`_FIELDS` and the derived ones, as JSON-ready integers (``None`` without an input
        size); ``xla_multiplies`` is not listed: it only feeds ``xla_flops``."""
        out: dict[str, int | None] = {name: getattr(self, name) for name in _FIELDS}
        out.update(total_params=self.total_params, flops=self.flops, flops_valid=self.flops_valid,
                   xla_flops=self.xla_flops)
        return out


def xla_rewrites_to_multiply(conv: Conv2d) -> bool:
    """Whether XLA rewrites ``conv`` into an element-wise multiply (1 flop per output element, not 2).

    The rule, measured with ``jax.jit(f).lower(x).compile().cost_analysis()["flops"]`` (jax 0.10.2, CPU):
    depthwise 1x1 with one input and one output channel per group (``in = out = groups``), stride 1,
    dilation 1, no padding; with or without bias, at any batch size.

    >>> def dw(c_out, **kw): return Conv2d(id="dw", inputs=("x",), in_channels=8, out_channels=c_out, groups=8, **kw)
    >>> xla_rewrites_to_multiply(dw(8, kernel_size=1)), xla_rewrites_to_multiply(dw(8, kernel_size=1, bias=True))
    (True, True)
    >>> xla_rewrites_to_multiply(dw(16, kernel_size=1))  # a channel multiplier keeps it a conv
    False
    >>> others = ({"stride": 2}, {"padding": 1}, {"dilation": 2})
    >>> [xla_rewrites_to_multiply(dw(8, kernel_size=1, **kw)) for kw in others]
    [False, False, False]
    """
    return (conv.kernel_size == conv.stride == conv.dilation == (1, 1) and conv.padding == (0, 0)
            and conv.in_channels == conv.out_channels == conv.groups)


def node_cost(
    node: Node, in_sizes: list[Pair] | None = None, out_size: Pair | None = None, channels: int | None = None
) -> Cost:
    """Cost of one op. Spatial counts need ``in_sizes`` and ``out_size``; ``channels`` is the op's output width."""
    check_type(node, Node, "node", "an op (an osc_design.ops node)")
    if isinstance(node, Conv2d):
        o, i_g, (kh, kw) = node.out_channels, node.in_channels // node.groups, node.kernel_size
        params = o * i_g * kh * kw
        bias = o if node.bias else 0
        if in_sizes is None or out_size is None:
            return Cost(params, bias)
        (ih, iw), (oh, ow) = in_sizes[0], out_size
        vh = valid_taps(ih, kh, node.stride[0], node.padding[0], node.dilation[0])
        vw = valid_taps(iw, kw, node.stride[1], node.padding[1], node.dilation[1])
        multiplies = o * oh * ow if xla_rewrites_to_multiply(node) else 0
        return Cost(params, bias, params * oh * ow, o * i_g * vh * vw, bias * oh * ow, 0, 0, multiplies)
    params = 2 * node.num_features if isinstance(node, BatchNorm) else 0
    if in_sizes is None or out_size is None:
        return Cost(params, 0)
    elements = out_size[0] * out_size[1]
    adds = norm = 0
    if isinstance(node, Add):
        if channels is None:
            raise SpecError("add costs need the node's channel count")
        adds = (len(node.inputs) - 1) * channels * elements
    elif isinstance(node, BatchNorm):
        norm = 2 * node.num_features * elements
    return Cost(params, 0, 0, 0, 0, adds, norm)


def cost_by_node(spec: LayerSpec, input_size: int | Pair | None = None) -> dict[str, Cost]:
    """Cost of every node of ``spec``, in topological order.

    Spatial counts use ``input_size`` or else the target's; without either they are ``None``.
    """
    check_type(spec, LayerSpec, "spec")
    has_size = input_size is not None or spec.target.input_size is not None
    sizes = spec.spatial_sizes(input_size) if has_size else None
    out: dict[str, Cost] = {}
    for nid in spec.order:
        node = spec.node_map[nid]
        if sizes is None:
            out[nid] = node_cost(node)
        else:
            out[nid] = node_cost(node, [sizes[i] for i in node.inputs], sizes[nid], spec.channels(nid))
    return out


def cost(spec: LayerSpec, input_size: int | Pair | None = None) -> Cost:
    """Total exact cost of a layer spec.

    >>> from osc_design.spec import GraphBuilder, Target
    >>> b = GraphBuilder(Target(64, 64, 3, input_size=56))
    >>> spec = b.build(b.conv2d(b.input, 64, 3, padding=1), family="conv")
    >>> c = cost(spec)
    >>> c.params, c.macs, c.macs_valid
    (36864, 115605504, 112869376)
    """
    check_type(spec, LayerSpec, "spec")
    total = Cost(0, 0) if input_size is None and spec.target.input_size is None else Cost(0, 0, 0, 0, 0, 0, 0)
    for c in cost_by_node(spec, input_size).values():
        total = total + c
    return total


def xla_flops(spec: LayerSpec, batch: int = 1, input_size: int | Pair | None = None, *,
              optimized: bool = True) -> int:
    """XLA's ``cost_analysis()["flops"]`` for a batch: ``batch * cost.xla_flops + 4 * C`` per batch-norm node.

    ``optimized``: after XLA's passes (``compile().cost_analysis()``, the default), else the HLO as lowered
    (``lower().cost_analysis()``, ``Cost.xla_flops_unoptimized``: no conv rewritten into a multiply).
    """
    check_int(batch, "batch", minimum=1)
    c = cost(spec, input_size)
    per_sample = c.xla_flops if optimized else c.xla_flops_unoptimized
    if per_sample is None:
        raise SpecError("XLA flops need an input size (on the target or as an argument)")
    per_call = sum(4 * n.num_features for n in spec.nodes if isinstance(n, BatchNorm))
    return batch * per_sample + per_call
