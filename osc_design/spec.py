"""Targets and layer specs: one design that replaces one convolution, as a validated dataflow graph."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import SpecError, check_type
from .geometry import check_int, conv_output_pair, pair
from .ops import (
    Add, BatchNorm, ChannelShuffle, Concat, Conv2d, Identity, Input, Node, Permute, Shift, Slice,
)

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = ["Target", "LayerSpec", "GraphBuilder"]

Pair = tuple[int, int]


@dataclass(frozen=True, init=False)
class Target:
    """The convolution a design replaces: ``in_channels -> out_channels``, ``kernel_size``, ``stride``.

    ``kernel_size``, ``stride``, ``padding`` and ``input_size`` accept an int or an ``(h, w)`` pair and are
    stored as pairs. ``padding`` defaults to ``(kh // 2, kw // 2)`` (PyTorch's usual choice; "same" for odd
    kernels at stride 1). ``input_size`` ``(h, w)`` is optional: parameters need none, MACs do.

    >>> t = Target(256, 256, 7, input_size=14)
    >>> t.kernel_size, t.padding, t.output_size
    ((7, 7), (3, 3), (14, 14))
    >>> t == Target(256, 256, (7, 7), stride=1, padding=3, input_size=(14, 14))
    True

    ``dilation`` (default 1) spreads the window: kernel tap ``t`` sits at input offset ``dilation * t -
    padding`` (a dilated target: a design must cover those taps; the families and the solver design
    undilated targets; :func:`osc_design.networks.plan.dilate` dilates their designs).
    """

    in_channels: int
    out_channels: int
    kernel_size: Pair
    stride: Pair
    padding: Pair
    input_size: Pair | None
    dilation: Pair = field(default=(1, 1), repr=False)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Pair,
        stride: int | Pair = 1,
        padding: int | Pair | None = None,
        input_size: int | Pair | None = None,
        dilation: int | Pair = 1,
    ) -> None:
        check_int(in_channels, "in_channels", minimum=1)
        check_int(out_channels, "out_channels", minimum=1)
        kernel = pair(kernel_size, "kernel_size", minimum=1)
        values = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "kernel_size": kernel,
            "stride": pair(stride, "stride", minimum=1),
            "padding": pair((kernel[0] // 2, kernel[1] // 2) if padding is None else padding, "padding", minimum=0),
            "input_size": None if input_size is None else pair(input_size, "input_size", minimum=1),
            "dilation": pair(dilation, "dilation", minimum=1),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        if self.input_size is not None and min(out := self._out(self.input_size)) < 1:
            raise SpecError(f"`input_size` (={self.input_size}) is too small for kernel {kernel} (output {out})")

    def _out(self, size: Pair) -> Pair:
        return conv_output_pair(size, self.kernel_size, self.stride, self.padding, self.dilation)

    @property
    def output_size(self) -> Pair | None:
        """``(h, w)`` of the target's output, or ``None`` without an input size."""
        return None if self.input_size is None else self._out(self.input_size)

    def with_input_size(self, input_size: int | Pair | None) -> Target:
        """A copy with another input size."""
        return Target(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding, input_size,
                      self.dilation)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with explicit integers."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "input_size": None if self.input_size is None else list(self.input_size),
            **({} if self.dilation == (1, 1) else {"dilation": list(self.dilation)}),
        }

    def describe(self) -> str:
        """Short human form, e.g. ``256->256 k7x7 s1 @14x14``."""
        kh, kw = self.kernel_size
        s = f"{self.in_channels}->{self.out_channels} k{kh}x{kw}"
        if self.stride != (1, 1):
            s += f" s{self.stride[0]}" if self.stride[0] == self.stride[1] else f" s{self.stride[0]}x{self.stride[1]}"
        if self.dilation != (1, 1):
            d = self.dilation
            s += f" d{d[0]}" if d[0] == d[1] else f" d{d[0]}x{d[1]}"
        if self.input_size is not None:
            s += f" @{self.input_size[0]}x{self.input_size[1]}"
        return s


