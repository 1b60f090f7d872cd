"""``sweep``, ``plot`` and ``calibrate``: families over a grid, plots of params and of the OSC front, latency cache."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import output as out
from ._app import app
from .options import (
    DEFAULT_INPUT,
    BatchOpt,
    Channels,
    Device,
    DeviceOpt,
    Format,
    InputSize,
    Kernel,
    LatencyBackend,
    Output,
    TargetOptions,
    check_output,
    make_target,
    parse_pair,
)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of positive integers",
                                 param_hint=f"'{option}'")
    return values


PARALLEL_FROM = 32
"""The default ``--jobs`` uses every core from this many targets on; a smaller grid runs in one process
(starting the workers, each importing osc-design, takes longer than such a grid: 6 targets took 6.1 s on
two workers and 2.2 s in one process here)."""


def _jobs(jobs: int | None, targets: int) -> int:
    if jobs is not None:
        return jobs
    return -1 if targets >= PARALLEL_FROM else 1


@app.command("sweep")
def sweep_cmd(
    channels: Annotated[str, typer.Option(
        "--channels", "-c", help="Channel counts (C_in = C_out), comma-separated.")] = "32,64,128,256,512",
    kernels: Annotated[str, typer.Option("--kernels", "-k", help="Square kernel sizes, comma-separated.")] = "3,5,7",
    input_size: InputSize = None,
    families: Annotated[str | None, typer.Option(
        "--families", help="Family ids, comma-separated \\[default: all].")] = None,
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", help="csv or json (a table is not offered for a grid).")] = Format.csv,
    output: Output = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", help="Worker processes (joblib) \\[default: every core from 32 targets on, below "
                             "that one process: starting workers costs more]; the rows are the serial run's, "
                             "in order.")] = None,
) -> None:
    """Compare families over a grid of channels x kernels, one row per (channels, kernel, family).

    Example: osc-design sweep --channels 64,128,256 --kernels 3,7 --jobs 4 --output sweep.csv
    """
    check_output(output)
    if fmt is Format.table:
        raise typer.BadParameter("use csv or json for a sweep", param_hint="'--format'")
    if jobs is not None and jobs < 1 and jobs != -1:
        raise typer.BadParameter(f"{jobs!r} is not a positive number of processes (or -1: every core)",
                                 param_hint="'--jobs'")
    cs, ks = _int_list(channels, "--channels"), _int_list(kernels, "--kernels")
    size = parse_pair(input_size, "--input-size") or (DEFAULT_INPUT, DEFAULT_INPUT)
    chosen = None if families is None else _families(families)
    targets = [make_target(c, c, k, 1, size, "--kernels") for c in cs for k in ks]
    from ..compare import sweep_comparisons, sweep_document

    advance, close = out.progress(len(targets), "sweeping")
    try:
        comparisons = sweep_comparisons(targets, families=chosen, progress=advance, jobs=_jobs(jobs, len(targets)))
    finally:
        close()
    out.emit_document(fmt, output, lambda: sweep_document(comparisons),
                      lambda: [row for c in comparisons for row in c.grid_rows()])
    for note in _skipped_notes(comparisons):
        typer.echo(note, err=True)


def _families(text: str) -> list[str]:
    """``--families``: known family ids, comma-separated (a usage error naming an unknown one)."""
    from ..registry import family_ids

    chosen = [f.strip() for f in text.split(",") if f.strip()]
    ids = family_ids()
    unknown = [f for f in chosen if f not in ids]
    if unknown or not chosen:
        raise typer.BadParameter(f"{(unknown or [text])[0]!r} is not a family: use a comma-separated list of "
                                 f"{', '.join(ids)}", param_hint="'--families'")
    return chosen


def _skipped_notes(comparisons: list[Any]) -> list[str]:
    """One ``note: skipped ...`` line per family that was skipped somewhere, with where and the first reason."""
    where: dict[str, list[str]] = {}
    why: dict[str, str] = {}
    for c in comparisons:
        t = c.target
        for family, reason in c.skipped:
            where.setdefault(family, []).append(f"C={t.in_channels} K={t.kernel_size[0]}")
            why.setdefault(family, reason)
    return [f"note: skipped {family} at {len(at)} of {len(comparisons)} targets ({', '.join(at)}): {why[family]}"
            for family, at in where.items()]


class PlotKind(str, Enum):
    scaling = "scaling"
    pareto = "pareto"


@app.command("plot")
def plot_cmd(
    kind: Annotated[PlotKind, typer.Argument(
        help="scaling: params against channels per family; pareto: params against depth (and latency).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG or SVG file to write.")],
    channels: Channels = None,
    kernel: Kernel = "7",
    input_size: InputSize = None,
    backend: Annotated[LatencyBackend | None, typer.Option(
        "--backend", help="pareto: also plot params against predicted latency on this framework.")] = None,
    measure: Annotated[bool, typer.Option(
        "--measure", metavar="", help="pareto: plot measured instead of predicted latency (slow).")] = False,
    device: DeviceOpt = Device.cpu,
    batch: BatchOpt = 8,
) -> None:
    """Plot params against channels for every family, or params against depth (and latency) for one target.

    Example: osc-design plot pareto --channels 256 --kernel 7 --output pareto.png
    """
    check_output(output)
    if output.suffix.lower() not in (".png", ".svg"):
        raise typer.BadParameter(f"{str(output)!r} must end in .png or .svg", param_hint="'--output'")
    if measure and backend is None:
        raise typer.BadParameter("--measure needs --backend torch, jax or onnxruntime", param_hint="'--measure'")
    from .. import plots

    if kind is PlotKind.scaling:
        if backend is not None:
            raise typer.BadParameter("the scaling plot has no latency: drop --backend", param_hint="'--backend'")
        k = _square(kernel or "7", "--kernel")
        plots.plot_scaling(k, output, input_size=_square(input_size or str(DEFAULT_INPUT), "--input-size"))
    else:
        if channels is None:
            raise typer.BadParameter("give --channels (C_in = C_out) for the pareto plot", param_hint="'--channels'")
        target, _ = TargetOptions(channels=channels, kernel=kernel, input_size=input_size).target()
        from .compare import latency_model

        model, (_, close) = latency_model(backend, device, batch)
        try:
            plots.plot_pareto(target, output, latency=model, measure=measure)
        finally:
            close()
    typer.echo(f"wrote {output}")


def _square(text: str, option: str) -> int:
    """A square size for the scaling plot (``7`` or ``7x7``); a usage error for ``14x20``."""
    pair = parse_pair(text, option)
    assert pair is not None
    if pair[0] != pair[1]:
        raise typer.BadParameter(f"{text!r}: the scaling plot takes a square size", param_hint=f"'{option}'")
    return pair[0]


@app.command("calibrate")
def calibrate_cmd(
    backend: Annotated[LatencyBackend, typer.Option("--backend", help="Framework to time.")] = LatencyBackend.torch,
    device: DeviceOpt = Device.cpu,
    batch: BatchOpt = 8,
) -> None:
    """Time the standard grid of primitive ops into the latency cache (resumable, safe to interrupt).

    Example: osc-design calibrate --backend torch --batch 8
    """
    from ..latency import calibrate
    from .compare import check_device

    check_device(backend, device)
    report_ops, close = out.op_progress(f"calibrating {backend.value} on {device.value}")

    def progress(done: int, total: int, op: Any, timing: Any) -> None:
        report_ops(done, total)  # the bar is sized by the first report's total

    try:
        report = calibrate(backend.value, device.value, batch, progress=progress)
    finally:
        close()
    typer.echo(f"{report.measured} ops measured, {report.skipped} already cached, of {report.total}; "
               f"table {report.table} in {report.path} ({report.seconds:.0f} s)")
