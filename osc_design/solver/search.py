"""The exact dynamic programme over chain prefixes (see "The search" in :mod:`osc_design.solver`).

A layer of the programme maps a spatial :class:`State` (both axes' footprint states and the stride
phase) to its Pareto-filtered entries, channel reach -> :class:`Entry` (cost so far and the stage
that reached it). A stage from a state is a :class:`Combo` (kernel,
dilation, padding and the new state, for both axes together) times a fan-in; branch and bound with
the relaxation for the remaining stages (:func:`~osc_design.solver.bounds.rem_lb`) drops what
cannot beat the upper bound. :meth:`Search.solve` raises the upper bound until designs are found.
"""

from __future__ import annotations

import bisect
import math
from typing import NamedTuple

from .axis import BIG, Axis
from .bounds import INF, cost_factor, int_sum_bound, rem_lb, smooth_numbers
from .chain import Move, Stage, reordered
from .intmath import divisors, fanins
from .space import SearchSpace

__all__ = ["State", "Need", "Combo", "Entry", "Search"]


class State(NamedTuple):
    """The spatial part of a DP state: per-axis footprint states and the stride phase (1: after it)."""

    hs: tuple
    ws: tuple
    phase: int
    first: bool = True  # the ``C_in -> C_out`` stage is in the chain (reordered space: it may come later)


class Need(NamedTuple):
    """What a state still needs spatially, for the remainder bound (see :meth:`Search.spatial_need`)."""

    taps: int
    ah: float
    aw: float


class Combo(NamedTuple):
    """One stage's spatial move from a state, both axes together."""

    kind: str  # "pre", "stride" or "post"
    factor: int  # the per-axis cost factors multiplied: the stage costs ``cout * fan_in * factor``
    state: State  # the state reached
    kernel: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    need: Need  # of the state reached


class Entry(NamedTuple):
    """A DP entry: the cost so far and how it was reached (the previous state and channel reach, the last
    stage's move and fan-in; ``combo`` is ``None`` for the empty chain)."""

    cost: float
    key: State | None
    reach: int
    combo: Combo | None
    fan_in: int


Layer = dict[State, dict[int, Entry]]


class _Pruner:
    """Branch and bound for one stage: the pass's upper bound and the relaxation bound for completing a
    prefix (cached)."""

    __slots__ = ("ub", "rest", "volume", "left", "cache")

    def __init__(self, ub: float, rest: float, volume: float, left: int) -> None:
        self.ub = ub  # entries costing more are dropped (with a relative tolerance for float rounding)
        self.rest = rest  # smallest later width times the cost factor; 0: nothing to prune with
        self.volume = volume
        self.left = left
        self.cache: dict[tuple, float] = {}

    def lower(self, r: int, need: Need) -> float:
        """Lower bound on the cost of completing a prefix with channel reach ``r`` in a state needing ``need``."""
        key = (r * need.taps, need.ah, need.aw)
        lb = self.cache.get(key)
        return self.fill(key) if lb is None else lb

    def fill(self, key: tuple[int, float, float]) -> float:
        """:meth:`lower` for ``key = (covered volume, ah, aw)``, computed and cached."""
        lb = self.cache[key] = self.rest * rem_lb(self.volume / key[0], key[1], key[2], self.left)
        return lb


