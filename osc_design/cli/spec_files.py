"""``verify`` and ``export``: a layer-spec file checked exactly (and numerically), or written as a module."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import OscDesignError, SpecError
from . import output as out
from ._app import app
from .options import DEFAULT_INPUT, Format, FormatOpt, InputSize, Output, check_output, parse_pair, positive


class BackendChoice(str, Enum):
    none = "none"
    torch = "torch"
    jax = "jax"
    onnxruntime = "onnxruntime"
    all = "all"


class ExportTarget(str, Enum):
    torch = "torch"
    jax = "jax"
    onnx = "onnx"


def _load_spec(path: Path) -> Any:
    """The spec file's layer spec; a file that is missing, does not parse or does not validate is invalid
    input (exit 2: :class:`~osc_design.errors.SchemaError` is a usage error of the application)."""
    from ..serialize import load

    if not path.is_file():
        raise typer.BadParameter(f"{str(path)!r} is not a readable file", param_hint="'SPEC'")
    return load(path)


def _input_size(spec: Any, size: tuple[int, int] | None) -> tuple[int, int]:
    """The size every check uses: the spec's own, or ``--input-size`` where the spec has none (a size that
    differs from the spec's, or that is too small for it, is invalid input)."""
    from ..backends import resolve_input_size

    try:
        return resolve_input_size(spec, size)
    except SpecError as e:
        raise typer.BadParameter(str(e), param_hint="'--input-size'") from None


SpecArg = Annotated[Path, typer.Argument(help="A layer-spec JSON file (format osc-design.layer).", show_default=False)]


@app.command("verify")
def verify_cmd(
    spec_file: SpecArg,
    backend: Annotated[BackendChoice, typer.Option(
        "--backend", help="Also measure in a framework.")] = BackendChoice.none,
    input_size: InputSize = None,
    batch: Annotated[int, typer.Option("--batch", callback=positive, help="Batch size of the numeric check.")] = 1,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Exact coverage and cost of a spec file; with --backend, the closed forms checked numerically.

    Exit code 1 when any measured count differs from the closed form.

    Example: osc-design verify design.json --backend all
    """
    check_output(output)
    size = parse_pair(input_size, "--input-size")
    spec = _load_spec(spec_file)
    from ..cost import cost
    from ..coverage import coverage

    if size is None and spec.target.input_size is None:
        size = (DEFAULT_INPUT, DEFAULT_INPUT)
    size = _input_size(spec, size)
    c, cov = cost(spec, size), coverage(spec)
    report = None
    if backend is not BackendChoice.none:
        from ..backends import verify

        report = verify(spec, backend=backend.value, input_size=size, batch=batch)
    doc = {"family": spec.family, "target": spec.target.to_dict(), "cost": c.to_dict(), "coverage": cov.to_dict(),
           "checks": None if report is None else report.to_rows(), "ok": None if report is None else report.ok}
    rows = report.to_rows() if report is not None else [{"quantity": k, "value": v} for k, v in c.to_dict().items()]
    if not out.emit_document(fmt, output, lambda: doc, lambda: rows):
        from rich.text import Text

        from .. import _render as r

        parts: list[Any] = [r.target_line(spec.target.with_input_size(size) if size else spec.target),
                            Text(f"family {spec.family}, {r.plural(spec.stages, 'conv stage')}, "
                                 f"{r.plural(len(spec.nodes) - 1, 'op')}"),
                            r.cost_lines(c), Text(f"  receptive field: {cov.describe()}")]
        if report is not None:
            parts.append(r.checks_table(report))
        out.emit(out.render(*parts, output=output), output)
    if report is not None and not report.ok:
        raise OscDesignError("closed form and measurement differ: " + "; ".join(
            f"{ch.backend} {ch.quantity} expected {ch.expected}, measured {ch.measured}" for ch in report.failures))


def _export_onnx(spec: Any, graph_name: str, output: Path, params: Any) -> None:
    """``export --to onnx``: the checked ONNX model of ``spec`` (with ``params``, else random weights) written
    to ``output``."""
    try:
        from ..backends.onnx import export_onnx
    except ImportError as exc:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(f"--to onnx needs the onnx package, which cannot be imported ({exc}); "
                                      "install it with: pip install 'osc-design[onnx]'") from exc
    export_onnx(spec, output, params, graph_name=graph_name)


@app.command("export")
def export_cmd(
    spec_file: SpecArg,
    to: Annotated[ExportTarget, typer.Option(
        "--to", help="Framework of the generated module.")] = ExportTarget.torch,
    class_name: Annotated[str, typer.Option("--class-name", help="Name of the generated class.")] = "OscDesign",
    weights: Annotated[Path | None, typer.Option("--weights", help="A trained conv's weight (.npy; .npz or .pt "
        "with weight and bias): the module starts from its projection onto the design.")] = None,
    output: Output = None,
) -> None:
    """Write a standalone PyTorch or JAX (Flax NNX) module, or an ONNX model, for a spec file (no osc-design
    needed to run it).

    --to onnx writes a binary .onnx file (opset 17, shuffles folded into adjacent dense convs), so it needs
    --output. Weights are random unless --weights gives a trained conv to project.

    Examples: osc-design export design.json --to torch --output design_torch.py;
    osc-design export design.json --to onnx -o design.onnx
    """
    check_output(output)
    spec = _load_spec(spec_file)
    if to is ExportTarget.onnx and output is None:  # before the projection, which can take minutes
        raise typer.BadParameter("an ONNX model is a binary file: give --output FILE", param_hint="'--output'")
    params = None
    if weights is not None:  # the projection's design: the spec, with an output bias where the conv has one
        spec, params = _projected(spec, weights)
    if to is ExportTarget.onnx:
        assert output is not None
        _export_onnx(spec, class_name, output, params)
        return
    from ..backends.export import export_source

    try:
        source = export_source(spec, to=to.value, class_name=class_name, weights=params)
    except SpecError as e:  # the spec loaded, so what is invalid is the class name
        raise typer.BadParameter(str(e), param_hint="'--class-name'") from None
    out.emit(source, output)


def _projected(spec: Any, path: Path) -> tuple[Any, Any]:
    """``--weights``: the design and params of the projection of the file's conv onto ``spec`` (its error on
    stderr; see :func:`~osc_design.weights.files.project_file`); a file that cannot be read or does not fit
    the spec's target is invalid input."""
    from ..weights.files import project_file

    try:
        found = project_file(spec, path)
    except SpecError as e:
        raise typer.BadParameter(str(e), param_hint="'--weights'") from None
    bias = "" if found.bias_error is None else f", bias error {found.bias_error:.3g}"
    typer.echo(f"projection ({found.method}): relative error {found.error:.4g}{bias}", err=True)
    return found.spec, found.params