def check_undilated(target: Target, what: str) -> None:
    """Raise :class:`SpecError` for a dilated ``target`` where ``what`` designs only undilated ones."""
    if target.dilation != (1, 1):
        d = "x".join(map(str, target.dilation))
        raise SpecError(f"`target` has dilation {d}: {what} designs undilated targets; design the undilated target "
                        "and spread it over the dilated window with osc_design.networks.plan.dilate (as network "
                        "planning does)")


def _freeze_options(options: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    if options is None:
        return ()
    items = []
    for key in sorted(options):
        value = options[key]
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool, tuple, type(None))):
            raise SpecError(f"option {key!r} (={value!r}) must be a string key with a JSON scalar or list value")
        items.append((key, value))
    return tuple(items)


def _ancestors(by_id: dict[str, Node], output: str) -> set[str]:
    """``output`` and every node it (transitively) reads."""
    needed, stack = set(), [output]
    while stack:
        nid = stack.pop()
        if nid not in needed and nid in by_id:
            needed.add(nid)
            stack.extend(by_id[nid].inputs)
    return needed


def _propagate(by_id: dict[str, Node], order: list[str]) -> tuple[dict[str, int], dict[str, Pair]]:
    """Channels and cumulative stride of every node, in topological ``order``; branches that meet must agree."""
    channels: dict[str, int] = {}
    strides: dict[str, Pair] = {}
    for nid in order:
        node = by_id[nid]
        channels[nid] = node.out_channels_from([channels[i] for i in node.inputs])
        in_strides = {strides[i] for i in node.inputs} or {(1, 1)}
        if len(in_strides) != 1:
            raise SpecError(f"node {nid!r} ({node.op}): inputs arrive at different strides {sorted(in_strides)}")
        (s,) = in_strides
        f = node.stride_factor()
        strides[nid] = (s[0] * f[0], s[1] * f[1])
    return channels, strides


