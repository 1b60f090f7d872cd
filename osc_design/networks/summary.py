"""A whole-model summary of a PyTorch model: every leaf module's params, MACs, FLOPs and output size.

One forward pass with a batch of zeros runs on a copy of the model (its tensors on the ``meta``
device, so nothing is computed or allocated; on the CPU when the model cannot run on ``meta``), in
eval mode under ``torch.no_grad``: the model itself is never modified.

Conventions (exact integers; every count is for the whole batch, params excepted)

=============  ===============================================================================
kind           MACs (multiply-accumulates) of one call
=============  ===============================================================================
conv           output elements x (in_channels / groups) x kernel elements: every output
               position and every tap, padding included (fvcore, thop, ptflops); transposed:
               input elements x (out_channels / groups) x kernel elements; bias not counted
linear         output elements x in_features (``in x out`` per output row); bias not counted
norm           0: batch, layer, group and instance norm scale and shift each element, no
               multiply-accumulate over a window (FlopCounterMode counts none either)
pool           0 (comparisons and sums, no products)
activation     0
other          0 (named, with its params and output size)
=============  ===============================================================================

FLOPs are ``2 x MACs`` (``torch.utils.flop_counter.FlopCounterMode``). ``params`` is
``sum(p.numel())`` of the module's own parameters; the total counts each parameter once, so it is
``sum(p.numel() for p in model.parameters())`` (modules that hold parameters but have children get a
row of their own). A module called several times has one row: its MACs and output elements are
summed over the calls, its output shape is that of the first call. Only modules are counted:
arithmetic written in a ``forward`` with functions (``torch.matmul``, ``x + y``) belongs to no row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["FORMAT", "VERSION", "KINDS", "Summary", "SummaryRow", "summary"]

FORMAT = "osc-design.summary"
VERSION = 1
KINDS = ("conv", "linear", "norm", "pool", "activation", "other")


@dataclass(frozen=True)
class SummaryRow:
    """One module: its name, class, kind (:data:`KINDS`), own params, MACs and output."""

    name: str
    layer: str
    kind: str
    params: int
    macs: int
    output_shape: tuple[int, ...] | None
    """Shape of the first call's output (the first tensor of a tuple); ``None`` if never called."""
    output_elements: int
    """Elements of every tensor the module returned, summed over its calls."""
    calls: int = 1

    @property
    def flops(self) -> int:
        """``2 x macs``."""
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "kind": self.kind, "params": self.params,
                "macs": self.macs, "flops": self.flops,
                "output_shape": None if self.output_shape is None else list(self.output_shape),
                "output_elements": self.output_elements, "calls": self.calls}

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.output_shape)) if self.output_shape is not None else "not called"
        return f"SummaryRow({self.name!r} {self.layer}: {self.params:,} params, {self.macs:,} MACs, -> {shape})"


@dataclass(frozen=True)
class Summary:
    """What :func:`summary` found: one row per leaf module (in forward order, then those never called)."""

    model: str
    input_shape: tuple[int, ...]
    """The input given to the forward pass, batch first."""
    rows: tuple[SummaryRow, ...]
    params: int
    """``sum(p.numel() for p in model.parameters())``: each parameter once."""
    trainable_params: int
    macs_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def totals(self) -> dict[str, Any]:
        return {"params": self.params, "trainable_params": self.trainable_params, "macs": self.macs,
                "flops": self.flops, "output_elements": sum(row.output_elements for row in self.rows),
                "macs_by_kind": dict(self.macs_by_kind)}

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: format header, model, input shape, totals and one entry per row."""
        return {"format": FORMAT, "version": VERSION, "model": self.model, "input_shape": list(self.input_shape),
                "totals": self.totals(), "layers": [row.to_dict() for row in self.rows]}

    def table_rows(self) -> list[dict[str, Any]]:
        """Flat rows (CSV): every row's fields, the output shape as ``AxBxC``."""
        return [{**row.to_dict(), "output_shape": "" if row.output_shape is None else
                 "x".join(map(str, row.output_shape))} for row in self.rows]

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        return (f"Summary({self.model} @ {shape}: {len(self.rows)} modules, {self.params:,} params, "
                f"{self.macs:,} MACs)")

    def _repr_html_(self) -> str:
        from html import escape

        head = ("<tr><th>module</th><th>layer</th><th>kind</th><th>params</th><th>MACs</th><th>FLOPs</th>"
                "<th>output shape</th><th>output elements</th></tr>")
        cells = "".join(
            f"<tr><td>{escape(r.name)}</td><td>{escape(r.layer)}</td><td>{r.kind}</td><td>{r.params:,}</td>"
            f"<td>{r.macs:,}</td><td>{r.flops:,}</td><td>{escape(str(r.to_dict()['output_shape']))}</td>"
            f"<td>{r.output_elements:,}</td></tr>" for r in self.rows)
        total = self.totals()
        foot = (f"<tr><th colspan='3'>total</th><th>{total['params']:,}</th><th>{total['macs']:,}</th>"
                f"<th>{total['flops']:,}</th><th></th><th>{total['output_elements']:,}</th></tr>")
        return (f"<p>{escape(repr(self))}</p><table><thead>{head}</thead><tbody>{cells}</tbody>"
                f"<tfoot>{foot}</tfoot></table>")


