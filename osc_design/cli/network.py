"""``network``: a design for every convolution of a network, with totals before and after."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import OptionError
from . import output as out
from ._app import app
from .compare import latency_model
from .conversion import ConvertOpt, ExportOnnxOpt, WeightsOpt, check_conversion, write_conversion
from .options import (
    DEFAULT_MODEL_INPUT,
    BatchOpt,
    Device,
    DeviceOpt,
    Format,
    FormatOpt,
    LatencyBackend,
    ModelInputSize,
    ModelRef,
    Output,
    check_output,
    load_model,
    parse_shape,
)


class PlanObjective(str, Enum):
    params = "params"
    latency = "latency"


NETWORK_HELP = ("A catalogue network: resnet18, resnet50, vgg16, mobilenet_v2, cifar-resnet20, cifar-resnet56, "
                "cifar-resnet110.")
OBJECTIVE_HELP = ("params: each layer's design with the fewest params; latency: the fastest predicted, or under "
                  "--budget-params/--budget-macs the lowest total latency (needs --backend).")


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["p=0.25", "with_bn=true"]`` -> ``{"p": 0.25, "with_bn": True}`` (JSON scalars, else strings)."""
    options: dict[str, Any] = {}
    for item in pairs or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="'--option'")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, (dict, list)):
            raise typer.BadParameter(f"{item!r}: the value must be a number, true/false or text",
                                     param_hint="'--option'")
        options[key] = value
    return options


def _check_policy(policy: str, options: dict[str, Any]) -> None:
    """``--policy`` must be a family id or ``any``, and every ``--option`` one of that family's options with a
    value of the right kind: checked once, before any layer is planned."""
    from ..families import check_options
    from ..registry import family_ids

    ids = family_ids()
    if policy not in (*ids, "any"):
        raise typer.BadParameter(f"{policy!r} is not a family: use any or one of {', '.join(ids)}",
                                 param_hint="'--policy'")
    if options and policy == "any":
        raise typer.BadParameter("--policy any takes no family options (give a family with --policy)",
                                 param_hint="'--option'")
    try:
        check_options(policy, options) if options else None
    except OptionError as e:
        raise typer.BadParameter(str(e), param_hint="'--option'") from None


def _check_option_values(plan: Any, options: dict[str, Any]) -> None:
    """A usage error when an option value kept every layer: no layer was replaced, and every layer the
    family could not be built for names a given option (``--option p=5``: `p` must be in (0, 1])."""
    if not options or any(lp.replaced for lp in plan.layers):
        return
    reasons = [lp.reason for lp in plan.layers if "cannot be built here" in lp.reason]
    for name in options:
        if reasons and all(f"`{name}`" in r for r in reasons):
            reason = reasons[0].split("cannot be built here: ", 1)[-1]
            if not reason.startswith(f"{plan.policy}: "):
                reason = f"{plan.policy}: {reason}"
            raise typer.BadParameter(f"{reason} (no layer could use it)", param_hint="'--option'")


def check_catalogue(name: str) -> None:
    """A usage error unless ``name`` is a catalogue network."""
    from ..networks.catalog import catalog_names

    if name not in catalog_names():
        raise typer.BadParameter(f"{name!r} is not in the catalogue ({', '.join(catalog_names())})",
                                 param_hint="'NAME'")


def fixed_size(input_size: str | None) -> None:
    """A catalogue network's layers are listed at its own input size: ``--input-size`` is for ``--model``."""
    if input_size is not None:
        raise typer.BadParameter("a catalogue network has its own input size: --input-size is for --model",
                                 param_hint="'--input-size'")


def one_source(name: str | None, model: str | None, input_size: str | None, *others: Any,
               what: str = "a catalogue network name or --model MODULE:CALLABLE") -> None:
    """Exactly one of ``name``, ``--model`` and ``others`` (``--from``); ``--input-size`` only with a model."""
    if sum(x is not None for x in (name, model, *others)) != 1:
        raise typer.BadParameter(f"give {what} (one of them)", param_hint="'NAME'")
    if input_size is not None and model is None and name is None:
        raise typer.BadParameter("--input-size is for --model or a catalogue network", param_hint="'--input-size'")


