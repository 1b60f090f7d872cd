"""Latency model benchmark: predicted vs measured end-to-end latency of the latency-optimal design.

For every target of a fixed list (``C -> C`` with C in 32..1024, K in 3..15, input S x S with S in
7..56; 54 of them by default, see :func:`targets`) and every backend:

1. :func:`osc_design.latency.solve_latency` picks the design with the lowest *predicted* latency among
   the stated candidate space (every registered family's design with full coverage -- the plain conv
   included -- plus the OSC Pareto front). Unseen ops are timed on demand (``--on-miss measure``,
   default) or interpolated from a calibrated grid (``--on-miss interpolate``, which runs
   :func:`osc_design.latency.calibrate` first).
   The same with ``refine=--refine`` (default 3): the best predicted distinct designs are measured
   end to end by the solver and the fastest measured is chosen ("refined" below).
2. The chosen designs, the plain conv and every fixed family's design (the fully covering registered
   families) are then *measured* end to end together, round-robin
   (:func:`osc_design.latency.measure_many`: one call of each per round, so a slow spell of the
   machine falls on all of them alike), independently of the solver's own refinement measurements.

Reported per backend:

* the relative error ``|predicted - measured| / measured`` of the chosen design (median, 90th
  percentile; goal: median under 25 %), the same over every measured design, and over every measured
  design for the simple model (the plain sum of the op timings, without the overhead and edge terms; on
  onnxruntime the shape-keeping ops' timings are their cost inside a graph);
* the share of measured designs predicted within +-10 % of measured (the metric latency predictors
  publish: nn-Meter, 99.0 % on a mobile CPU), over every measured design and over the chosen ones;
* the measured speed of the chosen design against the plain conv (goal: never slower) and against
  the *best fixed family*, defined as the registered family, fully covering on every measured target,
  with the lowest geometric-mean measured latency over all targets on this backend (decided after the
  fact, so it is the strongest single fixed choice; goal on torch: at least as fast on 90 % of
  targets). "As fast" allows the measurement noise ``--tolerance`` (default 5 %); strict counts too;
* how often the chosen design is within the tolerance of the fastest measured fixed-family design;
* the same speed comparisons for the refined choice.

Every timing records the median and the minimum of its calls. The main results use medians (the
model's default). A second summary uses minimums throughout (a model with ``statistic="min"`` --
predictions from the same cached timings, nothing measured again -- against the fastest measured
call): on a machine shared with other work the minimum is the least disturbed call, so this shows the
model's error without most of the disturbance.

Target selection: the grid C x K x S is filtered to combos whose plain conv is estimated at most
``--max-conv-s`` seconds per batch (default 0.5 s, from 20 GMAC/s on two cores; bigger ones would make
the run too long), and to K <= 2S + 1; then ``--targets`` combos are taken, shared out evenly among the
channel counts (a count with fewer combos than its share gives them all, its remainder going to the
others) and evenly spaced over (K, S) within each count. The skipped combos are counted in the output.
Per backend, each target is then pre-screened with one timed batch-1 call of its plain conv (after
one untimed call) scaled to the batch: XLA's CPU convolutions with large kernels and many channels run up to
50x slower than the estimate (e.g. ``512 -> 512``, K = 9 at 7 x 7: 26 s per batch-8 run), and such
targets are skipped on that backend and listed.

Timing: a target's missing ops are timed together, round-robin (one warm-up call each, then 3..30
calls, up to 0.15 s of each op's own calls: ``--op-budget``, ``--max-runs``); its whole modules likewise
(two warm-up calls, then 5..30 calls, up to 0.3 s each: ``--e2e-budget``). On onnxruntime an op that keeps
its input's shape is timed twice (alone and as a chain of three copies: see
:func:`osc_design.latency.timing.measure_ops`). The harness holds glibc's heap steady
(:func:`osc_design.latency.timing.steady_allocator`; ``OSC_DESIGN_STEADY_MALLOC=0`` to compare). The
1-minute load average is printed: on a shared machine, other work disturbs every timing.

The cache lives in a fresh temporary directory unless ``--cache-dir`` is given (timings from another
run would make the "measured on demand" count meaningless). Candidate spaces (the OSC Pareto fronts)
are computed once, before any timing, and shared by the backends.

onnxruntime runs each design as one ``InferenceSession`` of its ONNX graph (CPU execution provider,
``--threads`` intra-op threads), like PyTorch with ``--threads``.

Run: python benchmarks/bench_latency.py [--backends torch jax onnxruntime] [--targets 54] [--batch 8] [--threads 2]
     [--on-miss measure|interpolate] [--refine 3] [--max-conv-s 0.5] [--tolerance 0.05] [--cache-dir DIR]
     [--op-budget 0.15] [--e2e-budget 0.3] [--max-runs 30] [--markdown] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from typing import Any

CHANNELS = (32, 64, 128, 256, 512, 1024)
KERNELS = (3, 5, 7, 9, 11, 13, 15)
SIZES = (7, 14, 28, 56)
GMACS_PER_S = 20.0  # plain dense conv, float32, 2 cores (torch and XLA measured at 15-25 here)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=["torch", "jax", "onnxruntime"],
                   choices=["torch", "jax", "onnxruntime"])
    p.add_argument("--targets", type=int, default=54, help="number of targets")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2, help="torch threads (JAX uses every usable core)")
    p.add_argument("--on-miss", default="measure", choices=["measure", "interpolate"])
    p.add_argument("--refine", type=int, default=3, help="designs the refined solve measures (0: skip it)")
    p.add_argument("--max-conv-s", type=float, default=0.5, help="skip targets whose plain conv is slower")
    p.add_argument("--tolerance", type=float, default=0.05, help="measurement noise allowed in 'as fast'")
    p.add_argument("--cache-dir", default=None, help="latency cache directory (default: a fresh temporary one)")
    p.add_argument("--max-stages", type=int, default=None)
    p.add_argument("--op-budget", type=float, default=0.15, help="seconds of timed calls per op (at least 3 calls)")
    p.add_argument("--e2e-budget", type=float, default=0.3, help="seconds of timed calls per module (at least 5)")
    p.add_argument("--max-runs", type=int, default=30, help="most timed calls per op or module")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", default=None, help="also write every prediction and measurement to this JSON file")
    return p.parse_args()


def targets(n: int, batch: int, max_conv_s: float) -> tuple[list[Any], int, int]:
    """``n`` targets from the grid, the number of combos skipped as too slow, and the grid size."""
    from osc_design import Target

    grid, slow = [], 0
    for c in CHANNELS:
        for k in KERNELS:
            for s in SIZES:
                if k > 2 * s + 1:
                    continue
                est = batch * c * c * k * k * s * s / (GMACS_PER_S * 1e9)
                if est > max_conv_s:
                    slow += 1
                    continue
                grid.append(Target(c, c, k, input_size=s))
    by_c = {c: [t for t in grid if t.in_channels == c] for c in CHANNELS}
    chosen: list[Any] = []
    left = n
    for i, c in enumerate(sorted(by_c, key=lambda c: len(by_c[c]))):  # fewest combos first: they take all
        quota = min(len(by_c[c]), left // (len(by_c) - i))
        group = by_c[c]
        if quota:
            picks = sorted({round(j * (len(group) - 1) / max(quota - 1, 1)) for j in range(quota)})
            chosen += [group[j] for j in picks]
        left = n - len(chosen)
    chosen.sort(key=lambda t: (t.in_channels, t.kernel_size, t.input_size))
    return chosen, slow, len(grid) + slow


def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.2f}"


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _load() -> float:
    """The 1-minute load average (other work on the machine disturbs every timing), or NaN."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def run_backend(backend: str, tlist: list[Any], args: argparse.Namespace, cache_dir: str) -> dict[str, Any]:
    """Solve, predict and measure every target on one backend."""
    from osc_design.latency import LatencyModel, TimingPolicy, calibrate, measure, measure_many, solve_latency
    from osc_design.registry import get_family

    threads = None if backend == "jax" else args.threads
    op_policy = TimingPolicy(warmup=1, min_runs=3, max_runs=max(args.max_runs, 3), budget_s=args.op_budget)
    e2e_policy = TimingPolicy(warmup=2, min_runs=5, max_runs=max(args.max_runs, 5), budget_s=args.e2e_budget)
    screen = TimingPolicy(warmup=1, min_runs=1, max_runs=1, budget_s=0.0)
    start = time.perf_counter()
    calib = None
    if args.on_miss == "interpolate":
        last = [0.0]

        def progress(done: int, total: int, op: Any, timing: Any) -> None:
            if time.perf_counter() - last[0] > 10:
                last[0] = time.perf_counter()
                print(f"  calibrate {backend}: {done}/{total}", file=sys.stderr, flush=True)

        calib = calibrate(backend, batch=args.batch, threads=threads, cache_dir=cache_dir, policy=op_policy,
                          progress=progress)
        print(f"  calibrated {calib.measured} ops in {calib.seconds:.0f} s", file=sys.stderr, flush=True)
    models = {"median": LatencyModel(backend, batch=args.batch, threads=threads, on_miss=args.on_miss,
                                     cache=cache_dir, policy=op_policy)}
    models["min"] = LatencyModel(backend, batch=args.batch, threads=threads, on_miss=args.on_miss,
                                 cache=models["median"].cache, policy=op_policy, statistic="min")
    rows, skipped, loads = [], [], [_load()]
    for i, t in enumerate(tlist, 1):
        t0 = time.perf_counter()
        # pre-screen: one timed batch-1 call of the plain conv (after one untimed call), scaled to the batch
        once = measure(get_family("conv").build(t), backend, 1, threads=threads, policy=screen).seconds
        if once * args.batch > args.max_conv_s:
            skipped.append((t, once * args.batch))
            print(f"  {backend} {i:2d}/{len(tlist)} {t.describe():24s} skipped: plain conv ~{once * args.batch:.2f} s "
                  f"per batch-{args.batch} run on {backend}", file=sys.stderr, flush=True)
            continue
        sols = {st: solve_latency(t, model=m, max_stages=args.max_stages, verify="fast") for st, m in models.items()}
        if args.refine:
            sols["refined"] = solve_latency(t, model=models["median"], max_stages=args.max_stages, verify="fast",
                                            refine=args.refine)
        specs: dict[str, Any] = {}
        for sol in sols.values():
            for c in sol.candidates:
                if c.source == "family" or c.spec is sol.spec:
                    specs.setdefault(c.name, c.spec)
        runs = measure_many(list(specs.values()), backend, args.batch, threads=threads, policy=e2e_policy)
        measured = dict(zip(specs, runs, strict=True))
        rows.append({"target": t, "sols": sols, "measured": measured})
        sol, m = sols["median"], measured[sols["median"].name]
        err = abs(sol.seconds - m.seconds) / m.seconds
        print(f"  {backend} {i:2d}/{len(tlist)} {t.describe():24s} {sol.name:36s} pred {_fmt_ms(sol.seconds):>8s} "
              f"meas {_fmt_ms(m.seconds):>8s} ms (err {100 * err:5.1f}%), conv {_fmt_ms(measured['conv'].seconds)} "
              f"ms  [{time.perf_counter() - t0:.1f} s, load {_load():.1f}]", file=sys.stderr, flush=True)
        loads.append(_load())
    return {"rows": rows, "seconds": time.perf_counter() - start, "calibration": calib, "skipped": skipped,
            "loads": loads}


