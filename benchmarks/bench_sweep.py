"""Sweep wall time: ``n`` random targets solved with and without dilation, with one job and with every core.

Run: ``python benchmarks/bench_sweep.py [n] [jobs]`` (defaults 10,000 and -1: every core). Targets
(seed 18): ``C_in = C_out`` uniform in 16..1024, K odd in 3..15, stride 1; each is solved twice
(``dilation=False`` and ``True``, free stage count, ``verify="fast"``). The serial run is a plain loop;
the parallel one goes through :class:`joblib.Parallel` (as ``osc-design sweep --jobs`` does), in chunks
of 50 targets per task; the parallel results must equal the serial ones (params of every design).
"""

from __future__ import annotations

import random
import sys
import time

from joblib import Parallel, cpu_count, delayed

from osc_design import Target
from osc_design.solver import solve


def targets(n: int) -> list[tuple[int, int]]:
    rng = random.Random(18)
    return [(rng.randint(16, 1024), 2 * rng.randint(1, 7) + 1) for _ in range(n)]


def solve_chunk(chunk: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for c, k in chunk:
        t = Target(c, c, k)
        out.append((solve(t, verify="fast").cost.params, solve(t, dilation=True, verify="fast").cost.params))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else -1
    grid = targets(n)
    chunks = [grid[i:i + 50] for i in range(0, n, 50)]
    t0 = time.perf_counter()
    serial = solve_chunk(grid)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    parallel = [r for part in Parallel(n_jobs=jobs)(delayed(solve_chunk)(c) for c in chunks) for r in part]
    t_par = time.perf_counter() - t0
    assert parallel == serial, "parallel results differ from the serial run"
    cores = cpu_count() if jobs == -1 else jobs
    print(f"{n:,} targets x 2 dilation settings (C 16..1024, K 3..15): --jobs 1 {t_serial:.1f} s, "
          f"--jobs {cores} ({'every core' if jobs == -1 else 'jobs'}) {t_par:.1f} s; results identical")


if __name__ == "__main__":
    main()