def _kind(module: torch.nn.Module) -> str:
    from torch import nn

    m = nn.modules
    if isinstance(module, m.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    norms = (m.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
             getattr(nn, "RMSNorm", nn.LayerNorm))
    if isinstance(module, norms):
        return "norm"
    if isinstance(module, (m.pooling._MaxPoolNd, m.pooling._AvgPoolNd, m.pooling._AdaptiveAvgPoolNd,
                           m.pooling._AdaptiveMaxPoolNd, m.pooling._LPPoolNd)):
        return "pool"
    if type(module).__module__ == "torch.nn.modules.activation":
        return "activation"
    return "other"


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _macs(module: torch.nn.Module, kind: str, x: Any, y: Any) -> int:
    """The MACs of one call (see the module docstring)."""
    if kind == "conv":
        window = _numel(module.kernel_size)
        if module.transposed:
            return _numel(x.shape) * (int(module.out_channels) // int(module.groups)) * window  # type: ignore[arg-type]
        return _numel(y.shape) * (int(module.in_channels) // int(module.groups)) * window  # type: ignore[arg-type]
    if kind == "linear":
        return _numel(y.shape) * int(module.in_features)  # type: ignore[arg-type]
    return 0


def _tensors(value: Any) -> list[Any]:
    """The tensors of a module's output (a tensor, or nested tuples, lists and dicts of them)."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


@dataclass
class _Seen:
    kind: str
    macs: int = 0
    shape: tuple[int, ...] | None = None
    elements: int = 0
    calls: int = 0
    first: float = float("inf")
    """Index of the first call among all watched modules' calls."""


def _run(model: torch.nn.Module, shape: tuple[int, ...], device: Any, watch: dict[str, Any]) -> dict[Any, _Seen]:
    """One forward pass of a copy of ``model`` on ``device``; what each watched module (by name) did."""
    import copy

    import torch

    from .extract import _tensors_memo

    twin = copy.deepcopy(model, _tensors_memo(model, device))
    twin.eval()
    modules = dict(twin.named_modules())
    seen = {name: _Seen(kind) for name, kind in watch.items()}
    clock = [0]

    def hook(name: str):
        record = seen[name]

        def after(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            outs = _tensors(output)
            if not record.calls:
                record.first, clock[0] = clock[0], clock[0] + 1
            record.calls += 1
            record.elements += sum(_numel(t.shape) for t in outs)
            if record.shape is None and outs:
                record.shape = tuple(int(d) for d in outs[0].shape)
            if args and isinstance(args[0], torch.Tensor) and outs:
                record.macs += _macs(module, record.kind, args[0], outs[0])

        return after

    handles = [modules[name].register_forward_hook(hook(name)) for name in watch]
    try:
        with torch.no_grad():
            twin(torch.zeros(shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def summary(model: torch.nn.Module | Any, input_size: tuple[int, ...] | None = None, *, batch: int = 1,
            name: str | None = None) -> Summary:
    """Summarise ``model`` on one input of shape ``input_size`` (one sample, without the batch: ``(3, 224, 224)``).

    ``model`` may also be an ONNX model (a path to an ``.onnx`` file or an ``onnx.ModelProto``):
    :func:`osc_design.networks.onnx_summary.summary_onnx`, whose ``input_size`` is needed only for
    symbolic dimensions.

    Rows: every leaf module and every module with parameters of its own, in the order of their first
    call (those never called last, with ``calls`` 0). Counts follow the module docstring's conventions;
    MACs and output elements are for the whole ``batch``.

    >>> from torch import nn
    >>> s = summary(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    ...                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)), (3, 32, 32))
    >>> [(r.name, r.kind, r.params, r.macs) for r in s.rows]  # doctest: +NORMALIZE_WHITESPACE
    [('0', 'conv', 224, 221184), ('1', 'norm', 16, 0), ('2', 'activation', 0, 0), ('3', 'pool', 0, 0),
     ('4', 'other', 0, 0), ('5', 'linear', 90, 80)]
    >>> s
    Summary(Sequential @ 1x3x32x32: 6 modules, 330 params, 221,264 MACs)
    """
    import os

    if isinstance(model, (str, os.PathLike)) or type(model).__name__ == "ModelProto":
        from .onnx_summary import summary_onnx

        return summary_onnx(model, batch=batch, input_size=input_size, name=name)
    import torch

    if input_size is None:
        raise ValueError("input_size (one sample, e.g. (3, 224, 224)) is needed to summarise a PyTorch model")
    shape = tuple(input_size)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_size must be a non-empty tuple of positive integers, got {input_size!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    own = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    watch = {n: _kind(m) for n, m in modules.items() if own[n] or next(m.children(), None) is None}
    full = (batch, *shape)
    try:
        seen = _run(model, full, torch.device("meta"), watch)
    except Exception:  # an operation without meta support, data-dependent control flow, ...
        seen = _run(model, full, torch.device("cpu"), watch)
    order = sorted(watch, key=lambda n: seen[n].first)  # stable: never-called modules keep their place
    rows = tuple(SummaryRow(n or type(model).__name__, type(modules[n]).__name__, seen[n].kind, own[n],
                            seen[n].macs, seen[n].shape, seen[n].elements, seen[n].calls) for n in order)
    by_kind = {k: sum(r.macs for r in rows if r.kind == k) for k in KINDS}
    unique = {id(p): p for p in model.parameters()}.values()
    return Summary(name or type(model).__name__, full, rows, sum(p.numel() for p in unique),
                   sum(p.numel() for p in unique if p.requires_grad), by_kind)
