"""``osc_design.summary`` and ``osc-design summary``: exact per-module counts, checked against hand counts,
``FlopCounterMode``, torchinfo and fvcore on models no one here wrote (pytorchcv, random weights)."""

from __future__ import annotations

import csv
import importlib
import io
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import osc_design as od  # noqa: E402
from osc_design.cli import app  # noqa: E402
from osc_design.networks.summary import summary  # noqa: E402

SIZE = 64


def _small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, stride=2, groups=2, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def test_hand_counted_rows():
    s = summary(_small(), (3, 32, 32))
    rows = {r.name: r for r in s.rows}
    assert rows["0"].macs == 8 * 32 * 32 * (3 * 3 * 3)  # every output position, padding included
    assert rows["0"].params == 8 * 3 * 9 + 8
    assert rows["4"].output_shape == (1, 16, 7, 7)  # (16 - 3) // 2 + 1
    assert rows["4"].macs == 16 * 7 * 7 * (4 * 9)  # groups: 4 input channels per output
    assert rows["7"].macs == 16 * 10 and rows["7"].flops == 320
    assert [rows[n].macs for n in ("1", "2", "3", "5", "6")] == [0] * 5
    assert [rows[n].kind for n in "01234567"] == ["conv", "norm", "activation", "pool", "conv", "pool", "other",
                                                 "linear"]
    assert rows["3"].output_elements == 8 * 16 * 16
    assert s.params == sum(p.numel() for p in _small().parameters())
    assert s.flops == 2 * s.macs


def test_batch_scales_macs_not_params():
    one, four = summary(_small(), (3, 32, 32)), summary(_small(), (3, 32, 32), batch=4)
    assert four.macs == 4 * one.macs and four.params == one.params
    assert four.input_shape == (4, 3, 32, 32) and four.rows[0].output_shape == (4, 8, 32, 32)


def test_transposed_and_1d_convs_match_flop_counter():
    model = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), nn.Flatten(2), nn.Conv1d(6, 5, 4))
    s = summary(model, (4, 9, 9))
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 4, 9, 9))
    assert s.flops == counter.get_total_flops()
    assert s.rows[0].macs == 4 * 9 * 9 * 3 * 9  # input elements x out/groups x window


def test_shared_repeated_uncalled_and_container_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(5))  # a container's own parameter
            self.fc = nn.Linear(5, 5)
            self.unused = nn.Linear(5, 3)
            self.tied = nn.Linear(5, 5)
            self.tied.weight = self.fc.weight

        def forward(self, x):
            return self.tied(self.fc(self.fc(x) * self.scale))

    s = summary(Net(), (5,))
    rows = {r.name: r for r in s.rows}
    assert s.params == sum(p.numel() for p in Net().parameters()) == 5 + 30 + 18 + 5
    assert rows["Net"].params == 5 and rows["fc"].calls == 2 and rows["fc"].macs == 2 * 25
    assert rows["unused"].calls == 0 and rows["unused"].output_shape is None
    assert s.rows[-1].name == "unused"  # never called: last


def test_reprs_html_and_documents():
    s = summary(_small(), (3, 32, 32))
    assert repr(s) == f"Summary(Sequential @ 1x3x32x32: 8 modules, {s.params:,} params, {s.macs:,} MACs)"
    assert repr(s.rows[0]).startswith("SummaryRow('0' Conv2d: 224 params, 221,184 MACs")
    html = s._repr_html_()
    assert html.count("<tr>") == len(s.rows) + 2 and "221,184" in html
    doc = json.loads(json.dumps(s.to_dict()))
    assert doc["format"] == "osc-design.summary" and doc["totals"]["macs"] == s.macs
    assert doc["totals"]["macs_by_kind"]["conv"] + doc["totals"]["macs_by_kind"]["linear"] == s.macs


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_size"):
        summary(_small(), (3, 0, 32))
    with pytest.raises(ValueError, match="batch"):
        summary(_small(), (3, 32, 32), batch=0)


def test_lazy_name_and_no_torch_on_import():
    assert od.summary is summary
    code = "import sys, osc_design, osc_design.networks; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# -- models no one here wrote: totals beside torchinfo, fvcore and FlopCounterMode ---------------------------
