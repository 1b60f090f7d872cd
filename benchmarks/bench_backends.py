"""CPU latency of every registered family's exported module against the plain convolution, in both backends.

For each target ``C -> C`` (default 256), kernel ``K`` (3 and 7) and input ``S x S`` (14 and 56), every
family's default design is exported with :func:`osc_design.backends.export_source`, imported from a
temporary file, and timed at batch 8, float32, by :func:`osc_design.latency.measure_many` (the
backends' own timers; the designs of one target round-robin): warm-up runs, then the median of
repeated runs (at least ``--min-runs``, more while under ``--budget`` seconds per design). PyTorch
runs in eval mode under ``torch.no_grad`` with ``torch.set_num_threads(threads)``; JAX runs the
module under ``jax.jit`` (weights as arguments) on XLA's default CPU thread pool (one thread per
core; XLA has no thread-count setting for CPU convolutions, so run under ``taskset`` to pin it). Run
it on an otherwise idle machine: with fewer free cores than threads, PyTorch's OpenMP workers wait for
a scheduler slice at every parallel region (latencies then cluster at multiples of ~30 ms). The load
average is printed with the table. Ratios are family latency / plain-conv latency (below 1: faster).

Run: python benchmarks/bench_backends.py [--channels 256] [--kernels 3 7] [--sizes 14 56] [--batch 8]
     [--backends torch jax] [--families conv depthwise-separable ...] [--threads 2] [--markdown]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--kernels", type=int, nargs="+", default=[3, 7])
    p.add_argument("--sizes", type=int, nargs="+", default=[14, 56])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--backends", nargs="+", default=["torch", "jax"], choices=["torch", "jax"])
    p.add_argument("--families", nargs="+", default=None, help="family ids (default: every registered family)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-runs", type=int, default=5)
    p.add_argument("--max-runs", type=int, default=30)
    p.add_argument("--budget", type=float, default=3.0, help="seconds of timed runs per measurement")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return p.parse_args()


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _time_backend(backend: str, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Time the exported modules of one backend, the designs of each target round-robin, into ``rows``."""
    from osc_design.latency import TimingPolicy, measure_many

    policy = TimingPolicy(warmup=args.warmup, min_runs=args.min_runs, max_runs=args.max_runs, budget_s=args.budget)
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["K"], row["size"]), []).append(row)
    for group in groups.values():
        paths = [row[f"{backend}_path"] for row in group]
        modules = [_load(path, f"bench_{backend}_{path.stem}").OscDesign() for path in paths]
        runs = measure_many([row["spec"] for row in group], backend, args.batch, policy=policy, modules=modules,
                            threads=args.threads if backend == "torch" else None)
        base = next(m.seconds for row, m in zip(group, runs, strict=True) if row["family"] == "conv")
        for row, m in zip(group, runs, strict=True):
            row[f"{backend}_ms"], row[f"{backend}_ratio"] = m.seconds * 1e3, m.seconds / base
            print(f"{backend:5s} {row['target']:24s} {row['family']:28s} {m.seconds * 1e3:10.2f} ms "
                  f"({row[backend + '_ratio']:.3f})", file=sys.stderr)


def main() -> None:
    args = _parse()
    from osc_design import Target, cost
    from osc_design.backends import available_backends, export_source
    from osc_design.errors import InfeasibleDesignError, SpecError
    from osc_design.registry import family_ids, get_family

    backends = [b for b in args.backends if b in available_backends()]
    if "torch" in backends:
        import torch

        torch.set_num_threads(args.threads)
    builders = {fid: get_family(fid).build for fid in family_ids()}
    _add_solver(builders)
    ids = args.families or list(builders)
    if "conv" not in ids:
        ids = ["conv", *ids]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # export everything first, then time one backend after the other (no thread pools competing)
        for k in args.kernels:
            for s in args.sizes:
                target = Target(args.channels, args.channels, k, input_size=s)
                for fid in ids:
                    try:
                        spec = builders[fid](target)
                    except (SpecError, InfeasibleDesignError) as exc:
                        print(f"skip {fid} for {target.describe()}: {exc}", file=sys.stderr)
                        continue
                    c = cost(spec)
                    row: dict[str, Any] = {"family": fid, "K": k, "size": s, "params": c.total_params,
                                           "macs": c.macs, "target": target.describe(), "spec": spec}
                    for backend in backends:
                        path = Path(tmp) / f"{fid.replace('-', '_')}_k{k}_s{s}_{backend}.py"
                        path.write_text(export_source(spec, backend))
                        row[f"{backend}_path"] = path
                    rows.append(row)
        for backend in backends:
            _time_backend(backend, rows, args)
    _print(rows, backends, args)


def _add_solver(builders: dict[str, Any]) -> None:
    """The solver's designs as ``osc-2`` / ``osc`` when the registry does not list them (yet)."""
    if "osc" in builders:
        return
    try:
        from osc_design.solver import solve
    except ImportError:
        return
    builders["osc-2"] = lambda target: solve(target, max_stages=2).spec
    builders["osc"] = lambda target: solve(target).spec


def _print(rows: list[dict[str, Any]], backends: list[str], args: argparse.Namespace) -> None:
    head = ["K", "input", "family", "params", "MACs"]
    for b in backends:
        head += [f"{b} ms", f"{b} / conv"]
    body = []
    for r in rows:
        line = [str(r["K"]), f"{r['size']}x{r['size']}", r["family"], f"{r['params']:,}", f"{r['macs']:,}"]
        for b in backends:
            line += [f"{r[b + '_ms']:.2f}", f"{r[b + '_ratio']:.3f}"]
        body.append(line)
    print(f"CPU latency, batch {args.batch}, float32, {args.channels}->{args.channels}, {args.threads} threads, "
          "median ms (ratio to the plain conv of the same K and input); "
          f"load average at the end {', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---:" if i != 2 else ":---" for i in range(len(head))) + "|")
        for line in body:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    for line in [head, *body]:
        cells = enumerate(zip(line, widths, strict=True))
        print("  ".join(v.rjust(w) if i != 2 else v.ljust(w) for i, (v, w) in cells))


if __name__ == "__main__":
    main()
