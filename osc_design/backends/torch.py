"""PyTorch backend: a layer spec as a ``torch.nn.Module`` (NCHW), with exact parameter and FLOP checks.

Every op of the spec graph runs natively:

=================  ========================================================================
op                 PyTorch
=================  ========================================================================
conv2d             ``nn.Conv2d`` (groups, dilation, stride, zero padding, optional bias);
                   default ``nn.Conv2d`` init (kaiming-uniform)
batch_norm         ``nn.BatchNorm2d`` (scale and shift trainable, running statistics buffers)
channel_shuffle    :func:`channel_shuffle` (view, transpose, flatten: no buffer needed)
permute            ``index_select`` on channels, the permutation a ``long`` buffer
slice / concat     channel slicing / ``torch.cat``
add                ``a + b + ...``
shift              :func:`shift2d` (``F.pad`` with a negative pad on the far side: zero fill)
identity           the input itself
=================  ========================================================================

The module (:class:`SpecModule`) keeps the node order of the spec and runs it in ``forward``; it has
no data-dependent control flow, so ``torch.compile`` and ``torch.export.export`` trace it into one
graph. Submodules and buffers are named after the node ids (see
:func:`osc_design.backends.export.python_names`), like the modules written by
:func:`osc_design.backends.export_source`, so their ``state_dict`` s are interchangeable.

``torch.utils.flop_counter.FlopCounterMode`` counts ``2 * macs`` for the forward pass: every
output position times every kernel tap, zero padding included, bias ignored; the other ops count
nothing. :func:`count_flops` measures it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from ..ops import BatchNorm, Conv2d, Permute
from ..spec import LayerSpec, Pair
from .export import plan

__all__ = [
    "SpecModule",
    "build_module",
    "channel_shuffle",
    "shift2d",
    "count_params",
    "count_flops",
    "reference_output_shape",
    "get_weights",
    "set_weights",
]

NAME = "torch"
LAYOUT = "NCHW"


def shift2d(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Zero-filled spatial shift of an NCHW tensor: ``out[:, :, y, x] = x[:, :, y - dy, x - dx]``."""
    h, w = x.shape[-2], x.shape[-1]
    dy, dx = max(-h, min(h, dy)), max(-w, min(w, dx))
    return F.pad(x, (dx, -dx, dy, -dy))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle of an NCHW tensor: output channel ``j`` is input ``(j % g) * (C / g) + j // g``."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