def _pytorchcv(module: str, name: str) -> nn.Module:
    model = getattr(importlib.import_module(f"pytorchcv.models.{module}"), name)(pretrained=False)
    for parent in model.modules():  # the fixed global pool sized for 224 inputs
        for attr, child in parent.named_children():
            if isinstance(child, nn.AvgPool2d) and min(nn.modules.utils._pair(child.kernel_size)) >= 7:
                setattr(parent, attr, nn.AdaptiveAvgPool2d(1))
    return model.eval()


THIRD_PARTY = [("resnet", "resnet18"), ("mobilenetv2", "mobilenetv2_wd4"), ("shufflenetv2", "shufflenetv2_wd2"),
               ("resnext", "resnext14_16x4d")]


def _torchinfo_extra(model: nn.Module, s) -> int:
    """What torchinfo's mult-adds add to ours: every bias of a conv at each output position, and every other
    leaf parameter (norm scale and shift, linear bias) once per sample."""
    rows, extra = {r.name: r for r in s.rows}, 0
    for name, module in model.named_modules():
        if name not in rows or not rows[name].calls:
            continue
        batch, positions = rows[name].output_shape[0], rows[name].output_elements
        if isinstance(module, nn.modules.conv._ConvNd):
            extra += 0 if module.bias is None else module.bias.numel() * positions // module.out_channels
        elif isinstance(module, nn.Linear):
            extra += 0 if module.bias is None else batch * module.bias.numel()
        else:
            extra += batch * rows[name].params
    return extra


@pytest.mark.parametrize("module,name", THIRD_PARTY, ids=[n for _, n in THIRD_PARTY])
def test_totals_match_torchinfo_fvcore_and_flop_counter(module, name):
    import warnings

    import torchinfo  # the test extra: required, never skipped

    with warnings.catch_warnings():  # fvcore's imports use torch.jit.script, deprecated in torch 2.10+
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore import nn as fvcore_nn
    torch.manual_seed(0)
    model, batch = _pytorchcv(module, name), 2
    s = summary(model, (3, SIZE, SIZE), batch=batch)
    x = torch.zeros(batch, 3, SIZE, SIZE)
    info = torchinfo.summary(model, input_data=x, verbose=0)
    assert s.params == info.total_params == sum(p.numel() for p in model.parameters())
    assert s.trainable_params == info.trainable_params
    assert info.total_mult_adds == s.macs + _torchinfo_extra(model, s)
    flops = fvcore_nn.FlopCountAnalysis(model, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    assert by_op["conv"] == s.macs_by_kind["conv"] and by_op.get("linear", 0) == s.macs_by_kind["linear"]
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model(x)
    assert counter.get_total_flops() == s.flops


# -- the command ---------------------------------------------------------------------------------------------
runner = CliRunner()


def test_cli_catalogue_formats_and_batch():
    table = runner.invoke(app, ["summary", "cifar-resnet20"])
    assert table.exit_code == 0, table.output
    assert "Summary(cifar-resnet20 @ 1x3x32x32" in table.output and "total" in table.output
    doc = json.loads(runner.invoke(app, ["summary", "cifar-resnet20", "-f", "json", "--batch", "3"]).output)
    from osc_design.networks.torch_models import build_model

    assert doc["input_shape"] == [3, 3, 32, 32]
    assert doc["totals"]["params"] == sum(p.numel() for p in build_model("cifar-resnet20").parameters())
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["summary", "cifar-resnet20", "-f", "csv"]).output)))
    assert len(rows) == len(doc["layers"]) and rows[1]["output_shape"] == "1x16x32x32"
    assert sum(int(r["macs"]) for r in rows) * 3 == doc["totals"]["macs"]


def test_cli_model_file(tmp_path):
    body = "nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))"
    (tmp_path / "m.py").write_text(f"from torch import nn\n\ndef make():\n    return {body}\n")
    result = runner.invoke(app, ["summary", "--model", f"{tmp_path / 'm.py'}:make", "-i", "1x8x8", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["totals"]["macs"] == 4 * 36 * 9 + 144 * 2


@pytest.mark.parametrize("args,message", [
    (["summary", "nonesuch"], "is not in the catalogue"),
    (["summary"], "give a catalogue network name or --model"),
    (["summary", "resnet18", "--batch", "0"], "must be a positive integer"),
    (["summary", "resnet18", "-i", "3xx4"], "is not an input shape"),
    (["summary", "cifar-resnet20", "-i", "5x32x32"], "the forward pass on an input of 1x5x32x32 raised"),
])
def test_cli_usage_errors(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output
