"""Exported PyTorch source: the file written to disk, imported, checked with FlopCounterMode and against the
runtime module and the numpy reference; runs without osc_design; needs only PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from requested import require

require("torch")

import torch  # noqa: E402
from backend_cases import (  # noqa: E402
    CASES,
    case,
    load_export,
    np_evaluate,
    run_standalone,
)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from osc_design import cost  # noqa: E402
from osc_design.backends import random_weights, resolve_input_size  # noqa: E402
from osc_design.backends import torch as tb  # noqa: E402


@pytest.mark.parametrize("name", CASES)
def test_torch_export_counts(tmp_path, name):
    spec = case(name)
    mod, _ = load_export(tmp_path, spec, "torch")
    m = mod.OscDesign().eval()
    size = resolve_input_size(spec)
    assert mod.INPUT_SIZE == size
    x = torch.randn(2, spec.target.in_channels, *size)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = m(x)
    c = cost(spec, size)
    assert sum(p.numel() for p in m.parameters()) == c.total_params
    assert fc.get_total_flops() == 2 * 2 * c.macs
    t = spec.target
    assert y.shape == torch.nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size, t.stride, t.padding)(x).shape
    assert mod.COST["macs"] == c.macs and mod.COST["xla_flops"] == c.xla_flops


@pytest.mark.parametrize("name", CASES)
def test_exported_module_is_the_runtime_module_and_the_reference(tmp_path, name):
    spec = case(name)
    exported, _ = load_export(tmp_path, spec, "torch")
    exported = exported.OscDesign().eval()
    runtime = tb.build_module(spec, seed=0).eval()
    assert list(exported.state_dict()) == list(runtime.state_dict())
    weights = random_weights(spec, seed=4)
    tb.set_weights(exported, spec, weights)
    tb.set_weights(runtime, spec, weights)
    x = np.random.default_rng(0).standard_normal((2, spec.target.in_channels, *resolve_input_size(spec)))
    with torch.no_grad():
        y = exported(torch.from_numpy(x.astype(np.float32)))
        torch.testing.assert_close(y, runtime(torch.from_numpy(x.astype(np.float32))), rtol=0, atol=0)
    np.testing.assert_allclose(y.numpy(), np_evaluate(spec, x, weights), rtol=1e-4, atol=1e-5)


def test_exported_torch_module_exports(tmp_path):
    spec = case("all-ops")
    mod, _ = load_export(tmp_path, spec, "torch")
    m = mod.OscDesign().eval()
    x = torch.randn(1, 8, 16, 16)
    ep = torch.export.export(m, (x,))
    torch.testing.assert_close(ep.module()(x), m(x))


def test_long_permutations_load(tmp_path):
    from osc_design import GraphBuilder, Target

    b = GraphBuilder(Target(256, 256, 1, input_size=4))
    perm = list(np.random.default_rng(0).permutation(256).tolist())
    spec = b.build(b.conv2d(b.permute(b.input, perm), 256, 1, groups=16))
    mod, _ = load_export(tmp_path, spec, "torch")
    assert mod.PERMS["perm1"] == tuple(perm)
    assert mod.OscDesign().perm1.tolist() == perm


def test_exported_file_runs_without_osc_design(tmp_path):
    _, path = load_export(tmp_path, case("all-ops"), "torch", name="standalone")
    shape = run_standalone(path, "import torch", "tuple(m.OscDesign()(torch.randn(1, 8, 16, 16)).shape)", tmp_path)
    assert shape == "(1, 12, 8, 9)"
