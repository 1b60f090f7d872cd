"""Framework-free catalogue of networks, generating every 2-D convolution with its input size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SpecError
from ..geometry import conv_output_pair

__all__ = [
    "CATALOG",
    "ConvLayer",
    "NetworkSpec",
    "catalog_layers",
    "catalog_names",
    "network_input_shape",
    "num_classes",
]


@dataclass(frozen=True)
class ConvLayer:
    """One ``nn.Conv2d`` of a network, as seen on its first call in a forward pass.

    ``input_size`` is the size the convolution's window slides over before its own (symmetric)
    ``padding``. A convolution whose module first pads its input by other amounts (TensorFlow-style
    "same" padding, ``padding='same'`` with an even kernel) records those zeros as ``pre_padding``
    ``(left, right, top, bottom)``, in the order of ``nn.ZeroPad2d``, with ``padding`` (0, 0):
    ``input_size`` then includes them and :attr:`module_input_size` is the module's own input.

    ``keep_reason`` is set when the module must stay as it is (a non-zero padding mode, a forward
    that transforms the weight, ...): its geometry is then that of its attributes.

    >>> layer = ConvLayer("conv", 8, 8, (3, 3), (2, 2), (0, 0), 1, False, (17, 17), pre_padding=(0, 1, 0, 1))
    >>> layer.module_input_size, layer.output_size
    ((16, 16), (8, 8))
    """

    name: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    bias: bool
    input_size: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    pre_padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    keep_reason: str | None = None
    later_input_sizes: tuple[tuple[int, int], ...] = ()

    @property
    def calls(self) -> int:
        """How many times the forward pass calls the module (1 for an ordinary conv)."""
        return 1 + len(self.later_input_sizes)

    @property
    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """``input_size`` of every call, in call order."""
        return (self.input_size, *self.later_input_sizes)

    @property
    def module_input_size(self) -> tuple[int, int]:
        """Spatial ``(h, w)`` of the module's input, before ``pre_padding``."""
        left, right, top, bottom = self.pre_padding
        return self.input_size[0] - top - bottom, self.input_size[1] - left - right

    @property
    def output_size(self) -> tuple[int, int]:
        """Spatial ``(h, w)`` of this convolution's output."""
        return conv_output_pair(self.input_size, self.kernel_size, self.stride, self.padding, self.dilation)


