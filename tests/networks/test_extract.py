"""Faithful extraction: padding wrappers in the styles of timm and efficientnet-pytorch, and kept convs.

The wrappers are written here after those libraries' code. Each recognised layer is checked against
an independent rebuild, ``nn.ZeroPad2d(pre_padding)`` then a plain ``nn.Conv2d(padding=padding)``
with the same weights: it must compute the same values.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.functional import batch_norm, conv2d, pad  # noqa: E402

from osc_design import SpecError  # noqa: E402
from osc_design.networks.convert import convert  # noqa: E402
from osc_design.networks.description import layers_from_dict, layers_to_dict  # noqa: E402
from osc_design.networks.extract import extract_network  # noqa: E402
from osc_design.networks.plan import plan_network  # noqa: E402


def _tf_pad(x, kernel, stride, dilation):
    """timm's ``pad_same``: pad so the output is ceil(input / stride), the odd zero after."""
    ih, iw = x.shape[-2:]
    pad_h = max((math.ceil(ih / stride[0]) - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1 - ih, 0)
    pad_w = max((math.ceil(iw / stride[1]) - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1 - iw, 0)
    return pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class Conv2dSame(nn.Conv2d):
    """timm style: dynamic "same" padding by F.pad, then a conv with padding 0."""

    def __init__(self, c_in, c_out, kernel, stride=1, dilation=1, groups=1, bias=True):
        super().__init__(c_in, c_out, kernel, stride, 0, dilation, groups, bias)

    def forward(self, x):
        x = _tf_pad(x, self.kernel_size, self.stride, self.dilation)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2dDynamicSamePadding(Conv2dSame):
    """efficientnet-pytorch's dynamic wrapper computes the same padding, in the same way."""


class Conv2dStaticSamePadding(nn.Conv2d):
    """efficientnet-pytorch style: a ZeroPad2d for a given image size, then the conv."""

    def __init__(self, c_in, c_out, kernel, stride=1, image_size=16, **kwargs):
        super().__init__(c_in, c_out, kernel, stride, **kwargs)
        probe = torch.zeros(1, 1, image_size, image_size)
        grown = _tf_pad(probe, self.kernel_size, self.stride, self.dilation).shape
        ph, pw = grown[-2] - image_size, grown[-1] - image_size
        self.static_padding = (nn.ZeroPad2d((pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)) if ph or pw
                               else nn.Identity())

    def forward(self, x):
        x = self.static_padding(x)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class StdConv2d(nn.Conv2d):
    """timm style weight standardisation."""

    def forward(self, x):
        w = batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
                         momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Shifted(nn.Conv2d):
    """A subclass with its own forward that is no known wrapper."""

    def forward(self, x):
        return super().forward(x) + 1


class FakeSame(Conv2dSame):
    """Named like a wrapper (timm's Conv2dSame) but pads by one zero more than "same"."""

    def forward(self, x):
        return super().forward(pad(x, [0, 1, 0, 1]))


FakeSame.__name__ = "Conv2dSame"


class Twice(Conv2dSame):
    def forward(self, x):
        return super().forward(x) + super().forward(x)


Twice.__name__ = "Conv2dDynamicSamePadding"


def _same_wrapper(call):
    """A class named like timm's Conv2dSame whose forward pads, then calls ``call(self, padded_x)``."""

    class Wrapper(Conv2dSame):
        def forward(self, x):
            return call(self, _tf_pad(x, self.kernel_size, self.stride, self.dilation))

    Wrapper.__name__ = "Conv2dSame"
    return Wrapper


PositionalShort = _same_wrapper(lambda m, x: conv2d(x, m.weight, m.bias, m.stride))  # timm's own call
NoBias = _same_wrapper(lambda m, x: conv2d(x, m.weight))
Keywords = _same_wrapper(lambda m, x: conv2d(groups=m.groups, dilation=m.dilation, weight=m.weight, input=x,
                                             stride=m.stride, bias=m.bias))
Mixed = _same_wrapper(lambda m, x: conv2d(x, m.weight, groups=m.groups, stride=m.stride[0], padding="valid",
                                          bias=m.bias, dilation=list(m.dilation)))
OtherPadding = _same_wrapper(lambda m, x: conv2d(x, m.weight, m.bias, m.stride, 1))


class OwnForwardShort(nn.Conv2d):
    def forward(self, x):
        return conv2d(x, self.weight)


def _one(conv: nn.Module, size: int, channels: int = 4):
    found = extract_network(nn.Sequential(conv), (channels, size, size))
    (layer,) = found.layers
    return layer


def _rebuilt(conv: nn.Conv2d, layer) -> nn.Module:
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, layer.padding,
                      conv.dilation, conv.groups, conv.bias is not None)
    plain.load_state_dict({"weight": conv.weight, **({"bias": conv.bias} if conv.bias is not None else {})})
    return nn.Sequential(nn.ZeroPad2d(layer.pre_padding), plain)


WRAPPERS = [
    pytest.param(lambda: Conv2dSame(4, 6, 3, stride=1), id="timm-same-s1"),
    pytest.param(lambda: Conv2dSame(4, 6, 3, stride=2), id="timm-same-s2"),
    pytest.param(lambda: Conv2dSame(4, 6, (5, 2), stride=(2, 3), dilation=(1, 2), bias=False), id="timm-same-odd"),
    pytest.param(lambda: Conv2dDynamicSamePadding(4, 8, 5, stride=2, groups=4), id="effnet-dynamic"),
    pytest.param(lambda: Conv2dStaticSamePadding(4, 6, 3, stride=2, image_size=16), id="effnet-static-s2"),
    pytest.param(lambda: Conv2dStaticSamePadding(4, 6, 3, stride=1, image_size=16), id="effnet-static-s1"),
    pytest.param(lambda: Conv2dStaticSamePadding(4, 6, 1, stride=1, image_size=16), id="effnet-static-identity"),
    pytest.param(lambda: nn.Conv2d(4, 6, (2, 4), padding="same"), id="same-even"),
    pytest.param(lambda: nn.Conv2d(4, 6, 3, padding="same", dilation=2), id="same-dilated"),
    pytest.param(lambda: nn.Conv2d(4, 6, 3, padding="valid"), id="valid"),
    pytest.param(lambda: PositionalShort(4, 6, 3, stride=2), id="call-positional-short"),
    pytest.param(lambda: NoBias(4, 6, 3, bias=False), id="call-weight-only"),
    pytest.param(lambda: Keywords(4, 8, 3, stride=(2, 1), dilation=(1, 2), groups=2), id="call-keywords"),
    pytest.param(lambda: Mixed(4, 8, 3, stride=2, dilation=2, groups=4), id="call-mixed"),
]


@pytest.mark.parametrize("make", WRAPPERS)
@pytest.mark.parametrize("size", [16, 17])
def test_wrapper_geometry_computes_what_the_module_computes(make, size):
    torch.manual_seed(0)
    conv = make().eval()
    layer = _one(conv, size)
    assert layer.keep_reason is None
    assert layer.module_input_size == (size, size)
    x = torch.randn(2, 4, size, size)
    with torch.no_grad():
        expected = conv(x)
        assert expected.shape[-2:] == layer.output_size
        assert torch.allclose(_rebuilt(conv, layer)(x), expected, atol=1e-5)


def test_symmetric_zeros_are_padding_asymmetric_ones_pre_padding():
    assert (_one(Conv2dSame(4, 4, 3), 16).padding, _one(Conv2dSame(4, 4, 3), 16).pre_padding) == ((1, 1),
                                                                                                 (0, 0, 0, 0))
    static = _one(Conv2dStaticSamePadding(4, 4, 3, stride=2, image_size=16), 16)
    assert (static.padding, static.pre_padding, static.input_size) == ((0, 0), (0, 1, 0, 1), (17, 17))
    # dynamic with stride 2: the zeros depend on the size, so always pre_padding (here symmetric at 17)
    dynamic = _one(Conv2dSame(4, 4, 3, stride=2), 17)
    assert (dynamic.padding, dynamic.pre_padding) == ((0, 0), (1, 1, 1, 1))


def _weight_norm():
    return nn.utils.parametrizations.weight_norm(nn.Conv2d(4, 4, 3))


def _hooked():
    conv = nn.Conv2d(4, 4, 3)
    conv.register_forward_hook(lambda module, args, out: None)
    return conv


KEPT = [
    pytest.param(lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'", id="reflect"),
    pytest.param(lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular"), "padding_mode='circular'",
                 id="circular"),
    pytest.param(lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="replicate"), "padding_mode='replicate'",
                 id="replicate"),
    pytest.param(lambda: StdConv2d(4, 4, 3, padding=1), "weight standardisation", id="std-conv"),
    pytest.param(lambda: Shifted(4, 4, 3), "Shifted has its own forward", id="own-forward"),
    pytest.param(lambda: FakeSame(4, 4, 3, stride=2), "padded the input by (3, 3), not by the (1, 1)",
                 id="fake-wrapper"),
    pytest.param(lambda: Twice(4, 4, 3), "made 2 convolutions", id="two-convs"),
    pytest.param(_weight_norm, "parametrized weight", id="weight-norm"),
    pytest.param(_hooked, "forward hooks", id="hooks"),
    pytest.param(lambda: OwnForwardShort(4, 4, 3, bias=False), "OwnForwardShort has its own forward",
                 id="own-forward-short-call"),
    pytest.param(lambda: OtherPadding(4, 4, 3), "its forward convolves with padding (1, 1), not its own (0, 0)",
                 id="call-other-padding"),
    pytest.param(lambda: NoBias(4, 4, 3), "another weight or bias", id="call-drops-bias"),
]


@pytest.mark.parametrize(("make", "reason"), KEPT)
def test_kept_convs_say_why(make, reason):
    layer = _one(make(), 16)
    assert layer.keep_reason is not None and reason in layer.keep_reason


def test_a_renamed_std_conv_is_caught_by_its_forward():
    class Plain(StdConv2d):
        pass

    Plain.__name__ = "Conv2dSame"  # a known wrapper's name, but the forward convolves with another weight
    assert "another weight" in _one(Plain(4, 4, 3), 16).keep_reason


@pytest.mark.parametrize("shape", [(), (3, 0, 8), (3, 8.0, 8), (3, True, 8), 224, None])
def test_a_bad_input_shape_is_a_spec_error_naming_it(shape):
    with pytest.raises(SpecError, match=r"`input_shape` \(=.*\) must be a non-empty tuple of positive integers"):
        extract_network(nn.Conv2d(3, 3, 3), shape)


def test_other_convolutions_are_listed_with_reasons():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(3, 3, 2, stride=2)
            self.conv = nn.Conv2d(3, 3, 3)
            self.unused = nn.Conv2d(3, 3, 3)
            self.line = nn.Conv1d(3, 3, 3)
            self.volume = nn.Conv3d(3, 3, 1)

        def forward(self, x):
            y = self.conv(self.up(x))
            return y.sum() + self.line(y.flatten(2)).sum() + self.volume(y.unsqueeze(2)).sum()

    found = extract_network(Net(), (3, 8, 8))
    assert [layer.name for layer in found.layers] == ["conv"]
    assert dict(found.others) == {
        "up": "ConvTranspose2d: transposed convolutions are not planned",
        "unused": "never called in the forward pass",
        "line": "Conv1d: only 2-D convolutions are planned",
        "volume": "Conv3d: only 2-D convolutions are planned",
    }


class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = Conv2dSame(3, 16, 3, stride=2, bias=False)
        self.body = Conv2dStaticSamePadding(16, 16, 3, stride=2, image_size=16, bias=False)
        self.mid = nn.Conv2d(16, 32, 4, padding="same", bias=False)
        self.kept = StdConv2d(32, 32, 3, padding=1, bias=False)

    def forward(self, x):
        return self.kept(self.mid(self.body(self.stem(x))))


def test_convert_keeps_shapes_and_dynamic_padding_at_other_sizes():
    model = Wrapped().eval()
    layers = extract_network(model, (3, 32, 32)).layers
    plan = plan_network([layer for layer in layers if layer.keep_reason is None], "osc-2")
    assert [lp.replaced for lp in plan.layers] == [True, True, True]
    converted = convert(model, plan, weights="random")
    assert type(converted.stem[0]).__name__ == "SamePad2d" and isinstance(converted.stem[0], torch.fx.GraphModule)
    assert isinstance(converted.body[0], nn.ZeroPad2d)
    assert isinstance(converted.mid[0], nn.ZeroPad2d) and converted.kept is not model.kept
    assert torch.equal(converted.kept.weight, model.kept.weight)
    with torch.no_grad():
        for size in (32, 31):  # the static wrapper pads for 16x16 inputs: stem output 16 (at 31 too)
            x = torch.randn(1, 3, size, size)
            assert converted(x).shape == model(x).shape
        x = torch.randn(1, 3, 29, 29)  # stride-2 "same" at an odd size: the runtime padding differs
        assert converted.stem(x).shape == model.stem(x).shape == (1, 16, 15, 15)


def test_convert_refuses_a_kept_layer_and_a_mismatch():
    model = Wrapped().eval()
    layers = extract_network(model, (3, 32, 32)).layers
    plan = plan_network(layers, "osc-2")  # the planner keeps what extraction keeps, with its reason
    kept = next(lp for lp in plan.layers if lp.layer.name == "kept")
    assert not kept.replaced and "StdConv2d" in kept.reason
    converted = convert(model, plan, weights="random")
    assert type(converted.kept) is StdConv2d
    assert all(torch.equal(a, b) for a, b in zip(converted.kept.state_dict().values(),
                                                  model.kept.state_dict().values(), strict=True))
    blind = [dataclasses.replace(layer, keep_reason=None) for layer in layers]  # a plan told of no reason
    with pytest.raises(SpecError, match="'kept' is kept, the plan cannot replace it: StdConv2d"):
        convert(model, plan_network(blind, "osc-2"), weights="random")
    other = extract_network(model, (3, 30, 30)).layers  # the static wrapper pads another amount than at 32
    plan = plan_network(other[1:2], "osc-2")
    assert convert(model, plan, weights="random")  # the same model, extracted at 30: its own geometry
    moved = Wrapped().eval()
    moved.body.static_padding = nn.ZeroPad2d((1, 1, 1, 1))
    with pytest.raises(SpecError, match="'body' does not match the plan"):
        convert(moved, plan, weights="random")


def test_description_round_trip_and_old_files():
    layers = extract_network(Wrapped(), (3, 32, 32)).layers
    doc = layers_to_dict("wrapped", layers, (3, 32, 32))
    assert doc["layers"][0]["pre_padding"] == [0, 1, 0, 1] and "keep_reason" not in doc["layers"][0]
    assert "StdConv2d" in doc["layers"][3]["keep_reason"] and "pre_padding" not in doc["layers"][3]
    assert layers_from_dict(doc) == ("wrapped", layers)
    for entry in doc["layers"]:  # a file without the optional fields still loads
        entry.pop("pre_padding", None)
        entry.pop("keep_reason", None)
    assert [layer.pre_padding for layer in layers_from_dict(doc)[1]] == [(0, 0, 0, 0)] * 4
