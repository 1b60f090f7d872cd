"""Write the notebooks in notebooks/ from the cell sources below (then run them to store outputs).

Run: python scripts/make_notebooks.py [--execute] [NAME-PREFIX ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"

QUICKSTART = [
    ("md", """# osc-design quickstart

Compare every operator family for one convolution, find the optimal separable design with its
certificate, then export it to PyTorch and JAX and check the counts numerically."""),
    ("code", """import osc_design as od
from osc_design.compare import compare
from osc_design.solver import solve

target = od.Target(256, 256, 7, input_size=14)  # 256 -> 256 channels, 7x7 kernel, 14x14 input
result = compare(target)
print(result.table())
print("best fully-covering design:", result.best.family)"""),
    ("md", """Every number has a convention: `params` are weights without bias, `macs` count every output
position and kernel tap including zero padding (fvcore/thop/ptflops), `macs_valid` only the taps on
real pixels (XLA), and coverage is the share of the volumetric receptive field `C_in x 7 x 7` that
every output sees, verified exactly."""),
    ("code", """solution = solve(target)  # the optimized separable convolution, number of stages free
print(solution.spec.family, solution.spec.stages, "stages,", f"{solution.cost.params:,} params")
cert = solution.certificate
print(f"lower bound {cert.bound:,.1f}, gap {cert.gap:.2f}%, searched {cert.searched:,}")
print(cert.method)
for conv in solution.spec.convs:
    print(f"  {conv.in_channels}->{conv.out_channels}  kernel {conv.kernel_size}  groups {conv.groups}  "
          f"dilation {conv.dilation}")"""),
    ("code", """two = solve(target, max_stages=2)
print("osc-2:", f"{two.cost.params:,}", "params; bound", f"{two.certificate.bound:,.0f}",
      "= 2 C^(3/2) K for C=256, K=7")
print("coverage:", two.coverage.describe())"""),
    ("code", """from osc_design.backends import export_source, verify

report = verify(two.spec, backend="all")  # FlopCounterMode, XLA cost analysis, same-weights outputs
print(report)
assert report.ok"""),
    ("code", """source = export_source(two.spec, to="torch")
print(source[:1500])"""),
    ("code", """import json
spec_json = od.dumps(two.spec)
print(spec_json[:400])
assert od.loads(spec_json) == two.spec"""),
]

SCALING = [
    ("md", """# Complexity scaling

Parameters against the channel count `C` (`C_in = C_out = C`) for every family at `K = 3` and
`K = 7`, on log-log axes. Fitted slopes show `C^2` (conventional, spatial separable), about `C`
plus a constant (depthwise separable), `C^(3/2)` (two-stage OSC) and about `C log C` (OSC with free
depth). The paper's continuous bounds are drawn beside the exact integer optima."""),
    ("code", """import math
import numpy as np
import matplotlib.pyplot as plt
import osc_design as od
from osc_design.compare import compare
from osc_design.solver import solve

channels = [16, 32, 64, 128, 256, 512, 1024]
families = ["conv", "spatial-separable", "depthwise-separable", "bsconv-s", "osc-2", "osc"]"""),
    ("code", """def sweep(k):
    rows = {f: [] for f in families}
    rows["osc (dilated)"] = []
    for c in channels:
        t = od.Target(c, c, k, input_size=14)
        res = compare(t, families=families)
        for d in res.designs:
            rows[d.family].append(d.cost.params)
        rows["osc (dilated)"].append(solve(t, dilation=True).cost.params)
    return rows

data = {k: sweep(k) for k in (3, 7)}
for k, rows in data.items():
    print(f"K = {k}")
    for name, values in rows.items():
        slope = np.polyfit(np.log(channels), np.log(values), 1)[0]
        print(f"  {name:<22} slope {slope:4.2f}   C=256: {values[channels.index(256)]:>12,}")"""),
    ("code", """fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
for ax, (k, rows) in zip(axes, data.items()):
    for name, values in rows.items():
        ax.loglog(channels, values, marker="o", label=name)
    c = np.array(channels, dtype=float)
    ax.loglog(c, 2 * c**1.5 * k, "k--", lw=1, label="bound N=2: 2 C^1.5 K")
    ax.loglog(c, math.e * c * np.log(c * k * k), "k:", lw=1, label="bound N free: e C ln(C K^2)")
    ax.set_title(f"K = {k}")
    ax.set_xlabel("channels C (C_in = C_out)")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("parameters (weights, no bias)")
axes[1].legend(fontsize=8)
fig.tight_layout()"""),
    ("md", """Without dilation the free-depth optimum stays well above `e C ln(C K^2)`: spatial coverage
adds up across stages (`sum(k_i - 1) + 1 >= K`), it does not multiply. With dilated stages the
taps compose like mixed-radix digits and the optimum comes much closer to the bound."""),
]

