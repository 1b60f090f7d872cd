"""Extract every 2-D convolution of a PyTorch model, with its input size, from one traced forward pass.

Extraction is faithful: each ``nn.Conv2d`` (subclasses included) is recorded with the geometry it
really applies, or is marked kept with a stated reason (:attr:`ConvLayer.keep_reason`).

Recognised geometry
    * integer padding, and ``padding='valid'``/``'same'`` (torch puts the odd zero of an even
      window after: ``pre_padding``);
    * TensorFlow-style "same" padding wrappers: static, a ``ZeroPad2d`` applied before the conv
      (efficientnet-pytorch's ``Conv2dStaticSamePadding``, its ``static_padding``), and dynamic,
      computed from the input size in ``forward`` (efficientnet-pytorch's
      ``Conv2dDynamicSamePadding``, timm's ``Conv2dSame``). A dynamic wrapper with stride 1 pads
      the same at every input size and is recorded like a static one; with a larger stride its
      padding depends on the input size, so it is recorded as ``pre_padding`` at the traced size
      and :func:`~osc_design.networks.convert.convert` gives its replacement a
      :func:`~osc_design.networks.convert.same_padding_module` that recomputes the padding at run time,
      so the converted model stays exact at every input size.

    A wrapper is recognised by its class name *and* by what its forward did in the traced pass:
    one convolution with the module's own weight and bias, on an input grown by exactly the
    recorded padding.

Kept (``keep_reason`` set, geometry from the module's attributes)
    a non-zero ``padding_mode`` (``'reflect'``, ``'replicate'``, ``'circular'``); a parametrized
    weight (weight or spectral norm); forward hooks on the module; a forward that transforms the
    weight (weight standardisation: timm's ``StdConv2d``, ``ScaledStdConv2d``); any other subclass
    with its own ``forward``, or a recognised wrapper whose forward did not do what its class
    promises.

Shared modules
    a module the forward pass calls several times (weight sharing, e.g. a refinement block applied
    repeatedly) is one layer, with the input size of every call (``later_input_sizes`` after the
    first): a plan counts its params once and its MACs at every call, and every call's forward is
    checked as above.

Not listed as layers but reported by :func:`extract_network` (``others``): transposed, 1-D and
3-D convolutions, and ``nn.Conv2d`` modules the forward pass never called.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from osc_design.errors import SpecError
from osc_design.networks.catalog import ConvLayer

if TYPE_CHECKING:
    import torch

__all__ = ["Extraction", "conv_padding", "extract_convs", "extract_network", "keep_reason_of", "same_padding"]

STATIC_SAME = ("Conv2dStaticSamePadding",)
"""Class names of static "same" padding wrappers: a ``static_padding`` ``ZeroPad2d`` (or ``Identity``)."""
DYNAMIC_SAME = ("Conv2dSame", "Conv2dDynamicSamePadding")
"""Class names of dynamic "same" padding wrappers (padding computed from the input size in ``forward``)."""

Pads = tuple[int, int, int, int]


@dataclass(frozen=True)
class Extraction:
    """What :func:`extract_network` found: the 2-D convolutions and the convolutions it cannot plan."""

    layers: list[ConvLayer]
    """Every called ``nn.Conv2d``, in forward order; kept ones carry a ``keep_reason``."""
    others: list[tuple[str, str]] = field(default_factory=list)
    """``(module name, reason)`` of every other convolution module (transposed, 1-D, 3-D, never called)."""


@dataclass(frozen=True)
class _ConvArgs:
    """A ``conv2d`` call's geometry arguments, normalised as torch reads them."""

    stride: tuple[int, int]
    padding: tuple[int, int] | str
    """``(h, w)`` zeros on each side, or ``'same'``/``'valid'``."""
    dilation: tuple[int, int]
    groups: int


def _bind_conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,  # torch's names
                 padding: Any = 0, dilation: Any = 1, groups: Any = 1) -> tuple[Any, Any, Any, _ConvArgs]:
    """``F.conv2d``'s arguments bound by name and position, with its defaults: ``(input, weight, bias, rest)``.

    >>> _bind_conv2d("x", "w", stride=2, padding=(1, 0))[3]
    _ConvArgs(stride=(2, 2), padding=(1, 0), dilation=(1, 1), groups=1)
    """
    pads = padding if isinstance(padding, str) else _int_pair(padding)
    return input, weight, bias, _ConvArgs(_int_pair(stride), pads, _int_pair(dilation), int(groups))


def _int_pair(value: Any) -> tuple[int, int]:
    """An int or a one- or two-element sequence as an ``(h, w)`` pair, as torch expands them."""
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


