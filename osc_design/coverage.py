"""Exact volumetric receptive-field verifier for layer specs.

A design may replace its target only if every output channel depends on every input channel at
every offset of the target's ``kh x kw`` window. Dependence is tracked structurally (every weight
of a conv is taken as non-zero), exactly, with no sampling.

Representation: the dependence of a node is a union of *terms* ``(A, S)``: a relation ``A`` (node
channel ``c`` reads input channel ``i``) times a set ``S`` of spatial offsets, in input pixels,
relative to ``q * stride`` for output position ``q``. ``A`` is a
:class:`~osc_design._channelsets.ChannelSets`: per channel an index into a few interval sets of input
channels (grouped convolutions, shuffles, slices and concatenations map channel blocks to blocks), so
memory and time grow with ``C``, not ``C^2``: a 1,048,576-channel chain verifies in about a second.
Along a chain, channel and spatial dependence factor apart, so a chain is one term whatever its
width. ``add`` and ``concat`` create unions; terms with the same offset set are merged.

For the shuffle chains the solver builds (grouped convolutions, a channel shuffle with the previous
stage's groups in between) :func:`chain_coverage` computes the same result per distinct group
dependence, from the stages alone, without building the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import numpy as np

from ._channelsets import ChannelSets
from .ops import (
    Add,
    BatchNorm,
    ChannelShuffle,
    Concat,
    Conv2d,
    Identity,
    Input,
    Node,
    Permute,
    Shift,
    Slice,
)
from .errors import SpecError, check_type
from .spec import LayerSpec, Target

__all__ = ["MAX_CHANNELS", "MAX_KERNEL", "check_supported",
           "OffsetSet", "Dependence", "Coverage", "dependence", "coverage", "ChainStage", "chain_footprint",
           "chain_coverage"]


MAX_CHANNELS = 1 << 16  # in and out channels of a target the verifier (and the solver) accepts
MAX_KERNEL = 127  # largest kernel side of such a target


def check_supported(target: Target) -> Target:
    """``target`` if it lies within the supported limits (channels <= 65,536, kernel sides <= 127); else
    :class:`~osc_design.errors.SpecError` naming the argument. Every design of every family verifies
    within about a second and a few hundred MB there; costs are closed forms at any size.

    >>> try:
    ...     check_supported(Target(1 << 17, 8, 3))
    ... except ValueError as e:
    ...     print(str(e)[:56])
    `in_channels` (=131072) exceeds the supported limit 65,5
    """
    limits = f"(channels <= {MAX_CHANNELS:,}, kernel sides <= {MAX_KERNEL})"
    for name, value, top in (("in_channels", target.in_channels, MAX_CHANNELS),
                             ("out_channels", target.out_channels, MAX_CHANNELS),
                             ("kernel_size", max(target.kernel_size), MAX_KERNEL)):
        if value > top:
            shown = target.kernel_size if name == "kernel_size" else value
            raise SpecError(f"`{name}` (={shown}) exceeds the supported limit {top:,} {limits}")
    return target


@dataclass(frozen=True)
class OffsetSet:
    """A finite set of 2-D offsets: ``mask[y, x]`` marks offset ``(origin[0] + y, origin[1] + x)``."""

    origin: tuple[int, int]
    mask: np.ndarray

    @classmethod
    def point(cls) -> OffsetSet:
        return cls((0, 0), np.ones((1, 1), dtype=bool))

    def key(self) -> tuple[tuple[int, int], tuple[int, int], bytes]:
        return (self.origin, self.mask.shape, np.packbits(self.mask).tobytes())

    def translate(self, dy: int, dx: int) -> OffsetSet:
        return OffsetSet((self.origin[0] + dy, self.origin[1] + dx), self.mask)

    def minkowski(self, taps_y: list[int], taps_x: list[int]) -> OffsetSet:
        """``{o + (ty, tx)}`` for the product tap set ``taps_y x taps_x`` (one axis at a time)."""
        mask, origin = self.mask, list(self.origin)
        for axis, taps in ((0, taps_y), (1, taps_x)):
            lo, hi = min(taps), max(taps)
            shape = list(mask.shape)
            shape[axis] += hi - lo
            out = np.zeros(shape, dtype=bool)
            n = mask.shape[axis]
            for t in set(taps):
                sl = [slice(None), slice(None)]
                sl[axis] = slice(t - lo, t - lo + n)
                out[tuple(sl)] |= mask
            mask, origin[axis] = out, origin[axis] + lo
        return OffsetSet((origin[0], origin[1]), mask)

    def contains_grid(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Boolean ``len(ys) x len(xs)`` grid: is offset ``(ys[a], xs[b])`` in the set?"""
        ry, rx = ys - self.origin[0], xs - self.origin[1]
        iy = (ry >= 0) & (ry < self.mask.shape[0])
        ix = (rx >= 0) & (rx < self.mask.shape[1])
        grid = np.zeros((len(ys), len(xs)), dtype=bool)
        sub = self.mask[np.ix_(ry[iy], rx[ix])]
        grid[np.ix_(np.flatnonzero(iy), np.flatnonzero(ix))] = sub
        return grid

    def offsets(self) -> set[tuple[int, int]]:
        ys, xs = np.nonzero(self.mask)
        return {(int(y) + self.origin[0], int(x) + self.origin[1]) for y, x in zip(ys, xs, strict=True)}


