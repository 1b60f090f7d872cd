"""``network --convert`` / ``--export-onnx``: the converted model written to files, each replaced layer's
projection error on stderr.

``--convert FILE`` writes the converted model as a ``torch.export`` program (``torch.export.save``): it loads
with torch alone, without osc-design and without the model's own code (``torch.export.load(FILE).module()``),
with a free batch dimension where the model allows one. ``--export-onnx FILE`` writes it through
``torch.onnx.export`` (opset 17, the TorchScript-based exporter), with a free batch dimension when the graph
really computes every batch like torch (checked in onnxruntime), else at batch 1. A failed export is one line,
exit 1, and writes no file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import OscDesignError, first_line
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
    help="With --convert/--export-onnx: project (the default for --model) starts each design from the trained "
         "conv's projection; random (the default for a catalogue name, whose weights are a fresh init) from a "
         "fresh init.")]


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
                     convert: Path | None, export_onnx: Path | None, trained: bool = True) -> None:
    """Convert ``model`` by ``plan`` and write the requested files (atomically, and only once every requested
    export has succeeded: a failure writes none). ``weights`` defaults to ``project`` for a ``trained`` model,
    else to ``random`` (projecting a fresh init keeps nothing worth the time)."""

    from ..io import write_bytes
    from ..networks.convert import convert as convert_model

    chosen = (weights or (WeightsChoice.project if trained else WeightsChoice.random)).value
    converted, found = convert_model(model.eval(), plan, weights=chosen, report=True)
    converted.eval()
    replaced = sum(lp.replaced for lp in plan.layers)
    typer.echo(f"converted: {replaced} of {len(plan.layers)} convs replaced, weights {chosen}", err=True)
    for name, p in found.items():
        typer.echo(f"  {name}: projection ({p.method}) relative error {p.error:.4g}", err=True)
    files = []
    with _quiet():
        if convert is not None:
            files.append((convert, _exported_program(converted, shape)))
        if export_onnx is not None:
            files.append((export_onnx, _onnx_bytes(converted, shape)))
    for path, data in files:
        write_bytes(path, data)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's exporters log and warn at length about models they handle; the command reports in one line."""
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _exported_program(model: Any, shape: tuple[int, ...]) -> bytes:
    """``torch.export.save`` of ``model`` with a free batch dimension, or at batch 1 (the batch the model was
    extracted at) where its code fixes the batch size."""
    import torch

    buf = io.BytesIO()
    try:
        program = torch.export.export(model, (torch.zeros((2, *shape)),),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception:  # the model's code pins the batch size (a reshape to a constant, ...): try batch 1
        try:
            program = torch.export.export(model, (torch.zeros((1, *shape)),))
        except Exception as e:
            raise OscDesignError(f"--convert: torch.export cannot export the converted model "
                                 f"({type(e).__name__}: {first_line(e)})") from None
        typer.echo("--convert: the model's code fixes its batch size: exported at batch 1", err=True)
    torch.export.save(program, buf)
    return buf.getvalue()


def _onnx_bytes(model: Any, shape: tuple[int, ...]) -> bytes:
    """``torch.onnx.export`` of ``model`` (opset 17), with a free batch dimension when the exported graph really
    computes every batch size like torch (checked in onnxruntime at batches 1 and 3), else at batch 1."""
    import torch

    def export(batch: int, dynamic: bool) -> bytes:
        buf = io.BytesIO()
        axes = {"input": {0: "N"}, "output": {0: "N"}} if dynamic else None
        torch.onnx.export(model, (torch.zeros((batch, *shape)),), buf,  # type: ignore[arg-type]  # a file object
                          dynamo=False, opset_version=17, input_names=["input"], output_names=["output"],
                          dynamic_axes=axes)
        return buf.getvalue()

    with contextlib.suppress(Exception):  # a free batch fails where the model's code pins it: batch 1 below
        data = export(2, True)
        if _same_outputs(model, data, [(batch, *shape) for batch in (1, 3)]):
            return data
    try:
        data = export(1, False)
    except Exception as e:
        raise OscDesignError(f"--export-onnx: torch.onnx.export cannot export the converted model "
                             f"({type(e).__name__}: {first_line(e)})") from None
    if not _same_outputs(model, data, [(1, *shape)]):
        raise OscDesignError("--export-onnx: the exported ONNX model's outputs differ from the converted model's")
    typer.echo("--export-onnx: the exported graph fixes the batch size: exported at batch 1", err=True)
    return data


def _same_outputs(model: Any, data: bytes, shapes: list[tuple[int, ...]]) -> bool:
    """Whether onnxruntime runs ``data`` at every input shape of ``shapes`` with torch's outputs (relative error
    <= 1e-4); one session for all."""
    import numpy as np
    import onnx
    import torch

    from ..backends.onnx import session

    try:
        sess = session(onnx.load_from_string(data))
    except Exception:  # onnxruntime cannot load the graph
        return False
    for shape in shapes:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        try:
            got = sess.run(None, {"input": x.numpy()})[0]
        except Exception:  # onnxruntime refuses this batch size: the graph fixed it
            return False
        with torch.no_grad():
            want = model(x).numpy()
        scale = max(float(np.abs(want).max()), 1e-30)
        if got.shape != want.shape or float(np.abs(got - want).max()) > 1e-4 * scale:
            return False
    return True
