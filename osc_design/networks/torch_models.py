"""PyTorch definitions of the catalogue networks (torchvision- and BSConv-compatible, no torchvision needed).

The torchvision networks (``resnet18``, ``resnet50``, ``vgg16``, ``mobilenet_v2``) use
torchvision's module names, initialisation and parameter counts (11,689,512, 25,557,032,
138,357,544 and 3,504,872 with 1000 classes).

The CIFAR ResNets follow ``bsconv/pytorch/resnet.py`` of zeiss-microscopy/BSConv
(``cifar_resnet{20,56,110}``, post-activation, no width multiplier)::

    backbone.data_bn                       BatchNorm2d(3) on the raw input
    backbone.init_unit.conv                ConvBlock 3x3, 3 -> 16: conv, bn, activation (ReLU)
    backbone.stage{1,2,3}.unit{1..n}       StandardUnit, n = (depth - 2) / 6, channels 16/32/64,
                                           stride 2 in unit1 of stages 2 and 3
        .projection                        ConvBlock 1x1 (stride s): conv, bn; only where the shape
                                           changes (unit1 of stages 2 and 3), evaluated first
        .conv1                             ConvBlock 3x3 (stride s): conv, bn, activation
        .conv2                             ConvBlock 3x3: conv, bn
        .relu                              ReLU after adding the shortcut
    backbone.global_pool                   AdaptiveAvgPool2d(1)
    classifier.conv                        Conv2d 1x1, 64 -> classes, with bias; then flatten

All convolutions are bias-free except the classifier. With 100 classes this gives
278,330 / 861,626 / 1,736,570 trainable parameters for depths 20 / 56 / 110.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from osc_design.networks.catalog import _MOBILENET_V2_SETTINGS, _make_divisible
from osc_design.networks.catalog import num_classes as _default_num_classes

__all__ = ["build_model"]


# ----------------------------------------------------------------------------- torchvision ResNet


class BasicBlock(nn.Module):
    """torchvision ResNet basic block (two 3x3 convolutions)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision ResNet v1.5 bottleneck (stride on the 3x3 convolution)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision ImageNet ResNet."""

    layer1: nn.Sequential  # the four stages, registered by name in __init__
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            blocks = []
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                downsample = None
                if stride != 1 or inplanes != planes * block.expansion:
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion),
                    )
                blocks.append(block(inplanes, planes, stride, downsample))
                inplanes = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- torchvision VGG-16

_VGG16_FEATURES: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)


class VGG(nn.Module):
    """torchvision VGG without batch norm."""

    def __init__(self, config: tuple[int | str, ...], num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----------------------------------------------------------------------------- torchvision MobileNetV2


class ConvBNReLU6(nn.Sequential):
    """torchvision ``Conv2dNormActivation`` with BatchNorm and ReLU6: children ``0``, ``1``, ``2``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: optional 1x1 expansion, 3x3 depthwise, linear 1x1 projection."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision MobileNetV2 (width multiplier 1.0, rounding to multiples of 8)."""

    settings = _MOBILENET_V2_SETTINGS  # (expansion t, channels c, repeats n, first stride s), as the catalogue

    def __init__(self, num_classes: int, width_mult: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        in_channels = _make_divisible(32 * width_mult)
        last_channels = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(3, in_channels, stride=2)]
        for t, c, n, s in self.settings:
            out_channels = _make_divisible(c * width_mult)
            for index in range(n):
                features.append(InvertedResidual(in_channels, out_channels, s if index == 0 else 1, t))
                in_channels = out_channels
        features.append(ConvBNReLU6(in_channels, last_channels, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channels, num_classes))

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ----------------------------------------------------------------------------- BSConv CIFAR ResNet


class ConvBlock(nn.Module):
    """BSConv ``ConvBlock``: bias-free conv, BatchNorm, optional ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, activation: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU(inplace=True) if activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.activation is None else self.activation(x)


class StandardUnit(nn.Module):
    """BSConv post-activation residual unit with a 1x1 conv-BN projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.use_projection = in_channels != out_channels or stride != 1
        self.conv1 = ConvBlock(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBlock(out_channels, out_channels, 3, activation=False)
        if self.use_projection:
            self.projection = ConvBlock(in_channels, out_channels, 1, stride, activation=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.projection(x) if self.use_projection else x
        return self.relu(self.conv2(self.conv1(x)) + residual)


class Classifier(nn.Module):
    """BSConv classifier: 1x1 convolution with bias, then flatten."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv(x), 1)


class CifarResNet(nn.Module):
    """BSConv ``cifar_resnet{depth}``: see the module docstring for the exact structure."""

    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
        units = (depth - 2) // 6
        backbone: OrderedDict[str, nn.Module] = OrderedDict()
        backbone["data_bn"] = nn.BatchNorm2d(3)
        backbone["init_unit"] = nn.Sequential(OrderedDict(conv=ConvBlock(3, 16, 3)))
        in_channels = 16
        for stage, channels in enumerate((16, 32, 64)):
            stage_units: OrderedDict[str, nn.Module] = OrderedDict()
            for unit in range(units):
                first = unit == 0
                stride = 2 if stage > 0 and first else 1
                stage_units[f"unit{unit + 1}"] = StandardUnit(in_channels if first else channels, channels, stride)
            backbone[f"stage{stage + 1}"] = nn.Sequential(stage_units)
            in_channels = channels
        backbone["global_pool"] = nn.AdaptiveAvgPool2d(1)
        self.backbone = nn.Sequential(backbone)
        self.classifier = Classifier(in_channels, num_classes)

        for module in self.backbone.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight)
        nn.init.xavier_normal_(self.classifier.conv.weight, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


# ----------------------------------------------------------------------------- registry

_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "resnet18": lambda classes: ResNet(BasicBlock, (2, 2, 2, 2), classes),
    "resnet50": lambda classes: ResNet(Bottleneck, (3, 4, 6, 3), classes),
    "vgg16": lambda classes: VGG(_VGG16_FEATURES, classes),
    "mobilenet_v2": lambda classes: MobileNetV2(classes),
    "cifar-resnet20": lambda classes: CifarResNet(20, classes),
    "cifar-resnet56": lambda classes: CifarResNet(56, classes),
    "cifar-resnet110": lambda classes: CifarResNet(110, classes),
}


def build_model(name: str, num_classes: int | None = None) -> nn.Module:
    """Build a freshly initialised catalogue network on the CPU, in training mode.

    Parameters
    ----------
    name
        A name from :func:`osc_design.networks.catalog.catalog_names`.
    num_classes
        Number of output classes; defaults to the network's own (1000 for the
        ImageNet networks, 100 for the CIFAR ResNets).

    Returns
    -------
    torch.nn.Module
        Module names match :func:`~osc_design.networks.catalog.catalog_layers`.

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``num_classes`` is not a positive integer.
    """
    default = _default_num_classes(name)
    classes = default if num_classes is None else num_classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return _BUILDERS[name](classes)
