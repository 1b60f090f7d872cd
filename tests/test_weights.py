"""osc_design.weights: dense kernels against torch's Jacobian, projections against independent optima."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osc_design import Target
from osc_design.ops import BatchNorm, Conv2d, shuffle_permutation
from osc_design.registry import get_family
from osc_design.transform import with_output_bias
from osc_design.weights import dense_bias, dense_kernel, expand_groups, kernel_window, project

torch = pytest.importorskip("torch")

# (family, target, options): small designs whose dense kernel lies in the target's window
CASES = [
    ("conv", Target(4, 6, 3), {}),
    ("grouped", Target(4, 6, 3, stride=2), {}),
    ("depthwise-separable", Target(4, 6, 3), {}),
    ("spatial-separable", Target(4, 4, (3, 5), stride=2), {}),
    ("depthwise-spatial-separable", Target(4, 6, 3), {}),
    ("bsconv-u", Target(4, 6, 5), {"with_bn": True}),
    ("bsconv-s", Target(8, 6, 3), {"p": 0.25}),
    ("compconv", Target(6, 6, 3), {"depth": 1}),
    ("slak", Target(3, 4, 5), {"small_kernel": 3}),
    ("shiftwise", Target(3, 4, 9), {"small_kernel": 3}),
    ("osc-2", Target(8, 8, 3), {}),
    ("osc-2", Target(8, 16, 5, stride=2), {}),
    ("osc", Target(8, 8, 3), {}),
]


def test_cases_cover_every_family():
    from osc_design.registry import family_ids

    assert {c[0] for c in CASES} == set(family_ids())


def _random_params(spec, rng, window_only=True):
    """Random conv weights (and batch-norm arrays); a compconv tail kernel is kept to its centre tap so the
    design's kernel stays in the target's window."""
    params = {}
    for node in spec.nodes:
        if isinstance(node, Conv2d):
            w = rng.standard_normal(node.weight_shape)
            if window_only and spec.family == "compconv" and node.id == "A0":
                centre = np.zeros_like(w)
                centre[:, :, node.kernel_size[0] // 2, node.kernel_size[1] // 2] = w[:, :, 0, 0]
                w = centre
            params[node.id] = {"weight": w}
            if node.bias:
                params[node.id]["bias"] = rng.standard_normal(node.out_channels)
        elif isinstance(node, BatchNorm):
            c = node.num_features
            params[node.id] = {"weight": rng.uniform(0.5, 2, c), "bias": rng.standard_normal(c),
                               "running_mean": rng.standard_normal(c), "running_var": rng.uniform(0.5, 2, c)}
    return params


def _build(case):
    family, target, options = case
    return get_family(family).build(target, **options)


def _in_window(spec, d):
    """The target-window part of a dense kernel, and whether everything outside it is zero."""
    t, win = spec.target, kernel_window(spec)
    y, x = win.index((-t.padding[0], -t.padding[1]))
    inner = d[:, :, y:y + t.kernel_size[0], x:x + t.kernel_size[1]]
    return inner, np.isclose(np.linalg.norm(d), np.linalg.norm(inner), rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1].describe()}")
def test_projecting_a_design_of_the_family_recovers_it(case):
    spec = _build(case)
    rng = np.random.default_rng(1)
    params = _random_params(spec, rng)
    for node in spec.nodes:  # the projection sets batch norms to the identity: draw the design that way
        if isinstance(node, BatchNorm):
            params[node.id] = {"running_var": np.full(node.num_features, 1 - 1e-5)}
    w, inside = _in_window(spec, dense_kernel(spec, params))
    assert inside
    found = project(spec, w, max_iter=2000)
    assert found.error < 1e-10, (found.method, found.error)
    assert np.allclose(_in_window(spec, found.dense())[0], w, atol=1e-9 * np.abs(w).max())


def _jacobian_check(spec, params):
    module = _torch_module(spec, params)
    win = kernel_window(spec)
    s = spec.target.stride
    n = 4 * max(win.size) + 3 * max(s)
    out_size = spec.spatial_sizes((n, n))[spec.output]
    q = (out_size[0] // 2, out_size[1] // 2)

    def centre(x):
        return module(x)[0, :, q[0], q[1]]

    x0 = torch.zeros(1, spec.target.in_channels, n, n, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(centre, x0)[:, 0].numpy()
    y0, x0_ = q[0] * s[0] + win.lo[0], q[1] * s[1] + win.lo[1]
    d = dense_kernel(spec, params)
    assert np.allclose(jac[:, :, y0:y0 + win.size[0], x0_:x0_ + win.size[1]], d, atol=1e-12)
    assert np.isclose(np.abs(jac).sum(), np.abs(d).sum(), rtol=1e-12)  # nothing outside the window
    with torch.no_grad():
        assert np.allclose(centre(x0).numpy(), dense_bias(spec, params), atol=1e-12)


def _torch_module(spec, params):
    from osc_design.backends.torch import build_module, set_weights

    module = build_module(spec, dtype=torch.float64)
    set_weights(module, spec, params)
    return module.eval()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1].describe()}")
def test_dense_kernel_is_the_jacobian_of_the_torch_module(case):
    spec = _build(case)
    if spec.node_map[spec.output].op == "conv2d":
        spec = with_output_bias(spec)
    _jacobian_check(spec, _random_params(spec, np.random.default_rng(2), window_only=False))


def _rel_tail(blocks, ranks, total):
    """sqrt(sum of the squared singular values past each block's rank) / total: the Eckart-Young optimum."""
    tail = 0.0
    for mat, rank in zip(blocks, ranks, strict=True):
        s = np.linalg.svd(mat, compute_uv=False)
        tail += float(np.sum(s[rank:] ** 2))
    return np.sqrt(tail) / total


def _optimum(family, spec, w):
    """The best error of the family for ``w``, computed here from numpy SVDs of the reshaped kernel."""
    c_out, c_in, kh, kw = w.shape
    total = np.linalg.norm(w)
    if family == "depthwise-separable":  # rank 1 per input channel: (C_out) x (kh kw)
        return _rel_tail([w[:, i].reshape(c_out, -1) for i in range(c_in)], [1] * c_in, total)
    if family == "bsconv-u":  # rank 1 per output channel: (C_in) x (kh kw)
        return _rel_tail([w[o].reshape(c_in, -1) for o in range(c_out)], [1] * c_out, total)
    if family == "spatial-separable":  # (C_out kw) x (C_in kh), rank C_out
        return _rel_tail([w.transpose(0, 3, 1, 2).reshape(c_out * kw, c_in * kh)], [c_out], total)
    if family == "grouped":
        g = spec.convs[0].groups
        mask = expand_groups(np.ones((c_out, c_in // g, kh, kw)), c_in)
        return np.linalg.norm(w * (1 - mask)) / total
    return _monarch_optimum(spec, w)


def _monarch_optimum(spec, w):
    """osc-2, stage 1 ``(K x 1)`` or ``(K x K)``, stage 2 ``(1 x K)`` or ``(1 x 1)``, grouped, a shuffle (or
    none) between: one block per (stage-1 group, stage-2 group), rows (o, stage-2 taps), columns (i, stage-1
    taps), rank the number of mid channels routed between the two groups."""
    a, b = spec.convs
    shuffles = [n for n in spec.nodes if n.op == "channel_shuffle"]
    perm = shuffle_permutation(a.out_channels, shuffles[0].groups) if shuffles else tuple(range(a.out_channels))
    in_a, out_a = a.in_channels // a.groups, a.out_channels // a.groups
    in_b, out_b = b.in_channels // b.groups, b.out_channels // b.groups
    assert b.kernel_size == (1, 1) or (a.kernel_size[1], b.kernel_size[0]) == (1, 1)
    blocks, ranks = [], []
    for g1 in range(a.groups):
        for g2 in range(b.groups):
            rank = sum(1 for q in range(g2 * in_b, (g2 + 1) * in_b) if perm[q] // out_a == g1)
            sub = w[g2 * out_b:(g2 + 1) * out_b, g1 * in_a:(g1 + 1) * in_a]  # (o, i, y, x)
            if b.kernel_size == (1, 1):
                blocks.append(sub.reshape(out_b, -1))
            else:
                blocks.append(sub.transpose(0, 3, 1, 2).reshape(out_b * sub.shape[3], in_a * sub.shape[2]))
            ranks.append(rank)
    return _rel_tail(blocks, ranks, np.linalg.norm(w))


CLOSED = [("depthwise-separable", Target(5, 7, 3, stride=2)), ("bsconv-u", Target(6, 4, 5)),
          ("spatial-separable", Target(3, 4, (5, 3))), ("grouped", Target(6, 4, 3)),
          ("osc-2", Target(64, 64, 3)), ("osc-2", Target(32, 64, 3)), ("osc-2", Target(32, 32, 5))]


@pytest.mark.parametrize("family,target", CLOSED, ids=lambda v: str(v))
def test_closed_forms_equal_the_independent_optimum(family, target):
    spec = get_family(family).build(target)
    w = np.random.default_rng(3).standard_normal((target.out_channels, target.in_channels, *target.kernel_size))
    found = project(spec, w, method="closed")
    assert found.method == "closed form"
    assert np.isclose(found.error, _optimum(family, spec, w), rtol=1e-9, atol=1e-12)
    assert np.isclose(np.linalg.norm(found.dense() - w) / np.linalg.norm(w), found.error, rtol=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(CLOSED), st.integers(0, 2**32 - 1))
def test_no_perturbation_lowers_a_closed_form_error(case, seed):
    family, target = case
    spec = get_family(family).build(target)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((target.out_channels, target.in_channels, *target.kernel_size))
    found = project(spec, w, method="closed")
    for _ in range(3):
        moved = {nid: {k: v + 1e-3 * rng.standard_normal(v.shape) for k, v in arrays.items()}
                 for nid, arrays in found.params.items()}
        err = np.linalg.norm(dense_kernel(spec, moved) - w) / np.linalg.norm(w)
        assert err >= found.error - 1e-12


@pytest.mark.parametrize("family,target", CLOSED[:3] + [("osc-2", Target(16, 16, 3))], ids=lambda v: str(v))
def test_the_iterative_fit_from_a_random_start_matches_the_closed_form(family, target):
    spec = get_family(family).build(target)
    w = np.random.default_rng(4).standard_normal((target.out_channels, target.in_channels, *target.kernel_size))
    closed = project(spec, w, method="closed")
    fitted = project(spec, w, method="iterative", init="random", max_iter=3000)
    assert fitted.method == "iterative"
    assert fitted.error == pytest.approx(closed.error, rel=1e-6)


@pytest.mark.parametrize("family", ["osc", "bsconv-s", "depthwise-spatial-separable"])
def test_the_iterative_fit_never_ends_above_its_sweep_start(family):
    spec = get_family(family).build(Target(8, 8, 3))
    w = np.random.default_rng(5).standard_normal((8, 8, 3, 3))
    found = project(spec, w, max_iter=30)
    assert found.method == "iterative" and found.start_error is not None
    assert found.error <= found.start_error


def test_bias_and_grouped_weight_are_carried():
    spec = with_output_bias(get_family("osc-2").build(Target(8, 8, 3)))
    rng = np.random.default_rng(6)
    w, b = rng.standard_normal((8, 4, 3, 3)), rng.standard_normal(8)  # a grouped (g = 2) trained conv
    found = project(spec, w, b)
    assert found.bias_error < 1e-12 and np.allclose(found.bias(), b)
    assert np.isclose(np.linalg.norm(found.dense() - expand_groups(w, 8)) / np.linalg.norm(w), found.error)
    assert project(get_family("osc-2").build(Target(8, 8, 3)), w, b).bias_error == pytest.approx(1.0)


def test_bad_arguments_are_named():
    from osc_design.errors import SpecError

    spec = get_family("osc").build(Target(8, 8, 3))
    with pytest.raises(SpecError, match="`weight` has shape"):
        project(spec, np.zeros((8, 8, 5, 5)))
    with pytest.raises(SpecError, match="no exact closed form"):
        project(spec, np.zeros((8, 8, 3, 3)), method="closed")
    with pytest.raises(SpecError, match="`method`"):
        project(spec, np.zeros((8, 8, 3, 3)), method="svd")


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((np.ones((8, 8, 3, 3)) + 1j,), {}, r"^`weight` must be an array of real numbers, got dtype complex128 of shape "
                                         r"\(8, 8, 3, 3\)$"),
    ((np.full((8, 8, 3, 3), None),), {}, "^`weight` must be an array of real numbers, got dtype object"),
    (([[1.0], [1.0, 2.0]],), {}, r"^`weight` \(list\) is not an array of numbers"),
    ((np.full((8, 8, 3, 3), np.nan),), {}, r"^`weight` \(shape \(8, 8, 3, 3\)\) contains NaN"),
    ((np.zeros((8, 8, 3, 3)), np.full(8, np.inf)), {}, r"^`bias` \(shape \(8,\)\) contains inf \(8 of 8 values\)$"),
    ((np.zeros((8, 8, 3, 3)), np.array([np.nan] + [0.0] * 7)), {}, r"^`bias` \(shape \(8,\)\) contains NaN \(1 of"),
    ((np.zeros((8, 8, 3, 3)), np.zeros(8, dtype=complex)), {}, "^`bias` must be an array of real numbers"),
    ((np.zeros((8, 8, 3, 3)),), {"max_iter": 0}, r"^`max_iter` \(=0\) must be >= 1$"),
    ((np.zeros((8, 8, 3, 3)),), {"max_iter": 2.5}, r"^`max_iter` \(=2.5\) must be an integer$"),
    ((np.zeros((8, 8, 3, 3)),), {"seed": "x", "init": "random"}, r"^`seed` \(='x'\) must be an integer$"),
    ((np.zeros((8, 8, 3, 3)),), {"seed": -1}, r"^`seed` \(=-1\) must be >= 0$"),
])
def test_bad_arrays_and_numbers_are_named_in_one_line(args, kwargs, message):
    from osc_design.errors import SpecError

    spec = get_family("osc").build(Target(8, 8, 3))
    with pytest.raises(SpecError, match=message) as caught:
        project(spec, *args, **kwargs)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 250


def test_a_fresh_seed_and_numpy_or_torch_numbers_are_accepted():
    spec = get_family("depthwise-separable").build(Target(4, 6, 3))
    w = np.random.default_rng(13).standard_normal((6, 4, 3, 3))
    found = project(spec, torch.from_numpy(w).float(), np.arange(6), method="iterative", seed=None, max_iter=5)
    assert found.bias_error is not None and found.bias_error > 0.5  # no node carries a bias: it stays unfitted
    assert np.isfinite(found.error)


def _structured_model():
    """A CNN whose second conv is itself depthwise separable (so projecting it is exact)."""
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=True))
    return model


def _make_separable(model):
    rng = np.random.default_rng(7)
    dw, pw = rng.standard_normal((8, 3, 3)), rng.standard_normal((8, 8))
    with torch.no_grad():
        model[2].weight.copy_(torch.from_numpy(np.einsum("oi,iyx->oiyx", pw, dw)))


def test_convert_with_projected_weights_keeps_an_exact_layer_and_reports_errors():
    from osc_design.networks.convert import convert
    from osc_design.networks.extract import extract_network
    from osc_design.networks.plan import plan_network

    model = _structured_model()
    layers = extract_network(model, (3, 12, 12)).layers[1:]
    plan = plan_network(layers, "depthwise-separable")
    model = model.double()
    _make_separable(model)
    converted, report = convert(model, plan, weights="project", report=True)
    assert list(report) == ["2"] and report["2"].error < 1e-10
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    assert torch.allclose(converted(x), model(x), atol=1e-10)
    randomised, empty = convert(model, plan, weights="random", report=True)
    assert empty == {} and not torch.allclose(randomised(x), model(x))


@pytest.mark.parametrize("to", ["torch", "jax", "onnx"])
def test_export_with_weights_writes_a_module_that_starts_from_the_projection(tmp_path, to):
    from typer.testing import CliRunner

    from osc_design import save
    from osc_design.cli import app

    if to == "jax":
        pytest.importorskip("flax")
    if to == "onnx":
        pytest.importorskip("onnx")
    spec = get_family("osc-2").build(Target(8, 8, 3))
    rng = np.random.default_rng(8)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    save(spec, tmp_path / "d.json")
    np.savez(tmp_path / "w.npz", weight=w)
    torch.save({"weight": torch.from_numpy(w)}, tmp_path / "w.pt")
    expected = project(spec, w).params
    for name in ("w.npz", "w.pt"):
        out = tmp_path / (f"m_{to}.py" if to != "onnx" else "m.onnx")
        result = CliRunner().invoke(app, ["export", str(tmp_path / "d.json"), "--to", to, "--weights",
                                          str(tmp_path / name), "-o", str(out)])
        assert result.exit_code == 0, result.output
        if to == "onnx":
            import onnx

            from osc_design.backends.onnx import get_weights as onnx_weights

            got = onnx_weights(onnx.load(str(out)), spec)
            for nid, arrays in expected.items():
                assert np.allclose(got[nid]["weight"], arrays["weight"], atol=1e-5)
            continue
        namespace: dict = {}
        exec(compile(out.read_text(), str(out), "exec"), namespace)
        module = namespace["OscDesign"]()
        if to == "torch":
            from osc_design.backends.torch import get_weights
        else:
            from osc_design.backends.jax import get_weights
        got = get_weights(module, spec)
        for nid, arrays in expected.items():
            assert np.allclose(got[nid]["weight"], arrays["weight"], atol=1e-5)
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "d.json"), "--weights", str(tmp_path / "d.json")])
    assert bad.exit_code == 2 and "--weights" in bad.output


