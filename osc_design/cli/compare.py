"""The root command, ``compare`` and ``solve``: every family against the conv, and the optimal OSC design."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from .. import __version__
from ..errors import SpecError
from ..spec import Target
from . import output as out
from ._app import app
from .options import (
    DEFAULT_INPUT,
    Device,
    LatencyBackend,
    LatencyOptions,
    Objective,
    OutputOptions,
    SolverOptions,
    TargetOptions,
    check_output,
    command_options,
)


def latency_model(backend: LatencyBackend | None, device: Device, batch: int,
                  before: Callable[[], Any] | None = None) -> tuple[Any, tuple[Callable[..., Any], Callable[[], None]]]:
    """The latency model of the options (``None`` without --backend) reporting to a progress bar."""
    timed = out.op_progress(f"timing new ops on {backend.value if backend else ''}", before)
    if backend is None:
        return None, timed
    check_device(backend, device)
    from ..latency import LatencyModel

    return LatencyModel(backend.value, device.value, batch=batch, progress=timed[0]), timed


def check_device(backend: LatencyBackend, device: Device) -> None:
    """A usage error of ``--device`` when the framework does not see it (``cuda`` without a GPU)."""
    if device is not Device.cuda:
        return
    from ..backends import get_backend

    get_backend(backend.value)  # BackendUnavailableError (exit 2) before the framework is imported
    if backend is LatencyBackend.torch:
        import torch

        seen = torch.cuda.is_available()
    elif backend is LatencyBackend.onnxruntime:
        import onnxruntime

        seen = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    else:
        import jax

        try:
            seen = bool(jax.devices("gpu"))
        except RuntimeError:
            seen = False
    if not seen:
        raise typer.BadParameter(f"'cuda' is not available: {backend.value} sees no GPU on this machine",
                                 param_hint="'--device'")


def _check_latency_options(solver: SolverOptions, lat: LatencyOptions) -> None:
    if solver.objective is Objective.latency and lat.backend is None:
        raise typer.BadParameter("--objective latency needs --backend torch, jax or onnxruntime",
                                 param_hint="'--objective'")
    if lat.refine and solver.objective is not Objective.latency:
        raise typer.BadParameter(f"--refine {lat.refine} needs --objective latency", param_hint="'--refine'")
    if lat.measure and lat.backend is None:
        raise typer.BadParameter("--measure needs --backend torch, jax or onnxruntime", param_hint="'--measure'")


def _latency(designs: Any, model: Any, measure: bool) -> dict[str, dict[str, float]]:
    """Predicted (and measured) latency in ms per family, when there is a model (--backend)."""
    if model is None:
        return {}
    from ..latency import measure_many

    ctx = model.context
    fresh = model.prefetch(d.spec for d in designs)  # missing ops timed round-robin
    times = {d.family: {"predicted_ms": model.predict(d.spec, fresh=fresh).seconds * 1e3} for d in designs}
    if measure:  # round-robin, so that a slow spell of the machine falls on every design alike
        specs = [d.spec for d in designs]
        for d, m in zip(designs, measure_many(specs, ctx.backend, ctx.batch, device=ctx.device, threads=ctx.threads),
                        strict=True):
            times[d.family]["measured_ms"] = m.seconds * 1e3
    return times


def _timed(target: Target, result: Any, solver: SolverOptions, lat: LatencyOptions) -> tuple[dict[str, Any], Any]:
    """The designs' latency columns and, under ``--objective latency``, the fastest design."""
    model, (_, close) = latency_model(lat.backend, lat.device, lat.batch)
    try:
        latency = _latency(result.designs, model, lat.measure)
        if solver.objective is not Objective.latency:
            return latency, None
        from ..latency import solve_latency

        return latency, solve_latency(target, max_stages=solver.max_stages, model=model, refine=lat.refine)
    finally:
        close()


def run_compare(target_options: TargetOptions, solver: SolverOptions, io: OutputOptions,
                lat: LatencyOptions) -> None:
    """Compare every family for the target and print the optimal OSC design with its certificate."""
    from ..compare import compare

    target, defaulted = target_options.target()
    _check_latency_options(solver, lat)
    if lat.backend is not None:
        check_device(lat.backend, lat.device)
    osc = solver.solver_kwargs()
    result = compare(target, options={"osc": osc, "osc-2": {k: v for k, v in osc.items() if k != "max_stages"}})
    if result.optimal is None:  # osc refused the options: the reason it was skipped
        raise SpecError(dict(result.skipped).get("osc", "the osc family was not compared"))
    latency, fastest = _timed(target, result, solver, lat)
    if out.emit_document(io.fmt, io.output,
                         lambda: result.to_dict(input_size_default=defaulted, latency=latency, fastest=fastest),
                         lambda: result.rows(latency)):
        return
    parts = _comparison_parts(result, target, defaulted, latency)
    parts += _latency_parts(lat, latency, fastest)
    from .. import _render as r

    title = "Optimal separable convolution" if fastest is None else "Params-optimal OSC design (not the fastest)"
    out.emit(out.render(*parts, *r.solution_renderables(result.optimal, title), output=io.output), io.output)


def _comparison_parts(result: Any, target: Target, defaulted: bool, latency: dict[str, Any]) -> list[Any]:
    from rich.text import Text

    from .. import _render as r

    best = result.best.family if result.best else None
    conv = next((d.cost for d in result.designs if d.family == "conv"), None)
    parts: list[Any] = [r.target_line(target, " (default)" if defaulted else ""),
                        r.comparison_table(result.designs, best, conv, latency)]
    if best:
        parts.append(Text(f"* best fully-covering design by params: {best}", style="green"))
    parts += [Text(f"skipped {fam}: {reason}", style="yellow") for fam, reason in result.skipped]
    parts.append(Text(r.CONVENTIONS + (f" MACs at the default input {DEFAULT_INPUT}x{DEFAULT_INPUT}; "
                                        "set --input-size." if defaulted else ""), style="dim"))
    return parts