class _IntPruner(_Pruner):
    """:class:`_Pruner` with the integer bound of a dilated space with full coverage: a key is ``(reach, Ah, Aw)``
    (``Ah``, ``Aw``: the factors by which the footprints must still grow), the channel factor ``ceil(C_in / r)``
    is raised to the next product the fan-ins can form (``smooth``), and the later stages' integer volumes
    must multiply to at least the three factors' product (:func:`~osc_design.solver.bounds.int_sum_bound`)."""

    __slots__ = ("full", "smooth")

    def __init__(self, ub: float, rest: float, full: int, smooth: tuple[int, ...], left: int) -> None:
        super().__init__(ub, rest, 0.0, left)
        self.full, self.smooth = full, smooth

    def fill(self, key: tuple[int, float, float]) -> float:
        need = -(-self.full // key[0])
        if need > 1:
            need = self.smooth[bisect.bisect_left(self.smooth, need)]
        lb = self.cache[key] = self.rest * int_sum_bound(need * int(key[1]) * int(key[2]), self.left)
        return lb


class Search:
    """The dynamic programme over chain prefixes for one :class:`~osc_design.solver.space.SearchSpace`."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        target = space.target
        self.n_lo, self.n_hi = space.n_lo, space.n_hi
        self.cin, self.cout = target.in_channels, target.out_channels
        self.strided, self.lam, self.uniform = space.strided, space.lam, space.uniform  # read per entry, stage
        self.axes = (Axis(space, 0), Axis(space, 1))
        self.volume = self.cin * target.kernel_size[0] * target.kernel_size[1]
        # axes whose spans only add (no dilation, full coverage): the remainder bound treats them apart
        self.additive = tuple(not space.dilated and not space.partial and target.kernel_size[a] > 1 for a in (0, 1))
        self.need = space.lam * self.cin
        for a in (0, 1):
            if not self.additive[a]:
                self.need *= target.kernel_size[a]
        # per-volume-unit cost lower bound (for pruning) and the factor for the certificate bound
        self.rho = cost_factor(space.objective, target)
        self._combos: dict[tuple, list[Combo]] = {}
        self.searched = 0
        self.state_dominance = space.dilated and space.objective == "params"
        # stages after the first are interchangeable in width: a state reached with fewer stages at no
        # higher cost dominates the same state later (it has more stages left), unless N is fixed (used
        # with dilation, where it pays; the searched-state counts of the other spaces stay as they were)
        self.across = space.dilated and not space.exact_n and isinstance(space.widths, (int, type(None)))
        # the reordered space (see :attr:`SearchSpace.gaps`): the C_in -> C_out stage may take any place
        # of the mixed-radix order; full coverage with rectangular kernels also closes each prefix with
        # its cheapest last stage instead of generating the last layer
        self.gaps = space.gaps
        self.close = space.gaps and not space.partial and not space.square
        self._closers: dict[tuple, tuple | None] = {}
        self._layers: list[Layer] = []
        # dilation, full coverage, one internal width: the integer bound of :class:`_IntPruner`
        self.integer = space.dilated and not space.partial and not isinstance(space.widths, tuple)
        self.smooth: tuple[int, ...] = ()
        if self.integer:
            primes = {p for w in (self.cin, self.cout, space.width(1, False)) for p in divisors(w) if p > 1
                      and all(p % q for q in range(2, math.isqrt(p) + 1))}
            self.smooth = smooth_numbers(tuple(sorted(primes)), self.cin)

    # -- moves -------------------------------------------------------------------------------------
    def combos(self, hs: tuple, ws: tuple, kind: str, started: bool, first: bool = True) -> list[Combo]:
        """Every spatial move of a stage of ``kind`` from ``(hs, ws)`` (cached); ``first``: of the state reached."""
        key = (hs, ws, kind, started, first)
        got = self._combos.get(key)
        if got is not None:
            return got
        ah, aw = self.axes
        phase = 1 if kind in ("stride", "post") else 0
        if self.space.square:
            kmax = max(ah.kmax_square(hs, kind), aw.kmax_square(ws, kind))
            pairs = [((k, k), oh, ow) for k in range(kmax, 0, -1)
                     for oh in ah.step(hs, kind, started, k) for ow in aw.step(ws, kind, started, k)]
        else:
            hsteps = [(kh, o) for kh in ah.ks(hs, kind) for o in ah.step(hs, kind, started, kh)]
            wsteps = [(kw, o) for kw in aw.ks(ws, kind) for o in aw.step(ws, kind, started, kw)]
            pairs = [((kh, kw), oh, ow) for kh, oh in hsteps for kw, ow in wsteps]
        out = []
        needs: dict[tuple, Need] = {}
        for kk, (hs2, dh, ph, fh), (ws2, dw, pw, fw) in pairs:
            need = needs.get((hs2, ws2))
            if need is None:
                need = needs[(hs2, ws2)] = self.spatial_need(hs2, ws2)
            out.append(Combo(kind, fh * fw, State(hs2, ws2, phase, first), kk, (dh, dw), (ph, pw), need))
        if self.integer:  # cheapest first: :meth:`_extend` stops at the first one too costly
            out.sort(key=lambda c: c.factor)
        self._combos[key] = out
        return out

    def accept(self, key: State, r: int) -> bool:
        """Does a design ending in ``key`` with channel reach ``r`` cover enough of the volume?"""
        if (self.strided and key.phase != 1) or not key.first:
            return False
        th = self.axes[0].covered_taps(key.hs, key.phase == 1)
        tw = self.axes[1].covered_taps(key.ws, key.phase == 1)
        if not th or not tw:
            return False
        covered = r * th * tw
        return covered == self.volume or covered / self.volume >= self.lam

    def spatial_need(self, hs: tuple, ws: tuple) -> Need:
        """What a state still needs spatially, for the remainder bound.

        ``taps`` is the product of the covered window taps (at most ``R + 1``) along the axes whose
        reach multiplies (dilation, or a relaxed coverage), ``ah``/``aw`` the kernel weight a remaining
        span ``D`` needs along axes without dilation: ``1 + D / s`` (a stage after the stride spaces its
        taps by ``s``; before it they are 1 apart), 1 when covered.
        """
        m, a = 1, [1.0, 1.0]
        for i, (ax, st) in enumerate(((self.axes[0], hs), (self.axes[1], ws))):
            R = st[0]
            done = R >= BIG or R >= ax.K - 1
            if self.integer:  # the footprint has at most R + 1 points and grows by at most the factor k
                a[i] = 1 if done else -(-ax.K // (R + 1))
                continue
            if self.additive[i]:
                a[i] = 1 if done else 1 + (ax.K - 1 - R) / ax.s
            else:
                m *= ax.K if done else R + 1
        return Need(m, a[0], a[1])

    def _kinds(self, phase: int) -> tuple[str, ...]:
        if phase == 1:
            return ("post",)
        return ("pre", "stride") if self.strided else ("pre",)

    # -- the programme -------------------------------------------------------------------------------
    def run(self, ub: float, per_n: bool = False) -> dict[int, Entry]:
        """Best final entry per exact stage count ``N`` in ``[n_lo, n_hi]`` (only costs ``<= ub``); with
        ``per_n`` false only the best over all ``N`` is sure to be exact."""
        h0, w0 = self.axes[0].initial(), self.axes[1].initial()
        layer: Layer = {State(h0, w0, 0, not self.gaps): {1: Entry(0, None, 1, None, 1)}}
        finals: dict[int, Entry] = {}
        archive: dict[State, dict[int, float]] = {}
        self.searched = 1
        for stage in range(1, self.n_hi + 1):
            if self.close:
                if stage >= self.n_lo:
                    self._close(layer, stage, ub, finals)
                if finals and not per_n:
                    ub = min(ub, min(e.cost for e in finals.values()))
                if stage == self.n_hi:
                    break
            nxt, cands = self._advance(layer, stage, ub * (1 + 1e-12))
            if self.state_dominance and len(nxt) > 1:
                nxt = _dominance_filter(nxt)
            if self.across and not per_n:
                _archive_filter(nxt, archive)
            if stage >= self.n_lo and not self.close:
                self._collect(nxt if self.uniform else cands, stage, ub, finals)
            self.searched += sum(len(s) for s in nxt.values()) + sum(len(s) for s in cands.values())
            layer = nxt
            self._layers.append(layer)
            if not layer:
                break
        return finals

    def _advance(self, layer: Layer, stage: int, ub_tol: float) -> tuple[Layer, Layer]:
        """The entries after ``stage``: ``nxt`` (internal width, to extend) and ``cands`` (the last stage
        mapping to ``C_out``, when that differs from the internal width)."""
        space = self.space
        cin = self.cin if stage == 1 else space.width(stage - 1, False)
        left = self.n_hi - stage
        rest = space.min_width(stage + 1) * self.rho if left else 0.0
        prune = (_IntPruner(ub_tol, rest, self.cin, self.smooth, left) if self.integer else
                 _Pruner(ub_tol, rest, self.need, left))
        nxt: Layer = {}
        cands: Layer = {}
        if stage < self.n_hi or self.uniform:
            self._extend(layer, nxt, stage, cin, space.width(stage, False), prune)
        if stage >= self.n_lo and not self.uniform:
            self._extend(layer, cands, stage, cin, space.width(stage, True), prune)
        _pareto_filter(nxt)
        _pareto_filter(cands)
        return nxt, cands

    def _extend(self, layer: Layer, out: Layer, stage: int, cin: int, cout: int, prune: _Pruner) -> None:
        """Add to ``out`` every stage ``cin -> cout`` from the entries of ``layer`` that may fit the bound."""
        ub_tol = prune.ub
        for key, entries in layer.items():
            cmin_key = min(e.cost for e in entries.values())
            for fan, first in self._moves(key, stage, cin, cout):
                fan0 = fan[0]
                for kind in self._kinds(key.phase):
                    for combo in self.combos(key.hs, key.ws, kind, stage > 1, first):
                        unit = cout * combo.factor
                        # even the cheapest entry with the smallest fan-in and full reach cannot fit
                        best_case = cmin_key + fan0 * unit
                        if best_case > ub_tol:
                            if self.integer:  # the combos are sorted by factor
                                break
                            continue
                        low = prune.lower(self.cin, combo.need) if prune.rest else 0.0
                        if best_case + low > ub_tol:
                            continue
                        self._relax(key, entries, combo, fan, unit, out, prune, low)

    def _moves(self, key: State, stage: int, cin: int, cout: int) -> list[tuple[tuple[int, ...], bool]]:
        """The fan-ins a stage from ``key`` may take and whether the ``C_in -> C_out`` stage is then in the
        chain: in the reordered space it is taken once, at any place (a later layer, if one is left)."""
        if not self.gaps:
            return [(fanins(cin, cout), True)]
        moves = [] if key.first else [(fanins(self.cin, self.cout), True)]
        if key.first or stage < self.n_hi:
            moves.append((fanins(self.cout, self.cout), key.first))
        return moves

    def _relax(self, key: State, entries: dict[int, Entry], combo: Combo, fan: tuple[int, ...], unit: int,
               out: Layer, prune: _Pruner, low: float) -> None:
        """Take ``combo`` with every fan-in from every entry of ``key``; keep the cheapest per new reach
        (``low``: the bound for completing with full reach, the least for any reach)."""
        full, ub_tol = self.cin, prune.ub - low
        rest, cache = prune.rest, prune.cache  # the hot loop reads the bound cache itself
        taps, ah, aw = combo.need
        state = combo.state
        slot = out.get(state)
        for r, entry in entries.items():
            c = entry.cost
            for n in fan:  # ascending: cost grows, reach grows
                r2 = r * n
                if r2 >= full:
                    r2 = full
                c2 = c + n * unit
                if c2 > ub_tol:  # even with full reach the rest cannot fit; larger fan-ins cost more
                    break
                if rest:
                    lk = (r2 * taps, ah, aw)
                    lb = cache.get(lk)
                    if c2 + (prune.fill(lk) if lb is None else lb) > prune.ub:
                        if r2 == full:
                            break
                        continue
                if slot is None:
                    slot = out[state] = {}
                cur = slot.get(r2)
                if cur is None or c2 < cur.cost:
                    slot[r2] = Entry(c2, key, r, combo, n)
                if r2 == full:
                    break

    def _closer(self, a: int, st: tuple, started: bool) -> tuple | None:
        """The cheapest last stage along axis ``a`` from ``st`` that covers the window: ``(k, d, pad, state)``
        with the smallest kernel (cached; ``None`` when none does)."""
        key = (a, st, started)
        if key in self._closers:
            return self._closers[key]
        ax = self.axes[a]
        got: tuple | None = None
        for k in sorted(ax.ks(st, "pre")):
            for st2, d, pad, _ in ax.step(st, "pre", started, k):
                if ax.covered_taps(st2, False) == ax.K:
                    got = (k, d, pad, st2)
                    break
            if got is not None:
                break
        self._closers[key] = got
        return got

    def _close(self, layer: Layer, stage: int, ub: float, finals: dict[int, Entry]) -> None:
        """Record in ``finals`` the cheapest ``stage``-stage design: every entry of ``layer`` (one stage less)
        closed by its cheapest last stage, i.e. the smallest kernels that cover the window along each axis
        (params are ``k_h k_w n``) and the smallest fan-in that completes the channel reach."""
        best = finals.get(stage)
        for key, entries in layer.items():
            ch = self._closer(0, key.hs, stage > 1)
            cw = self._closer(1, key.ws, stage > 1)
            if ch is None or cw is None:
                continue
            fan = fanins(self.cout if key.first else self.cin, self.cout)
            unit = self.cout * ch[0] * cw[0]
            for r, entry in entries.items():
                n = next((n for n in fan if r * n >= self.cin), None)
                if n is None:
                    continue
                c = entry.cost + n * unit
                if c <= ub and (best is None or c < best.cost):
                    combo = Combo("pre", ch[0] * cw[0], State(ch[3], cw[3], 0, True), (ch[0], cw[0]),
                                  (ch[1], cw[1]), (ch[2], cw[2]), Need(1, 1.0, 1.0))
                    best = finals[stage] = Entry(c, key, r, combo, n)

    def _collect(self, store: Layer, stage: int, ub: float, finals: dict[int, Entry]) -> None:
        """Record in ``finals`` the cheapest accepted entry of ``store`` with ``stage`` stages."""
        for key, slot in store.items():
            for r, entry in slot.items():
                if entry.cost <= ub and self.accept(key, r):
                    if stage not in finals or entry.cost < finals[stage].cost:
                        finals[stage] = entry

    # -- passes and designs --------------------------------------------------------------------------
    def solve(self, ub_hint: float, per_n: bool = False, known: float = INF) -> dict[int, tuple[float, list[Stage]]]:
        """Run with an increasing upper bound until designs are found; decode the traces.

        Any design costing at most the upper bound survives the pruning, so the first pass that finds
        designs finds the optimum (per stage count when ``per_n``). ``known`` is the cost of a design
        known to lie in the space (it caps the schedule).
        """
        total = 0
        pruning = self.rho > 0 and ub_hint > 0 and math.isfinite(ub_hint)
        factors = (1.0 + 1e-9, 1.03, 1.08, 1.2, 1.5, 2.5, 6.0)
        schedule = [ub_hint * f for f in factors] + [INF] if pruning else [INF]
        if pruning and self.integer and self.space.objective == "params" and not per_n:
            schedule = self._unit_schedule(ub_hint, known)
        elif known < INF and not per_n:
            # the cost of a design known to be in the space ends the schedule (and replaces the passes
            # just below it, which would cost nearly as much and might fail)
            schedule = [u for u in schedule if u < known / 1.1] + [known * (1 + 1e-9), INF]
        finals: dict[int, Entry] = {}
        for ub in schedule:
            self._layers = []
            finals = self.run(ub, per_n)
            total += self.searched
            if finals and (not per_n or len(finals) == self.n_hi - self.n_lo + 1 or ub == INF):
                break
        self.searched = total
        return {N: (entry.cost, self.decode(N, entry)) for N, entry in finals.items()}

    def _unit_schedule(self, ub_hint: float, known: float) -> list[float]:
        """Upper bounds for the passes of a dilated ``params`` search: every cost is a multiple of ``unit`` (the
        gcd of the widths), so the passes start at the integer bound of the empty prefix and rise by one unit
        (later by 2 %, then 20 %) up to ``known``; a pass just below the optimum is cheap, one far above is not."""
        w = self.space.width(1, False)
        unit = math.gcd(self.cout, w)
        need = self.smooth[bisect.bisect_left(self.smooth, self.cin)] * self.volume // self.cin
        root = min(self.cout, w) * int_sum_bound(need, self.n_hi)
        u = max(unit * math.ceil(ub_hint * (1 - 1e-12) / unit), unit * -(-root // unit))
        schedule: list[float] = []
        while u < known and len(schedule) < 40:
            schedule.append(float(u))
            grow = 0.0 if len(schedule) < 8 else 0.02 if len(schedule) < 20 else 0.2
            u = max(u + unit, unit * math.ceil(u * (1 + grow) / unit))
        return schedule + ([known * (1 + 1e-9)] if known < INF else []) + [INF]

    def decode(self, N: int, entry: Entry) -> list[Stage]:
        """The stages of the ``N``-stage design ending in ``entry`` (of the last :meth:`run`)."""
        if self.gaps:
            return self._decode_reordered(N, entry)
        space = self.space
        stages: list[Stage] = []
        t = N
        while entry.combo is not None:
            combo = entry.combo
            cin = self.cin if t == 1 else space.width(t - 1, False)
            cout = space.width(t, t == N)
            stride = space.target.stride if combo.kind == "stride" else (1, 1)
            stages.append(Stage(cin, cout, cin // entry.fan_in, combo.kernel, stride,
                                combo.padding, combo.dilation))
            t -= 1
            if t == 0:
                break
            entry = self._layers[t - 1][entry.key][entry.reach]  # type: ignore[index]
        stages.reverse()
        return stages

    def _decode_reordered(self, N: int, entry: Entry) -> list[Stage]:
        """:meth:`decode` in the reordered space (see :func:`~osc_design.solver.chain.reordered`)."""
        moves: list[Move] = []
        t = N
        while entry.combo is not None:
            combo = entry.combo
            special = combo.state.first and not entry.key.first  # type: ignore[union-attr]
            moves.append(Move(combo.kernel, combo.dilation, entry.fan_in, special))
            t -= 1
            if t == 0:
                break
            entry = self._layers[t - 1][entry.key][entry.reach]  # type: ignore[index]
        moves.reverse()
        return reordered(self.axes, self.cin, self.cout, moves)


def _pareto_filter(store: Layer) -> None:
    """Within each spatial state keep only entries that no entry with more reach beats on cost."""
    for slot in store.values():
        if len(slot) > 1:
            best = INF
            for r in sorted(slot, reverse=True):
                if slot[r].cost >= best:
                    del slot[r]
                else:
                    best = slot[r].cost


def _dominance_filter(layer: Layer) -> Layer:
    """Drop entries another entry dominates: at least the reach, at least the span of the same parity
    along each axis (all other state parts equal) and at most the cost. Valid for ``params`` with
    dilation: from a larger span of the same parity every completion of the smaller one works (same
    kernels and dilations; steps stay within ``span + 1``; the final span grows by an even amount). In the
    reordered space both must agree on whether the ``C_in -> C_out`` stage is taken (its fan-ins differ)."""
    groups: dict[tuple, list[tuple]] = {}
    for key, slot in layer.items():
        hs, ws = key.hs, key.ws
        g = (hs[0] & 1, ws[0] & 1, hs[1:], ws[1:], key.phase, key.first)
        for r, entry in slot.items():
            groups.setdefault(g, []).append((entry.cost, -r, -hs[0], -ws[0], key, r))
    out: Layer = {}
    for items in groups.values():
        items.sort()
        kept: dict[tuple[int, int], int] = {}  # per pair of spans kept: the largest reach kept (cost order)
        for _, _, nh, nw, key, r in items:
            rh, rw = -nh, -nw
            if any(kr >= r and kh >= rh and kw >= rw for (kh, kw), kr in kept.items()):
                continue
            if kept.get((rh, rw), 0) < r:
                kept[(rh, rw)] = r
            out.setdefault(key, {})[r] = layer[key][r]
    return out


def _archive_filter(layer: Layer, archive: dict[State, dict[int, float]]) -> None:
    """Drop entries that an entry of an earlier layer (after the first stage) at the same state beats:
    at least the reach at no higher cost with fewer stages used; then add the survivors to ``archive``."""
    for key in list(layer):
        slot = layer[key]
        seen = archive.setdefault(key, {})
        if seen:
            for r in list(slot):
                c = slot[r].cost
                if any(r2 >= r and c2 <= c for r2, c2 in seen.items()):
                    del slot[r]
            if not slot:
                del layer[key]
                continue
        for r, e in slot.items():
            seen[r] = e.cost