def extract_model(ref: str, input_size: str | None) -> tuple[str, Any, tuple[int, ...], Any]:
    """``--model``: the model's name, its :class:`~osc_design.networks.extract.Extraction`, input shape and the
    model itself."""
    from ..networks.extract import extract_network

    model = load_model(ref)
    shape = parse_shape(input_size) or DEFAULT_MODEL_INPUT
    try:
        return type(model).__name__, extract_network(model, shape), shape, model
    except Exception as e:  # the user's forward pass failed on this input
        shown = "x".join(map(str, shape))
        raise typer.BadParameter(f"{ref!r}: the forward pass on an input of 1x{shown} raised {type(e).__name__}: "
                                 f"{e}", param_hint="'--model'") from None


def _layers(name: str | None, from_file: Path | None, model: str | None, input_size: str | None,
            runnable: bool = False) -> tuple[str, Any, Any]:
    """The network's name, conv layers and, with ``runnable``, ``(torch model, input shape)`` (else ``None``):
    from a description file (``--from``), a model (``--model``) or else the catalogue."""
    if from_file is not None:
        from ..networks.description import load_network

        return (*load_network(from_file), None)
    if model is not None:
        network, found, shape, torch_model = extract_model(model, input_size)
        return network, found.layers, (torch_model, shape) if runnable else None
    from ..networks.catalog import catalog_layers, network_input_shape

    assert name is not None
    check_catalogue(name)
    fixed_size(input_size)
    if not runnable:
        return name, catalog_layers(name), None
    from ..networks.torch_models import build_model

    return name, catalog_layers(name), (build_model(name), network_input_shape(name))


def _usage_error(e: OptionError, budgets: dict[str, float | None],
                 objective: PlanObjective) -> typer.BadParameter | None:
    """The command-line wording of :func:`~osc_design.networks.plan.plan_network`'s budget and latency rules
    (``None`` for a rule the command line cannot break, which stays a domain error)."""
    flag = "--" + e.option.replace("_", "-")
    if e.rule == "fraction":
        return typer.BadParameter(f"{budgets[flag]} is not a fraction in (0, 1]", param_hint=f"'{flag}'")
    if e.rule == "one-budget":
        return typer.BadParameter("give at most one of --budget-params, --budget-macs, --budget-latency",
                                  param_hint="'--budget-*'")
    if e.rule == "needs-latency":
        what = "--objective latency" if objective is PlanObjective.latency else "--budget-latency"
        return typer.BadParameter(f"{what} needs --backend torch, jax or onnxruntime", param_hint="'--backend'")
    if e.rule == "latency-twice":
        return typer.BadParameter("--budget-latency caps latency while params are minimised: drop --objective "
                                  "latency", param_hint="'--budget-latency'")
    return None


def _plan(network: str, layers: Any, policy: str, options: dict[str, Any], budgets: dict[str, float | None],
          objective: PlanObjective, timing: tuple[Any, Any, int]) -> Any:
    """:func:`~osc_design.networks.plan.plan_network` with a progress bar, its rules worded as usage errors;
    ``timing`` is ``(backend, device, batch)`` of the latency model (no model without a backend)."""
    from ..networks.plan import plan_network

    advance, close = out.progress(len(layers), f"planning {network}")
    model, (_, close_timing) = latency_model(*timing, before=close)
    try:
        return plan_network(layers, policy, network=network, options=options,
                            budget_params=budgets["--budget-params"], budget_macs=budgets["--budget-macs"],
                            budget_latency=budgets["--budget-latency"], objective=objective.value,
                            latency=model, progress=advance)
    except OptionError as e:
        usage = _usage_error(e, budgets, objective)
        if usage is None:
            raise
        raise usage from None
    finally:
        close()
        close_timing()


