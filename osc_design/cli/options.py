"""The options of the commands: value parsers, reusable ``Annotated`` options and the option sets.

An option set is a frozen dataclass whose fields are typer options; a command takes whole sets as
parameters (``target: TargetOptions``) and :func:`command_options` spreads their fields into the
command's signature, in order, so that the root command, ``compare`` and ``solve`` declare each option
once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from ..coverage import check_supported
from ..errors import OscDesignError
from ..spec import Target

DEFAULT_INPUT = 56
"""Input size used for MAC counts when ``--input-size`` is not given (stated in every output)."""


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


def positive(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"{value} is not allowed: must be a positive integer")
    return value


def _non_negative(value: int) -> int:
    if value < 0:
        raise typer.BadParameter(f"{value} is not allowed: must be 0 or a positive integer")
    return value


def check_output(output: Path | None, flag: str = "--output") -> None:
    """A usage error unless ``output`` (option ``flag``) is absent or a file path that can be written."""
    if output is None:
        return
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise typer.BadParameter(f"{str(output)!r} is not a writable file path", param_hint=f"'{flag}'")


# -- options used by several commands, each after its choices -------------------------
Channels = Annotated[int | None, typer.Option("--channels", "-c", callback=positive, help="Input and output channels.")]
InChannels = Annotated[int | None, typer.Option(
    "--in-channels", callback=positive,
    help="Input channels (overrides --channels).")]
OutChannels = Annotated[int | None, typer.Option(
    "--out-channels", callback=positive,
    help="Output channels (overrides --channels).")]
Kernel = Annotated[str | None, typer.Option("--kernel", "-k", help="Kernel size: 7 or 7x5 (height x width).")]
Stride = Annotated[str, typer.Option("--stride", "-s", help="Stride: 2 or 2x1.")]
InputSize = Annotated[str | None, typer.Option(
    "--input-size", "-i",
    help=f"Input size: 14 or 14x14 \\[default: {DEFAULT_INPUT}].")]


class Objective(str, Enum):
    params = "params"
    macs = "macs"
    macs_valid = "macs-valid"
    latency = "latency"


ObjectiveOpt = Annotated[Objective, typer.Option("--objective", help="What the OSC solver minimises.")]
def _stages(value: int | None) -> int | None:
    """``--max-stages``: positive and within the solver's supported limit."""
    from ..solver.space import MAX_STAGES

    if value is not None and positive(value) and value > MAX_STAGES:
        raise typer.BadParameter(f"{value} exceeds the supported limit {MAX_STAGES}")
    return value


MaxStages = Annotated[int | None, typer.Option(
    "--max-stages", callback=_stages,
    help="Most conv stages for the OSC solver (at most 256) \\[default: free].")]
SquareOnly = Annotated[bool, typer.Option("--square-only", metavar="", help="Only square kernels in OSC stages.")]
Dilation = Annotated[bool, typer.Option("--dilation/--no-dilation", metavar="", help="Allow dilated OSC stages.")]


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


class LatencyBackend(str, Enum):
    torch = "torch"
    jax = "jax"
    onnxruntime = "onnxruntime"


LatBackend = Annotated[LatencyBackend | None, typer.Option(
    "--backend",
    help="Predict latency on this framework (adds a column; needed by --objective latency).")]
Measure = Annotated[bool, typer.Option(
    "--measure", metavar="",
    help="Also measure each design's latency (slow: runs every module).")]


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


DeviceOpt = Annotated[Device, typer.Option("--device", help="Device for latency.")]
BatchOpt = Annotated[int, typer.Option("--batch", callback=positive, help="Batch size for latency.")]
Refine = Annotated[int, typer.Option(
    "--refine", callback=_non_negative,
    help="With --objective latency: measure the K best predicted designs end to end and choose the fastest measured.")]
Output = Annotated[Path | None, typer.Option(
    "--output", "-o",
    help="Write to this file (atomically) instead of stdout.")]


ModelRef = Annotated[str | None, typer.Option(
    "--model", metavar="MODULE:CALLABLE",
    help="Your PyTorch model: MODULE:CALLABLE or path/to/file.py:CALLABLE, called with no arguments; "
         "this imports and runs your code.")]
DEFAULT_MODEL_INPUT = (3, 224, 224)
ModelInputSize = Annotated[str | None, typer.Option(
    "--input-size", "-i", metavar="CxHxW",
    help="Shape of one input sample for --model, e.g. 3x224x224 \\[default: 3x224x224; a catalogue network: its own].")]


