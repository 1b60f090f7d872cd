"""The ``osc-design`` command line: the only module that prints or exits.

Exit codes: 0 ok; 1 domain error (no valid design, numeric mismatch, bad spec content); 2 usage
error (bad option value, unreadable file, unwritable ``--output``). Errors are one line on stderr.
"""

from __future__ import annotations

import io
import json
import os
import sys
from enum import Enum
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import OscDesignError
from .spec import Target

DEFAULT_INPUT = 56
"""Input size used for MAC counts when ``--input-size`` is not given (stated in every output)."""

_USAGE_EXC = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_CLICK_EXC = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _OneLineErrors(TyperGroup):
    """Turns every failure into one ``Error: ...`` line on stderr with the documented exit code."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            rv = super().main(args=args, prog_name=prog_name or "osc-design", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except _USAGE_EXC as e:
            code = _fail(e.format_message(), 2)
        except _CLICK_EXC as e:
            code = _fail(e.format_message(), e.exit_code)
        except OscDesignError as e:
            code = _fail(str(e), 1)
        except KeyboardInterrupt:
            code = _fail("interrupted", 130)
        if not standalone_mode:
            return code
        sys.exit(code)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"Error: {' '.join(str(message).split())}\n")
    return code


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Design efficient convolutions: compare every operator family against the conventional conv "
        "with exact params and MACs, and find the optimal separable convolution with a proof of "
        "receptive-field coverage and its distance to the lower bound.\n\n"
        "Example: osc-design --channels 256 --kernel 7\n\n"
        "Exit codes: 0 ok, 1 no valid design or a failed check, 2 bad usage."
    ),
)


class Objective(str, Enum):
    params = "params"
    macs = "macs"
    macs_valid = "macs-valid"
    latency = "latency"


class PlanObjective(str, Enum):
    params = "params"
    latency = "latency"


class LatencyBackend(str, Enum):
    torch = "torch"
    jax = "jax"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def parse_pair(text: str | None, option: str) -> tuple[int, int] | None:
    """``"7"`` -> ``(7, 7)``, ``"7x5"`` -> ``(7, 5)``; anything else is a usage error naming ``option``."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(p.strip().isdigit() for p in parts):
        values = [int(p) for p in parts]
        if all(v >= 1 for v in values):
            return (values[0], values[-1])
    raise typer.BadParameter(f"{text!r} is not a size: use N or HxW with positive integers (e.g. 7 or 7x5)",
                             param_hint=f"'{option}'")


def _positive(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"{value} is not allowed: must be a positive integer")
    return value


def _non_negative(value: int) -> int:
    if value < 0:
        raise typer.BadParameter(f"{value} is not allowed: must be 0 or a positive integer")
    return value


