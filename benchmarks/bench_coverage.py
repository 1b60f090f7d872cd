"""Time the exact receptive-field verifier on wide two-stage chains and branchy graphs, and the per-group
chain computation (``chain_coverage``, the solver's ``verify="fast"``) on the chains.

Run: python benchmarks/bench_coverage.py
"""

from __future__ import annotations

import statistics
import time

from osc_design import GraphBuilder, Target, coverage
from osc_design.coverage import chain_coverage


def two_stage(c: int, k: int, g: int):
    b = GraphBuilder(Target(c, c, k))
    y = b.conv2d(b.input, c, (k, 1), padding=(k // 2, 0), groups=g)
    y = b.channel_shuffle(y, g)
    return b.build(b.conv2d(y, c, (1, k), padding=(0, k // 2), groups=g))


def slak_like(c: int, m: int, k: int):
    b = GraphBuilder(Target(c, c, m))
    x = b.input
    a = b.conv2d(x, c, (m, k), padding=(m // 2, k // 2), groups=c)
    v = b.conv2d(x, c, (k, m), padding=(k // 2, m // 2), groups=c)
    s = b.conv2d(x, c, k, padding=k // 2, groups=c)
    return b.build(b.conv2d(b.add([a, v, s]), c, 1))


def timeit(fn, repeat: int = 7) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def main() -> None:
    cases = [
        ("two-stage 256ch k7", two_stage(256, 7, 16)),
        ("two-stage 1024ch k15", two_stage(1024, 15, 32)),
        ("two-stage 4096ch k51", two_stage(4096, 51, 64)),
        ("slak-like 1024ch 51x5", slak_like(1024, 51, 5)),
        ("slak-like 4096ch 51x5", slak_like(4096, 51, 5)),
        ("two-stage 65536ch k7", two_stage(65536, 7, 256)),  # the supported limit: memory linear in C
        ("slak-like 65536ch 51x5", slak_like(65536, 51, 5)),
    ]
    print(f"{'graph':<26}{'median ms':>12}{'max ms':>10}  {'chain ms':>9}  result")
    for name, spec in cases:
        med, worst = timeit(lambda spec=spec: coverage(spec))
        cov = coverage(spec)
        chain = ""
        if name.startswith("two-stage"):  # a shuffle chain: the per-group computation applies
            assert chain_coverage(spec.target, spec.convs) == cov
            chain = f"{timeit(lambda spec=spec: chain_coverage(spec.target, spec.convs))[0] * 1e3:.1f}"
        print(f"{name:<26}{med * 1e3:>12.1f}{worst * 1e3:>10.1f}  {chain:>9}  "
              f"{'full' if cov.full else f'{cov.fraction:.3%}'}")


if __name__ == "__main__":
    main()