def _latency_parts(lat: LatencyOptions, latency: dict[str, Any], fastest: Any) -> list[Any]:
    from rich.text import Text

    backend = lat.backend.value if lat.backend else ""
    parts: list[Any] = []
    if latency:
        parts.append(Text(f"latency: {backend} on {lat.device.value}, batch {lat.batch}, milliseconds per call; "
                          "predicted from per-op microbenchmarks (cached under the user cache directory)"
                          + ("; measured end to end" if lat.measure else ""), style="dim"))
    if fastest is not None:
        meas = ("" if fastest.measured_seconds is None else
                f", measured {fastest.measured_seconds * 1e3:.2f} ms (fastest measured of "
                + _measured_text(fastest.measured) + ")")
        parts.append(Text(f"\nFastest fully-covering design on {backend}: {fastest.name}, predicted "
                          f"{fastest.seconds * 1e3:.2f} ms ({_speedup_text(fastest.speedup)}){meas}; "
                          f"space: {fastest.space}", style="bold"))
        from .. import _render as r

        parts += [Text(f"\nStages of the fastest design ({fastest.name}):", style="bold"), r.stages_table(fastest.spec)]
    return parts


def _speedup_text(speedup: float | None) -> str:
    """``58.1x faster than the conv`` (or slower), by the predicted latencies."""
    if speedup is None:
        return "no conv prediction to compare with"
    if speedup >= 1:
        return f"{speedup:.1f}x faster than the conv"
    return f"{1 / speedup:.1f}x slower than the conv"


def _measured_text(measured: dict[str, Any]) -> str:
    """The refined designs' measured latencies, each design once: names that are the same ops in the same
    order share one measurement and are listed together (``slak = depthwise-separable 1.20 ms``)."""
    groups: dict[int, tuple[list[str], Any]] = {}
    for name, m in measured.items():
        groups.setdefault(id(m), ([], m))[0].append(name)
    return ", ".join(f"{' = '.join(names)} {m.seconds * 1e3:.2f} ms" for names, m in groups.values())


def _no_root_options(command: str, *given: Any) -> None:
    """Options of the root command are not passed on to a subcommand: refuse them rather than drop them."""
    if any(g != type(g)() for g in given):
        raise typer.BadParameter(f"options go after the command: osc-design {command} OPTIONS ...",
                                 param_hint="'osc-design OPTIONS COMMAND'")


@app.callback(invoke_without_command=True)
@command_options
def root(
    ctx: typer.Context,
    target: TargetOptions,
    solver: SolverOptions,
    io: OutputOptions,
    latency: LatencyOptions,
    version: Annotated[bool, typer.Option("--version", is_eager=True, metavar="",
                                          help="Print the version and exit.")] = False,
) -> None:
    """Compare every operator family for one target conv (the same as `compare`).

    Example: osc-design --channels 256 --kernel 7 --input-size 14
    """
    if version:
        typer.echo(f"osc-design {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is not None:
        _no_root_options(ctx.invoked_subcommand, target, solver, io, latency)
        return
    if all(v is None for v in (target.channels, target.in_channels, target.out_channels, target.kernel)):
        typer.echo(ctx.get_help())
        raise typer.Exit()
    check_output(io.output)
    run_compare(target, solver, io, latency)


@app.command("compare")
@command_options
def compare_cmd(target: TargetOptions, solver: SolverOptions, io: OutputOptions, latency: LatencyOptions) -> None:
    """Compare every operator family against the conventional conv: exact params, MACs, coverage.

    Example: osc-design compare --in-channels 64 --out-channels 128 --kernel 3 --stride 2 --format json
    """
    check_output(io.output)
    run_compare(target, solver, io, latency)


@app.command("solve")
@command_options
def solve_cmd(
    target: TargetOptions,
    solver: SolverOptions,
    *,
    pareto: Annotated[bool, typer.Option(
        "--pareto", metavar="", help="List the Pareto front over (params, MACs, stages).")] = False,
    io: OutputOptions,
) -> None:
    """Find the optimal separable convolution for one target, with its certificate.

    Example: osc-design solve --channels 256 --kernel 7 --max-stages 2 --format json
    """
    check_output(io.output)
    if solver.objective is Objective.latency:
        raise typer.BadParameter("solve has no latency model: use `osc-design compare --objective latency "
                                 "--backend torch` (or jax) for the fastest design", param_hint="'--objective'")
    t, defaulted = target.target()
    from ..compare import pareto_rows, solution_document, solution_row
    from ..solver import pareto_front, solve

    opts = solver.solver_kwargs()
    if pareto:
        front = pareto_front(t, **{k: v for k, v in opts.items() if k != "objective"})
        if out.emit_document(io.fmt, io.output, lambda: [solution_document(s) for s in front],
                             lambda: pareto_rows(front)):
            return
        from .. import _render as r

        table = [r.pareto_table(pareto_rows(front))]
    else:
        solution = solve(t, **opts)
        if out.emit_document(io.fmt, io.output, lambda: solution_document(solution),
                             lambda: [solution_row(solution)]):
            return
        from .. import _render as r

        table = r.solution_renderables(solution)
    line = r.target_line(t, " (default)" if defaulted else "")
    out.emit(out.render(line, *table, output=io.output), io.output)
