"""Pure-Python tests of the network catalogue (no torch needed)."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osc_design.geometry import conv_output_pair
from osc_design.networks.catalog import (
    CATALOG,
    ConvLayer,
    catalog_layers,
    catalog_names,
    network_input_shape,
    num_classes,
)

NAMES = ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "cifar-resnet20", "cifar-resnet56", "cifar-resnet110"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def conv_params(layer: ConvLayer) -> int:
    kh, kw = layer.kernel_size
    weights = layer.out_channels * (layer.in_channels // layer.groups) * kh * kw
    return weights + (layer.out_channels if layer.bias else 0)


def test_names_shapes_and_classes():
    assert catalog_names() == NAMES == list(CATALOG)
    for name in NAMES:
        imagenet = not name.startswith("cifar-")
        assert network_input_shape(name) == ((3, 224, 224) if imagenet else (3, 32, 32))
        assert num_classes(name) == (1000 if imagenet else 100)


@pytest.mark.parametrize("function", [catalog_layers, network_input_shape, num_classes])
@pytest.mark.parametrize("bad", ["resnet-18", "ResNet18", "", None])
def test_unknown_name_raises_value_error(function, bad):
    with pytest.raises(ValueError, match=r"unknown network .*expected one of resnet18, resnet50"):
        function(bad)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_bad_num_classes_raises(bad):
    with pytest.raises(ValueError, match="num_classes"):
        catalog_layers("cifar-resnet20", bad)


@pytest.mark.parametrize(
    "name, count",
    [("resnet18", 20), ("resnet50", 53), ("vgg16", 13), ("mobilenet_v2", 52),
     ("cifar-resnet20", 22), ("cifar-resnet56", 58), ("cifar-resnet110", 112)],
)
def test_layer_counts_and_well_formed(name, count):
    layers = catalog_layers(name)
    assert len(layers) == count
    assert len({layer.name for layer in layers}) == count
    for layer in layers:
        for pair in (layer.kernel_size, layer.stride, layer.padding, layer.input_size, layer.dilation):
            assert isinstance(pair, tuple) and len(pair) == 2 and all(type(v) is int for v in pair)
        assert layer.in_channels % layer.groups == 0 and layer.out_channels % layer.groups == 0
        assert min(layer.output_size) >= 1


# Total trainable parameters rebuilt from the generated convolutions plus each network's
# non-convolutional parameters: a BatchNorm (2 * channels) after every conv except VGG's and the
# CIFAR classifier's, the CIFAR data BatchNorm (2 * 3) and the fully connected heads.
PUBLISHED = {
    "resnet18": (11_689_512, 512 * 1000 + 1000),
    "resnet50": (25_557_032, 2048 * 1000 + 1000),
    "mobilenet_v2": (3_504_872, 1280 * 1000 + 1000),
    "vgg16": (138_357_544, 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000),
    "cifar-resnet20": (278_330, 2 * 3),
    "cifar-resnet56": (861_626, 2 * 3),
    "cifar-resnet110": (1_736_570, 2 * 3),
}


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_published(name):
    total, head = PUBLISHED[name]
    layers = catalog_layers(name)
    norm_widths = [layer.out_channels for layer in layers if layer.name != "classifier.conv"]
    batch_norm = 0 if name == "vgg16" else 2 * sum(norm_widths)  # VGG-16 has no batch norm
    assert sum(conv_params(layer) for layer in layers) + batch_norm + head == total


@pytest.mark.parametrize(
    "name, last_size",
    [("resnet18", (7, 7)), ("resnet50", (7, 7)), ("vgg16", (14, 14)), ("mobilenet_v2", (7, 7))],
)
def test_final_feature_map(name, last_size):
    assert catalog_layers(name)[-1].output_size == last_size


def test_resnet_structure():
    layers = {layer.name: layer for layer in catalog_layers("resnet50")}
    assert layers["conv1"].input_size == (224, 224)
    assert layers["layer1.0.conv1"].input_size == (56, 56)  # after stride-2 conv and 3x3/2 max pool
    assert layers["layer1.0.downsample.0"].stride == (1, 1)  # 64 -> 256 channels
    assert layers["layer2.0.conv2"].stride == (2, 2)  # v1.5: stride on the 3x3
    assert layers["layer2.0.downsample.0"].input_size == (56, 56)
    assert layers["layer4.2.conv3"].out_channels == 2048
    assert not any(layer.bias for layer in layers.values())


def test_mobilenet_v2_structure():
    layers = catalog_layers("mobilenet_v2")
    depthwise = [layer for layer in layers if layer.groups > 1]
    assert len(depthwise) == 17
    assert all(layer.groups == layer.in_channels == layer.out_channels for layer in depthwise)
    by_name = {layer.name: layer for layer in layers}
    assert by_name["features.1.conv.0.0"].groups == 32  # t = 1: no expansion conv
    assert by_name["features.1.conv.1"].out_channels == 16
    assert by_name["features.2.conv.0.0"].out_channels == 96
    assert by_name["features.17.conv.2"].out_channels == 320
    assert layers[-1].name == "features.18.0" and layers[-1].out_channels == 1280


def test_cifar_resnet_structure():
    layers = catalog_layers("cifar-resnet56")
    names = [layer.name for layer in layers]
    # Projection shortcuts run before the main branch, as in BSConv's StandardUnit.forward.
    start = names.index("backbone.stage2.unit1.projection.conv")
    assert names[start + 1] == "backbone.stage2.unit1.conv1.conv"
    assert sum(".projection." in n for n in names) == 2
    assert layers[-1] == ConvLayer("classifier.conv", 64, 100, (1, 1), (1, 1), (0, 0), 1, True, (1, 1))
    last_units = [layer.output_size for layer in layers if layer.name.endswith("unit9.conv2.conv")]
    assert last_units == [(32, 32), (16, 16), (8, 8)]
    assert catalog_layers("cifar-resnet20", 10)[-1].out_channels == 10


@given(
    n=st.integers(1, 64), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3), d=st.integers(1, 3)
)
def test_conv_output_size_counts_window_positions(n, k, s, p, d):
    span = d * (k - 1) + 1
    positions = sum(1 for start in range(0, n + 2 * p, s) if start + span <= n + 2 * p)
    if positions:
        assert conv_output_pair((n, n), (k, k), (s, s), (p, p), (d, d)) == (positions, positions)


def test_catalog_and_extract_do_not_import_torch():
    code = (
        "import sys; import osc_design.networks.catalog, osc_design.networks.extract; "
        "sys.exit(int('torch' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0
