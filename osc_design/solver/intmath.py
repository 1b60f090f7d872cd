"""Small integer helpers of the solver: divisors, the fan-ins a stage may have, ``ceil(log2 x)``."""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=4096)
def divisors(n: int) -> tuple[int, ...]:
    """Divisors of ``n``, ascending.

    >>> divisors(12)
    (1, 2, 3, 4, 6, 12)
    """
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return tuple(small + large[::-1])


@lru_cache(maxsize=8192)
def fanins(cin: int, cout: int) -> tuple[int, ...]:
    """Fan-ins ``n = cin / g`` of a ``cin -> cout`` stage, ascending (``g`` divides both widths).

    >>> fanins(12, 8)
    (3, 6, 12)
    """
    return tuple(sorted(cin // g for g in divisors(math.gcd(cin, cout))))


def clog2(x: int) -> int:
    """``ceil(log2 x)`` for ``x >= 1``.

    >>> clog2(1), clog2(256), clog2(257)
    (0, 8, 9)
    """
    return max(0, (x - 1).bit_length())
