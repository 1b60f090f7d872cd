"""Solver speed: uncached single solves (median, p90, max) and a sweep of random targets.

Run: ``python benchmarks/bench_solver.py [n_single] [n_sweep]`` (defaults 300 and 10,000), or
``python benchmarks/bench_solver.py --table [n_targets] [cap_seconds] [base_commit]`` for the issue-18 table:
four configurations (two / free stages x dilation off / on) on a fixed random set (seed 18; C_in = C_out
uniform in 16..4096, K odd in 3..51), before (``base_commit``'s solver, exported with ``git archive`` into a
temporary directory) and after (this tree), measured alternately target by target in two worker processes
(caches cleared before each solve); a solve running past ``cap_seconds`` is stopped and counted at the cap.

Targets: ``C_in, C_out`` uniform in 1..4096 or drawn from usual CNN widths (16..4096), kernel side
uniform in 1..51, stride 1 unless stated. Each single solve starts from empty caches. ``search`` is
the solve with ``verify="none"`` (the model's coverage), ``verified`` the default (exact verifier on
the returned design). The sweep uses ``verify="fast"`` (the per-group computation, equal to the
verifier on these chains), and for comparison the default on a fifth of it. Everything runs on one
core (pure Python; the verifier's numpy interval operations are single-threaded).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable

from osc_design import Target, coverage
from osc_design.coverage import chain_coverage
from osc_design.solver import solve
from osc_design.solver.api import _solve_cached, _solve_space
from osc_design.solver.bounds import rem_bound
from osc_design.solver.chain import model_coverage

USUAL = [16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 3072, 4096]


def clear() -> None:
    _solve_cached.cache_clear()
    _solve_space.cache_clear()
    rem_bound.cache_clear()


def timed(targets: list[Target], **options) -> list[float]:
    out = []
    for t in targets:
        clear()
        t0 = time.perf_counter()
        solve(t, **options)
        out.append(time.perf_counter() - t0)
    return out


def report(label: str, times: list[float]) -> None:
    times = sorted(times)
    p90 = times[int(0.9 * len(times))]
    print(f"  {label:<58} median {statistics.median(times) * 1e3:7.1f} ms   p90 {p90 * 1e3:7.1f} ms"
          f"   max {times[-1] * 1e3:8.1f} ms   (n={len(times)})")


def draw(rng: random.Random, n: int, channels: Callable[[], int], kernels: Callable[[], int],
         stride: int = 1) -> list[Target]:
    out = []
    for _ in range(n):
        k = kernels()
        out.append(Target(channels(), channels(), k, stride=min(stride, k)))
    return out


def main() -> None:
    n_single = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    n_sweep = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rng = random.Random(0)
    uniform_c = lambda: rng.randint(1, 4096)  # noqa: E731
    usual_c = lambda: rng.choice(USUAL)  # noqa: E731
    any_k = lambda: rng.randint(1, 51)  # noqa: E731
    small_k = lambda: rng.choice([3, 5, 7])  # noqa: E731

    print("single solves, uncached (C <= 4096, K <= 51):")
    uniform = draw(rng, n_single, uniform_c, any_k)
    usual = draw(rng, n_single, usual_c, any_k)
    report("osc, C uniform, search only", timed(uniform, verify="none"))
    report("osc, C uniform, verified", timed(uniform))
    report("osc, usual widths, search only", timed(usual, verify="none"))
    report("osc, usual widths, verified", timed(usual))
    report("osc-2 (max_stages=2), usual widths, verified", timed(usual, max_stages=2))
    strided = draw(rng, n_single // 3, usual_c, small_k, stride=2)
    report("osc, usual widths, K in 3,5,7, stride 2, verified", timed(strided))
    report("osc, usual widths, K in 3,5,7, stride 2, objective macs",
           timed([t.with_input_size(28) for t in strided], objective="macs"))
    dilated = draw(rng, max(10, n_single // 10), lambda: rng.choice(USUAL[:12]), small_k)
    report("osc, dilation, widths <= 512, K in 3,5,7, verified", timed(dilated, dilation=True))

    print("verification of the returned design, 4096 -> 4096, K = 51 (8 stages):")
    sol = solve(Target(4096, 4096, 51), verify="none")
    for name, fn in (("exact verifier coverage()", lambda: coverage(sol.spec)),
                     ("per-group equivalent (verify='fast')", lambda: chain_coverage(sol.spec.target, sol.stages)),
                     ("model only (verify='none')", lambda: model_coverage(sol.spec.target, sol.stages))):
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        print(f"  {name:<58} median {statistics.median(runs) * 1e3:7.1f} ms")

    sweep = draw(rng, n_sweep, uniform_c, any_k)
    for verify, targets in (("fast", sweep), ("full", sweep[: max(1, n_sweep // 5)])):
        clear()
        t0 = time.perf_counter()
        for t in targets:
            solve(t, verify=verify)
        elapsed = time.perf_counter() - t0
        print(f"sweep of {len(targets):,} random targets (C uniform <= 4096, K <= 51, verify={verify!r}): "
              f"{elapsed:.1f} s ({elapsed / len(targets) * 1e3:.2f} ms each)")


CONFIGS = (("two stages, no dilation", 2, False), ("free stages, no dilation", None, False),
           ("two stages, dilation", 2, True), ("free stages, dilation", None, True))

WORKER = """
import json, sys, time
from osc_design import Target
from osc_design.solver import solve
from osc_design.solver.api import _solve_cached, _solve_space
from osc_design.solver.bounds import rem_bound
for line in sys.stdin:
    c, k, n, d = json.loads(line)
    _solve_cached.cache_clear(); _solve_space.cache_clear(); rem_bound.cache_clear()
    t0 = time.perf_counter()
    sol = solve(Target(c, c, k), max_stages=n, dilation=d, verify="none")
    print(json.dumps([time.perf_counter() - t0, sol.cost.params]), flush=True)
