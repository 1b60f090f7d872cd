"""Plots for the CLI and notebooks (matplotlib, the ``plot`` extra; imported only when plotting)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, SpecError
from .io import open_output
from .spec import Target

__all__ = ["plot_scaling", "plot_pareto"]

MACS_LABEL = "MACs (multiply-accumulates over all taps, padding included; FLOPs = 2 x MACs)"
SCALING_FAMILIES = ("conv", "spatial-separable", "depthwise-separable", "bsconv-s", "osc-2", "osc")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise BackendUnavailableError("plots need matplotlib: pip install 'osc-design[plot]'") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # keep labels as text in SVG files
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save as PNG or SVG (by suffix) through a temporary file, never half a file."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise SpecError(f"`output` (={str(path)!r}) must end in .png or .svg")
    with open_output(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=120, bbox_inches="tight")


def plot_scaling(kernel: int, path: str | os.PathLike[str],
                 channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024),
                 input_size: int = 14) -> dict[str, list[int]]:
    """Params against channels ``C`` (``C_in = C_out``) for each family at one kernel, log-log, with the bounds.

    Returns the plotted values (family id -> params per channel count).
    """
    from .compare import compare

    plt = _pyplot()
    rows: dict[str, list[int]] = {f: [] for f in SCALING_FAMILIES}
    for c in channels:
        target = Target(c, c, (kernel, kernel), input_size=(input_size, input_size))
        for d in compare(target, families=SCALING_FAMILIES).designs:
            rows[d.family].append(d.cost.params)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in rows.items():
        ax.loglog(channels, values, marker="o", label=name)
    ax.loglog(channels, [2 * c**1.5 * kernel for c in channels], "k--", lw=1, label="bound, 2 stages: 2 C^1.5 K")
    ax.loglog(channels, [math.e * c * math.log(c * kernel**2) for c in channels], "k:", lw=1,
              label="bound, stages free: e C ln(C K^2)")
    ax.set_xlabel("channels C (C_in = C_out)")
    ax.set_ylabel("parameters (weights, no bias)")
    ax.set_title(f"Parameters of a {kernel}x{kernel} convolution's replacements")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return rows


def plot_pareto(target: Target, path: str | os.PathLike[str]) -> list[tuple[int, int, int | None]]:
    """The OSC Pareto front over (params, MACs, stages) with every family's design, log-log.

    Returns the front as ``(stages, params, macs)`` triples.
    """
    from .compare import compare
    from .solver import pareto_front

    plt = _pyplot()
    front = pareto_front(target)
    points = [(s.spec.stages, s.cost.params, s.cost.macs) for s in front]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([p[1] for p in points], [p[2] for p in points], "o-", color="tab:blue", label="OSC Pareto front")
    for stages, params, macs in points:
        ax.annotate(f"{stages} st.", (params, macs), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for d in compare(target).designs:
        if d.family in ("osc", "osc-2"):
            continue
        marker = "s" if d.coverage.full else "x"
        ax.plot(d.cost.params, d.cost.macs, marker, label=f"{d.family}" + ("" if d.coverage.full else " (partial RF)"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (weights, no bias)")
    ax.set_ylabel(MACS_LABEL, fontsize=8)
    ax.set_title(f"{target.describe()}: params vs MACs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    plt.close(fig)
    return points