# -- shared options ------------------------------------------------------------------
Channels = Annotated[int | None, typer.Option("--channels", "-c", callback=_positive, help="Input and output channels.")]
InChannels = Annotated[int | None, typer.Option("--in-channels", callback=_positive, help="Input channels (overrides --channels).")]
OutChannels = Annotated[int | None, typer.Option("--out-channels", callback=_positive, help="Output channels (overrides --channels).")]
Kernel = Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel size: 7 or 7x5 (height x width).")]
Stride = Annotated[str, typer.Option("--stride", "-s", help="Stride: 2 or 2x1.")]
InputSize = Annotated[str | None, typer.Option("--input-size", "-i", help=f"Input size: 14 or 14x14 [default: {DEFAULT_INPUT}].")]
ObjectiveOpt = Annotated[Objective, typer.Option("--objective", help="What the OSC solver minimises.")]
MaxStages = Annotated[int | None, typer.Option("--max-stages", callback=_positive, help="Most conv stages for the OSC solver [default: free].")]
SquareOnly = Annotated[bool, typer.Option("--square-only", help="Only square kernels in OSC stages.")]
Dilation = Annotated[bool, typer.Option("--dilation/--no-dilation", help="Allow dilated OSC stages.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
LatBackend = Annotated[LatencyBackend | None, typer.Option("--backend", help="Predict latency on this framework (adds a column; needed by --objective latency).")]
Measure = Annotated[bool, typer.Option("--measure", help="Also measure each design's latency (slow: runs every module).")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Device for latency.")]
BatchOpt = Annotated[int, typer.Option("--batch", callback=_positive, help="Batch size for latency.")]
Refine = Annotated[int, typer.Option("--refine", callback=_non_negative, help="With --objective latency: measure the K best predicted designs end to end and choose the fastest measured.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout.")]


def _target(channels: int | None, in_channels: int | None, out_channels: int | None, kernel: str | None,
            stride: str, input_size: str | None) -> tuple[Target, bool]:
    c_in = in_channels or channels
    c_out = out_channels or channels
    if c_in is None or c_out is None:
        raise typer.BadParameter("give --channels, or both --in-channels and --out-channels", param_hint="'--channels'")
    k = parse_pair(kernel, "--kernel")
    if k is None:
        raise typer.BadParameter("a kernel size is required (e.g. --kernel 7 or --kernel 7x5)", param_hint="'--kernel'")
    s = parse_pair(stride, "--stride") or (1, 1)
    if s[0] > k[0] or s[1] > k[1]:
        raise typer.BadParameter(f"{stride!r} is larger than the kernel {k[0]}x{k[1]}", param_hint="'--stride'")
    size = parse_pair(input_size, "--input-size")
    defaulted = size is None
    try:
        target = Target(c_in, c_out, k, s, input_size=size or (DEFAULT_INPUT, DEFAULT_INPUT))
    except OscDesignError as e:
        raise typer.BadParameter(str(e), param_hint="'--input-size'") from None
    return target, defaulted


def _check_output(output: Path | None) -> None:
    if output is None:
        return
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise typer.BadParameter(f"{str(output)!r} is not a writable file path", param_hint="'--output'")


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from .serialize import write_atomic

    try:
        write_atomic(output, text)
    except OSError as e:
        raise typer.BadParameter(f"{str(output)!r}: {e.strerror or e}", param_hint="'--output'") from None


def _width(output: Path | None) -> int:
    """The terminal's width (at least 60) on a terminal; 120 columns in pipes and files."""
    if output is None and sys.stdout.isatty():
        from rich.console import Console

        return max(60, Console().width)
    return 120


def _render(*renderables: Any, output: Path | None) -> str:
    """Render rich objects to text: colour only for a terminal stdout, 80+ columns, plain in files."""
    from rich.console import Console

    to_terminal = output is None and sys.stdout.isatty()
    width = _width(output)
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=to_terminal,
                      color_system="auto" if to_terminal else None, highlight=False, soft_wrap=False)
    for r in renderables:
        console.print(r)
    return buf.getvalue()


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2) + "\n"


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _solver_options(objective: Objective, max_stages: int | None, square_only: bool, dilation: bool) -> dict[str, Any]:
    solver_objective = "params" if objective is Objective.latency else objective.value.replace("-", "_")
    return {"objective": solver_objective, "max_stages": max_stages, "square_only": square_only,
            "dilation": dilation}


def _latency_model(backend: LatencyBackend | None, device: Device, batch: int,
                   before: Callable[[], Any] | None = None) -> tuple[Any, tuple[Callable[..., Any], Callable[[], None]]]:
    """The latency model of the options (``None`` without --backend) reporting to a progress bar."""
    timed = _op_progress(f"timing new ops on {backend.value if backend else ''}", before)
    if backend is None:
        return None, timed
    from .latency import LatencyModel

    return LatencyModel(backend.value, device.value, batch=batch, progress=timed[0]), timed


def _latency(designs: list[Any], model: Any, measure: bool) -> dict[str, dict[str, float]]:
    """Predicted (and measured) latency in ms per family, when there is a model (--backend)."""
    if model is None:
        if measure:
            raise typer.BadParameter("--measure needs --backend torch or jax", param_hint="'--measure'")
        return {}
    from .latency import measure_many

    ctx = model.context
    fresh = model.prefetch(d.spec for d in designs)  # missing ops timed round-robin
    out = {d.family: {"predicted_ms": model.predict(d.spec, fresh=fresh).seconds * 1e3} for d in designs}
    if measure:  # round-robin, so that a slow spell of the machine falls on every design alike
        for d, m in zip(designs, measure_many([d.spec for d in designs], ctx.backend, ctx.batch, device=ctx.device,
                                              threads=ctx.threads)):
            out[d.family]["measured_ms"] = m.seconds * 1e3
    return out


def _design_row(d: Any) -> dict[str, Any]:
    from .serialize import to_dict

    return {
        "family": d.family,
        "params": d.cost.params,
        "bias_params": d.cost.bias_params,
        "macs": d.cost.macs,
        "macs_valid": d.cost.macs_valid,
        "flops": d.cost.flops,
        "stages": d.stages,
        "coverage": d.coverage.fraction,
        "full_coverage": d.coverage.full,
        "asymptotic": d.asymptotic,
        "spec": to_dict(d.spec),
    }


def run_compare(target: Target, defaulted: bool, objective: Objective, max_stages: int | None, square_only: bool,
                dilation: bool, fmt: Format, output: Path | None, backend: LatencyBackend | None = None,
                measure: bool = False, device: Device = Device.cpu, batch: int = 8, refine: int = 0) -> None:
    """Compare every family for ``target`` and print the optimal OSC design with its certificate."""
    from .compare import compare
    from .solver import solve

    if objective is Objective.latency and backend is None:
        raise typer.BadParameter("--objective latency needs --backend torch or jax", param_hint="'--objective'")
    if refine and objective is not Objective.latency:
        raise typer.BadParameter(f"--refine {refine} needs --objective latency", param_hint="'--refine'")
    solver_opts = _solver_options(objective, max_stages, square_only, dilation)
    two_stage = {k: v for k, v in solver_opts.items() if k != "max_stages"}
    result = compare(target, options={"osc": solver_opts, "osc-2": two_stage})
    model, timed = _latency_model(backend, device, batch)
    try:
        latency = _latency(result.designs, model, measure)
        fastest = None
        if objective is Objective.latency:
            from .latency import solve_latency

            fastest = solve_latency(target, max_stages=max_stages, model=model, refine=refine)
    finally:
        timed[1]()
    solution = solve(target, **solver_opts)
    note = " (default)" if defaulted else ""
    if fmt is Format.json:
        from .serialize import to_dict

        doc = {
            "target": target.to_dict(),
            "input_size_default": defaulted,
            "designs": [_design_row(d) for d in result.designs],
            "skipped": [{"family": f, "reason": r} for f, r in result.skipped],
            "best": result.best.family if result.best else None,
            "optimal": to_dict(solution.spec, cost=solution.cost.to_dict(), coverage=solution.coverage.to_dict(),
                               certificate=solution.certificate.to_dict()),
        }
        for row in doc["designs"]:
            row.update(latency.get(row["family"], {}))
        if fastest is not None:
            doc["fastest"] = {"design": fastest.name, "predicted_ms": fastest.seconds * 1e3,  # type: ignore[operator]
                              "measured_ms": None if fastest.measured_seconds is None
                              else fastest.measured_seconds * 1e3,
                              "refined": {n: m.seconds * 1e3 for n, m in fastest.measured.items()},
                              "speedup_vs_conv": fastest.speedup, "space": fastest.space,
                              "spec": to_dict(fastest.spec)}
        _emit(_json(doc), output)
        return
    if fmt is Format.csv:
        rows = [{**{k: v for k, v in _design_row(d).items() if k != "spec"}, **latency.get(d.family, {})}
                for d in result.designs]
        _emit(_csv(rows), output)
        return
    from rich.text import Text

    from . import _render as r

    conv = next((d.cost for d in result.designs if d.family == "conv"), None)
    parts: list[Any] = [r.target_line(target, note), r.comparison_table(
        result.designs, result.best.family if result.best else None, conv, _width(output), latency)]
    if result.best:
        parts.append(Text(f"* best fully-covering design by params: {result.best.family}", style="green"))
    for fam, reason in result.skipped:
        parts.append(Text(f"skipped {fam}: {reason}", style="yellow"))
    parts.append(Text(r.CONVENTIONS + (f" MACs at the default input {DEFAULT_INPUT}x{DEFAULT_INPUT}; "
                                        "set --input-size." if defaulted else ""), style="dim"))
    if latency:
        parts.append(Text(f"latency: {backend.value} on {device.value}, batch {batch}, milliseconds per call; "  # type: ignore[union-attr]
                          "predicted from per-op microbenchmarks (cached under the user cache directory)"
                          + ("; measured end to end" if measure else ""), style="dim"))
    if fastest is not None:
        meas = ("" if fastest.measured_seconds is None else
                f", measured {fastest.measured_seconds * 1e3:.2f} ms (fastest measured of "
                + ", ".join(f"{n} {m.seconds * 1e3:.2f}" for n, m in fastest.measured.items()) + " ms)")
        parts.append(Text(f"\nFastest fully-covering design on {backend.value}: {fastest.name}, predicted "  # type: ignore[union-attr]
                          f"{fastest.seconds * 1e3:.2f} ms ({fastest.speedup:.1f}x the conv){meas}; "  # type: ignore[operator]
                          f"space: {fastest.space}", style="bold"))
    parts += _solution_renderables(solution)
    _emit(_render(*parts, output=output), output)


def _solution_renderables(solution: Any) -> list[Any]:
    from rich.text import Text

    from . import _render as r

    cert = solution.certificate.to_dict()
    cov = solution.coverage
    return [
        Text(f"\nOptimal separable convolution ({solution.spec.family}, {solution.spec.stages} stages, "
             f"objective {cert.get('objective', 'params')}):", style="bold"),
        r.stages_table(solution.spec),
        r.cost_lines(solution.cost),
        Text(f"  receptive field: {cov.describe()} (verified exactly)"),
        Text("Certificate:", style="bold"),
        r.certificate_text(cert),
    ]


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    channels: Channels = None,
    in_channels: InChannels = None,
    out_channels: OutChannels = None,
    kernel: Kernel = None,
    stride: Stride = "1",
    input_size: InputSize = None,
    objective: ObjectiveOpt = Objective.params,
    max_stages: MaxStages = None,
    square_only: SquareOnly = False,
    dilation: Dilation = False,
    fmt: FormatOpt = Format.table,
    output: Output = None,
    backend: LatBackend = None,
    measure: Measure = False,
    device: DeviceOpt = Device.cpu,
    batch: BatchOpt = 8,
    refine: Refine = 0,
    version: Annotated[bool, typer.Option("--version", is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Compare every operator family for one target conv (the same as `compare`).

    Example: osc-design --channels 256 --kernel 7 --input-size 14
    """
    if version:
        typer.echo(f"osc-design {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is not None:
        return
    if channels is None and in_channels is None and out_channels is None and kernel is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()
    _check_output(output)
    target, defaulted = _target(channels, in_channels, out_channels, kernel, stride, input_size)
    run_compare(target, defaulted, objective, max_stages, square_only, dilation, fmt, output, backend, measure,
                device, batch, refine)


@app.command("compare")
def compare_cmd(
    channels: Channels = None,
    in_channels: InChannels = None,
    out_channels: OutChannels = None,
    kernel: Kernel = None,
    stride: Stride = "1",
    input_size: InputSize = None,
    objective: ObjectiveOpt = Objective.params,
    max_stages: MaxStages = None,
    square_only: SquareOnly = False,
    dilation: Dilation = False,
    fmt: FormatOpt = Format.table,
    output: Output = None,
    backend: LatBackend = None,
    measure: Measure = False,
    device: DeviceOpt = Device.cpu,
    batch: BatchOpt = 8,
    refine: Refine = 0,
) -> None:
    """Compare every operator family against the conventional conv: exact params, MACs, coverage.

    Example: osc-design compare --in-channels 64 --out-channels 128 --kernel 3 --stride 2 --format json
    """
    _check_output(output)
    target, defaulted = _target(channels, in_channels, out_channels, kernel, stride, input_size)
    run_compare(target, defaulted, objective, max_stages, square_only, dilation, fmt, output, backend, measure,
                device, batch, refine)


@app.command("solve")
def solve_cmd(
    channels: Channels = None,
    in_channels: InChannels = None,
    out_channels: OutChannels = None,
    kernel: Kernel = None,
    stride: Stride = "1",
    input_size: InputSize = None,
    objective: ObjectiveOpt = Objective.params,
    max_stages: MaxStages = None,
    square_only: SquareOnly = False,
    dilation: Dilation = False,
    pareto: Annotated[bool, typer.Option("--pareto", help="List the Pareto front over (params, MACs, stages).")] = False,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Find the optimal separable convolution for one target, with its certificate.

    Example: osc-design solve --channels 256 --kernel 7 --max-stages 2 --format json
    """
    _check_output(output)
    target, defaulted = _target(channels, in_channels, out_channels, kernel, stride, input_size)
    from .serialize import to_dict
    from .solver import pareto_front, solve

    opts = _solver_options(objective, max_stages, square_only, dilation)
    if pareto:
        front = pareto_front(target, **{k: v for k, v in opts.items() if k != "objective"})
        rows = [{"stages": s.spec.stages, "params": s.cost.params, "macs": s.cost.macs,
                 "macs_valid": s.cost.macs_valid, "coverage": s.coverage.fraction} for s in front]
        if fmt is Format.json:
            _emit(_json([to_dict(s.spec, cost=s.cost.to_dict(), coverage=s.coverage.to_dict(),
                                 certificate=s.certificate.to_dict()) for s in front]), output)
        elif fmt is Format.csv:
            _emit(_csv(rows), output)
        else:
            from rich.table import Table

            from . import _render as r

            table = Table(title="Pareto front over (params, MACs, stages)")
            for name in ("stages", "params", "MACs", "MACs valid", "coverage"):
                table.add_column(name, justify="right")
            for row in rows:
                table.add_row(str(row["stages"]), r.fmt_int(row["params"]), r.fmt_int(row["macs"]),
                              r.fmt_int(row["macs_valid"]), f"{row['coverage']:.0%}")
            _emit(_render(r.target_line(target, " (default)" if defaulted else ""), table, output=output), output)
        return
    solution = solve(target, **opts)
    if fmt is Format.json:
        _emit(_json(to_dict(solution.spec, cost=solution.cost.to_dict(), coverage=solution.coverage.to_dict(),
                            certificate=solution.certificate.to_dict())), output)
    elif fmt is Format.csv:
        _emit(_csv([{"family": solution.spec.family, **solution.cost.to_dict(), "stages": solution.spec.stages,
                     "coverage": solution.coverage.fraction, "bound": solution.certificate.bound,
                     "gap": solution.certificate.gap}]), output)
    else:
        from . import _render as r

        _emit(_render(r.target_line(target, " (default)" if defaulted else ""), *_solution_renderables(solution),
                      output=output), output)


def main() -> None:
    """Console entry point."""
    app()


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["p=0.25", "with_bn=true"]`` -> ``{"p": 0.25, "with_bn": True}`` (JSON scalars, else strings)."""
    out: dict[str, Any] = {}
    for item in pairs or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--option'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, (dict, list)):
            raise typer.BadParameter(f"{item!r}: the value must be a number, true/false or text", param_hint="'--option'")
        out[key] = value
    return out


def _op_progress(label: str, before: Callable[[], Any] | None = None
                 ) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar for ops timed on demand, started at the first report (after ``before()``, which
    closes another bar: one live display at a time); returns (report, close)."""
    bar: list[Any] = []

    def report(done: int, total: int) -> None:
        if not bar:
            if before is not None:
                before()
            bar.extend(_progress(total, label))
        bar[0](done - report.done)  # type: ignore[attr-defined]
        report.done = done  # type: ignore[attr-defined]

    report.done = 0  # type: ignore[attr-defined]
    return report, (lambda: bar[1]() if bar else None)


def _progress(total: int, label: str) -> Any:
    """A rich progress bar on stderr (silent when stderr is not a terminal); returns (advance, close)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    progress = Progress(console=console, transient=True, disable=not console.is_terminal)
    task = progress.add_task(label, total=total)
    progress.start()

    def advance(step: Any = 1) -> None:  # a layer name (one step) or a number of steps
        progress.advance(task, step if isinstance(step, int) else 1)

    return advance, progress.stop


@app.command("network")
def network_cmd(
    name: Annotated[str | None, typer.Argument(help="A catalogue network: resnet18, resnet50, vgg16, mobilenet_v2, cifar-resnet20, cifar-resnet56, cifar-resnet110.")] = None,
    from_file: Annotated[Path | None, typer.Option("--from", help="A network description JSON file instead of a catalogue name.")] = None,
    policy: Annotated[str, typer.Option("--policy", help="Family to use where it helps (osc, osc-2, bsconv-u, ...), or any.")] = "osc",
    budget_params: Annotated[float | None, typer.Option("--budget-params", help="Keep at most this fraction of the convs' params; minimise MACs.")] = None,
    budget_macs: Annotated[float | None, typer.Option("--budget-macs", help="Keep at most this fraction of the convs' MACs; minimise params.")] = None,
    budget_latency: Annotated[float | None, typer.Option("--budget-latency", help="Keep at most this fraction of the convs' predicted latency; minimise params (needs --backend).")] = None,
    objective: Annotated[PlanObjective, typer.Option("--objective", help="params: each layer's design with the fewest params; latency: the fastest predicted, or under --budget-params/--budget-macs the lowest total latency (needs --backend).")] = PlanObjective.params,
    backend: Annotated[LatencyBackend | None, typer.Option("--backend", help="Predict every layer's latency on this framework (adds latency columns).")] = None,
    device: DeviceOpt = Device.cpu,
    batch: BatchOpt = 8,
    option: Annotated[list[str] | None, typer.Option("--option", help="Family option KEY=VALUE (repeatable), e.g. --option p=0.25.")] = None,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Plan a design for every convolution of a network, with totals before and after.

    --policy any draws from every family and the OSC Pareto front.

    Examples: osc-design network resnet50 --policy osc --budget-params 0.2;
    osc-design network resnet18 --policy any --objective latency --backend torch
    """
    _check_output(output)
    if (name is None) == (from_file is None):
        raise typer.BadParameter("give a catalogue network name or --from FILE (one of them)", param_hint="'NAME'")
    flags = (("--budget-params", budget_params), ("--budget-macs", budget_macs), ("--budget-latency", budget_latency))
    for flag, value in flags:
        if value is not None and not 0 < value <= 1:
            raise typer.BadParameter(f"{value} is not a fraction in (0, 1]", param_hint=f"'{flag}'")
    if sum(v is not None for _, v in flags) > 1:
        raise typer.BadParameter("give at most one of --budget-params, --budget-macs, --budget-latency",
                                 param_hint="'--budget-*'")
    if backend is None and (objective is PlanObjective.latency or budget_latency is not None):
        flag = "--objective latency" if objective is PlanObjective.latency else "--budget-latency"
        raise typer.BadParameter(f"{flag} needs --backend torch or jax", param_hint="'--backend'")
    if objective is PlanObjective.latency and budget_latency is not None:
        raise typer.BadParameter("--budget-latency caps latency while params are minimised: drop --objective latency",
                                 param_hint="'--budget-latency'")
    options = _parse_options(option)
    from .networks.catalog import catalog_layers, catalog_names
    from .networks.plan import plan_network

    if name is not None:
        if name not in catalog_names():
            raise typer.BadParameter(f"{name!r} is not in the catalogue ({', '.join(catalog_names())})",
                                     param_hint="'NAME'")
        network, layers = name, catalog_layers(name)
    else:
        from .networks.description import load_network

        network, layers = load_network(from_file)  # type: ignore[arg-type]
    advance, close = _progress(len(layers), f"planning {network}")
    model, timed = _latency_model(backend, device, batch, before=close)
    try:
        plan = plan_network(layers, policy, network=network, options=options, budget_params=budget_params,
                            budget_macs=budget_macs, budget_latency=budget_latency, objective=objective.value,
                            latency=model, progress=advance)
    finally:
        close()
        timed[1]()
    if fmt is Format.json:
        _emit(_json(plan.to_dict()), output)
    elif fmt is Format.csv:
        _emit(_csv(plan.rows()), output)
    else:
        from . import _render as r

        _emit(_render(*r.network_renderables(plan), output=output), output)


class BackendChoice(str, Enum):
    none = "none"
    torch = "torch"
    jax = "jax"
    all = "all"


class ExportTarget(str, Enum):
    torch = "torch"
    jax = "jax"


def _load_spec(path: Path) -> Any:
    from .errors import SchemaError
    from .serialize import load

    if not path.is_file():
        raise typer.BadParameter(f"{str(path)!r} is not a readable file", param_hint="'SPEC'")
    try:
        return load(path)
    except SchemaError as e:
        raise OscDesignError(str(e)) from None


SpecArg = Annotated[Path, typer.Argument(help="A layer-spec JSON file (format osc-design.layer).", show_default=False)]


@app.command("verify")
def verify_cmd(
    spec_file: SpecArg,
    backend: Annotated[BackendChoice, typer.Option("--backend", help="Also measure in a framework.")] = BackendChoice.none,
    input_size: InputSize = None,
    batch: Annotated[int, typer.Option("--batch", callback=_positive, help="Batch size of the numeric check.")] = 1,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Exact coverage and cost of a spec file; with --backend, the closed forms checked numerically.

    Exit code 1 when any measured count differs from the closed form.

    Example: osc-design verify design.json --backend all
    """
    _check_output(output)
    size = parse_pair(input_size, "--input-size")
    spec = _load_spec(spec_file)
    from .cost import cost
    from .coverage import coverage

    if size is None and spec.target.input_size is None:
        size = (DEFAULT_INPUT, DEFAULT_INPUT)
    c, cov = cost(spec, size), coverage(spec)
    report = None
    if backend is not BackendChoice.none:
        from .backends import verify

        report = verify(spec, backend=backend.value, input_size=size, batch=batch)
    if fmt is Format.json:
        doc = {"family": spec.family, "target": spec.target.to_dict(), "cost": c.to_dict(), "coverage": cov.to_dict(),
               "checks": None if report is None else report.to_rows(), "ok": None if report is None else report.ok}
        _emit(_json(doc), output)
    elif fmt is Format.csv:
        rows = report.to_rows() if report is not None else [{"quantity": k, "value": v} for k, v in c.to_dict().items()]
        _emit(_csv(rows), output)
    else:
        from rich.text import Text

        from . import _render as r

        parts: list[Any] = [r.target_line(spec.target.with_input_size(size) if size else spec.target),
                            Text(f"family {spec.family}, {spec.stages} conv stages, {len(spec.nodes) - 1} ops"),
                            r.cost_lines(c), Text(f"  receptive field: {cov.describe()}")]
        if report is not None:
            parts.append(r.checks_table(report))
        _emit(_render(*parts, output=output), output)
    if report is not None and not report.ok:
        raise OscDesignError("closed form and measurement differ: " + "; ".join(
            f"{ch.backend} {ch.quantity} expected {ch.expected}, measured {ch.measured}" for ch in report.failures))


@app.command("export")
def export_cmd(
    spec_file: SpecArg,
    to: Annotated[ExportTarget, typer.Option("--to", help="Framework of the generated module.")] = ExportTarget.torch,
    class_name: Annotated[str, typer.Option("--class-name", help="Name of the generated class.")] = "OscDesign",
    output: Output = None,
) -> None:
    """Write a standalone PyTorch or JAX (Flax NNX) module for a spec file (no osc-design needed to run it).

    Example: osc-design export design.json --to torch --output design_torch.py
    """
    _check_output(output)
    spec = _load_spec(spec_file)
    from .backends.export import export_source

    _emit(export_source(spec, to=to.value, class_name=class_name), output)


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of positive integers", param_hint=f"'{option}'")
    return values


@app.command("sweep")
def sweep_cmd(
    channels: Annotated[str, typer.Option("--channels", "-c", help="Channel counts (C_in = C_out), comma-separated.")] = "32,64,128,256,512",
    kernels: Annotated[str, typer.Option("--kernels", "-k", help="Square kernel sizes, comma-separated.")] = "3,5,7",
    input_size: InputSize = None,
    families: Annotated[str | None, typer.Option("--families", help="Family ids, comma-separated [default: all].")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="csv or json (a table is not offered for a grid).")] = Format.csv,
    output: Output = None,
) -> None:
    """Compare families over a grid of channels x kernels, one row per (channels, kernel, family).

    Example: osc-design sweep --channels 64,128,256 --kernels 3,7 --output sweep.csv
    """
    _check_output(output)
    if fmt is Format.table:
        raise typer.BadParameter("use csv or json for a sweep", param_hint="'--format'")
    cs, ks = _int_list(channels, "--channels"), _int_list(kernels, "--kernels")
    size = parse_pair(input_size, "--input-size") or (DEFAULT_INPUT, DEFAULT_INPUT)
    chosen = None if families is None else [f.strip() for f in families.split(",") if f.strip()]
    from .compare import compare

    rows: list[dict[str, Any]] = []
    advance, close = _progress(len(cs) * len(ks), "sweeping")
    try:
        for c in cs:
            for k in ks:
                try:
                    target = Target(c, c, k, input_size=size)
                except OscDesignError as e:
                    raise typer.BadParameter(str(e), param_hint="'--input-size'") from None
                result = compare(target, families=chosen)
                for d in result.designs:
                    rows.append({"channels": c, "kernel": k, "input_size": f"{size[0]}x{size[1]}",
                                 **{key: v for key, v in _design_row(d).items() if key != "spec"},
                                 "best": result.best is not None and d.family == result.best.family})
                advance()
    finally:
        close()
    _emit(_json(rows) if fmt is Format.json else _csv(rows), output)


class PlotKind(str, Enum):
    scaling = "scaling"
    pareto = "pareto"


@app.command("plot")
def plot_cmd(
    kind: Annotated[PlotKind, typer.Argument(help="scaling: params against channels per family; pareto: the OSC front.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG or SVG file to write.")],
    channels: Channels = None,
    kernel: Kernel = "7",
    input_size: InputSize = None,
) -> None:
    """Plot params against channels for every family, or the OSC Pareto front over params and MACs.

    Example: osc-design plot pareto --channels 256 --kernel 7 --output pareto.png
    """
    _check_output(output)
    if output.suffix.lower() not in (".png", ".svg"):
        raise typer.BadParameter(f"{str(output)!r} must end in .png or .svg", param_hint="'--output'")
    from . import plots

    if kind is PlotKind.scaling:
        k = parse_pair(kernel, "--kernel") or (7, 7)
        if k[0] != k[1]:
            raise typer.BadParameter(f"{kernel!r}: the scaling plot takes a square kernel", param_hint="'--kernel'")
        size = parse_pair(input_size, "--input-size") or (14, 14)
        plots.plot_scaling(k[0], output, input_size=size[0])
    else:
        target, _ = _target(channels, None, None, kernel, "1", input_size or "14")
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
    from .latency import calibrate

    advance, close = _progress(1, f"calibrating {backend.value} on {device.value}")
    state = {"total": None}

    def progress(done: int, total: int, op: Any, timing: Any) -> None:
        state["total"] = total
        advance()

    try:
        report = calibrate(backend.value, device.value, batch, progress=progress)
    finally:
        close()
    typer.echo(f"{report.measured} ops measured, {report.skipped} already cached, of {report.total}; "
               f"table {report.table} in {report.path} ({report.seconds:.0f} s)")
