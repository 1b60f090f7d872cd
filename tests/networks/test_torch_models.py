"""Tests of the torch network definitions and conv extraction against the pure-Python catalogue."""

import functools

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import nn  # noqa: E402

from osc_design.networks.catalog import ConvLayer, catalog_layers, catalog_names, network_input_shape  # noqa: E402
from osc_design.networks.extract import extract_convs  # noqa: E402
from osc_design.networks.torch_models import build_model  # noqa: E402

PARAMS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "mobilenet_v2": 3_504_872,
    "cifar-resnet20": 278_330,
    "cifar-resnet56": 861_626,
    "cifar-resnet110": 1_736_570,
}


@functools.cache
def model(name: str) -> nn.Module:
    return build_model(name)


def test_every_catalog_name_is_buildable():
    assert sorted(PARAMS) == sorted(catalog_names())


@pytest.mark.parametrize("name", list(PARAMS))
def test_trainable_parameter_count(name):
    assert sum(p.numel() for p in model(name).parameters() if p.requires_grad) == PARAMS[name]


@pytest.mark.parametrize("name", list(PARAMS))
def test_extracted_convs_equal_catalog(name):
    assert extract_convs(model(name), network_input_shape(name)) == catalog_layers(name)


@pytest.mark.parametrize("name", list(PARAMS))
def test_forward_output_shape(name):
    net = model(name)
    batch = 2 if name.startswith("cifar-") else 1
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(batch, *network_input_shape(name)))
    assert out.shape == (batch, 100 if name.startswith("cifar-") else 1000)


def test_num_classes_argument():
    net = build_model("cifar-resnet20", num_classes=10)
    assert extract_convs(net, (3, 32, 32)) == catalog_layers("cifar-resnet20", 10)
    assert sum(p.numel() for p in net.parameters()) == 278_330 - 90 * 65
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert build_model("resnet18", num_classes=7).fc.out_features == 7


def test_torchvision_module_names():
    names = dict(model("resnet50").named_modules())
    for expected in ("conv1", "bn1", "maxpool", "layer1.0.downsample.0", "layer1.0.downsample.1", "layer4.2.bn3",
                     "avgpool", "fc"):
        assert expected in names
    assert isinstance(dict(model("vgg16").named_modules())["classifier.6"], nn.Linear)
    mobilenet = dict(model("mobilenet_v2").named_modules())
    assert isinstance(mobilenet["features.18.0"], nn.Conv2d) and isinstance(mobilenet["classifier.1"], nn.Linear)
    assert mobilenet["classifier.0"].p == 0.2


@pytest.mark.parametrize("bad", ["resnet-18", "resnet34", ""])
def test_unknown_name_raises_value_error(bad):
    with pytest.raises(ValueError, match="unknown network"):
        build_model(bad)


def test_bad_num_classes_raises():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet18", num_classes=0)


class TwoConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.grouped = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.stem = nn.Conv2d(3, 4, 1, bias=False)  # registered after `grouped`, called before it
        self.unused = nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        x = self.stem(x)
        y = self.bn(self.grouped(x))
        return y.sum() + self.grouped(nn.functional.avg_pool2d(x, 2)).sum()  # second call, on 8x7


def test_custom_model_grouped_strided_conv():
    layers = extract_convs(TwoConvs(), (3, 17, 15))
    assert layers == [
        ConvLayer("stem", 3, 4, (1, 1), (1, 1), (0, 0), 1, False, (17, 15)),
        ConvLayer("grouped", 4, 8, (3, 3), (2, 2), (1, 1), 2, True, (17, 15), later_input_sizes=((8, 7),)),
    ]
    assert layers[1].output_size == (9, 8)
    assert layers[1].calls == 2


def test_extract_leaves_model_untouched():
    for net in (TwoConvs(), build_model("cifar-resnet20")):
        net.train()
        before = {key: value.clone() for key, value in net.state_dict().items()}
        extract_convs(net, (3, 32, 32))
        after = net.state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[key], after[key]) for key in before)
        assert all(t.device.type == "cpu" for t in (*net.parameters(), *net.buffers()))
        assert all(module.training for module in net.modules())
        assert not any(module._forward_pre_hooks for module in net.modules())


class NeedsRealData(nn.Module):
    """Data-dependent control flow: fails on the meta device, so extraction falls back to the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 5, stride=(1, 2), padding=(2, 0), dilation=(2, 1), bias=False)

    def forward(self, x):
        if x.sum().item() >= 0:
            return self.conv(x)
        return x


def test_meta_fallback_and_dilation():
    assert extract_convs(NeedsRealData(), (3, 20, 20)) == [
        ConvLayer("conv", 3, 6, (5, 5), (1, 2), (2, 0), 1, False, (20, 20), dilation=(2, 1)),
    ]


def test_string_padding():
    same = nn.Sequential(nn.Conv2d(3, 3, (3, 5), padding="same", dilation=(1, 2)), nn.Conv2d(3, 3, 3, padding="valid"))
    layers = extract_convs(same, (3, 9, 9))
    assert [layer.padding for layer in layers] == [(1, 4), (0, 0)]
    asymmetric = nn.Sequential(nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 2, padding="same"))
    layer = extract_convs(asymmetric, (3, 9, 9))[1]  # torch puts the odd zero after: recorded as pre-padding
    assert (layer.padding, layer.pre_padding, layer.input_size, layer.output_size) == ((0, 0), (0, 1, 0, 1), (8, 8),
                                                                                       (7, 7))


@pytest.mark.parametrize("bad", [(), (3, 0, 8), (3, 8.0, 8)])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match="input_shape"):
        extract_convs(TwoConvs(), bad)


@settings(max_examples=30, deadline=None)
@given(
    groups=st.integers(1, 3), per_group_in=st.integers(1, 3), per_group_out=st.integers(1, 3),
    kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
    ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
    h=st.integers(10, 24), w=st.integers(10, 24), bias=st.booleans(),
)
def test_single_conv_matches_torch(groups, per_group_in, per_group_out, kh, kw, sh, sw, ph, pw, dh, dw, h, w, bias):
    c_in, c_out = groups * per_group_in, groups * per_group_out
    conv = nn.Conv2d(c_in, c_out, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups, bias)
    (layer,) = extract_convs(nn.Sequential(conv), (groups * per_group_in, h, w))
    assert layer == ConvLayer(
        "0", groups * per_group_in, groups * per_group_out, (kh, kw), (sh, sw), (ph, pw), groups, bias, (h, w), (dh, dw)
    )
    with torch.no_grad():
        assert conv(torch.zeros(1, groups * per_group_in, h, w)).shape[-2:] == layer.output_size