def _exported_output(out, to, x):
    """The output (NCHW, float64) of the module or model ``export`` wrote to ``out``, on NCHW ``x``."""
    if to == "onnx":
        import onnxruntime

        from osc_design.backends.onnx import INPUT

        return onnxruntime.InferenceSession(str(out)).run(None, {INPUT: x.astype(np.float32)})[0]
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    module = namespace["OscDesign"]()
    if to == "torch":
        with torch.no_grad():
            return module(torch.from_numpy(x.astype(np.float32))).numpy()
    return np.asarray(module(x.transpose(0, 2, 3, 1).astype(np.float32))).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("to", ["torch", "jax", "onnx"])
def test_export_with_weights_keeps_the_trained_bias_of_a_design_without_one(tmp_path, to):
    from typer.testing import CliRunner

    from osc_design import save
    from osc_design.cli import app

    pytest.importorskip({"torch": "torch", "jax": "flax", "onnx": "onnxruntime"}[to])
    spec = get_family("depthwise-separable").build(Target(4, 6, 3))  # no bias node
    rng = np.random.default_rng(11)
    dw, pw, b = rng.standard_normal((4, 3, 3)), rng.standard_normal((6, 4)), rng.standard_normal(6)
    w = np.einsum("oi,iyx->oiyx", pw, dw)  # exactly depthwise separable: the design reproduces the conv
    save(spec, tmp_path / "d.json")
    np.savez(tmp_path / "w.npz", weight=w, bias=b)
    out = tmp_path / ("m.onnx" if to == "onnx" else f"m_{to}.py")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "d.json"), "--to", to, "--weights",
                                      str(tmp_path / "w.npz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "bias error 0" in result.output
    x = rng.standard_normal((2, 4, 16, 16))  # the ONNX model fixes the default size
    dense = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1)
    np.testing.assert_allclose(_exported_output(out, to, x), dense.numpy(), rtol=1e-4, atol=1e-4)


