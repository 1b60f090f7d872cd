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


def _render(*renderables: Any, output: Path | None) -> str:
    """Render rich objects to text: colour only for a terminal stdout, 80+ columns, plain in files."""
    from rich.console import Console

    to_terminal = output is None and sys.stdout.isatty()
    width = Console().width if to_terminal else 100
    buf = io.StringIO()
    console = Console(file=buf, width=max(80, width), force_terminal=to_terminal,
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
    return {"objective": objective.value.replace("-", "_"), "max_stages": max_stages,
            "square_only": square_only, "dilation": dilation}


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
                dilation: bool, fmt: Format, output: Path | None) -> None:
    """Compare every family for ``target`` and print the optimal OSC design with its certificate."""
    from .compare import compare
    from .solver import solve

    solver_opts = _solver_options(objective, max_stages, square_only, dilation)
    two_stage = {k: v for k, v in solver_opts.items() if k != "max_stages"}
    result = compare(target, options={"osc": solver_opts, "osc-2": two_stage})
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
        _emit(_json(doc), output)
        return
    if fmt is Format.csv:
        rows = [{k: v for k, v in _design_row(d).items() if k != "spec"} for d in result.designs]
        _emit(_csv(rows), output)
        return
    from rich.text import Text

    from . import _render as r

    conv = next((d.cost for d in result.designs if d.family == "conv"), None)
    parts: list[Any] = [r.target_line(target, note), r.comparison_table(result.designs,
                        result.best.family if result.best else None, conv)]
    if result.best:
        parts.append(Text(f"* best fully-covering design by params: {result.best.family}", style="green"))
    for fam, reason in result.skipped:
        parts.append(Text(f"skipped {fam}: {reason}", style="yellow"))
    parts.append(Text(r.CONVENTIONS + (f" MACs at the default input {DEFAULT_INPUT}x{DEFAULT_INPUT}; "
                                        "set --input-size." if defaulted else ""), style="dim"))
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
    run_compare(target, defaulted, objective, max_stages, square_only, dilation, fmt, output)


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
) -> None:
    """Compare every operator family against the conventional conv: exact params, MACs, coverage.

    Example: osc-design compare --in-channels 64 --out-channels 128 --kernel 3 --stride 2 --format json
    """
    _check_output(output)
    target, defaulted = _target(channels, in_channels, out_channels, kernel, stride, input_size)
    run_compare(target, defaulted, objective, max_stages, square_only, dilation, fmt, output)


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
