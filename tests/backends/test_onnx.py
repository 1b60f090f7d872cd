"""The ONNX backend: every design ``compare`` gives exports, passes the full checker, runs in onnxruntime and
matches the PyTorch module with the same weights; shuffles fold into dense convs without changing outputs;
the CLI's ``export --to onnx`` and ``verify --backend onnxruntime``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.requested import require

require("onnxruntime")

import onnx  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from osc_design import Target, compare  # noqa: E402
from osc_design.backends import get_backend, random_weights, verify  # noqa: E402
from osc_design.backends.onnx import fold_plan, get_weights, node_model, session, to_onnx  # noqa: E402
from osc_design.cli import app  # noqa: E402
from osc_design.cost import cost  # noqa: E402
from osc_design.serialize import save  # noqa: E402
from osc_design.spec import GraphBuilder  # noqa: E402

TARGETS = [
    Target(32, 32, 3, input_size=12),
    Target(48, 48, 7, input_size=14),
    Target(24, 40, (3, 5), stride=(2, 1), padding=(1, 2), input_size=(13, 11)),
]


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"input": x})[0]


def _torch(spec, weights, x):
    tb = pytest.importorskip("osc_design.backends.torch")
    m = tb.build_module(spec)
    tb.set_weights(m, spec, weights)
    return tb.BACKEND.run(m, x)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.describe())
def test_every_compared_design_exports_checks_runs_and_matches_torch(target):
    designs = compare(target).designs
    assert len(designs) >= 9
    x = np.random.default_rng(1).standard_normal((2, target.in_channels, *target.input_size)).astype(np.float32)
    for d in designs:
        w = random_weights(d.spec, seed=3)
        model = to_onnx(d.spec, w)
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        assert {n.op_type for n in model.graph.node} <= {"Conv", "BatchNormalization", "Reshape", "Transpose",
                                                         "Gather", "Slice", "Concat", "Add", "Sum", "Pad", "Identity"}
        y, ref = _run(model, x), _torch(d.spec, w, x)
        assert y.shape == ref.shape
        assert np.max(np.abs(y - ref)) <= 1e-5 * np.max(np.abs(ref)), d.family
        report = verify(d.spec, backend="onnxruntime", batch=2)
        assert report.ok, str(report)
        assert {c.quantity for c in report.checks} >= {"checker", "params", "macs", "output_shape"}


def _shuffled() -> object:
    """Dense conv -> shuffle -> grouped conv -> permute -> dense conv -> shuffle (output): every fold kind."""
    b = GraphBuilder(Target(8, 12, 3, padding=1, input_size=9))
    y = b.conv2d(b.input, 12, 3, padding=1, bias=True, name="dense_in")
    y = b.channel_shuffle(y, 3, name="s_out")  # folds into dense_in's output channels
    y = b.conv2d(y, 12, 1, groups=4, name="grouped")
    y = b.permute(y, [int(v) for v in np.random.default_rng(0).permutation(12)], name="p_in")  # into dense_out
    y = b.conv2d(y, 12, 1, bias=True, name="dense_out")
    y = b.batch_norm(y, name="bn")
    y = b.channel_shuffle(y, 4, name="s_last")  # after a norm: stays Reshape-Transpose-Reshape
    return b.build(y, family="test")


def test_folding_changes_no_output_and_removes_the_ops():
    spec = _shuffled()
    plan = fold_plan(spec)
    assert {k: (f.conv, f.side) for k, f in plan.items()} == {"s_out": ("dense_in", "out"),
                                                              "p_in": ("dense_out", "in")}
    w = random_weights(spec, seed=5)
    folded, plain = to_onnx(spec, w), to_onnx(spec, w, fold=False)
    ops = [n.op_type for n in folded.graph.node]
    assert "Gather" not in ops and ops.count("Transpose") == 1  # s_last only
    assert [n.op_type for n in plain.graph.node].count("Transpose") == 2
    x = np.random.default_rng(2).standard_normal((3, 8, 9, 9)).astype(np.float32)
    a, b = _run(folded, x), _run(plain, x)
    assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(b))
    ref = _torch(spec, w, x)
    assert np.max(np.abs(a - ref)) <= 1e-5 * np.max(np.abs(ref))
    for model in (folded, plain):  # the canonical weights come back from either file
        back = get_weights(model, spec)
        assert back.keys() == w.keys()
        for nid in w:
            for k in w[nid]:
                np.testing.assert_array_equal(back[nid][k], w[nid][k])


def test_params_are_weight_initializers_only():
    spec = _shuffled()
    model = to_onnx(spec)
    inits = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    c = cost(spec, (9, 9))
    # independent count: conv weights + biases + batch-norm scale and shift, from the spec's own shapes
    expected = sum(int(np.prod(n.weight_shape)) + (n.out_channels if n.bias else 0) for n in spec.convs) + 2 * 12
    assert c.total_params == expected
    assert sum(inits.values()) > expected  # running statistics and the shuffle's shape constants are there too
    report = verify(spec, backend="onnxruntime")
    assert report.ok, str(report)
    assert next(ch for ch in report.checks if ch.quantity == "params").measured == expected


def test_node_models_and_backend_protocol():
    spec = _shuffled()
    for nid in ("dense_in", "s_out", "p_in", "bn", "s_last"):
        m = node_model(spec, nid, batch=2)
        onnx.checker.check_model(m, full_check=True)
    backend = get_backend("onnxruntime")
    module = backend.build(spec, seed=1)
    assert backend.owns(module) and backend.layout == "NCHW"
    w = random_weights(spec, seed=9)
    backend.set_weights(module, spec, w)
    np.testing.assert_array_equal(backend.get_weights(module, spec)["dense_in"]["weight"], w["dense_in"]["weight"])


def test_cli_export_onnx_and_verify(tmp_path):
    spec = compare(TARGETS[2]).designs[-1].spec
    path = tmp_path / "design.json"
    save(spec, path)
    runner = CliRunner()
    r = runner.invoke(app, ["export", str(path), "--to", "onnx", "-o", str(tmp_path / "design.onnx")])
    assert r.exit_code == 0, r.output
    model = onnx.load(str(tmp_path / "design.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert {p.key: p.value for p in model.metadata_props}["family"] == spec.family
    r = runner.invoke(app, ["export", str(path), "--to", "onnx"])
    assert r.exit_code == 2 and "--output" in r.output
    r = runner.invoke(app, ["verify", str(path), "--backend", "onnxruntime", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert '"onnxruntime"' in r.output
