"""The primitive ops of a layer-spec graph (NCHW tensors), each an immutable, validated record.

Every op knows three things about itself, all from explicit integer fields:
how many channels it outputs, how it moves the spatial grid (stride, size), and what it
serialises to. Costs live in :mod:`osc_design.cost`, dependence in :mod:`osc_design.coverage`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .errors import SpecError
from .geometry import check_int, conv_output_pair, pair

__all__ = [
    "Node",
    "Input",
    "Conv2d",
    "ChannelShuffle",
    "Permute",
    "Slice",
    "Concat",
    "Add",
    "Shift",
    "Identity",
    "BatchNorm",
    "OPS",
    "shuffle_permutation",
]


def shuffle_permutation(channels: int, groups: int) -> tuple[int, ...]:
    """The ShuffleNet channel shuffle as a permutation: output channel ``j`` reads input ``perm[j]``.

    ``x.view(n, groups, channels // groups, h, w).transpose(1, 2).reshape(n, channels, h, w)``.

    >>> shuffle_permutation(6, 2)
    (0, 3, 1, 4, 2, 5)
    """
    per = channels // groups
    return tuple((j % groups) * per + j // groups for j in range(channels))


@dataclass(frozen=True, kw_only=True)
class Node:
    """Base of all ops: a unique ``id`` and the ids of the nodes it reads, in order."""

    op: ClassVar[str] = ""
    arity: ClassVar[int | None] = 1  # None: two or more inputs
    id: str
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SpecError(f"node `id` (={self.id!r}) must be a non-empty string")
        inputs = self.inputs
        if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)):
            raise SpecError(f"node {self.id!r}: `inputs` (={inputs!r}) must be a list of node ids")
        if not all(isinstance(i, str) for i in inputs):
            raise SpecError(f"node {self.id!r}: `inputs` (={list(inputs)!r}) must hold node ids (strings)")
        object.__setattr__(self, "inputs", tuple(inputs))
        if self.arity is None and len(inputs) < 2:
            raise SpecError(f"node {self.id!r} ({self.op}): needs at least 2 inputs, got {len(inputs)}")
        if self.arity is not None and len(inputs) != self.arity:
            raise SpecError(f"node {self.id!r} ({self.op}): needs {self.arity} input(s), got {len(inputs)}")
        self._validate()

    def _validate(self) -> None:
        """Field checks of the concrete op (called on construction)."""

    def _fail(self, msg: str) -> SpecError:
        return SpecError(f"node {self.id!r} ({self.op}): {msg}")

    # -- graph semantics -------------------------------------------------------------
    def out_channels_from(self, in_channels: list[int]) -> int:
        """Channels produced, given the channels of each input (validates consistency)."""
        return in_channels[0]

    def out_size_from(self, in_sizes: list[tuple[int, int]]) -> tuple[int, int]:
        """Spatial size produced, given the (h, w) of each input."""
        return in_sizes[0]

    def stride_factor(self) -> tuple[int, int]:
        """How much this op multiplies the cumulative stride of its input grid."""
        return (1, 1)

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``id``, ``op``, ``inputs`` then the op's own fields, in declaration order."""
        out: dict[str, Any] = {"id": self.id, "op": self.op, "inputs": list(self.inputs)}
        for f in fields(self):
            if f.name in ("id", "inputs"):
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True, kw_only=True)
class Input(Node):
    """The graph's single input tensor with ``channels`` channels."""

    op: ClassVar[str] = "input"
    arity: ClassVar[int | None] = 0
    channels: int

    def _validate(self) -> None:
        check_int(self.channels, f"{self.id}.channels", minimum=1)

    def out_channels_from(self, in_channels: list[int]) -> int:
        return self.channels


