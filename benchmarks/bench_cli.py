"""Median wall time of the bare command ``osc-design --channels 256 --kernel 7`` (a fresh process each run).

Run: python benchmarks/bench_cli.py [runs]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    exe = shutil.which("osc-design")
    cmd = [exe] if exe else [sys.executable, "-m", "osc_design"]
    cmd += ["--channels", "256", "--kernel", "7"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the file cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    print(f"{' '.join(cmd[-4:])}: median {statistics.median(times) * 1e3:.0f} ms, "
          f"min {min(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms over {runs} runs")
    probe = ("import sys; from osc_design.cli import app; from typer.testing import CliRunner; "
             "CliRunner().invoke(app, ['--channels', '256', '--kernel', '7']); "
             "print(sorted(m for m in ('torch', 'jax', 'sympy', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
    print(f"heavy modules imported by the bare command: {out}")


if __name__ == "__main__":
    main()
