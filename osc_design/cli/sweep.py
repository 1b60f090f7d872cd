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


@app.command("sweep")
def sweep_cmd(
    channels: Annotated[str, typer.Option(
        "--channels", "-c", help="Channel counts (C_in = C_out), comma-separated.")] = "32,64,128,256,512",
    kernels: Annotated[str, typer.Option("--kernels", "-k", help="Square kernel sizes, comma-separated.")] = "3,5,7",
    input_size: InputSize = None,
    families: Annotated[str | None, typer.Option(
        "--families", help="Family ids, comma-separated [default: all].")] = None,
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", help="csv or json (a table is not offered for a grid).")] = Format.csv,
    output: Output = None,
) -> None:
    """Compare families over a grid of channels x kernels, one row per (channels, kernel, family).

    Example: osc-design sweep --channels 64,128,256 --kernels 3,7 --output sweep.csv
    """
    check_output(output)
    if fmt is Format.table:
        raise typer.BadParameter("use csv or json for a sweep", param_hint="'--format'")
    cs, ks = _int_list(channels, "--channels"), _int_list(kernels, "--kernels")
    size = parse_pair(input_size, "--input-size") or (DEFAULT_INPUT, DEFAULT_INPUT)
    chosen = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
    targets = [make_target(c, c, k, 1, size) for c in cs for k in ks]
    from ..compare import sweep

    advance, close = out.progress(len(targets), "sweeping")
    try:
        rows = sweep(targets, families=chosen, progress=advance)
    finally:
        close()
    out.emit_document(fmt, output, lambda: rows, lambda: rows)


class PlotKind(str, Enum):
    scaling = "scaling"
    pareto = "pareto"


@app.command("plot")
def plot_cmd(
    kind: Annotated[PlotKind, typer.Argument(
        help="scaling: params against channels per family; pareto: the OSC front.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG or SVG file to write.")],
    channels: Channels = None,
    kernel: Kernel = "7",
    input_size: InputSize = None,
) -> None:
    """Plot params against channels for every family, or the OSC Pareto front over params and MACs.

    Example: osc-design plot pareto --channels 256 --kernel 7 --output pareto.png
    """
    check_output(output)
    if output.suffix.lower() not in (".png", ".svg"):
        raise typer.BadParameter(f"{str(output)!r} must end in .png or .svg", param_hint="'--output'")
    from .. import plots

    if kind is PlotKind.scaling:
        k = parse_pair(kernel, "--kernel") or (7, 7)
        if k[0] != k[1]:
            raise typer.BadParameter(f"{kernel!r}: the scaling plot takes a square kernel", param_hint="'--kernel'")
        size = parse_pair(input_size, "--input-size") or (14, 14)
        plots.plot_scaling(k[0], output, input_size=size[0])
    else:
        target, _ = TargetOptions(channels=channels, kernel=kernel, input_size=input_size or "14").target()
        plots.plot_pareto(target, output)
    typer.echo(f"wrote {output}")


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

    advance, close = out.progress(1, f"calibrating {backend.value} on {device.value}")

    def progress(done: int, total: int, op: Any, timing: Any) -> None:
        advance()

    try:
        report = calibrate(backend.value, device.value, batch, progress=progress)
    finally:
        close()
    typer.echo(f"{report.measured} ops measured, {report.skipped} already cached, of {report.total}; "
               f"table {report.table} in {report.path} ({report.seconds:.0f} s)")
