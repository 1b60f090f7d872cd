"""The per-axis footprint automaton of the search (see "Spatial reach, per axis" in :mod:`osc_design.solver`).

Along one spatial axis a chain prefix is summarised by a small state: the footprint span (exact below
``T = max(K - 1, 1)``, only its parity above), and after the strided stage the parity of the coarse
span, the promised final parity and the strided stage's output size. :class:`Axis` lists the kernel
sizes worth trying from a state, the outcomes of a stage (new state, dilation, padding by the
centring rule, cost factor) and the window taps a final state covers.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..geometry import conv_output_size, valid_taps
from .space import SearchSpace

__all__ = ["BIG", "Axis"]

BIG = 1 << 40  # even; a span ">= T" is stored as BIG + parity (only differences and parities are used)


class Axis:
    """Footprint states and stage steps along one spatial axis (height or width).

    A *pre* state is ``(R,)``: the footprint span so far (exact below ``T = max(K - 1, 1)``, else
    ``BIG + parity``). After the strided stage an axis with stride ``s > 1`` has *post* states
    ``(R, bpar, beta, m, bused)``: total span in input pixels, parity of the coarse span ``B`` so far,
    the promised final parity ``beta`` of ``B``, the strided stage's output size ``m`` (0 when sizes are
    not tracked) and whether a post-stride stage already has a kernel > 1 (used by the exchange rule).
    """

    def __init__(self, space: SearchSpace, a: int) -> None:
        t = space.target
        K = self.K = t.kernel_size[a]
        self.s, self.p = t.stride[a], t.padding[a]
        self.T = max(K - 1, 1)
        self.delta = self.p - (K - 1) // 2
        self.size = None if t.input_size is None else t.input_size[a]
        self.dilated = space.dilated
        self.objective = space.objective
        self.partial = space.partial
        # ``params`` without dilation, rectangular kernels: one stage per phase takes the span (exchange)
        self.concentrate = space.objective == "params" and not space.dilated and not space.square
        # ``params``: per parity only the extreme spans are kept (dominance)
        self.dominate = space.objective == "params"
        self._ks: dict[tuple, tuple[int, ...]] = {}
        self._steps: dict[tuple, tuple] = {}

    # -- spans, paddings, sizes -------------------------------------------------------------------
    def canon(self, R: int) -> int:
        if R >= BIG:
            return BIG + (R & 1)
        return R if R < self.T else BIG + (R & 1)

    def cum_pad(self, R: int, started: bool) -> int:
        """Cumulative padding (input pixels) after the stages that made span ``R`` (pre-stride rule)."""
        if not started:
            return 0
        if R == 0:
            return max(0, self.delta) if self.K == 1 else 0
        if R >= BIG:
            return R // 2 + self.delta  # never clamped: T >= -2 * delta
        return max(0, R // 2 + self.delta)

    def size_pre(self, R: int, started: bool) -> int | None:
        if self.size is None:
            return None
        if not started:
            return self.size
        return self.size + 2 * self.cum_pad(R, True) - R if R < BIG else self.size + 2 * self.delta - (R & 1)

    def initial(self) -> tuple:
        return (0,)

    # -- kernel sizes worth trying ----------------------------------------------------------------
    def ks(self, st: tuple, kind: str) -> tuple[int, ...]:
        """Kernel sizes worth trying from ``st`` for a stage of ``kind`` (rectangular mode)."""
        key = (st, kind)
        got = self._ks.get(key)
        if got is None:
            got = self._ks[key] = tuple(sorted(set(self._ks_raw(st, kind)), reverse=True))
        return got

    def _ks_raw(self, st: tuple, kind: str) -> list[int]:
        if kind == "post" and self.s > 1:
            return self._ks_post(st)
        # pre-stride stage (or an axis without stride)
        K, s, R = self.K, self.s, st[0]
        out = [1]
        if self.concentrate:
            if R != 0:
                return out
            if s == 1:
                spans = [K - 1] if K > 1 else []
                if self.partial:
                    spans += [a for a in range(1, K - 1) if (a - (K - 1)) % 2 == 0]
                return out + [a + 1 for a in spans if a >= 1]
            if self.partial:
                return out + list(range(2, K + 1))
            # spans A before the stride that a single later stage completes exactly: A + s * B = K - 1,
            # A >= s - 1 when B > 0 (a gap-free footprint); overshooting never pays for params
            spans = [K - 1 - s * b for b in range(0, (K - 1) // s + 1)]
            return out + [a + 1 for a in spans if a >= 1 and (a == K - 1 or a >= s - 1)]
        if R >= BIG:
            return out + [2]
        if self.dilated:
            return out + list(range(2, -(-K // (R + 1)) + 3))
        return out + list(range(2, self.T - R + 3))

    def _ks_post(self, st: tuple) -> list[int]:
        """Kernel sizes after the stride along an axis with stride ``s > 1`` (taps ``s`` apart)."""
        K, s, R = self.K, self.s, st[0]
        big = R >= BIG
        out = [1]
        if not big and R + 1 < s:
            return out
        if self.concentrate:
            if st[4]:
                return out
            if big:
                return out + [2]
            if not self.partial:
                b = -(-max(0, K - 1 - R) // s)
                return out + ([b + 1] if b > 0 else [])
            bmax = -(-max(0, K - 1 - R) // s) + 1
            return out + [b + 1 for b in range(1, bmax + 1)]
        if big:
            return out + [2]
        if self.dilated:
            return out + list(range(2, -(-K // (R + 1)) + 3))
        return out + [b + 1 for b in range(1, -(-(self.T - R) // s) + 2)]

    def kmax_square(self, st: tuple, kind: str) -> int:
        """Largest kernel this axis may want in a square stage (the other axis must accept it)."""
        return max(self.ks(st, kind))

    # -- one stage along this axis ----------------------------------------------------------------
    def step(self, st: tuple, kind: str, started: bool, k: int) -> tuple:
        """Outcomes ``(new_state, dilation, padding, factor)`` of a stage with kernel ``k``.

        ``kind`` is ``"pre"``, ``"stride"`` (the strided stage) or ``"post"``; for an axis with unit
        stride all three are the same. ``factor`` is the per-axis cost factor of the objective: ``k``
        (params), ``k * out_size`` (macs) or the valid tap count (macs_valid).
        """
        key = (st, kind, started, k)
        got = self._steps.get(key)
        if got is None:
            got = self._steps[key] = tuple(self._step(st, kind, started, k))
        return got

    def _deltas(self, R: int, k: int, unit: int) -> list[int]:
        """Dilations ``d`` (step ``unit * d``) allowed from span ``R`` for kernel ``k``."""
        if k == 1:
            return [1]
        if not self.dilated:
            return [1] if (R >= BIG or unit <= R + 1) else []
        if R >= BIG:
            if (unit * (k - 1)) % 2 == 0:
                return [1]
            return [1, 2] if 2 * unit <= self.T + 1 else [1]
        dmax = (R + 1) // unit
        if dmax < 1:
            return []
        ds = list(range(1, dmax + 1))
        if not self.dominate:
            return ds
        keep: dict[tuple[int, bool], int] = {}
        for d in ds:  # per parity: the largest span below T and the smallest at or above T
            R2 = R + unit * d * (k - 1)
            cls = (R2 & 1, R2 >= self.T)
            if cls not in keep:
                keep[cls] = d
            elif cls[1]:
                keep[cls] = min(keep[cls], d)
            else:
                keep[cls] = max(keep[cls], d)
        return sorted(set(keep.values()))

    def _factor(self, k: int, h_in: int | None, h_out: int | None, stride: int, pad: int, d: int) -> int:
        if self.objective == "params":
            return k
        if self.objective == "macs":
            return k * h_out  # type: ignore[operator]
        return valid_taps(h_in, k, stride, pad, d)  # type: ignore[arg-type]

    def _step(self, st: tuple, kind: str, started: bool, k: int) -> Iterator[tuple]:
        s = self.s
        if s == 1:
            kind = "pre"
        if kind == "post":
            R, bpar, beta, m, bused = st
            for d in self._deltas(R, k, s):
                b = d * (k - 1)
                bpar2 = (bpar + b) & 1
                pad = (b + bpar - bpar2) // 2
                h_in = h_out = None
                if self.size is not None:
                    h_in = m - bpar
                    h_out = h_in + 2 * pad - b
                    if h_in < 1 or h_out < 1:
                        continue
                new = (self.canon(R + s * b), bpar2, beta, m, bused or b > 0)
                yield new, d, pad, self._factor(k, h_in, h_out, 1, pad, d)
            return
        R = st[0]
        h_in = self.size_pre(R, started)
        if h_in is not None and h_in < 1:
            return
        q_prev = self.cum_pad(R, started)
        for d in self._deltas(R, k, 1):
            a = d * (k - 1)
            R2 = R + a
            if kind == "pre":
                pad = self.cum_pad(R2, True) - q_prev
                h_out = None
                if h_in is not None:
                    h_out = h_in + 2 * pad - a
                    if h_out < 1:
                        continue
                yield (self.canon(R2),), d, pad, self._factor(k, h_in, h_out, 1, pad, d)
                continue
            # the strided stage: it takes whatever padding centres the final footprint
            betas = (0, 1) if s % 2 == 0 else ((self.K - 1 - R2) & 1,)
            for beta in betas:
                twice = 2 * self.p + (R2 - (self.K - 1)) + s * beta - 2 * q_prev
                if twice < 0 or twice % 2:
                    continue
                pad = twice // 2
                m = 0
                h_out = None
                if h_in is not None:
                    m = h_out = conv_output_size(h_in, k, s, pad, d)
                    if m < 1:
                        continue
                yield (self.canon(R2), 0, beta, m, False), d, pad, self._factor(k, h_in, h_out, s, pad, d)

    # -- acceptance -------------------------------------------------------------------------------
    def covered_taps(self, st: tuple, post: bool) -> int:
        """Window taps covered along this axis by a final state (0: not a valid final state)."""
        K, s = self.K, self.s
        R = st[0]
        if s > 1:
            if not post or st[1] != st[2]:
                return 0
        elif self.cum_pad(R, True) != self.p + (R - (K - 1)) // 2 and R < BIG:
            return 0
        if (R - (K - 1)) % 2:
            return 0
        if R >= BIG or R >= K - 1:
            return K
        if not self.partial or self.p + (R - (K - 1)) // 2 < 0:
            return 0
        return R + 1