def parse_shape(text: str | None, option: str = "--input-size") -> tuple[int, ...] | None:
    """``"3x224x224"`` -> ``(3, 224, 224)`` (any number of positive sizes); anything else is a usage error."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        return tuple(int(p) for p in parts)
    raise typer.BadParameter(f"{text!r} is not an input shape: use positive sizes like 3x224x224 (CxHxW)",
                             param_hint=f"'{option}'")


def _import_target(module_ref: str) -> Any:
    """The module named by a dotted path, or loaded from a ``.py`` file."""
    import importlib
    import importlib.util
    import sys

    if module_ref.endswith(".py") or os.sep in module_ref or "/" in module_ref:
        path = Path(module_ref)
        if not path.is_file():
            raise ModuleNotFoundError(f"no file {module_ref!r}")
        name = f"_osc_design_model_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError(f"{module_ref!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m`: modules in the working directory
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(module_ref)


def load_model(ref: str) -> Any:
    """Import ``MODULE:CALLABLE`` (a dotted module or a ``.py`` file path), call it with no arguments and
    return the ``torch.nn.Module`` it builds. Every failure is a usage error of ``--model``, in one line."""
    def fail(why: str) -> typer.BadParameter:
        return typer.BadParameter(f"{ref!r}: {why}", param_hint="'--model'")

    module_ref, sep, attr = ref.rpartition(":")
    if not sep or not module_ref or not attr:
        raise fail("give MODULE:CALLABLE or path/to/file.py:CALLABLE")
    try:
        from torch import nn
    except ImportError:
        raise fail("a model needs PyTorch (pip install torch)") from None
    try:
        module = _import_target(module_ref)
    except ModuleNotFoundError as e:
        raise fail(f"cannot import {module_ref!r} ({e})") from None
    except Exception as e:  # the user's module raised while importing
        raise fail(f"importing {module_ref!r} raised {type(e).__name__}: {e}") from None
    if not hasattr(module, attr):
        raise fail(f"{module_ref!r} has no attribute {attr!r}")
    make = getattr(module, attr)
    if not callable(make):
        raise fail(f"{attr!r} is a {type(make).__name__}, not a callable")
    try:
        model = make()
    except Exception as e:
        raise fail(f"calling {attr}() raised {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise fail(f"{attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


# -- option sets --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TargetOptions:
    """The target convolution: channels, kernel, stride, input size."""

    channels: Channels = None
    in_channels: InChannels = None
    out_channels: OutChannels = None
    kernel: Kernel = None
    stride: Stride = "1"
    input_size: InputSize = None

    def target(self) -> tuple[Target, bool]:
        """The target, and whether its input size is the default (:data:`DEFAULT_INPUT`)."""
        c_in = self.in_channels or self.channels
        c_out = self.out_channels or self.channels
        if c_in is None or c_out is None:
            raise typer.BadParameter("give --channels, or both --in-channels and --out-channels",
                                     param_hint="'--channels'")
        k = parse_pair(self.kernel, "--kernel")
        if k is None:
            raise typer.BadParameter("a kernel size is required (e.g. --kernel 7 or --kernel 7x5)",
                                     param_hint="'--kernel'")
        s = parse_pair(self.stride, "--stride") or (1, 1)
        if s[0] > k[0] or s[1] > k[1]:
            raise typer.BadParameter(f"{self.stride!r} is larger than the kernel {k[0]}x{k[1]}",
                                     param_hint="'--stride'")
        size = parse_pair(self.input_size, "--input-size")
        return make_target(c_in, c_out, k, s, size or (DEFAULT_INPUT, DEFAULT_INPUT)), size is None


def make_target(c_in: int, c_out: int, kernel: Any, stride: Any, input_size: tuple[int, int],
                kernel_flag: str = "--kernel") -> Target:
    """``Target(...)``; a target the input size does not fit is a usage error of ``--input-size``, one beyond
    the supported limits (:func:`osc_design.coverage.check_supported`) one of ``--channels`` or ``--kernel``."""
    try:
        target = Target(c_in, c_out, kernel, stride, input_size=input_size)
    except OscDesignError as e:
        raise typer.BadParameter(str(e), param_hint="'--input-size'") from None
    try:
        return check_supported(target)
    except OscDesignError as e:
        flag = kernel_flag if "`kernel_size`" in str(e) else "--channels"
        raise typer.BadParameter(str(e), param_hint=f"'{flag}'") from None


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """What the OSC solver minimises, and its search space."""

    objective: ObjectiveOpt = Objective.params
    max_stages: MaxStages = None
    square_only: SquareOnly = False
    dilation: Dilation = False

    def solver_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`osc_design.solve` (``--objective latency`` solves for params)."""
        objective = "params" if self.objective is Objective.latency else self.objective.value.replace("-", "_")
        return {"objective": objective, "max_stages": self.max_stages, "square_only": self.square_only,
                "dilation": self.dilation}


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """Output format and file."""

    fmt: FormatOpt = Format.table
    output: Output = None


@dataclasses.dataclass(frozen=True)
class LatencyOptions:
    """Latency prediction and measurement of the compared designs."""

    backend: LatBackend = None
    measure: Measure = False
    device: DeviceOpt = Device.cpu
    batch: BatchOpt = 8
    refine: Refine = 0


F = TypeVar("F", bound=Callable[..., Any])


def command_options(fn: F) -> F:
    """Spread each option-set parameter of ``fn`` into its fields (typer sees plain options, in order)
    and call ``fn`` with the sets rebuilt from them."""
    hints = get_type_hints(fn, include_extras=True)
    params: list[inspect.Parameter] = []
    sets: dict[str, tuple[type, list[str]]] = {}
    for p in inspect.signature(fn).parameters.values():
        hint = hints.get(p.name, p.annotation)
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            params.append(p.replace(annotation=hint, kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        fields = get_type_hints(hint, include_extras=True)
        names = [f.name for f in dataclasses.fields(hint)]
        sets[p.name] = (hint, names)
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                     annotation=fields[f.name]) for f in dataclasses.fields(hint)]
    if len({p.name for p in params} | set(sets)) != len(params) + len(sets):
        raise TypeError(f"{fn.__name__}: an option name is used twice")

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        for name, (cls, names) in sets.items():
            kwargs[name] = cls(**{n: kwargs.pop(n) for n in names})
        return fn(**kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command  # type: ignore[return-value]
