"""Both backends: same weights give the same outputs; backend lookup, missing frameworks, verify("all"),
input-size resolution, lazy imports."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from requested import require

require("torch")
require("jax")

import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
from backend_cases import CASES, FAMILY_TARGETS, build_family, case, family_cases, load_export, random_specs  # noqa: E402

from osc_design import BackendUnavailableError, GraphBuilder, SpecError, Target, UnknownBackendError  # noqa: E402
from osc_design.backends import (  # noqa: E402
    available_backends,
    copy_weights,
    cross_check,
    get_backend,
    random_weights,
    resolve_input_size,
    verify,
)
from osc_design.backends import jax as jb  # noqa: E402
from osc_design.backends import torch as tb  # noqa: E402


@pytest.mark.parametrize("name", CASES)
def test_same_weights_same_outputs(name):
    result = cross_check(case(name), batch=2, seed=4)
    assert result.ok, result
    assert result.max_abs_diff < 1e-4


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_specs())
def test_random_graphs_agree(spec):
    assert cross_check(spec, batch=1, seed=0).ok


@pytest.mark.parametrize("fid, tid", family_cases(("k7-s1", "k5x3-s2")))
def test_registered_families_agree(fid, tid):
    spec = build_family(fid, FAMILY_TARGETS[tid])
    if spec is None:
        pytest.skip(f"{fid} does not apply to {FAMILY_TARGETS[tid].describe()}")
    assert cross_check(spec, batch=1).ok


def test_copy_weights_both_ways():
    spec = case("all-ops")
    t1, t2 = tb.build_module(spec, seed=1).eval(), tb.build_module(spec, seed=2).eval()
    j = jb.build_module(spec, seed=3)
    tb.set_weights(t1, spec, random_weights(spec, seed=5))  # non-trivial batch-norm statistics too
    copied = copy_weights(t1, j, spec)
    assert set(copied) == {"conv1", "conv2", "conv3", "bn1"}
    copy_weights(j, t2, spec)
    for k, v in t1.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        torch.testing.assert_close(t2.state_dict()[k], v, rtol=0, atol=0)
    x = np.random.default_rng(0).standard_normal((2, 8, 16, 16)).astype(np.float32)
    with torch.no_grad():
        yt = t1(torch.from_numpy(x)).numpy()
    yj = np.asarray(j(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(yj, yt, rtol=1e-4, atol=1e-4)


def test_copy_weights_rejects_other_objects():
    with pytest.raises(UnknownBackendError, match="neither"):
        copy_weights(object(), object(), case("rect-even"))


def test_verify_all_runs_every_backend_and_cross_checks():
    spec = case("shift-add")
    report = verify(spec, "all", batch=2)
    assert report.ok, str(report)
    assert [c.backend for c in report.checks] == (["torch"] * 3 + ["jax"] * 4 + ["onnxruntime"] * 5
                                                  + ["torch+jax", "torch+onnxruntime"])
    assert report.input_size == (16, 16)  # max(16, 2 * 5)
    assert report.skipped == {}
    text = str(report)
    assert "shift-add" in text and "xla_flops" in text and "MISMATCH" not in text


def test_verify_rejects_bad_arguments():
    spec = case("rect-even")
    with pytest.raises(UnknownBackendError, match="unknown backend 'tf'"):
        verify(spec, "tf")
    with pytest.raises(SpecError, match="batch"):
        verify(spec, "torch", batch=0)
    with pytest.raises(SpecError, match="single backend"):
        verify(spec, "all", module=tb.build_module(spec))


def test_input_size_resolution():
    with_size = case("rect-even")  # target input size 9 x 13
    assert resolve_input_size(with_size) == (9, 13)
    assert resolve_input_size(with_size, (9, 13)) == (9, 13)
    with pytest.raises(SpecError, match="differs from the target"):
        resolve_input_size(with_size, 12)
    without = case("grouped-dilated-strided")  # 3x3 kernel, no input size
    assert resolve_input_size(without) == (16, 16)
    assert resolve_input_size(without, 11) == (11, 11)
    assert resolve_input_size(without, (6, 9)) == (6, 9)
    large = GraphBuilder(Target(2, 2, (11, 3)))
    assert resolve_input_size(large.build(large.conv2d(large.input, 2, (11, 3), padding=(5, 1)))) == (22, 22)
    with pytest.raises(SpecError):
        resolve_input_size(without, 0)


def test_get_backend_and_available_backends():
    assert get_backend("torch") is tb.BACKEND and tb.BACKEND.layout == "NCHW"
    assert get_backend("jax") is jb.BACKEND and jb.BACKEND.layout == "NHWC"
    assert available_backends() == ["torch", "jax", "onnxruntime"]
    with pytest.raises(UnknownBackendError, match="expected one of torch, jax"):
        get_backend("tensorflow")


@pytest.mark.parametrize("name, blocked", [("torch", "torch"), ("jax", "jax"), ("jax", "flax")])
def test_missing_framework_names_the_extra(monkeypatch, name, blocked):
    monkeypatch.setitem(sys.modules, blocked, None)  # makes `import <blocked>` raise ImportError
    with pytest.raises(BackendUnavailableError, match=rf"pip install 'osc-design\[{name}\]'") as info:
        get_backend(name)
    assert isinstance(info.value, ImportError)
    assert name not in available_backends()
    with pytest.raises(BackendUnavailableError):
        verify(case("rect-even"), name)
    report = verify(case("rect-even"), "all")
    assert set(report.skipped) == {name}
    assert "pip install" in report.skipped[name]
    ran = {c.backend for c in report.checks if "+" not in c.backend}
    assert report.ok and ran == {"torch", "jax", "onnxruntime"} - {name}


@pytest.mark.parametrize("name", ["all-ops", "odd-ids", "depthwise-large"])
def test_exported_torch_and_jax_modules_agree(tmp_path, name):
    spec = case(name)
    mod_t, _ = load_export(tmp_path, spec, "torch")
    mod_j, _ = load_export(tmp_path, spec, "jax")
    result = cross_check(spec, torch_module=mod_t.OscDesign(), jax_module=mod_j.OscDesign(), seed=2)
    assert result.ok, result