def _stats(rows: list[dict[str, Any]], which: str, tol: float) -> dict[str, Any]:
    """Errors and speed-ups of one choice (``median``, ``min`` or ``refined``) against the measurements
    of the same statistic (the median for ``refined``)."""
    st = "min" if which == "min" else "median"
    fams = None
    for r in rows:
        names = {c.name for c in r["sols"][which].candidates if c.source == "family" and c.name != "conv"}
        fams = names if fams is None else fams & names
    fams = sorted(fams or ())
    meas = [{n: m.value(st) for n, m in r["measured"].items()} for r in rows]
    best_fixed = min(fams, key=lambda f: _geomean([m[f] for m in meas])) if fams else "conv"
    out: dict[str, Any] = {"families": fams, "best_fixed": best_fixed, "errs": [], "all": [], "simple": [],
                           "signed": [], "vs_conv": [], "vs_fixed": [], "hits": 0, "lines": []}
    for r, m in zip(rows, meas, strict=True):
        sol = r["sols"][which]
        chosen = m[sol.name]
        out["errs"].append(abs(sol.seconds - chosen) / chosen)
        for c in sol.candidates:
            if c.name in m:
                simple = sum(o.seconds for o in c.prediction.ops if not o.node.endswith("()"))
                out["all"].append(abs(c.seconds - m[c.name]) / m[c.name])
                out["signed"].append((c.seconds - m[c.name]) / m[c.name])
                out["simple"].append(abs(simple - m[c.name]) / m[c.name])
        out["vs_conv"].append(m["conv"] / chosen)
        out["vs_fixed"].append(m[best_fixed] / chosen)
        fastest = min(v for n, v in m.items() if any(c.name == n and c.source == "family" for c in sol.candidates))
        out["hits"] += chosen <= (1 + tol) * fastest
        p = sol.prediction
        out["lines"].append([r["target"].describe(), sol.name, _fmt_ms(sol.seconds), _fmt_ms(chosen),
                             f"{100 * out['errs'][-1]:.1f}", _fmt_ms(m["conv"]), f"{m['conv'] / chosen:.2f}",
                             _fmt_ms(m[best_fixed]), f"{m[best_fixed] / chosen:.2f}",
                             f"{p.cached}/{p.measured}/{p.interpolated}"])
    return out


