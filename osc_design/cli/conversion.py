"""``network --convert`` / ``--export-onnx``: the converted model written to files, each replaced layer's
projection error on stderr.

``--convert FILE`` writes the converted model as a ``torch.export`` program (``torch.export.save``): it loads
with torch alone, without osc-design and without the model's own code (``torch.export.load(FILE).module()``),
with a free batch dimension where the model allows one. ``--export-onnx FILE`` writes it through
``torch.onnx.export`` (opset 17, the TorchScript-based exporter, free batch dimension).
"""

from __future__ import annotations

import io
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .options import check_output


class WeightsChoice(str, Enum):
    project = "project"
    random = "random"


ConvertOpt = Annotated[Path | None, typer.Option(
    "--convert", metavar="FILE.pt2",
    help="Convert the model by the plan and write it as a torch.export program (loads with torch alone: "
         "torch.export.load(FILE).module()). Needs --model or a catalogue name.")]
ExportOnnxOpt = Annotated[Path | None, typer.Option(
    "--export-onnx", metavar="FILE.onnx",
    help="Convert the model by the plan and export it to ONNX (opset 17). Needs --model or a catalogue name.")]
WeightsOpt = Annotated[WeightsChoice | None, typer.Option(
    "--weights",
    help="With --convert/--export-onnx: project (default) starts each design from the trained conv's "
         "projection; random from a fresh init.")]


def check_conversion(convert: Path | None, export_onnx: Path | None, weights: WeightsChoice | None,
                     from_file: Path | None) -> None:
    """Usage errors of the conversion options, before anything is planned."""
    check_output(convert, "--convert")
    check_output(export_onnx, "--export-onnx")
    wanted = convert is not None or export_onnx is not None
    if weights is not None and not wanted:
        raise typer.BadParameter("--weights is for --convert or --export-onnx", param_hint="'--weights'")
    if wanted and from_file is not None:
        flag = "--convert" if convert is not None else "--export-onnx"
        raise typer.BadParameter("a description file holds no model: converting needs --model MODULE:CALLABLE "
                                 "or a catalogue name", param_hint=f"'{flag}'")


def write_conversion(model: Any, plan: Any, shape: tuple[int, ...], weights: WeightsChoice | None,
                     convert: Path | None, export_onnx: Path | None) -> None:
    """Convert ``model`` by ``plan`` and write the requested files (atomically)."""
    import torch

    from ..io import write_bytes
    from ..networks.convert import convert as convert_model

    chosen = (weights or WeightsChoice.project).value
    converted, found = convert_model(model.eval(), plan, weights=chosen, report=True)
    converted.eval()
    replaced = sum(lp.replaced for lp in plan.layers)
    typer.echo(f"converted: {replaced} of {len(plan.layers)} convs replaced, weights {chosen}", err=True)
    for name, p in found.items():
        typer.echo(f"  {name}: projection ({p.method}) relative error {p.error:.4g}", err=True)
    x = torch.zeros((2, *shape))
    if convert is not None:
        write_bytes(convert, _exported_program(converted, x))
    if export_onnx is not None:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(converted, (x,), buf,  # type: ignore[arg-type]  # a file object works too
                              dynamo=False, opset_version=17, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
        write_bytes(export_onnx, buf.getvalue())


def _exported_program(model: Any, x: Any) -> bytes:
    """``torch.export.save`` of ``model`` with a free batch dimension, or at batch 2 where the model fixes it."""
    import torch

    buf = io.BytesIO()
    try:
        program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception as e:  # the model's code pins the batch size (a reshape to a constant, ...)
        typer.echo(f"--convert: the model fixes its batch size ({type(e).__name__}): exported at batch "
                   f"{x.shape[0]}", err=True)
        program = torch.export.export(model, (x,))
    torch.export.save(program, buf)
    return buf.getvalue()