class _Tracer:
    """Accumulates convolutions while tracking the current feature-map size."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.layers: list[ConvLayer] = []

    def conv(
        self,
        name: str,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = False,
        size: tuple[int, int] | None = None,
    ) -> tuple[int, int]:
        """Record a square convolution on ``size`` (default: current size); return its output size."""
        layer = ConvLayer(
            name=name,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=(kernel, kernel),
            stride=(stride, stride),
            padding=(padding, padding),
            groups=groups,
            bias=bias,
            input_size=self.size if size is None else size,
        )
        self.layers.append(layer)
        return layer.output_size

    def pool(self, kernel: int, stride: int, padding: int = 0) -> None:
        """Apply a (max or average) pooling window to the current size."""
        self.size = conv_output_pair(self.size, (kernel, kernel), (stride, stride), (padding, padding))


def _torchvision_resnet(block_depths: tuple[int, ...], bottleneck: bool) -> list[ConvLayer]:
    """torchvision ResNet (v1.5: stride on the 3x3 conv of a bottleneck) at 224x224."""
    t = _Tracer((224, 224))
    t.size = t.conv("conv1", 3, 64, 7, stride=2, padding=3)
    t.pool(3, 2, 1)
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), block_depths, strict=True)):
        for index in range(depth):
            stride = 2 if stage > 0 and index == 0 else 1
            prefix = f"layer{stage + 1}.{index}"
            block_input = t.size
            if bottleneck:
                t.size = t.conv(f"{prefix}.conv1", inplanes, planes, 1)
                t.size = t.conv(f"{prefix}.conv2", planes, planes, 3, stride=stride, padding=1)
                t.size = t.conv(f"{prefix}.conv3", planes, planes * expansion, 1)
            else:
                t.size = t.conv(f"{prefix}.conv1", inplanes, planes, 3, stride=stride, padding=1)
                t.size = t.conv(f"{prefix}.conv2", planes, planes, 3, padding=1)
            if stride != 1 or inplanes != planes * expansion:
                # torchvision evaluates the downsample branch after the main branch.
                t.conv(f"{prefix}.downsample.0", inplanes, planes * expansion, 1, stride=stride, size=block_input)
            inplanes = planes * expansion
    return t.layers


def _resnet18(classes: int) -> list[ConvLayer]:
    return _torchvision_resnet((2, 2, 2, 2), bottleneck=False)


def _resnet50(classes: int) -> list[ConvLayer]:
    return _torchvision_resnet((3, 4, 6, 3), bottleneck=True)


_VGG16_FEATURES: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


def _vgg16(classes: int) -> list[ConvLayer]:
    """torchvision VGG-16 (configuration D, no batch norm): conv + ReLU, 2x2 max pools."""
    t = _Tracer((224, 224))
    in_channels, index = 3, 0
    for item in _VGG16_FEATURES:
        if item == "M":
            t.pool(2, 2)
            index += 1
        else:
            t.size = t.conv(f"features.{index}", in_channels, int(item), 3, padding=1, bias=True)
            in_channels = int(item)
            index += 2  # the conv and its ReLU
    return t.layers


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels as torchvision does: nearest multiple of ``divisor``, never below 90%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# (expansion t, channels c, repeats n, first stride s) of MobileNetV2's inverted residuals.
_MOBILENET_V2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _mobilenet_v2(classes: int) -> list[ConvLayer]:
    """torchvision MobileNetV2, width 1.0."""
    t = _Tracer((224, 224))
    in_channels = _make_divisible(32.0)
    t.size = t.conv("features.0.0", 3, in_channels, 3, stride=2, padding=1)
    index = 1
    for expansion, channels, repeats, first_stride in _MOBILENET_V2_SETTINGS:
        out_channels = _make_divisible(float(channels))
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            hidden = int(round(in_channels * expansion))
            prefix, part = f"features.{index}.conv", 0
            if expansion != 1:
                t.size = t.conv(f"{prefix}.0.0", in_channels, hidden, 1)
                part = 1
            t.size = t.conv(f"{prefix}.{part}.0", hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
            t.size = t.conv(f"{prefix}.{part + 1}", hidden, out_channels, 1)
            in_channels, index = out_channels, index + 1
    t.conv(f"features.{index}.0", in_channels, _make_divisible(1280.0), 1)
    return t.layers


def _cifar_resnet(depth: int, classes: int) -> list[ConvLayer]:
    """BSConv CIFAR ResNet: (depth - 2) / 6 StandardUnits per stage, 1x1-conv classifier."""
    units = (depth - 2) // 6
    t = _Tracer((32, 32))
    t.size = t.conv("backbone.init_unit.conv.conv", 3, 16, 3, padding=1)
    in_channels = 16
    for stage, channels in enumerate((16, 32, 64)):
        for unit in range(units):
            stride = 2 if stage > 0 and unit == 0 else 1
            prefix = f"backbone.stage{stage + 1}.unit{unit + 1}"
            if stride != 1 or in_channels != channels:
                # BSConv evaluates the projection shortcut before the main branch.
                t.conv(f"{prefix}.projection.conv", in_channels, channels, 1, stride=stride)
            t.size = t.conv(f"{prefix}.conv1.conv", in_channels, channels, 3, stride=stride, padding=1)
            t.size = t.conv(f"{prefix}.conv2.conv", channels, channels, 3, padding=1)
            in_channels = channels
    t.size = (1, 1)  # global average pooling
    t.conv("classifier.conv", in_channels, classes, 1, bias=True)
    return t.layers


@dataclass(frozen=True)
class NetworkSpec:
    """A catalogue entry: input resolution, default class count and conv-layer generator."""

    name: str
    input_size: tuple[int, int]
    num_classes: int
    generate: Callable[[int], list[ConvLayer]]


CATALOG: dict[str, NetworkSpec] = {
    spec.name: spec
    for spec in (
        NetworkSpec("resnet18", (224, 224), 1000, _resnet18),
        NetworkSpec("resnet50", (224, 224), 1000, _resnet50),
        NetworkSpec("vgg16", (224, 224), 1000, _vgg16),
        NetworkSpec("mobilenet_v2", (224, 224), 1000, _mobilenet_v2),
        NetworkSpec("cifar-resnet20", (32, 32), 100, lambda classes: _cifar_resnet(20, classes)),
        NetworkSpec("cifar-resnet56", (32, 32), 100, lambda classes: _cifar_resnet(56, classes)),
        NetworkSpec("cifar-resnet110", (32, 32), 100, lambda classes: _cifar_resnet(110, classes)),
    )
}


def _spec(name: str) -> NetworkSpec:
    if not isinstance(name, str) or name not in CATALOG:
        raise SpecError(f"`name`: unknown network {name!r}; expected one of {', '.join(CATALOG)}")
    return CATALOG[name]


def catalog_names() -> list[str]:
    """Names of all catalogued networks, in catalogue order."""
    return list(CATALOG)


def catalog_layers(name: str, num_classes: int | None = None) -> list[ConvLayer]:
    """Every 2-D convolution of a catalogued network, in forward execution order.

    Parameters
    ----------
    name
        A name from :func:`catalog_names`.
    num_classes
        Number of output classes; defaults to the network's own. Only affects
        networks whose classifier is a convolution (the CIFAR ResNets).

    Returns
    -------
    list of ConvLayer
        Named exactly like the modules of :func:`~osc_design.networks.torch_models.build_model`.

    Raises
    ------
    SpecError
        If ``name`` is not catalogued or ``num_classes`` is not a positive integer (a ``ValueError``).
    """
    spec = _spec(name)
    classes = spec.num_classes if num_classes is None else num_classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise SpecError(f"`num_classes` (={num_classes!r}) must be a positive integer")
    return spec.generate(classes)


def network_input_shape(name: str) -> tuple[int, int, int]:
    """Input shape ``(channels, h, w)`` of a catalogued network, without the batch dimension.

    Raises
    ------
    SpecError
        If ``name`` is not catalogued (a ``ValueError``).
    """
    return (3, *_spec(name).input_size)


def num_classes(name: str) -> int:
    """Default number of output classes of a catalogued network.

    Raises
    ------
    SpecError
        If ``name`` is not catalogued (a ``ValueError``).
    """
    return _spec(name).num_classes