Term = tuple[ChannelSets, OffsetSet]  # (per node channel: the input channels it reads, offsets)


def _merge(terms: list[Term]) -> list[Term]:
    merged: dict[object, list[Term]] = {}
    for term in terms:
        merged.setdefault(term[1].key(), []).append(term)
    return [(ChannelSets.union_all([rows for rows, _ in group]), group[0][1]) for group in merged.values()]


@dataclass(frozen=True)
class Dependence:
    """Which input channels, at which offsets, each output channel of a graph depends on."""

    in_channels: int
    out_channels: int
    terms: tuple[Term, ...]

    def depends(self, out_channel: int, in_channel: int) -> bool:
        """Does ``out_channel`` read ``in_channel`` at any offset?"""
        return any(rows.contains(out_channel, in_channel) for rows, _ in self.terms)

    def offsets(self, out_channel: int, in_channel: int) -> set[tuple[int, int]]:
        """Offsets ``(dy, dx)`` (input pixels, relative to ``q * stride``) through which ``out_channel`` reads
        ``in_channel``."""
        out: set[tuple[int, int]] = set()
        for rows, offs in self.terms:
            if rows.contains(out_channel, in_channel):
                out |= offs.offsets()
        return out


def _shuffle(channels: int, groups: int) -> np.ndarray:
    """:func:`~osc_design.ops.shuffle_permutation` as an array, computed without a Python loop."""
    j = np.arange(channels, dtype=np.int64)
    return (j % groups) * (channels // groups) + j // groups


def _conv_terms(node: Conv2d, spec: LayerSpec, first: list[Term]) -> list[Term]:
    sy, sx = spec.cumulative_stride(node.inputs[0])
    taps_y = [sy * (node.dilation[0] * t - node.padding[0]) for t in range(node.kernel_size[0])]
    taps_x = [sx * (node.dilation[1] * t - node.padding[1]) for t in range(node.kernel_size[1])]
    g, reps = node.groups, node.out_channels // node.groups
    return _merge([(rows.grouped(g, reps), offs.minkowski(taps_y, taps_x)) for rows, offs in first])


def _apply(node: Node, spec: LayerSpec, ins: list[list[Term]], in_channels: int) -> list[Term]:
    if isinstance(node, Input):
        return [(ChannelSets.identity(in_channels), OffsetSet.point())]
    (first, *_) = ins
    if isinstance(node, (Identity, BatchNorm)):
        return first
    if isinstance(node, Conv2d):
        return _conv_terms(node, spec, first)
    if isinstance(node, Shift):
        sy, sx = spec.cumulative_stride(node.id)
        return [(rows, offs.translate(-node.shift[0] * sy, -node.shift[1] * sx)) for rows, offs in first]
    if isinstance(node, (Permute, ChannelShuffle)):
        c = spec.channels(node.id)
        perm = np.asarray(node.perm) if isinstance(node, Permute) else _shuffle(c, node.groups)
        return [(rows.take(perm), offs) for rows, offs in first]
    if isinstance(node, Slice):
        return [(rows.take(np.arange(node.start, node.stop)), offs) for rows, offs in first]
    if isinstance(node, Add):
        return _merge([t for terms in ins for t in terms])
    if isinstance(node, Concat):
        sizes = [spec.channels(src) for src in node.inputs]
        out = []
        for k, terms in enumerate(ins):
            for rows, offs in terms:
                parts = [rows if j == k else ChannelSets.empty(c) for j, c in enumerate(sizes)]
                out.append((ChannelSets.concat(parts), offs))
        return _merge(out)
    raise TypeError(f"no dependence rule for op {node.op!r}")  # every op in OPS has one above


def dependence(spec: LayerSpec) -> Dependence:
    """Exact dependence of every output channel of ``spec`` on input channels and offsets (a target beyond
    the supported limits, :func:`check_supported`, raises :class:`~osc_design.errors.SpecError`)."""
    check_type(spec, LayerSpec, "spec")
    c_in = check_supported(spec.target).in_channels
    terms: dict[str, list[Term]] = {}
    remaining = {nid: 0 for nid in spec.order}
    for nid in spec.order:
        for src in spec.node_map[nid].inputs:
            remaining[src] += 1
    for nid in spec.order:
        node = spec.node_map[nid]
        terms[nid] = _apply(node, spec, [terms[i] for i in node.inputs], c_in)
        for src in node.inputs:  # free intermediate results as soon as they are consumed
            remaining[src] -= 1
            if remaining[src] == 0 and src != spec.output:
                del terms[src]
    return Dependence(c_in, spec.target.out_channels, tuple(terms[spec.output]))


@dataclass(frozen=True)
class Coverage:
    """How much of the target's volumetric receptive field ``C_in x kh x kw`` (per output channel) a design sees.

    ``covered`` and ``total`` count ``(output channel, input channel, kernel tap)`` triples; ``missing``
    is one uncovered triple ``(out_channel, in_channel, (ty, tx))`` with ``(ty, tx)`` the target kernel
    tap (0-based), or ``None`` when coverage is full.
    """

    covered: int
    total: int
    missing: tuple[int, int, tuple[int, int]] | None

    @property
    def full(self) -> bool:
        return self.covered == self.total

    @property
    def exact_fraction(self) -> Fraction:
        return Fraction(self.covered, self.total)

    @property
    def fraction(self) -> float:
        """Covered share of the volume, 0..1."""
        return self.covered / self.total

    def describe(self) -> str:
        """One line for people: full, or the fraction and a missing example."""
        if self.full:
            return f"full: all {self.total:,} (output, input channel, tap) triples of the window are reached"
        o, i, (ty, tx) = self.missing  # type: ignore[misc]
        return (f"{self.fraction:.2%} of the volume; e.g. output channel {o} does not see input channel {i} "
                f"at kernel tap ({ty}, {tx})")

    def to_dict(self) -> dict[str, object]:
        m = self.missing
        return {
            "full": self.full,
            "fraction": self.fraction,
            "covered": self.covered,
            "total": self.total,
            "missing": None if m is None else {"out_channel": m[0], "in_channel": m[1], "tap": list(m[2])},
        }


def coverage(spec: LayerSpec, dep: Dependence | None = None) -> Coverage:
    """Verify exactly whether ``spec`` covers its target's volumetric receptive field.

    >>> from osc_design.spec import GraphBuilder, Target
    >>> b = GraphBuilder(Target(4, 4, 3))
    >>> y = b.conv2d(b.input, 4, (3, 1), padding=(1, 0), groups=2)
    >>> plain = b.build(b.conv2d(y, 4, (1, 3), padding=(0, 1), groups=2, name="plain"))
    >>> coverage(plain).fraction  # groups stay aligned: each output sees 2 of 4 channels
    0.5
    >>> y = b.channel_shuffle(y, 2)
    >>> coverage(b.build(b.conv2d(y, 4, (1, 3), padding=(0, 1), groups=2))).full
    True
    """
    check_type(spec, LayerSpec, "spec")
    if dep is not None:
        check_type(dep, Dependence, "dep")
    dep = dependence(spec) if dep is None else dep
    t = spec.target
    (kh, kw), (ph, pw) = t.kernel_size, t.padding
    ys, xs = t.dilation[0] * np.arange(kh) - ph, t.dilation[1] * np.arange(kw) - pw  # the window's taps
    grids = [offs.contains_grid(ys, xs).reshape(-1) for _, offs in dep.terms]
    c_out, c_in = dep.out_channels, dep.in_channels
    flat = np.stack(grids, axis=1) if grids else np.zeros((kh * kw, 0), dtype=bool)
    # taps read through the same terms share their channel dependence: one union per distinct signature
    sigs, firsts, counts = np.unique(flat, axis=0, return_index=True, return_counts=True)
    covered, missing = 0, None
    for sig, first, n_taps in zip(sigs, firsts.tolist(), counts.tolist(), strict=True):
        tap = divmod(first, kw)
        used = np.flatnonzero(sig)
        if not used.size:
            if missing is None or tap < missing[2]:
                missing = (0, 0, tap)
            continue
        rows = ChannelSets.union_all([dep.terms[k][0] for k in used.tolist()])
        sizes = rows.channel_sizes()
        n = int(sizes.sum())
        covered += n * n_taps
        if n < c_out * c_in and (missing is None or tap < missing[2]):
            o = int(np.flatnonzero(sizes < c_in)[0])
            missing = (o, rows.first_missing(o), tap)
    return Coverage(covered, c_out * c_in * kh * kw, missing)


# ---------------------------------------------------------------------------------------------------
# shuffle chains, per group
# ---------------------------------------------------------------------------------------------------
class ChainStage(Protocol):
    """What :func:`chain_coverage` reads of a stage (a :class:`~osc_design.ops.Conv2d` or a solver stage)."""

    @property
    def in_channels(self) -> int: ...
    @property
    def out_channels(self) -> int: ...
    @property
    def groups(self) -> int: ...
    @property
    def kernel_size(self) -> tuple[int, int]: ...
    @property
    def stride(self) -> tuple[int, int]: ...
    @property
    def padding(self) -> tuple[int, int]: ...
    @property
    def dilation(self) -> tuple[int, int]: ...


def _shuffled(prev: ChainStage, st: ChainStage) -> bool:
    """Does a channel shuffle with ``prev``'s groups sit between ``prev`` and ``st`` in a shuffle chain?"""
    return 1 < prev.groups < prev.out_channels and st.groups > 1


def chain_footprint(stages: Sequence[ChainStage], a: int) -> set[int]:
    """Offsets, in input pixels and relative to an output pixel's position, that the chain reads along axis ``a``.

    >>> from osc_design.spec import GraphBuilder, Target
    >>> b = GraphBuilder(Target(4, 4, 5, stride=(2, 1)))
    >>> y = b.conv2d(b.input, 4, (3, 1), padding=(1, 0), stride=(2, 1))
    >>> spec = b.build(b.conv2d(y, 4, (2, 1), padding=(1, 0)))
    >>> sorted(chain_footprint(spec.convs, 0))  # {-1, 0, 1} + 2 * {-1, 0}
    [-3, -2, -1, 0, 1]
    """
    offs, cum = {0}, 1
    for st in stages:
        step = cum * st.dilation[a]
        offs = {o + step * t - cum * st.padding[a] for o in offs for t in range(st.kernel_size[a])}
        cum *= st.stride[a]
    return offs


def _group_dependence(stages: Sequence[ChainStage]) -> tuple[list[int], np.ndarray]:
    """Input dependence of the last stage's groups: bit sets over the first stage's groups, and per group
    the index of its set (groups with the same dependence share one set)."""
    first = stages[0]
    sets: list[int] = [1 << q for q in range(first.groups)]
    ids = np.arange(first.groups)  # group -> index into ``sets``
    prev = first
    for st in stages[1:]:
        G, c = prev.groups, st.in_channels
        j = np.arange(c)
        cls = j % G if _shuffled(prev, st) else j // (c // G)
        fan_in = st.in_channels // st.groups
        rows = ids[cls].reshape(st.groups, fan_in)
        if fan_in == 1:
            ids = rows[:, 0]
        else:
            index: dict[frozenset, int] = {}
            new_sets: list[int] = []
            new_ids: list[int] = []
            for row in rows.tolist():
                key = frozenset(row)
                k = index.get(key)
                if k is None:
                    u = 0
                    for i in key:
                        u |= sets[i]
                    k = index[key] = len(new_sets)
                    new_sets.append(u)
                new_ids.append(k)
            sets, ids = new_sets, np.array(new_ids)
        prev = st
    return sets, ids


BITSET_GROUPS = 4096  # up to this many first-stage groups, chains use bit sets over them (fastest when small)


def _chain_reach(stages: Sequence[ChainStage]) -> tuple[list[int], int, Callable[[int], int]]:
    """Input channels read by each block of ``per`` output channels of the chain (they share a dependence), ``per``,
    and the first input channel block ``q`` misses: bit sets over the first stage's groups when they are few,
    interval sets (memory linear in ``C``) else."""
    first = stages[0]
    if first.groups > BITSET_GROUPS:
        rows = _chain_channels(stages)
        return rows.channel_sizes().tolist(), 1, rows.first_missing
    sets, ids = _group_dependence(stages)
    n1 = first.in_channels // first.groups
    reach_of = [u.bit_count() * n1 for u in sets]

    def first_missing(q: int) -> int:
        u = sets[int(ids[q])]
        return next(b * n1 for b in range(first.groups) if not (u >> b) & 1)

    return [reach_of[i] for i in ids.tolist()], stages[-1].out_channels // len(ids), first_missing


def _chain_channels(stages: Sequence[ChainStage]) -> ChannelSets:
    """Input channels read by every output channel of a shuffle chain (the shuffles where the chains put them)."""
    rows = ChannelSets.identity(stages[0].in_channels)
    prev: ChainStage | None = None
    for st in stages:
        if prev is not None and _shuffled(prev, st):
            rows = rows.take(_shuffle(st.in_channels, prev.groups))
        rows = rows.grouped(st.groups, st.out_channels // st.groups)
        prev = st
    return rows


def chain_coverage(target: Target, stages: Sequence[ChainStage]) -> Coverage:
    """Exact coverage of a shuffle chain, computed per distinct group dependence from the stages alone.

    The chain is ``stages`` in order with a channel shuffle with the previous stage's groups wherever
    that stage has ``1 < groups < out_channels`` channels per group and the next one is grouped (the
    solver's chains). Equivalent to :func:`coverage` of the built graph: channel and spatial
    dependence of a chain factor apart (the verifier's single term), all channels of a group share
    their dependence, a shuffle with ``G`` groups sends input ``j`` of the next stage to group
    ``j mod G`` of the previous one, and the footprint along each axis is a 1-D Minkowski sum.
    Dependences are interval sets of input channels shared by the channels of a group (groups with the
    same dependence share one set, so a depthwise stage only relabels); memory grows with ``C``.

    >>> from osc_design.spec import GraphBuilder
    >>> b = GraphBuilder(Target(4, 4, 3))
    >>> y = b.channel_shuffle(b.conv2d(b.input, 4, (3, 1), padding=(1, 0), groups=2), 2)
    >>> spec = b.build(b.conv2d(y, 4, (1, 3), padding=(0, 1), groups=2))
    >>> chain_coverage(spec.target, spec.convs).full, coverage(spec).full
    (True, True)
    """
    cin = check_supported(target).in_channels
    (kh, kw) = target.kernel_size
    reach, per_out, first_missing = _chain_reach(stages)
    inside_axes = []
    for a in (0, 1):
        offs = chain_footprint(stages, a)
        K, p, d = target.kernel_size[a], target.padding[a], target.dilation[a]
        inside_axes.append([t for t in range(K) if d * t - p in offs])
    taps = len(inside_axes[0]) * len(inside_axes[1])
    total = target.out_channels * cin * kh * kw
    covered = sum(reach) * per_out * taps
    missing = None
    if covered < total:
        holes = [[t for t in range(target.kernel_size[a]) if t not in inside_axes[a]] for a in (0, 1)]
        if holes[0] or holes[1]:
            missing = (0, 0, (holes[0][0] if holes[0] else 0, holes[1][0] if holes[1] else 0))
        else:
            q = next(g for g, r in enumerate(reach) if r < cin)
            missing = (q * per_out, first_missing(q), (inside_axes[0][0], inside_axes[1][0]))
    return Coverage(covered, total, missing)
