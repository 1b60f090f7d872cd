"""Plots for the CLI and notebooks (matplotlib, the ``plot`` extra; imported only when plotting)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, SpecError
from .io import open_output
from .spec import Target

__all__ = ["plot_scaling", "plot_pareto", "pareto_figure"]

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
                 input_size: int = 56) -> dict[str, list[int]]:
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


def pareto_figure(target: Target, latency: Any = None, measure: bool = False) -> Any:
    """The trade-offs of ``target``'s designs as a matplotlib Figure: params against stages (depth), and with a
    ``latency`` model (:class:`~osc_design.latency.LatencyModel`) params against predicted latency (or, with
    ``measure``, latency measured end to end) in a second panel.

    The OSC Pareto front is a line; every other family is one marker, a cross (labelled ``partial RF``)
    when its design does not cover the target's whole receptive field. (Params against MACs says nothing
    for stride-1 designs: their MACs are params times the output pixels.)
    """
    return _pareto(target, latency, measure)[0]


def _pareto(target: Target, latency: Any, measure: bool) -> tuple[Any, list[Any]]:
    from .compare import compare
    from .solver import pareto_front

    plt = _pyplot()
    front = pareto_front(target)
    others = [d for d in compare(target).designs if d.family not in ("osc", "osc-2")]
    seconds = _latencies([s.spec for s in front] + [d.spec for d in others], latency, measure)
    panels = 1 if seconds is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), squeeze=False)
    ax = axes[0][0]
    ax.plot([s.spec.stages for s in front], [s.cost.params for s in front], "o-", color="tab:blue",
            label="OSC Pareto front")
    for d in others:
        ax.plot(d.stages, d.cost.params, _marker(d), label=_label(d))
    ax.set_xlabel("stages (conv depth)")
    ax.set_title(f"{target.describe()}: params vs depth", fontsize=9)
    if seconds is not None:
        lat_ax = axes[0][1]
        ms = [t * 1e3 for t in seconds]
        lat_ax.plot(ms[:len(front)], [s.cost.params for s in front], "o-", color="tab:blue", label="OSC Pareto front")
        for d, t in zip(others, ms[len(front):], strict=True):
            lat_ax.plot(t, d.cost.params, _marker(d), label=_label(d))
        lat_ax.set_xlabel(f"latency, {'measured' if measure else 'predicted'} (ms per call)")
        lat_ax.set_xscale("log")
        lat_ax.set_title(f"params vs {'measured' if measure else 'predicted'} latency", fontsize=9)
    for a in fig.axes:
        a.set_yscale("log")
        a.set_ylabel("parameters (weights, no bias)")
        a.grid(True, which="both", alpha=0.3)
    fig.axes[-1].legend(fontsize=7, ncol=2)
    if seconds is not None:  # once the scales and the legend are set, so that the labels stay where placed
        _step_labels(fig, fig.axes[1], [(t * 1e3, s.cost.params, f"{s.spec.stages} st.")
                                        for t, s in zip(seconds, front, strict=False)])
    return fig, front


def _marker(d: Any) -> str:
    return "s" if d.coverage.full else "x"


def _label(d: Any) -> str:
    return d.family + ("" if d.coverage.full else " (partial RF)")


def _latencies(specs: list[Any], latency: Any, measure: bool) -> list[float] | None:
    """Seconds per call of each spec: predicted by ``latency``, or measured end to end (round-robin)."""
    if latency is None:
        return None
    if not measure:
        fresh = latency.prefetch(specs)
        return [latency.predict(s, fresh=fresh).seconds for s in specs]
    from .latency import measure_many

    ctx = latency.context
    return [m.seconds for m in measure_many(specs, ctx.backend, ctx.batch, device=ctx.device, threads=ctx.threads)]


def _step_labels(fig: Any, ax: Any, points: list[tuple[float, int, str]]) -> None:
    """Label points without overlap: each label that would overlap an earlier one moves up by its height."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for x, y, text in points:
        dy = 4
        label = ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, dy), fontsize=7)
        for _ in range(len(points) + 1):
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
            dy += 9
            label.set_position((4, dy))
        placed.append(label.get_window_extent(renderer))


def plot_pareto(target: Target, path: str | os.PathLike[str], latency: Any = None,
                measure: bool = False) -> list[tuple[int, int, int | None]]:
    """Write :func:`pareto_figure` (params against stages, and against latency with ``latency``) to ``path``.

    Returns the OSC Pareto front as ``(stages, params, macs)`` triples.
    """
    plt = _pyplot()
    fig, front = _pareto(target, latency, measure)
    _save(fig, path)
    plt.close(fig)
    return [(s.spec.stages, s.cost.params, s.cost.macs) for s in front]
