"""Extract every 2-D convolution of a PyTorch model, with its input size, from one traced forward pass."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from osc_design.networks.catalog import ConvLayer

if TYPE_CHECKING:
    import torch

__all__ = ["extract_convs"]


def extract_convs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> list[ConvLayer]:
    """List the ``nn.Conv2d`` modules of ``model`` in forward execution order.

    One forward pass with a batch of 1 is run on a copy of the model whose
    parameters and buffers live on the ``meta`` device, so no tensor memory is
    allocated; if the model cannot run on ``meta`` the pass is repeated on a
    CPU copy with a zero input. The copy runs in eval mode under
    ``torch.no_grad``; ``model`` itself is never modified or moved.

    A convolution called several times is recorded once, with the input size of
    its first call; convolutions not called in the forward pass are omitted.

    Parameters
    ----------
    model
        The network to inspect.
    input_shape
        Shape of one input sample without the batch dimension, e.g. ``(3, 224, 224)``.

    Returns
    -------
    list of ConvLayer
        Named by the module path from ``model.named_modules()``.

    Raises
    ------
    ValueError
        If ``input_shape`` is not a tuple of positive integers, or a convolution
        uses ``padding='same'`` that torch would apply asymmetrically.
    """
    import torch

    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
    try:
        calls = _trace(model, shape, torch.device("meta"))
    except Exception:  # an operation without meta support, data-dependent control flow, ...
        calls = _trace(model, shape, torch.device("cpu"))
    return [_conv_layer(name, conv, size) for name, conv, size in calls]


def _trace(
    model: torch.nn.Module, shape: tuple[int, ...], device: torch.device
) -> list[tuple[str, torch.nn.Conv2d, tuple[int, int]]]:
    """Run a copy of ``model`` on ``device``; return (name, conv, input size) per first conv call."""
    import torch
    from torch import nn

    # Pre-seed deepcopy's memo so parameters and buffers are replaced, never copied to host memory.
    memo: dict[int, object] = {}
    for tensor in (*model.parameters(), *model.buffers()):
        if device.type == "meta":
            clone = torch.empty_like(tensor, device=device)
        else:
            clone = tensor.detach().to(device, copy=True)
        if isinstance(tensor, nn.Parameter):
            clone = nn.Parameter(clone, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = clone
    twin = copy.deepcopy(model, memo)
    twin.eval()

    calls: dict[nn.Module, tuple[str, nn.Conv2d, tuple[int, int]]] = {}

    def record(name: str):
        def hook(module: nn.Conv2d, args: tuple, kwargs: dict) -> None:
            if module not in calls:
                x = args[0] if args else kwargs["input"]
                calls[module] = (name, module, (int(x.shape[-2]), int(x.shape[-1])))

        return hook

    handles = [
        module.register_forward_pre_hook(record(name), with_kwargs=True)
        for name, module in twin.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            twin(torch.zeros((1, *shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return list(calls.values())


def _conv_layer(name: str, conv: torch.nn.Conv2d, input_size: tuple[int, int]) -> ConvLayer:
    kernel = _pair(conv.kernel_size)
    dilation = _pair(conv.dilation)
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            padding = (0, 0)
        else:  # "same" (torch only allows it with stride 1): total padding d * (k - 1) per dimension
            totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            if any(total % 2 for total in totals):
                raise ValueError(
                    f"convolution {name!r} uses padding='same' with kernel {kernel} and dilation {dilation}, "
                    "which torch pads asymmetrically; it has no symmetric integer padding"
                )
            padding = (totals[0] // 2, totals[1] // 2)
    else:
        padding = _pair(conv.padding)
    return ConvLayer(
        name=name,
        in_channels=int(conv.in_channels),
        out_channels=int(conv.out_channels),
        kernel_size=kernel,
        stride=_pair(conv.stride),
        padding=padding,
        groups=int(conv.groups),
        bias=conv.bias is not None,
        input_size=input_size,
        dilation=dilation,
    )


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    return int(value[0]), int(value[1])