NETWORK = [
    ("md", """# A whole network: ResNet-50 under a parameter budget

Plan every convolution of ResNet-50 (224x224) with the OSC solver so that the convolutions keep at
most 20% of their parameters while the MACs are as low as possible."""),
    ("code", """import matplotlib.pyplot as plt
from osc_design.networks.catalog import catalog_layers
from osc_design.networks.plan import plan_network

layers = catalog_layers("resnet50")
plan = plan_network(layers, "osc", network="resnet50", budget_params=0.2)
totals = plan.totals()
for key in ("total_params", "macs"):
    t = totals[key]
    print(f"{key:<13} {t['before']:>14,} -> {t['after']:>14,}  ({t['ratio']:.1%})")
print("replaced layers:", totals["replaced_layers"], "of", totals["layers"])"""),
    ("code", """names = [lp.layer.name for lp in plan.layers]
before = [lp.before.total_params for lp in plan.layers]
after = [lp.after.total_params for lp in plan.layers]
fig, ax = plt.subplots(figsize=(14, 4))
x = range(len(names))
ax.bar(x, before, color="lightgray", label="original conv")
ax.bar(x, after, color="tab:blue", label="planned design")
ax.set_yscale("log")
ax.set_ylabel("parameters per layer")
ax.set_xticks(list(x)[::4], names[::4], rotation=60, ha="right", fontsize=7)
ax.legend()
fig.tight_layout()"""),
    ("code", """for lp in plan.layers[:12]:
    print(f"{lp.layer.name:<24} {lp.chosen.choice:<10} {lp.before.total_params:>9,} -> {lp.after.total_params:>9,}  {lp.reason}")"""),  # noqa: E501 (the notebook's own line)
]

TRAIN = [
    ("md", """# Does it train?

A small, honest experiment on scikit-learn's bundled 8x8 digits (1,797 images, no download): a
three-conv CNN whose two 3x3 convolutions are built as the conventional conv, depthwise separable,
`osc-2` and `osc`, three seeds each, accuracy against parameters. Whatever comes out is what is
reported; with data this small, differences of a point or two are noise."""),
    ("code", """import time
import numpy as np
import torch
from torch import nn
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import osc_design as od
from osc_design.registry import get_family
from osc_design.backends.torch import build_module

torch.set_num_threads(1)  # small tensors: one thread is faster and steadier on a busy 2-core machine
digits = load_digits()
x = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target)
idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=digits.target)"""),
    ("code", """def conv(family, c_in, c_out):
    spec = get_family(family).build(od.Target(c_in, c_out, 3, input_size=8))
    return build_module(spec)

def model(family):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        conv(family, 16, 32), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        conv(family, 32, 32), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

def train(family, seed, epochs=10):
    torch.manual_seed(seed)
    net = model(family)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = x[idx_train], y[idx_train]
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(yt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x[idx_test]).argmax(1) == y[idx_test]).float().mean().item()
    return acc, sum(p.numel() for p in net.parameters())"""),
    ("code", """results = {}
start = time.time()
for family in ["conv", "depthwise-separable", "osc-2", "osc"]:
    runs = [train(family, seed) for seed in range(3)]
    results[family] = runs
    accs = [a for a, _ in runs]
    print(f"{family:<20} params {runs[0][1]:>7,}  accuracy {np.mean(accs):.3f} +/- {np.std(accs):.3f}")
print(f"total {time.time() - start:.0f} s")"""),
    ("code", """fig, ax = plt.subplots(figsize=(6, 4))
for family, runs in results.items():
    ax.scatter([p for _, p in runs], [a for a, _ in runs], label=family, s=40)
ax.set_xscale("log")
ax.set_xlabel("model parameters (all trainable)")
ax.set_ylabel("test accuracy (digits, 30% held out)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()"""),
]

NOTEBOOKS = {
    "01-quickstart.ipynb": QUICKSTART,
    "02-complexity-scaling.ipynb": SCALING,
    "03-resnet50-plan.ipynb": NETWORK,
    "04-does-it-train.ipynb": TRAIN,
}


def build(cells):
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main() -> None:
    execute = "--execute" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    for name, cells in NOTEBOOKS.items():
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        nb = build(cells)
        if execute:
            from nbclient import NotebookClient

            NotebookClient(nb, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(HERE)}}).execute()
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
