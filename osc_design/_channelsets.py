"""Channel dependence as interval sets: memory linear in the channel count, not in its square.

A :class:`ChannelSets` says, for every channel of a node, which input channels it reads: ``ids[c]``
indexes a set, and set ``k`` is the union of the half-open intervals ``[lo[j], hi[j])`` for
``ptr[k] <= j < ptr[k + 1]`` (sorted, disjoint and never adjacent: every set is kept canonical, so
its size is the sum of its interval lengths and its first missing channel is the end of its first
interval). Grouped convolutions, shuffles, slices and concatenations map channel blocks to blocks,
so a set stays a few intervals and channels of one group share one set: the identity of ``C``
channels costs ``C`` intervals, a dense conv one. Unions are vectorized (sort, running maximum,
``reduceat``), so nothing is proportional to ``C_in x C_out``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SpecError

__all__ = ["ChannelSets", "MAX_INTERVALS"]

MAX_INTERVALS = 1 << 24  # intervals one union may gather (about 400 MB of temporaries)


def _i64(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``rows`` as sets (each sorted, duplicates dropped) and each row's index among them."""
    rows = np.sort(rows, axis=1)
    if rows.shape[0] == 1:  # one sorted row: drop repeats
        r = rows[0]
        keep = np.ones(len(r), dtype=bool)
        keep[1:] = r[1:] != r[:-1]
        return r[keep][None, :], np.zeros(1, dtype=np.int64)
    if rows.shape[1] <= 16:  # narrow rows: one vectorized sort of the rows (lexicographic)
        order = np.lexsort(rows.T[::-1])
        ranked = rows[order]
        new = np.ones(len(ranked), dtype=bool)
        new[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)
        inverse = np.empty(len(ranked), dtype=np.int64)
        inverse[order] = np.cumsum(new) - 1
        return ranked[new], inverse
    index: dict[bytes, int] = {}  # few wide rows: hash their bytes
    inverse = np.fromiter((index.setdefault(r.tobytes(), len(index)) for r in rows), dtype=np.int64,
                          count=rows.shape[0])
    seen = np.maximum.accumulate(inverse)  # ids are handed out in order: a row is new where the maximum grows
    new = np.ones(len(inverse), dtype=bool)
    new[1:] = seen[1:] > seen[:-1]
    return rows[new], inverse


