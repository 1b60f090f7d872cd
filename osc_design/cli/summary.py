"""``summary``: every leaf module of a PyTorch model with its params, MACs, FLOPs and output size."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from . import output as out
from ._app import app
from .network import NETWORK_HELP, check_catalogue, one_source
from .options import DEFAULT_MODEL_INPUT, FormatOpt, ModelInputSize, ModelRef, Output, check_output, load_model
from .options import Format, parse_shape, positive


def _model(name: str | None, model_ref: str | None, input_size: str | None) -> tuple[str, Any, tuple[int, ...]]:
    """The model to summarise, its name and the input shape of one sample."""
    shape = parse_shape(input_size)
    if model_ref is not None:
        model = load_model(model_ref)
        return type(model).__name__, model, shape or DEFAULT_MODEL_INPUT
    assert name is not None
    check_catalogue(name)
    try:
        from ..networks.torch_models import build_model
    except ImportError:
        raise typer.BadParameter(f"{name!r}: a summary runs the PyTorch model, and PyTorch is not installed",
                                 param_hint="'NAME'") from None
    from ..networks.catalog import network_input_shape

    try:
        return name, build_model(name), shape or network_input_shape(name)
    except KeyError:
        raise typer.BadParameter(f"{name!r} has no PyTorch model here: give --model MODULE:CALLABLE",
                                 param_hint="'NAME'") from None


def _onnx_summary(path: str, input_size: str | None, batch: int) -> Any:
    """``summary FILE.onnx``: the ONNX summary (a missing file, an unreadable model, or a --batch or
    --input-size that contradicts the model's input or leaves it symbolic, is invalid input naming that
    option)."""
    from pathlib import Path

    if not Path(path).is_file():
        raise typer.BadParameter(f"{path!r} is not a readable file", param_hint="'NAME'")
    try:
        from ..networks.onnx_summary import summary_onnx
    except ImportError:  # pragma: no cover - osc-design[onnx] not installed
        raise typer.BadParameter(f"{path!r}: an ONNX summary needs the onnx package: pip install 'osc-design[onnx]'",
                                 param_hint="'NAME'") from None
    from ..errors import OptionError

    try:
        return summary_onnx(path, batch=batch, input_size=parse_shape(input_size))
    except OptionError as e:  # the argument it names: --batch, --input-size, or the model itself
        hint = {"batch": "'--batch'", "input_size": "'--input-size'"}.get(e.option, "'NAME'")
        raise typer.BadParameter(f"{path}: {e}", param_hint=hint) from None
    except ValueError as e:
        raise typer.BadParameter(f"{path}: {e}", param_hint="'--input-size'") from None
    except Exception as e:  # onnx cannot parse or infer the file
        raise typer.BadParameter(f"{path}: not a model onnx can read ({type(e).__name__}: {e})",
                                 param_hint="'NAME'") from None


def _table(s: Any) -> Any:
    from rich.table import Table

    table = Table(title=repr(s), title_justify="left")
    for col, right in (("module", False), ("layer", False), ("kind", False), ("params", True), ("MACs", True),
                       ("FLOPs", True), ("output shape", False), ("output elements", True)):
        table.add_column(col, justify="right" if right else "left", footer_style="bold")
    for r in s.rows:
        shape = "not called" if r.output_shape is None else "x".join(map(str, r.output_shape))
        table.add_row(r.name, r.layer, r.kind, f"{r.params:,}", f"{r.macs:,}", f"{r.flops:,}", shape,
                      f"{r.output_elements:,}")
    total = s.totals()
    table.add_section()
    table.add_row("total", "", "", f"{total['params']:,}", f"{total['macs']:,}", f"{total['flops']:,}", "",
                  f"{total['output_elements']:,}", style="bold")
    return table


@app.command("summary")
def summary_cmd(
    name: Annotated[str | None, typer.Argument(help=NETWORK_HELP)] = None,
    model_ref: ModelRef = None,
    input_size: ModelInputSize = None,
    batch: Annotated[int, typer.Option("--batch", callback=positive,
        help="Batch size of the forward pass (MACs and output elements are for the batch).")] = 1,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Summarise a PyTorch model, or an ONNX file: one row per leaf module (computing node) with params, MACs,
    FLOPs and output size.

    MACs count every output position (padding included) and no bias; FLOPs = 2 x MACs; norms,
    pooling and activations count no MACs (README: summary conventions). NAME may be a .onnx file
    (shapes from ONNX shape inference; --input-size fixes symbolic dimensions of one sample, and must
    agree with the dimensions the model fixes).

    Examples: osc-design summary resnet18; osc-design summary --model path/to/net.py:make_net -i 3x64x64 -f csv;
    osc-design summary design.onnx -f json
    """
    from ..networks.summary import summary

    check_output(output)
    one_source(name, model_ref, input_size)
    if name is not None and model_ref is None and name.lower().endswith(".onnx"):
        result = _onnx_summary(name, input_size, batch)
        if not out.emit_document(fmt, output, result.to_dict, result.table_rows):
            out.emit(out.render(_table(result), output=output), output)
        return
    network, model, shape = _model(name, model_ref, input_size)
    try:
        result = summary(model, shape, batch=batch, name=network)
    except Exception as e:  # the model's forward pass failed on this input
        shown = "x".join(map(str, (batch, *shape)))
        raise typer.BadParameter(f"{network}: the forward pass on an input of {shown} raised {type(e).__name__}: "
                                 f"{e}", param_hint="'--input-size'") from None
    if not out.emit_document(fmt, output, result.to_dict, result.table_rows):
        out.emit(out.render(_table(result), output=output), output)