"""


class Worker:
    """A solver process on ``PYTHONPATH=root``; a solve past the cap kills it (a fresh one starts)."""

    def __init__(self, root: str) -> None:
        self.root, self.proc = root, None

    def solve(self, job: list, cap: float) -> tuple[float, int | None]:
        import json
        import os
        import select
        import subprocess

        if self.proc is None:
            env = {**os.environ, "PYTHONPATH": self.root}
            self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env, cwd=self.root)
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], cap)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return cap, None
        t, params = json.loads(self.proc.stdout.readline())
        return t, params


def _row(label: str, times: list[float], targets: list[tuple[int, int]]) -> str:
    order = sorted(range(len(times)), key=lambda i: times[i])
    p90 = times[order[int(0.9 * len(times))]]
    worst = order[-1]
    c, k = targets[worst]
    return (f"| {label} | {statistics.median(times) * 1e3:.1f} ms | {p90 * 1e3:.1f} ms | "
            f"{times[worst]:.3f} s (C {c}, K {k}) | {sum(t > 1.0 for t in times)} |")


def table(n: int, cap: float, base: str) -> None:
    import os
    import subprocess
    import tempfile

    rng = random.Random(18)
    targets = [(rng.randint(16, 4096), 2 * rng.randint(1, 25) + 1) for _ in range(n)]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as old:
        archive = subprocess.run(["git", "-C", here, "archive", base, "osc_design"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        before, after = Worker(old), Worker(here)
        print(f"{n} targets (seed 18), cap {cap:g} s per solve; before = {base}, after = this tree")
        print("| configuration | version | median | 90th pct | max | over 1 s | worse params |")
        for label, n_max, dil in CONFIGS:
            tb, ta, worse, better = [], [], 0, 0
            for c, k in targets:
                job = [c, k, n_max, dil]
                (t0, p0), (t1, p1) = before.solve(job, cap), after.solve(job, cap)
                tb.append(t0)
                ta.append(t1)
                if p0 is not None and p1 is not None:
                    worse += p1 > p0
                    better += p1 < p0
            print(_row(f"{label} | before", tb, targets) + " |")
            print(_row(f"{label} | after", ta, targets) + f" {worse} (cheaper: {better}) |")
            ratios = sorted(b / a for b, a in zip(tb, ta, strict=True))
            print(f"|   before / after per target: median {statistics.median(ratios):.2f}x, "
                  f"min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        args = sys.argv[2:]
        table(int(args[0]) if args else 200, float(args[1]) if len(args) > 1 else 30.0,
              args[2] if len(args) > 2 else "f9b6399")
    else:
        main()