def test_export_refuses_a_bias_the_design_cannot_carry(tmp_path):
    from typer.testing import CliRunner

    from osc_design import save
    from osc_design.cli import app

    save(get_family("compconv").build(Target(6, 6, 3), depth=1), tmp_path / "d.json")  # ends in a shuffle
    rng = np.random.default_rng(12)
    np.savez(tmp_path / "w.npz", weight=rng.standard_normal((6, 6, 3, 3)), bias=rng.standard_normal(6))
    result = CliRunner().invoke(app, ["export", str(tmp_path / "d.json"), "--weights", str(tmp_path / "w.npz")])
    assert result.exit_code == 2 and "cannot carry" in result.output and "'--weights'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    np.save(tmp_path / "c.npy", np.ones((6, 6, 3, 3), dtype=complex))  # not cast to real on loading
    result = CliRunner().invoke(app, ["export", str(tmp_path / "d.json"), "--weights", str(tmp_path / "c.npy")])
    assert result.exit_code == 2 and "got dtype complex128" in result.output


@pytest.mark.parametrize("family", ["depthwise-separable", "osc-2", "osc"])
def test_a_dilated_design_is_recovered_from_its_taps_on_the_dilated_grid(family):
    from osc_design.networks.plan import dilate

    plain = get_family(family).build(Target(8, 8, 3))
    spec = dilate(plain, Target(8, 8, 3, padding=(2, 3), dilation=(2, 3)))
    params = _random_params(spec, np.random.default_rng(4))
    d = dense_kernel(spec, params)
    win = kernel_window(spec)
    assert win.size == (5, 7)  # the dilated window
    taps = d[:, :, ::2, ::3]
    assert np.isclose(np.linalg.norm(taps), np.linalg.norm(d), rtol=1e-12)  # nothing between the taps
    found = project(spec, taps, max_iter=2000)
    assert found.error < 1e-10, (found.method, found.error)


def test_convert_projects_a_dilated_conv_onto_its_dilated_design():
    from torch import nn

    from osc_design.networks.convert import convert
    from osc_design.networks.extract import extract_network
    from osc_design.networks.plan import plan_network

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=True)).double()
    _make_separable(model)
    plan = plan_network(extract_network(model, (3, 16, 16)).layers[1:], "depthwise-separable")
    assert plan.layers[0].chosen.spec is not None  # the dilated conv is planned, not kept
    converted, report = convert(model, plan, weights="project", report=True)
    assert report["2"].error < 1e-10
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(converted(x), model(x), atol=1e-10)


def test_export_refuses_a_pickled_module_as_weights_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from osc_design import save
    from osc_design.cli import app

    save(get_family("osc-2").build(Target(8, 8, 3)), tmp_path / "d.json")
    torch.save(torch.nn.Conv2d(8, 8, 3), tmp_path / "module.pt")  # a whole module: not loaded (no unpickling)
    result = CliRunner().invoke(app, ["export", str(tmp_path / "d.json"), "--weights", str(tmp_path / "module.pt")])
    assert result.exit_code == 2 and "holds no plain tensors" in result.output
    assert "internal error" not in result.output and len(result.output.strip().splitlines()) == 1