@dataclass(frozen=True)
class LayerSpec:
    """One design for a :class:`Target`: a DAG of ops with one input and one output node.

    Validated on construction: unique ids, known inputs, no cycles, one input node, every node
    on a path to ``output``, channel counts consistent along every edge, the graph's input and
    output channels equal to the target's, and the same cumulative stride on every branch that
    meets (equal to the target's stride at the output). With an ``input_size`` on the target,
    spatial sizes are checked too (branches that meet agree; the output matches the target's).

    Nodes keep the order given; ``family`` names the builder, ``options`` its settings.
    """

    target: Target
    nodes: tuple[Node, ...]
    output: str
    family: str = "custom"
    options: tuple[tuple[str, Any], ...] = field(default=())
    # derived by the validation in __post_init__; not part of the value (equality, hash, repr)
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _channels: dict[str, int] = field(init=False, repr=False, compare=False)
    _strides: dict[str, Pair] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.target, Target):
            raise SpecError("`target` must be a Target")
        if not isinstance(self.family, str) or not self.family:
            raise SpecError(f"`family` (={self.family!r}) must be a non-empty string")
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not isinstance(self.options, tuple):
            object.__setattr__(self, "options", _freeze_options(self.options))
        self._check()

    # -- validation ------------------------------------------------------------------
    def _check(self) -> None:
        by_id, consumers = self._index_nodes()
        order = self._topological_order(by_id, consumers)
        needed = _ancestors(by_id, self.output)
        unused = [n.id for n in self.nodes if n.id not in needed]
        if unused:
            raise SpecError(f"nodes {unused} do not lead to the output {self.output!r}")
        channels, strides = _propagate(by_id, order)
        object.__setattr__(self, "_order", tuple(order))
        object.__setattr__(self, "_channels", channels)
        object.__setattr__(self, "_strides", strides)
        self._check_target()

    def _check_target(self) -> None:
        """The graph's input and output channels, total stride and (with an input size) output size."""
        t, stride = self.target, self.cumulative_stride(self.output)
        c_in, c_out = self.channels(self.input), self.channels(self.output)
        if c_in != t.in_channels:
            raise SpecError(f"input node has {c_in} channels, target `in_channels` is {t.in_channels}")
        if c_out != t.out_channels:
            raise SpecError(f"output node has {c_out} channels, target `out_channels` is {t.out_channels}")
        if stride != t.stride:
            raise SpecError(f"the graph's total stride {stride} differs from the target's {t.stride}")
        if t.input_size is not None and (size := self.spatial_sizes()[self.output]) != t.output_size:
            raise SpecError(f"the graph's output size {size} differs from the target's {t.output_size}")

    def _index_nodes(self) -> tuple[dict[str, Node], dict[str, list[str]]]:
        """Node id -> node and node id -> ids of the nodes reading it; ids, inputs and the output checked."""
        by_id: dict[str, Node] = {}
        for node in self.nodes:
            if not isinstance(node, Node):
                raise SpecError(f"graph node {node!r} is not an op")
            if node.id in by_id:
                raise SpecError(f"duplicate node id {node.id!r}")
            by_id[node.id] = node
        inputs = [n for n in self.nodes if isinstance(n, Input)]
        if len(inputs) != 1:
            raise SpecError(f"the graph needs exactly one `input` node, found {len(inputs)}")
        if self.output not in by_id:
            raise SpecError(f"`output` (={self.output!r}) is not a node id")
        consumers: dict[str, list[str]] = {nid: [] for nid in by_id}
        for node in self.nodes:
            for src in node.inputs:
                if src not in by_id:
                    raise SpecError(f"node {node.id!r}: input {src!r} is not a node id")
                consumers[src].append(node.id)
        return by_id, consumers

    def _topological_order(self, by_id: dict[str, Node], consumers: dict[str, list[str]]) -> list[str]:
        """Kahn's algorithm, ties broken by position in ``nodes``; a cycle is reported by its nodes."""
        import heapq

        position = {n.id: i for i, n in enumerate(self.nodes)}
        waiting = {nid: len(node.inputs) for nid, node in by_id.items()}
        ready = [position[nid] for nid, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            nid = self.nodes[heapq.heappop(ready)].id
            order.append(nid)
            for dst in consumers[nid]:
                waiting[dst] -= 1
                if waiting[dst] == 0:
                    heapq.heappush(ready, position[dst])
        if len(order) < len(by_id):
            import networkx as nx

            stuck = nx.DiGraph((src, n.id) for n in self.nodes for src in n.inputs)
            cycle = nx.find_cycle(stuck)
            raise SpecError("the graph has a cycle: " + " -> ".join(e[0] for e in cycle) + f" -> {cycle[0][0]}")
        return order

    # -- derived views ---------------------------------------------------------------
    @property
    def graph(self) -> nx.DiGraph:
        """The dataflow graph as a networkx ``DiGraph`` over node ids, each node carrying its ``op``."""
        import networkx as nx

        g = nx.DiGraph()
        for node in self.nodes:
            g.add_node(node.id, op=node.op)
            g.add_edges_from((src, node.id) for src in node.inputs)
        return g

    @cached_property
    def node_map(self) -> dict[str, Node]:
        """Node id -> node."""
        return {n.id: n for n in self.nodes}

    @property
    def order(self) -> tuple[str, ...]:
        """Node ids in a topological order (ties broken by position in ``nodes``)."""
        return self._order

    @property
    def input(self) -> str:
        """Id of the input node."""
        return next(n.id for n in self.nodes if isinstance(n, Input))

    def channels(self, node_id: str) -> int:
        """Channels produced by a node."""
        return self._channels[node_id]

    def cumulative_stride(self, node_id: str) -> Pair:
        """Product of the strides between the graph input and this node's output, per axis."""
        return self._strides[node_id]

    def spatial_sizes(self, input_size: int | Pair | None = None) -> dict[str, Pair]:
        """``(h, w)`` of every node's output for ``input_size`` (default: the target's)."""
        size = self.target.input_size if input_size is None else pair(input_size, "input_size", minimum=1)
        if size is None:
            raise SpecError("spatial sizes need an `input_size` (on the target or as an argument)")
        sizes: dict[str, Pair] = {}
        for nid in self.order:
            node = self.node_map[nid]
            sizes[nid] = size if not node.inputs else node.out_size_from([sizes[i] for i in node.inputs])
        return sizes

    @property
    def convs(self) -> list[Conv2d]:
        """The conv2d nodes in topological order."""
        return [n for nid in self.order if isinstance(n := self.node_map[nid], Conv2d)]

    @property
    def stages(self) -> int:
        """Depth in convolutions: the largest number of conv2d ops on one input-to-output path."""
        depth: dict[str, int] = {}
        for nid in self.order:
            node = self.node_map[nid]
            d = max((depth[i] for i in node.inputs), default=0)
            depth[nid] = d + isinstance(node, Conv2d)
        return depth[self.output]

    @property
    def options_dict(self) -> dict[str, Any]:
        """The family options as a plain dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.options}


class GraphBuilder:
    """Small helper to write spec graphs: each method appends a node and returns its id.

    >>> b = GraphBuilder(Target(8, 8, 3))
    >>> y = b.conv2d(b.input, 8, (3, 1), padding=(1, 0), groups=2)
    >>> y = b.channel_shuffle(y, 2)
    >>> y = b.conv2d(y, 8, (1, 3), padding=(0, 1), groups=2)
    >>> spec = b.build(y, family="example")
    >>> spec.stages
    2
    """

    def __init__(self, target: Target, input_id: str = "x") -> None:
        check_type(target, Target, "target")
        self.target = target
        self.nodes: list[Node] = [Input(id=input_id, channels=target.in_channels)]
        self._channels: dict[str, int] = {input_id: target.in_channels}
        self.input = input_id
        self._count: dict[str, int] = {}

    def _add(self, cls: type[Node], prefix: str, inputs: tuple[str, ...], name: str | None, **kw: Any) -> str:
        if name is None:
            self._count[prefix] = self._count.get(prefix, 0) + 1
            name = f"{prefix}{self._count[prefix]}"
        node = cls(id=name, inputs=inputs, **kw)
        self._channels[name] = node.out_channels_from([self._channels[i] for i in inputs])
        self.nodes.append(node)
        return name

    def channels(self, node_id: str) -> int:
        """Channels of an already added node."""
        return self._channels[node_id]

    def conv2d(
        self,
        x: str,
        out_channels: int,
        kernel_size: int | Pair,
        *,
        stride: int | Pair = 1,
        padding: int | Pair = 0,
        dilation: int | Pair = 1,
        groups: int = 1,
        bias: bool = False,
        name: str | None = None,
    ) -> str:
        return self._add(
            Conv2d, "conv", (x,), name, in_channels=self._channels[x], out_channels=out_channels,
            kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
        )

    def channel_shuffle(self, x: str, groups: int, *, name: str | None = None) -> str:
        return self._add(ChannelShuffle, "shuffle", (x,), name, groups=groups)

    def permute(self, x: str, perm: tuple[int, ...] | list[int], *, name: str | None = None) -> str:
        return self._add(Permute, "perm", (x,), name, perm=tuple(perm))

    def slice(self, x: str, start: int, stop: int, *, name: str | None = None) -> str:
        return self._add(Slice, "slice", (x,), name, start=start, stop=stop)

    def concat(self, xs: list[str], *, name: str | None = None) -> str:
        return self._add(Concat, "concat", tuple(xs), name)

    def add(self, xs: list[str], *, name: str | None = None) -> str:
        return self._add(Add, "add", tuple(xs), name)

    def shift(self, x: str, shift: int | Pair, *, name: str | None = None) -> str:
        return self._add(Shift, "shift", (x,), name, shift=shift)

    def identity(self, x: str, *, name: str | None = None) -> str:
        return self._add(Identity, "identity", (x,), name)

    def batch_norm(self, x: str, *, name: str | None = None) -> str:
        return self._add(BatchNorm, "bn", (x,), name, num_features=self._channels[x])

    def build(
        self, output: str, *, family: str = "custom", options: Mapping[str, Any] | None = None,
        target: Target | None = None,
    ) -> LayerSpec:
        """Validate and return the :class:`LayerSpec` ending at ``output`` (nodes it does not need are left out).

        ``target`` replaces the builder's target (same ``in_channels``), e.g. once the output width is known.
        """
        needed = _ancestors({n.id: n for n in self.nodes}, output)
        nodes = tuple(n for n in self.nodes if n.id in needed)
        return LayerSpec(target or self.target, nodes, output, family, _freeze_options(options))
