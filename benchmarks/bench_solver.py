"""Solver speed: single solves over C <= 4096, K <= 51 (median, p90) and a sweep of random targets.

Run: python benchmarks/bench_solver.py [n_single] [n_sweep]
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from osc_design import Target
from osc_design.solver import _solve_cached, solve


def main() -> None:
    n_single = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    n_sweep = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rng = random.Random(0)
    for label, kwargs in (("osc (free depth)", {}), ("osc-2", {"max_stages": 2})):
        times = []
        for _ in range(n_single):
            c_in, c_out = rng.randint(1, 4096), rng.randint(1, 4096)
            k = rng.choice([1, 3, 5, 7, 9, 13, 31, 51])
            _solve_cached.cache_clear()
            t0 = time.perf_counter()
            solve(Target(c_in, c_out, k), **kwargs)
            times.append(time.perf_counter() - t0)
        times.sort()
        print(f"{label:<18} single solves (uncached, C <= 4096, K <= 51): median {statistics.median(times) * 1e3:.1f} ms, "
              f"p90 {times[int(0.9 * len(times))] * 1e3:.1f} ms, max {times[-1] * 1e3:.1f} ms over {n_single}")
    targets = [Target(rng.randint(1, 1024), rng.randint(1, 1024), rng.choice([1, 3, 5, 7])) for _ in range(n_sweep)]
    _solve_cached.cache_clear()
    t0 = time.perf_counter()
    for t in targets:
        solve(t)
    elapsed = time.perf_counter() - t0
    print(f"sweep of {n_sweep} random targets (C <= 1024, K in 1,3,5,7, free depth): {elapsed:.1f} s "
          f"({elapsed / n_sweep * 1e3:.2f} ms each)")


if __name__ == "__main__":
    main()