def report(backend: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    rows, tol = result["rows"], args.tolerance
    n = len(rows)
    calib, loads = result["calibration"], result["loads"]
    title = (f"{backend} (cpu, batch {args.batch}, float32, "
             f"{'all' if backend == 'jax' else args.threads} threads, on_miss={args.on_miss})")
    print(f"\n## {title}\n")
    s = _stats(rows, "median", tol)
    head = ["target", "chosen", "pred ms", "meas ms", "err %", "conv ms", "x conv", f"{s['best_fixed']} ms",
            "x fixed", "cached/meas/interp"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(":---" if i < 2 else "---:" for i in range(len(head))) + "|")
        for line in s["lines"]:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *s["lines"], strict=True)]
        for line in [head, *s["lines"]]:
            cells = enumerate(zip(line, widths, strict=True))
            print("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in cells))
    print(f"\nsummary {backend}: {n} targets measured, {result['seconds']:.0f} s"
          + ("" if calib is None else f" (calibration {calib.seconds:.0f} s, {calib.measured} ops)")
          + f"; 1-minute load average during the run {min(loads):.1f}..{max(loads):.1f} (median "
          f"{statistics.median(loads):.1f}) on {os.cpu_count()} CPUs")
    if result["skipped"]:
        print(f"  skipped on {backend} (plain conv above {args.max_conv_s} s per batch-{args.batch} run, one batch-1 "
              "call scaled): " + ", ".join(f"{t.describe()} (~{x:.1f} s)" for t, x in result["skipped"]))
    labels = {"median": "medians",
              "min": "minimums (statistic='min', fastest call of each timing)",
              "refined": f"refined: the solver measured its {args.refine} best predicted designs and chose the "
                         "fastest; compared here with medians measured afresh"}
    for st in (k for k in labels if k in rows[0]["sols"]):
        s = _stats(rows, st, tol)
        label = labels[st]
        print(f"  [{label}]")
        print(f"  prediction error of the chosen design: median {100 * statistics.median(s['errs']):.1f}%, "
              f"90th percentile {100 * _quantile(s['errs'], 0.9):.1f}%  (goal: median < 25%)")
        print(f"  prediction error over all {len(s['all'])} measured designs: median "
              f"{100 * statistics.median(s['all']):.1f}%, 90th percentile {100 * _quantile(s['all'], 0.9):.1f}%; "
              f"bias (median signed error) {100 * statistics.median(s['signed']):+.1f}%")
        within = sum(e <= 0.10 for e in s["all"])
        print(f"  designs predicted within +-10% of measured: {within}/{len(s['all'])} = "
              f"{100 * within / len(s['all']):.1f}%; chosen designs: {sum(e <= 0.10 for e in s['errs'])}/{n}  "
              "(nn-Meter reports 99.0% on a mobile CPU)")
        print(f"  same, simple model (plain sum of the op timings): median "
              f"{100 * statistics.median(s['simple']):.1f}%, 90th percentile {100 * _quantile(s['simple'], 0.9):.1f}%")
        slower = sum(x < 1 / (1 + tol) for x in s["vs_conv"])
        strict = sum(x < 1 for x in s["vs_conv"])
        print(f"  chosen vs plain conv (measured): geometric-mean speed-up {_geomean(s['vs_conv']):.2f}x, min "
              f"{min(s['vs_conv']):.2f}x, max {max(s['vs_conv']):.2f}x; slower than the conv on {slower}/{n} targets "
              f"beyond {100 * tol:.0f}% noise ({strict}/{n} strictly)  (goal: 0)")
        as_fast = sum(x >= 1 / (1 + tol) for x in s["vs_fixed"])
        strict = sum(x >= 1 for x in s["vs_fixed"])
        print(f"  best fixed family (lowest geometric-mean measured latency over all targets among "
              f"{', '.join(s['families']) or 'none'}): {s['best_fixed']}; chosen vs it: geometric-mean speed-up "
              f"{_geomean(s['vs_fixed']):.2f}x, at least as fast on {as_fast}/{n} targets = {100 * as_fast / n:.0f}% "
              f"within {100 * tol:.0f}% noise ({strict}/{n} strictly)"
              + ("  (goal on torch: >= 90%)" if backend == "torch" else ""))
        print(f"  chosen within {100 * tol:.0f}% of the fastest measured fixed-family design on {s['hits']}/{n} "
              "targets")


def _dump(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for b, res in results.items():
        out[b] = []
        for r in res["rows"]:
            designs = {}
            for c in r["sols"]["median"].candidates:
                m = r["measured"].get(c.name)
                designs[c.name] = {
                    "family": c.spec.family, "stages": c.stages, "params": c.cost.params, "macs": c.cost.macs,
                    "predicted": c.seconds,
                    "predicted_min": next(x.seconds for x in r["sols"]["min"].candidates if x.name == c.name),
                    "measured": None if m is None else m.seconds, "measured_min": None if m is None else m.best,
                    "ops": [[o.node, None if o.op is None else o.op.id, o.seconds, o.source] for o in c.prediction.ops],
                }
            refined = r["sols"].get("refined")
            out[b].append({"target": r["target"].describe(), "chosen": r["sols"]["median"].name,
                           "chosen_min": r["sols"]["min"].name,
                           "chosen_refined": None if refined is None else refined.name,
                           "refine_measured": None if refined is None else
                           {n: m.seconds for n, m in refined.measured.items()}, "designs": designs})
    return out


def main() -> None:
    args = _parse()
    from osc_design.backends import available_backends
    from osc_design.latency import latency_candidates

    tlist, slow, total = targets(args.targets, args.batch, args.max_conv_s)
    print(f"{len(tlist)} targets from a grid of {total} (C in {CHANNELS}, K in {KERNELS}, S in {SIZES}, K <= 2S+1); "
          f"{slow} combos skipped as their plain conv is estimated above {args.max_conv_s} s per batch-{args.batch} "
          f"run", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    for t in tlist:  # the candidate spaces, once for every backend (cached by latency_candidates)
        latency_candidates(t, max_stages=args.max_stages, verify="fast")
    print(f"candidate spaces built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    backends = [b for b in args.backends if b in available_backends()]
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or tmp
        results = {b: run_backend(b, tlist, args, cache_dir) for b in backends}
    print(f"# Latency model benchmark: {len(tlist)} targets; {slow} of {total} grid combos skipped (plain conv "
          f"estimated > {args.max_conv_s} s per batch-{args.batch} run)")
    for b in backends:
        report(b, results[b], args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "results": _dump(results)}, f, indent=1)


if __name__ == "__main__":
    main()
