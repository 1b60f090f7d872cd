"""Framework-free spatial arithmetic: int pairs, conv output sizes and padding-aware tap counts."""

from __future__ import annotations

from typing import Any

from .errors import SpecError

__all__ = ["check_int", "pair", "conv_output_size", "conv_output_pair", "valid_taps"]


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` if it is a true ``int`` (not a bool) of at least ``minimum``.

    >>> check_int(3, "groups", minimum=1)
    3
    """
    if type(value) is not int:
        raise SpecError(f"`{name}` (={value!r}) must be an integer")
    if minimum is not None and value < minimum:
        raise SpecError(f"`{name}` (={value!r}) must be >= {minimum}")
    return value


def pair(value: Any, name: str, *, minimum: int | None = None) -> tuple[int, int]:
    """Normalise an int or a 2-sequence of ints to a ``(h, w)`` tuple.

    >>> pair(7, "kernel_size")
    (7, 7)
    >>> pair([7, 1], "kernel_size")
    (7, 1)
    """
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"`{name}` (={list(value)!r}) must have 2 entries (h, w)")
        return (check_int(value[0], name, minimum=minimum), check_int(value[1], name, minimum=minimum))
    v = check_int(value, name, minimum=minimum)
    return (v, v)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (PyTorch/XLA floor rule).

    >>> conv_output_size(56, 3, 1, 1)
    56
    >>> conv_output_size(224, 7, 2, 3)
    112
    """
    span = dilation * (kernel - 1) + 1
    return (size + 2 * padding - span) // stride + 1


def conv_output_pair(
    size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    """Spatial ``(h, w)`` output size of a convolution or pooling window, every argument an ``(h, w)`` pair.

    :func:`conv_output_size` on each axis: ``floor((n + 2p - d(k - 1) - 1) / s) + 1``.

    >>> conv_output_pair((15, 14), (7, 5), (2, 2), (3, 2))
    (8, 7)
    """
    return (
        conv_output_size(size[0], kernel_size[0], stride[0], padding[0], dilation[0]),
        conv_output_size(size[1], kernel_size[1], stride[1], padding[1], dilation[1]),
    )


def valid_taps(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Number of (output position, kernel tap) pairs along one axis whose tap lands on a real input pixel.

    This is the per-axis factor of the padding-aware MAC count that XLA's cost analysis uses.

    >>> valid_taps(56, 3, 1, 1)  # 56 * 3 - 2 taps fall on the zero border
    166
    """
    n_out = conv_output_size(size, kernel, stride, padding, dilation)
    total = 0
    for t in range(kernel):
        shift = dilation * t - padding  # input index = o * stride + shift
        lo = 0 if shift >= 0 else (-shift + stride - 1) // stride  # first o with o*stride + shift >= 0
        hi_bound = size - 1 - shift  # o * stride <= hi_bound
        if hi_bound < 0:
            continue
        hi = min(n_out - 1, hi_bound // stride)
        if hi >= lo:
            total += hi - lo + 1
    return total