@app.command("network")
def network_cmd(
    name: Annotated[str | None, typer.Argument(help=NETWORK_HELP)] = None,
    from_file: Annotated[Path | None, typer.Option("--from",
        help="A network description JSON file instead of a catalogue name.")] = None,
    model_ref: ModelRef = None,
    input_size: ModelInputSize = None,
    policy: Annotated[str, typer.Option("--policy",
        help="Family to use where it helps (osc, osc-2, bsconv-u, ...), or any.")] = "osc",
    budget_params: Annotated[float | None, typer.Option("--budget-params",
        help="Keep at most this fraction of the convs' params; minimise MACs.")] = None,
    budget_macs: Annotated[float | None, typer.Option("--budget-macs",
        help="Keep at most this fraction of the convs' MACs; minimise params.")] = None,
    budget_latency: Annotated[float | None, typer.Option("--budget-latency",
        help="Keep at most this fraction of the convs' predicted latency; minimise params (needs --backend).")] = None,
    objective: Annotated[PlanObjective, typer.Option("--objective", help=OBJECTIVE_HELP)] = PlanObjective.params,
    backend: Annotated[LatencyBackend | None, typer.Option("--backend",
        help="Predict every layer's latency on this framework (adds latency columns).")] = None,
    device: DeviceOpt = Device.cpu,
    batch: BatchOpt = 8,
    option: Annotated[list[str] | None, typer.Option("--option",
        help="Family option KEY=VALUE (repeatable), e.g. --option p=0.25.")] = None,
    convert: ConvertOpt = None,
    export_onnx: ExportOnnxOpt = None,
    weights: WeightsOpt = None,
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Plan a design for every convolution of a network, with totals before and after; with --convert or
    --export-onnx, the converted model written too.

    --policy any draws from every family and the OSC Pareto front.

    Examples: osc-design network resnet50 --policy osc --budget-params 0.2;
    osc-design network resnet18 --policy any --objective latency --backend torch;
    osc-design network --model mypkg.models:make_net --input-size 3x160x160
    """
    check_output(output)
    one_source(name, model_ref, input_size, from_file,
               what="a catalogue network name or --from FILE or --model MODULE:CALLABLE")
    check_conversion(convert, export_onnx, weights, from_file)
    options = _parse_options(option)
    _check_policy(policy, options)
    network, layers, runnable = _layers(name, from_file, model_ref, input_size,
                                        convert is not None or export_onnx is not None)
    budgets = {"--budget-params": budget_params, "--budget-macs": budget_macs, "--budget-latency": budget_latency}
    plan = _plan(network, layers, policy, options, budgets, objective, (backend, device, batch))
    _check_option_values(plan, options)
    if runnable is not None:
        write_conversion(runnable[0], plan, runnable[1], weights, convert, export_onnx, trained=model_ref is not None)
    if not out.emit_document(fmt, output, plan.to_dict, plan.rows):
        from .. import _render as r

        out.emit(out.render(*r.network_renderables(plan), output=output), output)


@app.command("describe")
def describe_cmd(
    name: Annotated[str | None, typer.Argument(help=NETWORK_HELP)] = None,
    model_ref: ModelRef = None,
    input_size: ModelInputSize = None,
    output: Output = None,
) -> None:
    """Write the description file of a model's convolutions (JSON), for network --from.

    Every nn.Conv2d with its input size, the kept ones with why; the other convolution modules
    (transposed, 1-D, 3-D, never called) under `others`.

    Example: osc-design describe --model path/to/net.py:make_net --input-size 3x160x160 -o net.json
    """
    from ..networks.description import layers_to_dict
    from ..serialize import format_json

    check_output(output)
    one_source(name, model_ref, input_size)
    if model_ref is not None:
        network, found, shape, _ = extract_model(model_ref, input_size)
        doc = layers_to_dict(network, found.layers, shape, found.others)
    else:
        from ..networks.catalog import catalog_layers, network_input_shape

        assert name is not None
        check_catalogue(name)
        fixed_size(input_size)
        doc = layers_to_dict(name, catalog_layers(name), network_input_shape(name))
    out.emit(format_json(doc) + "\n", output)