@dataclass(frozen=True, kw_only=True)
class Conv2d(Node):
    """A (grouped, strided, dilated, zero-padded) 2-D convolution, as ``torch.nn.Conv2d``."""

    op: ClassVar[str] = "conv2d"
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False

    def _validate(self) -> None:
        p = self.id
        check_int(self.in_channels, f"{p}.in_channels", minimum=1)
        check_int(self.out_channels, f"{p}.out_channels", minimum=1)
        check_int(self.groups, f"{p}.groups", minimum=1)
        for name, minimum in (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            object.__setattr__(self, name, pair(getattr(self, name), f"{p}.{name}", minimum=minimum))
        if not isinstance(self.bias, bool):
            raise self._fail(f"`bias` (={self.bias!r}) must be true or false")
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) % self.groups:
                raise self._fail(
                    f"`groups` (={self.groups}) must divide `{name}` (={getattr(self, name)})"
                )

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """``(out_channels, in_channels // groups, kh, kw)``, the torch weight layout."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def out_channels_from(self, in_channels: list[int]) -> int:
        if in_channels[0] != self.in_channels:
            raise self._fail(
                f"`in_channels` (={self.in_channels}) but its input {self.inputs[0]!r} has {in_channels[0]} channels"
            )
        return self.out_channels

    def out_size_from(self, in_sizes: list[tuple[int, int]]) -> tuple[int, int]:
        h, w = conv_output_pair(in_sizes[0], self.kernel_size, self.stride, self.padding, self.dilation)
        if h < 1 or w < 1:
            raise self._fail(f"input of size {in_sizes[0]} is too small for its kernel (output {h}x{w})")
        return (h, w)

    def stride_factor(self) -> tuple[int, int]:
        return self.stride


@dataclass(frozen=True, kw_only=True)
class ChannelShuffle(Node):
    """ShuffleNet channel shuffle with ``groups`` groups (see :func:`shuffle_permutation`)."""

    op: ClassVar[str] = "channel_shuffle"
    groups: int

    def _validate(self) -> None:
        check_int(self.groups, f"{self.id}.groups", minimum=1)

    def out_channels_from(self, in_channels: list[int]) -> int:
        if in_channels[0] % self.groups:
            raise self._fail(f"`groups` (={self.groups}) must divide its input's {in_channels[0]} channels")
        return in_channels[0]


@dataclass(frozen=True, kw_only=True)
class Permute(Node):
    """General channel permutation: output channel ``j`` is input channel ``perm[j]``."""

    op: ClassVar[str] = "permute"
    perm: tuple[int, ...]

    def _validate(self) -> None:
        if not isinstance(self.perm, (list, tuple)) or not all(type(v) is int for v in self.perm):
            raise self._fail("`perm` must be a list of integers")
        perm = tuple(self.perm)
        if sorted(perm) != list(range(len(perm))):
            raise self._fail(f"`perm` must be a permutation of 0..{len(perm) - 1}")
        object.__setattr__(self, "perm", perm)

    def out_channels_from(self, in_channels: list[int]) -> int:
        if len(self.perm) != in_channels[0]:
            raise self._fail(f"`perm` has {len(self.perm)} entries but its input has {in_channels[0]} channels")
        return in_channels[0]


@dataclass(frozen=True, kw_only=True)
class Slice(Node):
    """Channels ``start:stop`` of its input."""

    op: ClassVar[str] = "slice"
    start: int
    stop: int

    def _validate(self) -> None:
        check_int(self.start, f"{self.id}.start", minimum=0)
        check_int(self.stop, f"{self.id}.stop", minimum=1)
        if self.stop <= self.start:
            raise self._fail(f"`stop` (={self.stop}) must be greater than `start` (={self.start})")

    def out_channels_from(self, in_channels: list[int]) -> int:
        if self.stop > in_channels[0]:
            raise self._fail(f"`stop` (={self.stop}) exceeds its input's {in_channels[0]} channels")
        return self.stop - self.start


def _same_sizes(node: Node, in_sizes: list[tuple[int, int]]) -> tuple[int, int]:
    if len(set(in_sizes)) != 1:
        raise node._fail(f"inputs have different spatial sizes {in_sizes}")
    return in_sizes[0]


@dataclass(frozen=True, kw_only=True)
class Concat(Node):
    """Channel concatenation of its inputs, in order."""

    op: ClassVar[str] = "concat"
    arity: ClassVar[int | None] = None

    def out_channels_from(self, in_channels: list[int]) -> int:
        return sum(in_channels)

    def out_size_from(self, in_sizes: list[tuple[int, int]]) -> tuple[int, int]:
        return _same_sizes(self, in_sizes)


@dataclass(frozen=True, kw_only=True)
class Add(Node):
    """Element-wise sum of two or more inputs of identical shape."""

    op: ClassVar[str] = "add"
    arity: ClassVar[int | None] = None

    def out_channels_from(self, in_channels: list[int]) -> int:
        if len(set(in_channels)) != 1:
            raise self._fail(f"inputs have different channel counts {in_channels}")
        return in_channels[0]

    def out_size_from(self, in_sizes: list[tuple[int, int]]) -> tuple[int, int]:
        return _same_sizes(self, in_sizes)


@dataclass(frozen=True, kw_only=True)
class Shift(Node):
    """Spatial shift with zero fill: ``out[:, :, y, x] = in[:, :, y - dy, x - dx]``, ``shift = (dy, dx)``."""

    op: ClassVar[str] = "shift"
    shift: tuple[int, int]

    def _validate(self) -> None:
        object.__setattr__(self, "shift", pair(self.shift, f"{self.id}.shift"))


@dataclass(frozen=True, kw_only=True)
class Identity(Node):
    """Passes its input through unchanged."""

    op: ClassVar[str] = "identity"


@dataclass(frozen=True, kw_only=True)
class BatchNorm(Node):
    """Inference batch norm over ``num_features`` channels (2 params per channel, no MACs)."""

    op: ClassVar[str] = "batch_norm"
    num_features: int

    def _validate(self) -> None:
        check_int(self.num_features, f"{self.id}.num_features", minimum=1)

    def out_channels_from(self, in_channels: list[int]) -> int:
        if in_channels[0] != self.num_features:
            raise self._fail(f"`num_features` (={self.num_features}) but its input has {in_channels[0]} channels")
        return in_channels[0]


OPS: dict[str, type[Node]] = {
    cls.op: cls
    for cls in (Input, Conv2d, ChannelShuffle, Permute, Slice, Concat, Add, Shift, Identity, BatchNorm)
}
"""Op name (as in JSON) -> node class."""