class SpecModule(nn.Module):
    """A layer spec as an ``nn.Module``: ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.

    Parameters
    ----------
    spec:
        The design.
    device, dtype:
        Passed to every ``nn.Conv2d`` / ``nn.BatchNorm2d`` (and ``device`` to the permutation buffers).

    Attributes
    ----------
    spec:
        The layer spec it was built from.
    """

    def __init__(self, spec: LayerSpec, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not isinstance(spec, LayerSpec):
            raise SpecError(f"expected a LayerSpec, got {type(spec).__name__}")
        self.spec = spec
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        steps = plan(spec)
        program: list[tuple[str, str, tuple[str, ...], tuple[int, ...]]] = []
        for step in steps[1:]:
            n = step.node
            if isinstance(n, Conv2d):
                self.add_module(step.name, nn.Conv2d(
                    n.in_channels, n.out_channels, n.kernel_size, stride=n.stride, padding=n.padding,
                    dilation=n.dilation, groups=n.groups, bias=n.bias, **factory,
                ))
            elif isinstance(n, BatchNorm):
                self.add_module(step.name, nn.BatchNorm2d(n.num_features, **factory))
            elif isinstance(n, Permute):
                self.register_buffer(step.name, torch.tensor(n.perm, dtype=torch.long, device=device))
            program.append((n.op, step.name, step.inputs, step.arg))
        self._input = steps[0].name
        self._output = next(s.name for s in steps if s.node.id == spec.output)
        self._program = tuple(program)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on ``x`` of shape ``(N, C_in, H, W)``."""
        env = {self._input: x}
        for op, name, inputs, arg in self._program:
            xs = [env[i] for i in inputs]
            if op in ("conv2d", "batch_norm"):
                y = getattr(self, name)(xs[0])
            elif op == "permute":
                y = xs[0].index_select(1, getattr(self, name))
            elif op == "channel_shuffle":
                y = channel_shuffle(xs[0], arg[0])
            elif op == "slice":
                y = xs[0][:, arg[0]:arg[1]]
            elif op == "concat":
                y = torch.cat(xs, dim=1)
            elif op == "add":
                y = xs[0]
                for other in xs[1:]:
                    y = y + other
            elif op == "shift":
                y = shift2d(xs[0], arg[0], arg[1])
            else:  # identity
                y = xs[0]
            env[name] = y
        return env[self._output]

    def extra_repr(self) -> str:
        return f"family={self.spec.family!r}, target={self.spec.target.describe()!r}"


def build_module(spec: LayerSpec, *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, seed: int | None = None) -> SpecModule:
    """The ``nn.Module`` of ``spec`` (see :class:`SpecModule`); ``seed`` makes the default init reproducible."""
    if seed is None:
        return SpecModule(spec, device=device, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpecModule(spec, device=device, dtype=dtype)


def count_params(module: nn.Module) -> int:
    """``sum(p.numel() for p in module.parameters())``: trainable weights, biases, batch-norm scale and shift."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Forward FLOPs of ``module(x)`` measured by ``torch.utils.flop_counter.FlopCounterMode``, and the output."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = module(x)
    return int(counter.get_total_flops()), y


def reference_output_shape(spec: LayerSpec, input_size: Pair, batch: int = 1) -> tuple[int, ...]:
    """Output shape of the target's plain ``nn.Conv2d`` on an ``(batch, C_in, *input_size)`` input (meta device)."""
    t = spec.target
    conv = nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size, stride=t.stride, padding=t.padding,
                     bias=False, device="meta")
    return tuple(conv(torch.empty(batch, t.in_channels, *input_size, device="meta")).shape)


def _named(module: nn.Module, spec: LayerSpec) -> dict[str, nn.Module]:
    steps = plan(spec)
    out = {}
    for step in steps:
        if isinstance(step.node, (Conv2d, BatchNorm)):
            sub = getattr(module, step.name, None)
            if not isinstance(sub, nn.Module):
                raise SpecError(f"module has no submodule {step.name!r} for node {step.node.id!r}")
            out[step.node.id] = sub
    return out


def get_weights(module: nn.Module, spec: LayerSpec) -> dict[str, dict[str, np.ndarray]]:
    """The weights of a module of ``spec`` as numpy arrays: ``{node id: {name: array}}``.

    Canonical names and layouts (PyTorch's): conv ``weight`` ``(O, I/groups, kh, kw)`` and ``bias``
    ``(O,)``; batch norm ``weight``, ``bias``, ``running_mean``, ``running_var`` ``(C,)``. Works on
    :class:`SpecModule` and on modules written by :func:`~osc_design.backends.export_source`.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for nid, sub in _named(module, spec).items():
        names = ("weight", "bias", "running_mean", "running_var")
        out[nid] = {
            k: getattr(sub, k).detach().cpu().numpy().copy() for k in names if getattr(sub, k, None) is not None
        }
    return out


def set_weights(module: nn.Module, spec: LayerSpec, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Load ``{node id: {name: array}}`` (see :func:`get_weights`) into a module of ``spec``, in place."""
    subs = _named(module, spec)
    for nid, arrays in weights.items():
        if nid not in subs:
            raise SpecError(f"weights for {nid!r}, which is not a conv2d or batch_norm node of the spec")
        sub = subs[nid]
        for k, value in arrays.items():
            current = getattr(sub, k, None)
            if not isinstance(current, torch.Tensor):
                raise SpecError(f"node {nid!r} has no tensor {k!r}")
            if tuple(current.shape) != tuple(np.shape(value)):
                raise SpecError(f"node {nid!r}: {k!r} has shape {tuple(current.shape)}, got {np.shape(value)}")
            with torch.no_grad():
                current.copy_(torch.as_tensor(np.asarray(value), dtype=current.dtype))
