"""Op keys: each primitive op of a spec at its real shapes, as a hashable, JSON-ready record.

An :class:`OpKey` names what is timed in isolation: the op kind and every size that changes its
latency (channels, groups, kernel, stride, padding, dilation, input size). Batch, dtype, device,
backend and thread count are not part of it: they key the cache *table* the op is stored in
(:class:`~osc_design.latency.cache.TableKey`). No framework is imported here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from ..ops import Add, BatchNorm, ChannelShuffle, Concat, Conv2d, Identity, Input, Node, Permute, Shift, Slice
from ..spec import GraphBuilder, LayerSpec, Pair, Target

__all__ = ["OP_KINDS", "CALL", "CALL_KEY", "BASELINE_CONV_KEY", "OpKey", "conv_key", "op_keys", "node_key", "key_spec",
           "chainable", "standard_grid"]

OP_KINDS = ("conv2d", "channel_shuffle", "permute", "slice", "concat", "add", "shift", "batch_norm")
"""The op kinds that are timed (``input`` and ``identity`` cost nothing)."""

CALL = "call"
"""Pseudo-op: one call of an empty module (the backend's fixed per-call overhead), key ``call()``."""

_INT_FIELDS = {
    "conv2d": ("in_channels", "out_channels", "groups", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "bias",
               "h", "w"),
    "channel_shuffle": ("channels", "groups", "h", "w"),
    "permute": ("channels", "h", "w"),
    "slice": ("in_channels", "width", "h", "w"),
    "concat": ("h", "w"),
    "add": ("inputs", "channels", "h", "w"),
    "shift": ("channels", "h", "w"),
    "batch_norm": ("channels", "h", "w"),
    "call": (),
}


@dataclass(frozen=True)
class OpKey:
    """One primitive op at fixed sizes (per sample: the batch belongs to the cache table).

    Attributes
    ----------
    kind : str
        One of :data:`OP_KINDS`.
    fields : tuple of (str, int or tuple of int)
        The sizes, in a fixed order per kind (``h``, ``w``: the op's *input* size). ``concat`` has a
        ``parts`` tuple of the input channel counts.

    Notes
    -----
    Sizes that do not change the work are left out on purpose: the start of a slice (a slice of
    ``width`` channels costs the same wherever it starts), the amounts of a shift (it is timed as a
    shift by one pixel on each axis) and the order of a permutation (timed with a fixed random
    permutation).
    """

    kind: str
    fields: tuple[tuple[str, Any], ...]

    def __post_init__(self) -> None:
        if self.kind not in _INT_FIELDS:
            raise SpecError(f"unknown op kind {self.kind!r}; expected one of {', '.join(OP_KINDS + (CALL,))}")
        names = tuple(k for k, _ in self.fields)
        expected = _INT_FIELDS[self.kind] + (("parts",) if self.kind == "concat" else ())
        if sorted(names) != sorted(expected):
            raise SpecError(f"op {self.kind!r} needs the fields {list(expected)}, got {list(names)}")
        fields = []
        for name in expected:
            value = dict(self.fields)[name]
            if name == "parts":
                if not isinstance(value, (list, tuple)) or len(value) < 2 or not all(
                        type(v) is int and v >= 1 for v in value):
                    raise SpecError(f"concat `parts` (={value!r}) must list two or more positive channel counts")
                value = tuple(value)
            elif type(value) is not int or value < (0 if name in ("ph", "pw", "bias") else 1):
                raise SpecError(f"op {self.kind!r}: field `{name}` (={value!r}) must be a positive integer")
            fields.append((name, value))
        object.__setattr__(self, "fields", tuple(fields))

    def __getitem__(self, name: str) -> Any:
        for k, v in self.fields:
            if k == name:
                return v
        raise KeyError(name)

    @property
    def id(self) -> str:
        """Canonical text form, the key in the cache file, e.g. ``conv2d(in_channels=256,...,w=14)``."""
        parts = []
        for k, v in self.fields:
            parts.append(f"{k}={'x'.join(map(str, v)) if isinstance(v, tuple) else v}")
        return f"{self.kind}({','.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., field: value, ...}`` with lists for tuples."""
        out: dict[str, Any] = {"kind": self.kind}
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.fields})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpKey:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or "kind" not in data:
            raise SpecError(f"an op record needs a `kind`, got {data!r}")
        return cls(data["kind"], tuple((k, v) for k, v in data.items() if k != "kind"))

    # -- derived sizes ----------------------------------------------------------------------
    @property
    def out_size(self) -> Pair:
        """``(h, w)`` of the op's output (``(0, 0)`` for the ``call`` pseudo-op)."""
        if self.kind == CALL:
            return (0, 0)
        h, w = self["h"], self["w"]
        if self.kind != "conv2d":
            return (h, w)
        oh = (h + 2 * self["ph"] - self["dh"] * (self["kh"] - 1) - 1) // self["sh"] + 1
        ow = (w + 2 * self["pw"] - self["dw"] * (self["kw"] - 1) - 1) // self["sw"] + 1
        return (oh, ow)

    @property
    def in_elements(self) -> int:
        """Elements read per sample (all inputs)."""
        if self.kind == CALL:
            return 0
        h, w = self["h"], self["w"]
        if self.kind == "conv2d" or self.kind == "slice":
            return self["in_channels"] * h * w
        if self.kind == "concat":
            return sum(self["parts"]) * h * w
        if self.kind == "add":
            return self["inputs"] * self["channels"] * h * w
        return self["channels"] * h * w

    @property
    def out_elements(self) -> int:
        """Elements written per sample."""
        h, w = self.out_size
        if self.kind == CALL:
            return 0
        if self.kind == "conv2d":
            return self["out_channels"] * h * w
        if self.kind == "slice":
            return self["width"] * h * w
        if self.kind == "concat":
            return sum(self["parts"]) * h * w
        return self["channels"] * h * w

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample (padding taps included); 0 for every op but ``conv2d``."""
        if self.kind != "conv2d":
            return 0
        oh, ow = self.out_size
        return self["out_channels"] * (self["in_channels"] // self["groups"]) * self["kh"] * self["kw"] * oh * ow

    @property
    def work(self) -> int:
        """The size interpolation scales with: MACs for a conv, elements moved for the other ops."""
        return self.macs if self.kind == "conv2d" else self.in_elements + self.out_elements

    @property
    def group_class(self) -> str:
        """``"dense"`` (one group), ``"depthwise"`` (one input channel per group) or ``"grouped"``."""
        if self.kind != "conv2d":
            return self.kind
        g, fan_in = self["groups"], self["in_channels"] // self["groups"]
        return "dense" if g == 1 else "depthwise" if fan_in == 1 else "grouped"

    @property
    def kernel_shape(self) -> str:
        """``"1x1"``, ``"kxk"`` (square), ``"kx1"``, ``"1xk"`` or ``"rect"``; ``""`` for the other ops."""
        if self.kind != "conv2d":
            return ""
        kh, kw = self["kh"], self["kw"]
        if kh == kw:
            return "1x1" if kh == 1 else "kxk"
        return "kx1" if kw == 1 else "1xk" if kh == 1 else "rect"

    @property
    def family(self) -> tuple[Any, ...]:
        """Ops that interpolate among each other: the kind, and for convs the group class, kernel shape
        (:attr:`kernel_shape`), whether strided and whether dilated."""
        if self.kind == "conv2d":
            return ("conv2d", self.group_class, self.kernel_shape, self["sh"] * self["sw"] > 1,
                    self["dh"] * self["dw"] > 1)
        return (self.kind,)

    def features(self) -> tuple[float, ...]:
        """Log sizes used to find near neighbours for interpolation.

        Work (MACs for a conv, elements moved otherwise), fan-in and fan-out per group, input pixels and
        kernel taps (0 for the ops that are not convs).
        """
        if self.kind == CALL:
            return (0.0, 0.0, 0.0, 0.0, 0.0)
        if self.kind == "conv2d":
            g = self["groups"]
            return (math.log(max(self.macs, 1)), math.log(self["in_channels"] // g),
                    math.log(self["out_channels"] // g), math.log(self["h"] * self["w"]),
                    math.log(self["kh"] * self["kw"]))
        return (math.log(max(self.work, 1)), math.log(self.in_elements), 0.0, math.log(self["h"] * self["w"]), 0.0)


def conv_key(in_channels: int, out_channels: int, kernel: int | Pair, size: int | Pair, *, groups: int = 1,
             stride: int | Pair = 1, padding: int | Pair | None = None, dilation: int | Pair = 1,
             bias: bool = False) -> OpKey:
    """The key of a conv (padding defaults to ``dilation * (k - 1) // 2``, "same" for odd kernels)."""
    from ..geometry import pair

    k, s, d, hw = pair(kernel, "kernel"), pair(stride, "stride"), pair(dilation, "dilation"), pair(size, "size")
    p = pair(padding, "padding") if padding is not None else (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
    return OpKey("conv2d", (
        ("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups), ("kh", k[0]),
        ("kw", k[1]), ("sh", s[0]), ("sw", s[1]), ("ph", p[0]), ("pw", p[1]), ("dh", d[0]), ("dw", d[1]),
        ("bias", int(bias)), ("h", hw[0]), ("w", hw[1]),
    ))


def key_spec(key: OpKey) -> tuple[LayerSpec, str]:
    """A spec holding ``key``'s op as node ``"op"``, whose inputs have the key's shapes; ``(spec, "op")``.

    What :mod:`~osc_design.latency.timing` has the backend build to time the op. The node reads the
    spec's input directly, except the parts of a concat, which are slices of it (only node ``"op"`` is
    timed, on a fresh tensor per input). A shift is by one pixel on each axis, a permutation a fixed
    random one, a slice starts at channel 0 (see :class:`OpKey`).

    >>> spec, node = key_spec(OpKey("add", (("inputs", 3), ("channels", 8), ("h", 4), ("w", 4))))
    >>> spec.node_map[node].inputs
    ('x', 'x', 'x')
    """
    if key.kind == CALL:
        raise SpecError("the call() pseudo-op has no node: it is timed as an empty module (latency.call_spec)")
    size = (key["h"], key["w"])
    if key.kind == "conv2d":
        k, d = (key["kh"], key["kw"]), (key["dh"], key["dw"])
        span = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)  # the target conv with the same output
        b = GraphBuilder(Target(key["in_channels"], key["out_channels"], span, stride=(key["sh"], key["sw"]),
                                padding=(key["ph"], key["pw"]), input_size=size))
        y = b.conv2d(b.input, key["out_channels"], k, stride=(key["sh"], key["sw"]), padding=(key["ph"], key["pw"]),
                     dilation=d, groups=key["groups"], bias=bool(key["bias"]), name="op")
        return b.build(y, family=key.kind), "op"
    c = max(key["parts"]) if key.kind == "concat" else key["in_channels"] if key.kind == "slice" else key["channels"]
    b = GraphBuilder(Target(c, c, (1, 1), input_size=size))
    x = b.input
    if key.kind == "channel_shuffle":
        y = b.channel_shuffle(x, key["groups"], name="op")
    elif key.kind == "permute":
        y = b.permute(x, [int(v) for v in np.random.default_rng(0).permutation(c)], name="op")
    elif key.kind == "slice":
        y = b.slice(x, 0, key["width"], name="op")
    elif key.kind == "concat":
        y = b.concat([b.slice(x, 0, p) for p in key["parts"]], name="op")
    elif key.kind == "add":
        y = b.add([x] * key["inputs"], name="op")
    elif key.kind == "shift":
        y = b.shift(x, (1, 1), name="op")
    else:  # batch_norm
        y = b.batch_norm(x, name="op")
    out = b.channels(y)
    return b.build(y, family=key.kind, target=Target(c, out, (1, 1), input_size=size)), "op"


@functools.lru_cache(maxsize=4096)
def chainable(key: OpKey) -> bool:
    """Whether ``key``'s op reads one tensor and gives one of the same shape, so that copies of it can run
    one after the other (what the onnxruntime timer does to time an op inside a graph).

    >>> chainable(conv_key(8, 8, 3, 5, padding=1)), chainable(conv_key(8, 16, 1, 5)), chainable(CALL_KEY)
    (True, False, False)
    """
    if key.kind == CALL:
        return False
    spec, node = key_spec(key)
    inputs = spec.node_map[node].inputs
    if len(inputs) != 1:
        return False
    sizes = spec.spatial_sizes(spec.target.input_size)
    return spec.channels(inputs[0]) == spec.channels(node) and sizes[inputs[0]] == sizes[node]


CALL_KEY = OpKey(CALL, ())
"""The key of the per-call overhead pseudo-op."""

BASELINE_CONV_KEY = conv_key(8, 8, 1, 1)
"""A tiny conv (``8 -> 8``, ``1 x 1`` at ``1 x 1``): its latency is a conv's fixed cost (JAX composition)."""

def node_key(node: Node, in_channels: Sequence[int], in_size: Pair) -> OpKey | None:
    """The key of one spec node given its inputs' channels and spatial size; ``None`` for free ops."""
    h, w = in_size
    if isinstance(node, (Input, Identity)):
        return None
    if isinstance(node, Conv2d):
        return conv_key(node.in_channels, node.out_channels, node.kernel_size, in_size, groups=node.groups,
                        stride=node.stride, padding=node.padding, dilation=node.dilation, bias=node.bias)
    c = in_channels[0]
    if isinstance(node, ChannelShuffle):
        if node.groups == 1 or node.groups == c:
            return None  # the identity permutation: a reshape (a view) in both backends
        return OpKey("channel_shuffle", (("channels", c), ("groups", node.groups), ("h", h), ("w", w)))
    if isinstance(node, Permute):
        return OpKey("permute", (("channels", c), ("h", h), ("w", w)))
    if isinstance(node, Slice):
        if node.start == 0 and node.stop == c:
            return None  # the whole tensor: a view (PyTorch), nothing (XLA)
        return OpKey("slice", (("in_channels", c), ("width", node.stop - node.start), ("h", h), ("w", w)))
    if isinstance(node, Concat):
        return OpKey("concat", (("parts", tuple(in_channels)), ("h", h), ("w", w)))
    if isinstance(node, Add):
        return OpKey("add", (("inputs", len(in_channels)), ("channels", c), ("h", h), ("w", w)))
    if isinstance(node, Shift):
        return OpKey("shift", (("channels", c), ("h", h), ("w", w)))
    if isinstance(node, BatchNorm):
        return OpKey("batch_norm", (("channels", c), ("h", h), ("w", w)))
    raise SpecError(f"node {node.id!r}: op {node.op!r} has no latency key")


def op_keys(spec: LayerSpec, input_size: int | Pair | None = None) -> list[tuple[str, OpKey | None]]:
    """``(node id, key)`` of every node of ``spec`` in topological order (``None`` for free ops).

    Raises
    ------
    SpecError
        Neither the target nor ``input_size`` gives a spatial size.
    """
    if input_size is None and spec.target.input_size is None:
        raise SpecError("latency needs an input size: give the target an `input_size` (e.g. Target(..., "
                        "input_size=14))")
    sizes = spec.spatial_sizes(input_size)
    out: list[tuple[str, OpKey | None]] = []
    for nid in spec.order:
        node = spec.node_map[nid]
        if not node.inputs:
            out.append((nid, None))
            continue
        out.append((nid, node_key(node, [spec.channels(i) for i in node.inputs], sizes[node.inputs[0]])))
    return out


def _dedupe(keys: Iterable[OpKey]) -> list[OpKey]:
    seen: dict[str, OpKey] = {}
    for k in keys:
        seen.setdefault(k.id, k)
    return list(seen.values())


def standard_grid(*, channels: Sequence[int] = (32, 64, 128, 256, 512, 1024), kernels: Sequence[int] = (3, 5, 7,
                  11, 15), sizes: Sequence[int] = (7, 14, 28, 56), max_macs: int = 400_000_000) -> list[OpKey]:
    """The primitive ops :func:`~osc_design.latency.calibrate` measures by default.

    Per channel count ``C`` and input size ``S`` (square, ``C -> C``, "same" padding, stride 1):

    * dense convs ``1 x 1`` and ``k x k`` / ``k x 1`` / ``1 x k`` for each kernel;
    * depthwise convs ``k x k``, ``k x 1``, ``1 x k``;
    * grouped convs with ``C / g`` in ``{4, 16, 64}`` channels per group, ``1 x 1``, ``k x 1``, ``1 x k``;
    * channel shuffle (``g = 4, 16``), permutation, a half-width slice, a two-way concat and add, a shift.

    Convs of more than ``max_macs`` MACs per sample (about 0.5 s per batch-8 run on two CPU cores at the
    default) are left out. Sizes between grid points are interpolated (see
    :class:`~osc_design.latency.LatencyModel`).
    """
    keys: list[OpKey] = []
    for s in sizes:
        for c in channels:
            convs = [conv_key(c, c, 1, s)]
            for k in kernels:
                if k > 2 * s + 1:
                    continue
                convs += [conv_key(c, c, k, s), conv_key(c, c, (k, 1), s), conv_key(c, c, (1, k), s)]
                convs += [conv_key(c, c, kk, s, groups=c) for kk in (k, (k, 1), (1, k))]
            for per in (4, 16, 64):
                if per < c and c % per == 0:
                    g = c // per
                    convs += [conv_key(c, c, 1, s, groups=g)]
                    convs += [conv_key(c, c, kk, s, groups=g) for k in kernels if k <= 2 * s + 1
                              for kk in ((k, 1), (1, k))]
            keys += [k for k in convs if k.macs <= max_macs]
            for g in (4, 16):
                if g < c:
                    keys.append(OpKey("channel_shuffle", (("channels", c), ("groups", g), ("h", s), ("w", s))))
            keys.append(OpKey("permute", (("channels", c), ("h", s), ("w", s))))
            keys.append(OpKey("slice", (("in_channels", c), ("width", c // 2), ("h", s), ("w", s))))
            keys.append(OpKey("concat", (("parts", (c // 2, c // 2)), ("h", s), ("w", s))))
            keys.append(OpKey("add", (("inputs", 2), ("channels", c), ("h", s), ("w", s))))
            keys.append(OpKey("shift", (("channels", c), ("h", s), ("w", s))))
    return _dedupe(keys)
