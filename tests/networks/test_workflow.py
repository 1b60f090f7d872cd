"""The two-way workflow: ``--model MODULE:CALLABLE``, ``describe``, ``network --from``, plan files loaded back
(``load_plan``) and converted, with the CLI's shorthands accepted in hand-written files."""

from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import osc_design as od  # noqa: E402
from osc_design import networks  # noqa: E402
from osc_design.cli import app  # noqa: E402
from osc_design.errors import SchemaError  # noqa: E402
from osc_design.networks.catalog import catalog_layers  # noqa: E402
from osc_design.networks.description import layers_from_dict, load_network  # noqa: E402
from osc_design.networks.plan import LayerChoice, load_plan, plan_from_dict, plan_network, save_plan  # noqa: E402

runner = CliRunner()

MODEL = """\
from torch import nn


def make():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 5, padding=2, groups=2), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(32, 32, 2, padding="same"),
        nn.ConvTranspose2d(32, 8, 2, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


NOT_A_MODULE = 3


def not_a_module():
    return "a string"


def broken():
    raise RuntimeError("no weights here")
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(MODEL)
    return path


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_describe_network_from_load_plan_convert(model_file, tmp_path):
    ref = f"{model_file}:make"
    desc, plan_path = tmp_path / "model.json", tmp_path / "plan.json"
    _ok(["describe", "--model", ref, "-i", "3x32x32", "-o", str(desc)])
    doc = json.loads(desc.read_text())
    assert doc["input_shape"] == [3, 32, 32] and [layer["name"] for layer in doc["layers"]] == ["0", "3", "5", "7"]
    assert doc["layers"][2]["keep_reason"].startswith("padding_mode='reflect'")
    assert doc["layers"][3]["pre_padding"] == [0, 1, 0, 1]
    assert doc["others"] == [{"name": "8", "reason": "ConvTranspose2d: transposed convolutions are not planned"}]
    _ok(["network", "--from", str(desc), "--policy", "osc-2", "-f", "json", "-o", str(plan_path)])
    direct = json.loads(_ok(["network", "--model", ref, "-i", "3x32x32", "--policy", "osc-2", "-f", "json"]))
    saved = json.loads(plan_path.read_text())
    assert {**saved, "network": None} == {**direct, "network": None}  # same layers, same plan
    plan = networks.load_plan(plan_path)
    assert plan.to_dict() == saved
    namespace: dict = {}
    exec(compile(model_file.read_text(), str(model_file), "exec"), namespace)
    model = namespace["make"]().eval()
    converted = od.convert(model, plan, weights="random")
    x = torch.randn(2, 3, 32, 32)
    assert converted(x).shape == model(x).shape == (2, 10)
    assert sum(lp.replaced for lp in plan.layers) == 3
    assert isinstance(converted[5], nn.Conv2d) and converted[5].padding_mode == "reflect"  # kept as it was


def test_loaded_plan_converts_to_the_same_model():
    torch.manual_seed(0)
    from osc_design.networks.torch_models import build_model

    model = build_model("cifar-resnet20").eval()
    plan = plan_network(catalog_layers("cifar-resnet20"), "osc", network="cifar-resnet20", budget_params=0.3)
    loaded = plan_from_dict(json.loads(json.dumps(plan.to_dict())))
    assert loaded == plan and loaded.budget == {"params": 0.3} and loaded.bound == plan.bound
    for mine, theirs in zip(loaded.layers, plan.layers, strict=True):  # field by field
        for f in dataclasses.fields(mine):
            if f.compare:
                assert getattr(mine, f.name) == getattr(theirs, f.name), (mine.layer.name, f.name)
    torch.manual_seed(1)
    a = od.convert(model, plan, weights="random")
    torch.manual_seed(1)
    b = od.convert(model, loaded, weights="random")
    assert str(a) == str(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_plan_and_latency_round_trip(tmp_path):
    plan = plan_network(catalog_layers("cifar-resnet20")[:4], "osc-2", network="c20")
    timed = dataclasses.replace(plan, latency_table="torch-test", layers=tuple(
        dataclasses.replace(lp, chosen=lp.chosen.with_seconds(1e-4 / (i + 3)),
                            candidates=(lp.candidates[0].with_seconds(1e-4 / (i + 7)), *lp.candidates[1:]))
        for i, lp in enumerate(plan.layers)))
    timed = dataclasses.replace(timed, layers=tuple(  # a kept layer's choice is its original, timed once
        dataclasses.replace(lp, chosen=lp.candidates[0]) if not lp.replaced else lp for lp in timed.layers))
    save_plan(tmp_path / "p.json", timed)
    loaded = load_plan(tmp_path / "p.json")
    assert loaded == timed and loaded.latency("before") == timed.latency("before")
    assert loaded.totals() == timed.totals() and loaded.to_dict() == timed.to_dict()


def test_shorthands_in_hand_written_files():
    short = {"format": "osc-design.network", "version": 1, "name": "hand", "layers": [
        {"name": "a", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1,
         "dilation": 1, "input_size": 16}]}
    full = {**short, "layers": [{**short["layers"][0], "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
                                 "dilation": [1, 1], "input_size": [16, 16]}]}
    assert layers_from_dict(short) == layers_from_dict(full)
    plan = plan_network(layers_from_dict(short)[1], "osc-2", network="hand").to_dict()
    plan["layers"][0]["target"].update(kernel_size=3, stride=2, padding=1, input_size=16)
    assert plan_from_dict(plan).layers[0].layer == layers_from_dict(full)[1][0]


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(format="osc-design.network"), "not an osc-design network plan"),
    (lambda d: d.update(version=2), "written by a newer osc-design"),
    (lambda d: d["layers"][0]["target"].update(kernel_size=[3]), "layers[0].target.kernel_size"),
    (lambda d: d["layers"][0].update(extra=1), "unknown field `extra`"),
    (lambda d: d["layers"][0]["after"].update(macs=1), "`layers[0].after.macs` (=1) is not the layer's cost"),
    (lambda d: d["layers"][0]["spec"].update(version=7), "layers[0].spec"),
    (lambda d: d["layers"][1].update(name=d["layers"][0]["name"]), "duplicate layer name"),
])
def test_plan_documents_are_validated(edit, message):
    doc = plan_network(catalog_layers("cifar-resnet20")[:3], "osc-2", network="c20").to_dict()
    edit(doc)
    with pytest.raises(SchemaError) as info:
        plan_from_dict(doc)
    assert message in str(info.value)


def test_bad_plan_files(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{")
    with pytest.raises(SchemaError, match="invalid JSON"):
        load_plan(path)
    with pytest.raises(SchemaError, match="cannot read"):
        load_plan(tmp_path / "missing.json")


def test_workflow_names_are_reachable_from_the_package():
    from osc_design.networks import convert, extract, plan

    assert od.load_plan is plan.load_plan is networks.load_plan
    assert od.convert is convert.convert and od.plan_network is plan.plan_network
    assert od.extract_convs is extract.extract_convs and od.extract_network is extract.extract_network
    with pytest.raises(AttributeError):
        networks.nonesuch  # noqa: B018


@pytest.mark.parametrize("command", ["network", "describe", "summary"])
@pytest.mark.parametrize("ref,message", [
    ("nonesuch_module_xyz:make", "cannot import 'nonesuch_module_xyz'"),
    ("{file}:missing", "has no attribute 'missing'"),
    ("{file}:NOT_A_MODULE", "'NOT_A_MODULE' is a int, not a callable"),
    ("{file}:not_a_module", "not_a_module() returned a str, not a torch.nn.Module"),
    ("{file}:broken", "calling broken() raised RuntimeError: no weights here"),
    ("{dir}/nope.py:make", "cannot import"),
    ("no-colon", "give MODULE:CALLABLE"),
])
def test_model_failures_are_one_line_exit_2(model_file, command, ref, message):
    ref = ref.format(file=model_file, dir=model_file.parent)
    result = runner.invoke(app, [command, "--model", ref])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and result.output.startswith("Error:")
    assert result.output.count("\n") == 1


def test_model_whose_import_raises_or_forward_fails(tmp_path, model_file):
    (tmp_path / "bad.py").write_text("raise ImportError('missing dependency')\n")
    result = runner.invoke(app, ["network", "--model", f"{tmp_path / 'bad.py'}:make"])
    assert result.exit_code == 2 and "raised ImportError: missing dependency" in result.output
    result = runner.invoke(app, ["network", "--model", f"{model_file}:make", "-i", "5x32x32"])
    assert result.exit_code == 2 and "the forward pass on an input of 1x5x32x32 raised" in result.output


def test_module_path_and_source_rules(model_file, monkeypatch):
    monkeypatch.syspath_prepend(str(model_file.parent))
    out = json.loads(_ok(["describe", "--model", "m:make", "-i", "3x16x16"]))
    assert out["name"] == "Sequential" and len(out["layers"]) == 4
    for args, message in [(["network", "resnet18", "--model", "m:make"], "one of them"),
                          (["network", "resnet18", "-i", "3x64x64"], "has its own input size"),
                          (["describe"], "give a catalogue network name or --model")]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_describe_catalogue_matches_the_catalogue(tmp_path):
    _ok(["describe", "cifar-resnet20", "-o", str(tmp_path / "c.json")])
    assert load_network(tmp_path / "c.json") == ("cifar-resnet20", catalog_layers("cifar-resnet20"))


def test_loaded_choice_keeps_the_original_first():
    plan = plan_network(catalog_layers("cifar-resnet20")[:2], "osc-2", network="c20")
    loaded = plan_from_dict(plan.to_dict())
    assert all(lp.candidates[0] == LayerChoice("keep", None, lp.before, 1.0) for lp in loaded.layers)