@dataclass(frozen=True)
class ChannelSets:
    """Per channel, the set of input channels it reads (see the module docstring).

    >>> x = ChannelSets.identity(8).grouped(2, 4)  # a 2-group conv: channels 0-3 read 0-3, 4-7 read 4-7
    >>> x.members(5), x.sizes().tolist()
    ([(4, 8)], [4, 4])
    >>> x.take(np.array([0, 4])).union(x.take(np.array([4, 4]))).members(0)  # add of two branches
    [(0, 8)]
    """

    ids: np.ndarray
    ptr: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def identity(cls, c: int) -> ChannelSets:
        """Channel ``i`` reads input channel ``i``."""
        r = np.arange(c, dtype=np.int64)
        return cls(r, np.arange(c + 1, dtype=np.int64), r, r + 1)

    @classmethod
    def empty(cls, c: int) -> ChannelSets:
        """``c`` channels that read nothing."""
        z = np.zeros(0, dtype=np.int64)
        return cls(np.zeros(c, dtype=np.int64), np.zeros(2, dtype=np.int64), z, z)

    @property
    def channels(self) -> int:
        return len(self.ids)

    def members(self, channel: int) -> list[tuple[int, int]]:
        """The intervals ``[lo, hi)`` of input channels that ``channel`` reads."""
        k = int(self.ids[channel])
        a, b = int(self.ptr[k]), int(self.ptr[k + 1])
        return list(zip(self.lo[a:b].tolist(), self.hi[a:b].tolist(), strict=True))

    def contains(self, channel: int, in_channel: int) -> bool:
        return any(a <= in_channel < b for a, b in self.members(channel))

    def sizes(self) -> np.ndarray:
        """Size of every set (not every channel)."""
        cs = np.concatenate(([0], np.cumsum(self.hi - self.lo)))
        return cs[self.ptr[1:]] - cs[self.ptr[:-1]]

    def channel_sizes(self) -> np.ndarray:
        """How many input channels each channel reads."""
        return self.sizes()[self.ids]

    def first_missing(self, channel: int) -> int:
        """The smallest input channel that ``channel`` does not read."""
        got = self.members(channel)
        return 0 if not got or got[0][0] > 0 else got[0][1]

    # -- channel maps -------------------------------------------------------------------------------
    def take(self, index: np.ndarray) -> ChannelSets:
        """Channel ``j`` of the result is channel ``index[j]`` of this one (a permutation, slice or repeat)."""
        return ChannelSets(self.ids[index], self.ptr, self.lo, self.hi)

    def grouped(self, groups: int, reps: int) -> ChannelSets:
        """A conv with ``groups`` groups and ``reps`` output channels per group: each output channel reads
        the union of its group's input channels' sets."""
        rows = self.ids.reshape(groups, -1)
        if rows.shape[1] == 1 or len(self.ptr) == 2:  # one channel per group, or one set for all
            ids, out = rows[:, 0], self
        else:
            uniq, ids = _unique_rows(rows)
            out = self._union_rows(uniq)
        return ChannelSets(np.repeat(ids, reps), out.ptr, out.lo, out.hi)

    def union(self, other: ChannelSets) -> ChannelSets:
        """Channel-wise union with ``other`` (same channel count)."""
        return ChannelSets.union_all([self, other])

    @staticmethod
    def union_all(parts: list[ChannelSets]) -> ChannelSets:
        """Channel-wise union of ``parts`` (same channel count each)."""
        if len(parts) == 1:
            return parts[0]
        store = ChannelSets.concat_stores(parts)
        cols = np.stack([p.ids + off for p, off in zip(parts, store[1], strict=True)], axis=1)
        base = ChannelSets(cols[:, 0], *store[0])
        uniq, inverse = _unique_rows(cols)
        out = base._union_rows(uniq)
        return ChannelSets(inverse, out.ptr, out.lo, out.hi)

    @staticmethod
    def concat_stores(parts: list[ChannelSets]) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[int]]:
        """The sets of ``parts`` in one store, and each part's offset into it."""
        ptrs, offsets, n_sets, n_iv = [np.zeros(1, dtype=np.int64)], [], 0, 0
        for p in parts:
            offsets.append(n_sets)
            ptrs.append(p.ptr[1:] + n_iv)
            n_sets += len(p.ptr) - 1
            n_iv += len(p.lo)
        lo = np.concatenate([p.lo for p in parts])
        hi = np.concatenate([p.hi for p in parts])
        return (np.concatenate(ptrs), lo, hi), offsets

    @staticmethod
    def concat(parts: list[ChannelSets]) -> ChannelSets:
        """The channels of ``parts`` one after another (a concatenation)."""
        store, offsets = ChannelSets.concat_stores(parts)
        ids = np.concatenate([p.ids + off for p, off in zip(parts, offsets, strict=True)])
        return ChannelSets(ids, *store)

    def _union_rows(self, rows: np.ndarray) -> ChannelSets:
        """A store whose set ``m`` is the union of the sets ``rows[m]`` (``ids``: ``arange``)."""
        m = rows.shape[0]
        members = rows.reshape(-1)
        counts = self.ptr[members + 1] - self.ptr[members]
        total = int(counts.sum())
        if total > MAX_INTERVALS:
            raise SpecError(f"the spec's channel dependence is too irregular to verify exactly: one union gathers "
                            f"{total:,} channel intervals (the verifier's limit is {MAX_INTERVALS:,})")
        owner = np.repeat(np.repeat(np.arange(m, dtype=np.int64), rows.shape[1]), counts)
        first = np.cumsum(counts) - counts
        idx = np.repeat(self.ptr[members] - first, counts) + np.arange(total, dtype=np.int64)
        lo, hi = self.lo[idx], self.hi[idx]
        order = np.lexsort((lo, owner))
        owner, lo, hi = owner[order], lo[order], hi[order]
        span = int(hi.max(initial=0)) + 1
        reach = np.maximum.accumulate(owner * span + hi) - owner * span  # running end within each owner
        new = np.ones(total, dtype=bool)
        new[1:] = (owner[1:] != owner[:-1]) | (lo[1:] > reach[:-1])
        starts = np.flatnonzero(new)
        out_lo = lo[starts]
        out_hi = np.maximum.reduceat(hi, starts) if total else hi
        ptr = np.concatenate(([0], np.cumsum(np.bincount(owner[starts], minlength=m)))).astype(np.int64)
        return ChannelSets(np.arange(m, dtype=np.int64), ptr, out_lo, out_hi)
