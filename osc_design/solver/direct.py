"""Closed searches of the reordered dilated space (see "Splitting" in :mod:`osc_design.solver`).

In the space of :attr:`SearchSpace.gaps <osc_design.solver.space.SearchSpace.gaps>` (``params``, dilation, no
stride, internal widths ``C_out``) with full coverage and rectangular kernels, a stage of volume
``n * kh * kw`` with two factors above 1 costs at least the sum of its factors (``a b >= a + b`` for
``a, b >= 2``, equal only for ``2 * 2``). Splitting it into a ``1 x 1`` stage of fan-in ``n`` and depthwise
stages ``kh x 1`` and ``1 x kw`` (same dilations, same place in the mixed-radix order of each axis) keeps the
channel reach and both footprints and never costs more. So the optimum over any number of stages is

* a cheapest product of fan-ins reaching ``C_in`` (one of them a fan-in of the ``C_in -> C_out`` stage, or that
  stage is a depthwise one), by a shortest path over the channel reach (:func:`channel_paths`), plus
* per axis, a cheapest kernel sequence whose footprint covers the window, by a shortest path over the
  footprint automaton of :class:`~osc_design.solver.axis.Axis` (:func:`axis_paths`),

and the designs of that cost are exactly those chains with factors of 2 of different kinds sharing a stage.
:func:`split_search` returns one with the fewest stages (the search's tie rule) when it fits the stage cap,
else ``None`` (the dynamic programme then searches the capped space). With two stages the space is small
enough to enumerate: for each first stage the cheapest second one along each axis and in channels is
independent of the others (:func:`two_stage_search`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import NamedTuple, cast

import numpy as np

from .axis import Axis
from .chain import Move, Stage, reordered
from .intmath import fanins
from .space import SearchSpace

__all__ = ["Paths", "Split", "channel_paths", "axis_paths", "split_search", "two_stage_search", "applies"]

Label = tuple[int, int]  # (stages, factors equal to 2)
Edge = tuple[int, Hashable, object]  # (cost = the factor, node reached, move)


class Paths(NamedTuple):
    """Cheapest paths to one node: their cost and, per label (stages, factors equal to 2), one path (its moves)."""

    cost: int
    labels: dict[Label, tuple]


def cheapest_paths(start: Hashable, edges: Callable[[Hashable], Iterable[Edge]]) -> tuple[dict[Hashable, Paths], int]:
    """Every node reachable from ``start`` with its cheapest paths (edge costs are integers >= 2), and the
    number of nodes settled. Dijkstra's algorithm gives the costs; then, in the order of cost, every edge
    that is tight (the cheapest cost of its head equals its tail's plus the edge) carries the tail's labels."""
    dist: dict[Hashable, int] = {start: 0}
    out: dict[Hashable, list[Edge]] = {}
    heap: list[tuple[int, int, Hashable]] = [(0, 0, start)]
    tick = itertools.count(1)
    while heap:
        c, _, u = heapq.heappop(heap)
        if u in out or c > dist[u]:
            continue
        out[u] = list(edges(u))
        for w, v, _ in out[u]:
            if c + w < dist.get(v, c + w + 1):
                dist[v] = c + w
                heapq.heappush(heap, (c + w, next(tick), v))
    paths: dict[Hashable, Paths] = {start: Paths(0, {(0, 0): ()})}
    for u in sorted(out, key=dist.__getitem__):
        pu = paths[u]
        for w, v, move in out[u]:
            if dist[u] + w != dist[v]:
                continue
            pv = paths.setdefault(v, Paths(dist[v], {}))
            for (n, twos), moves in pu.labels.items():
                pv.labels.setdefault((n + 1, twos + (w == 2)), moves + (move,))
    return paths, len(out)


def channel_paths(cin: int, cout: int) -> tuple[Paths | None, Paths | None, int]:
    """Cheapest products of fan-ins ``>= 2`` reaching ``C_in``: with one fan-in of the ``C_in -> C_out`` stage
    among them (moves ``(n, True)``) and with fan-ins of ``C_out -> C_out`` stages only (``(n, False)``, the
    ``C_in -> C_out`` stage then has fan-in 1), each ``None`` when impossible; and the nodes settled.

    A node is the factor still missing, ``ceil(C_in / reach)`` (``ceil(ceil(x / a) / b) = ceil(x / (a b))``, so
    it is all the future depends on; it takes at most ``2 sqrt(C_in)`` values), and whether the ``C_in -> C_out``
    stage's fan-in is taken; of the fan-ins that complete the reach only the smallest is an edge.
    """
    first = [n for n in fanins(cin, cout) if n > 1]
    later = [n for n in fanins(cout, cout) if n > 1]

    def moves(m: int, taken: bool, fans: list[int], special: bool) -> Iterator[Edge]:
        for n in fans:
            yield n, (-(-m // n), taken), (n, special)
            if n >= m:
                return

    def edges(node: Hashable) -> Iterator[Edge]:
        m, taken = cast(tuple[int, bool], node)
        if m > 1:
            yield from moves(m, taken, later, False)
            if not taken:
                yield from moves(m, True, first, True)

    paths, settled = cheapest_paths((cin, False), edges)
    depthwise = cout % cin == 0  # the C_in -> C_out stage may have fan-in 1
    return paths.get((1, True)), (paths.get((1, False)) if depthwise else None), settled


def axis_paths(ax: Axis) -> tuple[Paths | None, int]:
    """Cheapest kernel sequences along one axis (moves ``(k, d)`` in the mixed-radix order, kernels > 1) whose
    footprint covers the window, and the states settled; ``None`` when none does."""
    def edges(st: Hashable) -> Iterator[Edge]:
        for k in ax.ks(st, "pre"):  # type: ignore[arg-type]
            if k > 1:
                for st2, d, _, _ in ax.step(st, "pre", True, k):  # type: ignore[arg-type]
                    yield k, st2, (k, d)

    paths, settled = cheapest_paths(ax.initial(), edges)
    done = [p for st, p in paths.items() if ax.covered_taps(st, False) == ax.K]  # type: ignore[arg-type]
    if not done:
        return None, settled
    cost = min(p.cost for p in done)
    labels: dict[Label, tuple] = {}
    for p in done:
        if p.cost == cost:
            for label, moves in p.labels.items():
                labels.setdefault(label, moves)
    return Paths(cost, labels), settled


class Split(NamedTuple):
    """A design of a closed search: its params, its stages and the nodes settled."""

    value: int
    stages: list[Stage]
    searched: int


def applies(space: SearchSpace) -> bool:
    """Whether the closed searches cover ``space``: the reordered space, full coverage, rectangular kernels,
    stage counts from 1 (not a Pareto point of exactly ``N`` stages)."""
    return space.gaps and not space.partial and not space.square and not space.exact_n and space.n_lo == 1


def split_search(space: SearchSpace) -> Split | None:
    """The optimum of ``space`` over any number of stages, with the fewest stages among equal costs, or ``None``
    when that design has more than ``n_hi`` stages."""
    t = space.target
    cin, cout = t.in_channels, t.out_channels
    axes = (Axis(space, 0), Axis(space, 1))
    (with_first, without_first, settled) = channel_paths(cin, cout)
    hp, sh = axis_paths(axes[0])
    wp, sw = axis_paths(axes[1])
    settled += sh + sw
    if hp is None or wp is None:
        return None
    spatial = hp.cost + wp.cost > 0
    options: list[tuple[int, str, Paths]] = []  # (cost, how the C_in -> C_out stage is formed, channel paths)
    if with_first is not None:
        options.append((with_first.cost, "factor", with_first))
    if without_first is not None:
        options.append((without_first.cost if spatial else without_first.cost + 1,
                        "ride" if spatial else "unit", without_first))
    if not options:
        return None
    low = min(c for c, _, _ in options)
    best: tuple | None = None  # (stages, how the C_in -> C_out stage is formed, three paths, merges)
    for c, mode, ch in options:
        if c != low:
            continue
        for (lc, cm), (lh, hm), (lw, wm) in itertools.product(ch.labels.items(), hp.labels.items(), wp.labels.items()):
            merges = _merges(lc, lh, lw, mode == "ride")
            count = lc[0] + lh[0] + lw[0] + (mode == "unit") - sum(merges)
            if best is None or count < best[0]:
                best = (count, mode, cm, hm, wm, merges)
    count, mode, cm, hm, wm, merges = best  # type: ignore[misc]  # every option has a label
    if count > space.n_hi:
        return None
    value = (low + hp.cost + wp.cost) * cout
    moves = _assemble(mode, cm, hm, wm, merges)
    stages = reordered(axes, cin, cout, moves)
    return Split(value, stages, settled)


def _merges(lc: Label, lh: Label, lw: Label, ride: bool) -> tuple[int, int, int]:
    """Most stages saved by sharing factors of 2: ``(channel with height, channel with width, height with width)``;
    with ``ride`` (the ``C_in -> C_out`` stage is a depthwise spatial one, so there is one) one spatial stage keeps
    fan-in 1."""
    (_, tc), (nh, th), (nw, tw) = lc, lh, lw
    best = (0, 0, 0)
    for xch in range(min(tc, th) + 1):
        for xcw in range(min(tc - xch, tw) + 1):
            xhw = min(th - xch, tw - xcw)
            if ride:
                xhw = min(xhw, nh + nw - xch - xcw - 1)
                if xhw < 0:
                    continue
            if xch + xcw + xhw > sum(best):
                best = (xch, xcw, xhw)
    return best


def _assemble(mode: str, cm: tuple, hm: tuple, wm: tuple, merges: tuple[int, int, int]) -> list[Move]:
    """The stages of a split design in a mixed-radix order: the ``C_in -> C_out`` stage, the other channel
    stages, then the spatial stages, each axis in its own order (a stage shared by both axes where the
    ``i``-th factors of 2 of the two axes meet)."""
    xch, xcw, xhw = merges
    # slots: [fan_in, (kh, dh), (kw, dw), special]
    spatial: list[list] = []
    h2 = [i for i, (k, _) in enumerate(hm) if k == 2]
    w2 = [i for i, (k, _) in enumerate(wm) if k == 2]
    shared = dict(zip(h2[:xhw], w2[:xhw], strict=True))
    w_shared = set(shared.values())
    hi = wi = 0
    h_slot: dict[int, list] = {}
    w_slot: dict[int, list] = {}
    while hi < len(hm) or wi < len(wm):
        if hi < len(hm) and hi not in shared:
            h_slot[hi] = [1, hm[hi], (1, 1), False]
            spatial.append(h_slot[hi])
            hi += 1
        elif wi < len(wm) and wi not in w_shared:
            w_slot[wi] = [1, (1, 1), wm[wi], False]
            spatial.append(w_slot[wi])
            wi += 1
        else:  # both axes stand at the next shared stage
            h_slot[hi] = w_slot[wi] = [1, hm[hi], wm[wi], False]
            spatial.append(h_slot[hi])
            hi += 1
            wi += 1
    channel = [[n, (1, 1), (1, 1), special] for n, special in cm]
    twos = sorted((s for s in channel if s[0] == 2), key=lambda s: not s[3])  # the special one first
    hosts = [h_slot[i] for i in h2[xhw:]][:xch] + [w_slot[i] for i in w2[xhw:]][:xcw]
    for slot, host in zip(twos, hosts, strict=False):
        host[0], host[3] = 2, slot[3]
        channel.remove(slot)
    if mode == "ride":
        next(s for s in spatial if s[0] == 1)[3] = True
    elif mode == "unit":
        channel.insert(0, [1, (1, 1), (1, 1), True])
    slots = channel + spatial
    return [Move((s[1][0], s[2][0]), (s[1][1], s[2][1]), s[0], s[3]) for s in slots]


def two_stage_search(space: SearchSpace) -> Split | None:
    """The optimum of ``space`` with at most two stages (one when ``n_hi = 1``), the fewest stages among equal
    costs, or ``None`` when no design exists.

    A design is a stage ``(n_1, kh_1, kw_1)`` and a stage ``(n_2, kh_2, kw_2)``, one of them the ``C_in -> C_out``
    stage, whose footprint is gap-free along each axis in some order of the two (each axis its own order). The
    cost ``n_1 kh_1 kw_1 + n_2 kh_2 kw_2`` grows with each of ``n_2, kh_2, kw_2``, and which of them are possible
    depends on ``n_1``, ``kh_1`` and ``kw_1`` one by one, so for every first stage the cheapest second one is the
    smallest possible factor of each kind; the first stages are then enumerated (a numpy array over fan-in pairs
    x kernels along each axis).
    """
    t = space.target
    cin, cout = t.in_channels, t.out_channels
    axes = (Axis(space, 0), Axis(space, 1))
    per_axis = [_axis_pairs(ax) for ax in axes]
    single = [p[0] for p in per_axis]
    best: tuple[int, list[Move]] | None = None
    if all(s is not None for s in single):  # one stage: C_in -> C_out with fan-in C_in
        (kh, dh), (kw, dw) = single  # type: ignore[misc]
        best = (cout * cin * kh * kw, [Move((kh, kw), (dh, dw), cin, True)])
    if space.n_hi >= 2:
        pair = _best_pair(cin, cout, per_axis[0][1], per_axis[1][1])
        if pair is not None and (best is None or pair[0] < best[0]):
            best = pair
    if best is None:
        return None
    return Split(best[0], reordered(axes, cin, cout, best[1]), sum(len(p[1]) for p in per_axis))


def _axis_pairs(ax: Axis) -> tuple[tuple[int, int] | None, dict[int, tuple[int, int, int, int]]]:
    """Along one axis: the smallest single kernel covering the window ``(k, d)`` (``None`` if none), and per kernel
    ``k_1`` of one stage the smallest kernel of the other, ``k_1 -> (k_1, d_1, k_2, d_2)``, the two taken in
    either order along this axis (the footprint is their Minkowski sum, whatever order the chain is built in)."""
    init = ax.initial()
    single: tuple[int, int] | None = None
    ordered: dict[tuple[int, int], tuple[int, int]] = {}  # (first, second kernel) -> their dilations
    for k1 in ax.ks(init, "pre"):
        for st1, d1, _, _ in ax.step(init, "pre", False, k1):
            if ax.covered_taps(st1, False) == ax.K and (single is None or k1 < single[0]):
                single = (k1, d1)
            for k2 in ax.ks(st1, "pre"):
                if (k1, k2) not in ordered:
                    d2 = next((d for st2, d, _, _ in ax.step(st1, "pre", True, k2)
                               if ax.covered_taps(st2, False) == ax.K), None)
                    if d2 is not None:
                        ordered[(k1, k2)] = (d1, d2)
    pairs: dict[int, tuple[int, int, int, int]] = {}
    for (k1, k2), (d1, d2) in ordered.items():
        for one, other in (((k1, d1), (k2, d2)), ((k2, d2), (k1, d1))):
            got = pairs.get(one[0])
            if got is None or other[0] < got[2]:
                pairs[one[0]] = (one[0], one[1], other[0], other[1])
    return single, pairs


def _best_pair(cin: int, cout: int, hp: dict[int, tuple[int, int, int, int]],
               wp: dict[int, tuple[int, int, int, int]]) -> tuple[int, list[Move]] | None:
    """The cheapest two-stage design from the per-axis pairs and every channel pair (either stage may be the
    ``C_in -> C_out`` one; the other's fan-in is the smallest that completes the reach)."""
    if not hp or not wp:
        return None
    first, later = fanins(cin, cout), fanins(cout, cout)
    chans = []  # (n_1, n_2, is the first stage the C_in -> C_out one)
    for a, b, special_first in ((first, later, True), (later, first, False)):
        for n1 in a:
            n2 = next((n for n in b if n1 * n >= cin), None)
            if n2 is not None:
                chans.append((n1, n2, special_first))
    if not chans:
        return None
    H, W = list(hp.values()), list(wp.values())
    fan1 = np.array([c[0] for c in chans], dtype=np.int64)[:, None, None]
    fan2 = np.array([c[1] for c in chans], dtype=np.int64)[:, None, None]
    kh1 = np.array([p[0] for p in H], dtype=np.int64)[None, :, None]
    kh2 = np.array([p[2] for p in H], dtype=np.int64)[None, :, None]
    kw1 = np.array([p[0] for p in W], dtype=np.int64)[None, None, :]
    kw2 = np.array([p[2] for p in W], dtype=np.int64)[None, None, :]
    cost = fan1 * kh1 * kw1 + fan2 * kh2 * kw2
    i, j, k = np.unravel_index(int(np.argmin(cost)), cost.shape)
    (a1, b1, sf), hh, ww = chans[i], H[j], W[k]
    moves = [Move((hh[0], ww[0]), (hh[1], ww[1]), a1, sf), Move((hh[2], ww[2]), (hh[3], ww[3]), b1, not sf)]
    return int(cost[i, j, k]) * cout, moves