_Ops = list[tuple[tuple[int, int], bool, _ConvArgs]]
"""The convolution ops of one call of a module: (input size, own weight and bias, its other arguments)."""


@dataclass
class _Call:
    """A module's calls: the first one's input size and convolution ops, then every later one's."""

    name: str
    module: Any
    size: tuple[int, int]
    convs: _Ops = field(default_factory=list)
    reason: str | None = None
    """Why the module is kept whatever its forward did (:func:`keep_reason_of`)."""
    later: list[tuple[tuple[int, int], _Ops]] = field(default_factory=list)
    """Each later call (weight sharing): its input size and its convolution ops."""


def same_padding(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int]) -> Pads:
    """TensorFlow's "same" padding ``(left, right, top, bottom)``: output ``ceil(size / stride)``.

    The odd zero goes after, as in timm's ``pad_same`` and efficientnet-pytorch.

    >>> same_padding((64, 65), (3, 3), (2, 2), (1, 1))
    (1, 1, 0, 1)
    """
    totals = [max((math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)
              for i, k, s, d in zip(size, kernel, stride, dilation, strict=True)]
    return totals[1] // 2, totals[1] - totals[1] // 2, totals[0] // 2, totals[0] - totals[0] // 2


def _own_pads(conv: torch.nn.Conv2d) -> Pads:
    """The zeros ``conv``'s own ``padding`` adds, as ``(left, right, top, bottom)``."""
    return _pads_of(conv.padding, _pair(conv.kernel_size), _pair(conv.dilation))


def _pads_of(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int]) -> Pads:
    """The zeros a convolution's ``padding`` argument adds, as ``(left, right, top, bottom)``."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":  # torch: total d * (k - 1), the odd zero after
        th, tw = (d * (k - 1) for k, d in zip(kernel, dilation, strict=True))
        return tw // 2, tw - tw // 2, th // 2, th - th // 2
    ph, pw = _int_pair(padding)
    return pw, pw, ph, ph


def _static_pads(conv: torch.nn.Conv2d) -> Pads | None:
    from torch import nn

    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.Identity):
        return 0, 0, 0, 0
    if isinstance(pad, nn.ZeroPad2d) and len(pad.padding) == 4:
        return tuple(int(p) for p in pad.padding)  # type: ignore[return-value]
    return None


def keep_reason_of(conv: torch.nn.Conv2d) -> str | None:
    """Why ``conv`` cannot be replaced whatever its forward did, else None."""
    from torch import nn
    from torch.nn.utils import parametrize

    cls = type(conv)
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r}: designs pad with zeros"
    if parametrize.is_parametrized(conv) or hasattr(conv, "weight_g"):
        return "parametrized weight (weight or spectral norm): a design would drop the parametrization"
    if conv._forward_hooks or conv._forward_pre_hooks:
        return "the module has forward hooks, which a replacement would not carry"
    if cls.forward is nn.Conv2d.forward and cls._conv_forward is nn.Conv2d._conv_forward:
        return None
    if cls.__name__ in STATIC_SAME and _static_pads(conv) is None:
        return f"{cls.__name__} without a ZeroPad2d `static_padding`: its padding is not recognised"
    if cls.__name__ in DYNAMIC_SAME and _own_pads(conv) != (0, 0, 0, 0):
        return f"{cls.__name__} with its own padding {conv.padding}: its padding is not recognised"
    if cls.__name__ in STATIC_SAME + DYNAMIC_SAME:
        return None
    if "StdConv" in cls.__name__:
        return f"{cls.__name__}: weight standardisation in its forward, which a design does not do"
    return f"{cls.__name__} has its own forward, whose computation is not recognised"


def conv_padding(conv: torch.nn.Conv2d, size: tuple[int, int]) -> tuple[tuple[int, int], Pads, bool]:
    """The padding ``conv`` applies to an input of spatial ``size``: ``(padding, pre_padding, dynamic)``.

    Symmetric zeros are returned as ``padding`` with ``pre_padding`` zero; otherwise all zeros are
    ``pre_padding`` ``(left, right, top, bottom)`` and ``padding`` is (0, 0). ``dynamic`` is True for a
    dynamic "same" wrapper whose padding depends on the input size (stride > 1): then the zeros are
    always ``pre_padding``. Assumes :func:`keep_reason_of` found nothing.
    """
    name = type(conv).__name__
    own = _own_pads(conv)
    dynamic = False
    if name in STATIC_SAME:
        extra = _static_pads(conv) or (0, 0, 0, 0)
    elif name in DYNAMIC_SAME:
        stride = _pair(conv.stride)
        extra = same_padding(size, _pair(conv.kernel_size), stride, _pair(conv.dilation))
        dynamic = stride != (1, 1)
    else:
        extra = (0, 0, 0, 0)
    left, right, top, bottom = (a + b for a, b in zip(own, extra, strict=True))
    if left == right and top == bottom and not dynamic:
        return (top, left), (0, 0, 0, 0), False
    return (0, 0), (left, right, top, bottom), dynamic


def extract_convs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> list[ConvLayer]:
    """List the ``nn.Conv2d`` modules of ``model`` (subclasses included) in forward execution order.

    One forward pass with a batch of 1 is run on a copy of the model whose
    parameters and buffers live on the ``meta`` device, so no tensor memory is
    allocated; if the model cannot run on ``meta`` the pass is repeated on a
    CPU copy with a zero input. The copy runs in eval mode under
    ``torch.no_grad``; ``model`` itself is never modified or moved.

    A convolution called several times is recorded once, with the input size of
    its first call as ``input_size`` and those of its later calls as
    ``later_input_sizes``; convolutions not called in the forward pass are omitted
    (:func:`extract_network` lists them). Each layer has the geometry the module
    really applies, or a ``keep_reason`` (see the module docstring).

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
    SpecError
        If ``input_shape`` is not a non-empty tuple of positive integers (a ``ValueError``).
    """
    return extract_network(model, input_shape).layers


def extract_network(model: torch.nn.Module, input_shape: tuple[int, ...]) -> Extraction:
    """:func:`extract_convs`, and every other convolution module of ``model`` with why it is not a layer.

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 3, 3, padding_mode="reflect", padding=1), nn.Conv2d(3, 3, 2, padding="same"),
    ...                     nn.ConvTranspose2d(3, 3, 2))
    >>> found = extract_network(net, (3, 8, 8))
    >>> [(layer.name, layer.padding, layer.pre_padding, layer.keep_reason) for layer in found.layers]
    [('0', (1, 1), (0, 0, 0, 0), "padding_mode='reflect': designs pad with zeros"), ('1', (0, 0), (0, 1, 0, 1), None)]
    >>> found.others
    [('2', 'ConvTranspose2d: transposed convolutions are not planned')]

    Raises
    ------
    SpecError
        If ``input_shape`` is not a non-empty tuple of positive integers (a ``ValueError``).
    """
    import torch
    from torch import nn

    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise SpecError(f"`input_shape` (={input_shape!r}) must be a non-empty tuple of positive integers")
    try:
        calls = _trace(model, shape, torch.device("meta"))
    except Exception:  # an operation without meta support, data-dependent control flow, ...
        calls = _trace(model, shape, torch.device("cpu"))
    called = {call.name for call in calls}
    others = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if name not in called:
                others.append((name, "never called in the forward pass"))
        elif isinstance(module, nn.modules.conv._ConvTransposeNd):
            others.append((name, f"{type(module).__name__}: transposed convolutions are not planned"))
        elif isinstance(module, nn.modules.conv._ConvNd):
            others.append((name, f"{type(module).__name__}: only 2-D convolutions are planned"))
    return Extraction([_conv_layer(call) for call in calls], others)


def _tensors_memo(model: torch.nn.Module, device: torch.device) -> dict[int, object]:
    """deepcopy's memo replacing every parameter and buffer by a copy on ``device`` (empty on meta)."""
    import torch
    from torch import nn

    memo: dict[int, object] = {}
    for tensor in (*model.parameters(), *model.buffers()):
        if device.type == "meta":
            clone = torch.empty_like(tensor, device=device)
        else:
            clone = tensor.detach().to(device, copy=True)
        if isinstance(tensor, nn.Parameter):
            clone = nn.Parameter(clone, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = clone
    return memo


def _trace(model: torch.nn.Module, shape: tuple[int, ...], device: torch.device) -> list[_Call]:
    """Run a copy of ``model`` on ``device``; return each conv module's calls, in the order of their first."""
    import torch
    from torch import nn
    from torch.overrides import TorchFunctionMode

    twin = copy.deepcopy(model, _tensors_memo(model, device))
    twin.eval()
    calls: dict[nn.Module, _Call] = {}
    active: list[tuple[_Call, _Ops]] = []  # the conv modules whose forward is running, and that call's ops

    class Convs(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),  # noqa: N807 - torch's
                               kwargs: dict[str, Any] | None = None) -> Any:
            kwargs = kwargs or {}
            if func is torch.nn.functional.conv2d and active:
                call, ops = active[-1]
                x, weight, bias, rest = _bind_conv2d(*args, **kwargs)
                own = weight is call.module.weight and bias is call.module.bias
                ops.append(((int(x.shape[-2]), int(x.shape[-1])), own, rest))
            return func(*args, **kwargs)

    def record(name: str):
        def pre(module: nn.Conv2d, args: tuple, kwargs: dict) -> None:
            x = args[0] if args else kwargs["input"]
            size = (int(x.shape[-2]), int(x.shape[-1]))
            ops: _Ops = []
            if module in calls:
                call = calls[module]
                call.later.append((size, ops))
            else:
                call = calls[module] = _Call(name, module, size)
                ops = call.convs
            active.append((call, ops))

        return pre

    def leave(*_: Any) -> None:  # returns None: a forward hook's result would replace the output
        active.pop()

    convs = [(name, m) for name, m in twin.named_modules() if isinstance(m, nn.Conv2d)]
    reasons = {m: keep_reason_of(m) for _, m in convs}  # before our own hooks are added
    handles = []
    for name, module in convs:
        handles.append(module.register_forward_pre_hook(record(name), with_kwargs=True))
        handles.append(module.register_forward_hook(leave, always_call=True))
    try:
        with torch.no_grad(), Convs():
            dtype = next((p.dtype for p in twin.parameters() if p.is_floating_point()), None)  # a double model
            twin(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    for call in calls.values():
        call.reason = reasons[call.module]
    return list(calls.values())


def _conv_layer(call: _Call) -> ConvLayer:
    conv = call.module
    reason = call.reason or _check_forward(conv, call.size, call.convs)
    for i, (size, ops) in enumerate(call.later, start=2):
        if reason is None and (why := _check_forward(conv, size, ops)) is not None:
            reason = f"call {i} of the module (weight sharing): {why}"
    if reason is None:
        padding, pre, _ = conv_padding(conv, call.size)
    else:
        padding, pre = (_pair(conv.padding) if not isinstance(conv.padding, str) else (0, 0)), (0, 0, 0, 0)
    left, right, top, bottom = pre
    return ConvLayer(
        name=call.name,
        in_channels=int(conv.in_channels),
        out_channels=int(conv.out_channels),
        kernel_size=_pair(conv.kernel_size),
        stride=_pair(conv.stride),
        padding=padding,
        groups=int(conv.groups),
        bias=conv.bias is not None,
        input_size=(call.size[0] + top + bottom, call.size[1] + left + right),
        dilation=_pair(conv.dilation),
        pre_padding=pre,
        keep_reason=reason,
        later_input_sizes=tuple(_padded(conv, size, reason is None) for size, _ in call.later),
    )


def _padded(conv: torch.nn.Conv2d, size: tuple[int, int], replaceable: bool) -> tuple[int, int]:
    """What the window of ``conv`` slides over on an input of ``size``: with the zeros added before it (its
    ``pre_padding`` at that size) unless it is kept."""
    if not replaceable:
        return size
    _, (left, right, top, bottom), _ = conv_padding(conv, size)
    return size[0] + top + bottom, size[1] + left + right


def _check_forward(conv: Any, at: tuple[int, int], convs: _Ops) -> str | None:
    """Why one traced call (input size ``at``, its convolution ops ``convs``) of a recognised conv did not do
    what its geometry says, else None."""
    cls = type(conv).__name__
    if len(convs) != 1:
        return f"{cls}: its forward made {len(convs)} convolutions, not one"
    size, own, op = convs[0]
    if not own:
        return f"{cls}: its forward convolves with another weight or bias than its own (a transformed weight)"
    if op.stride != _pair(conv.stride) or op.dilation != _pair(conv.dilation) or op.groups != conv.groups:
        return f"{cls}: its forward convolves with another stride, dilation or groups than its attributes"
    if _pads_of(op.padding, _pair(conv.kernel_size), op.dilation) != _own_pads(conv):
        return f"{cls}: its forward convolves with padding {op.padding!r}, not its own {conv.padding!r}"
    if cls in STATIC_SAME + DYNAMIC_SAME:  # the zeros added before the conv op: all but its own padding
        (ph, pw), (left, right, top, bottom), _ = conv_padding(conv, at)
        own_left, own_right, own_top, own_bottom = _own_pads(conv)
        expected = (2 * ph + top + bottom - own_top - own_bottom, 2 * pw + left + right - own_left - own_right)
        grown = (size[0] - at[0], size[1] - at[1])
        if grown != expected:
            return f"{cls}: its forward padded the input by {grown}, not by the {expected} its class applies"
    return None


def _pair(value: Any) -> tuple[int, int]:
    return int(value[0]), int(value[1])
