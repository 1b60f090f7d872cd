"""Operator families: paper figures, closed forms == exact graph counts, geometry, coverage, option errors.

Reference numbers come from papers.md (sections 0, 2.7, 3.6, 4.6) or are hand arithmetic written out
here; the geometry checks use the independent numpy evaluator of tests/reference.py.
"""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import osc_design.families as fam
from osc_design import SpecError, Target, cost, coverage
from osc_design.registry import _REGISTRY, get_family
from osc_design.serialize import to_dict
from tests.reference import brute_force_offsets

IDS = ["conv", "grouped", "depthwise-separable", "spatial-separable", "depthwise-spatial-separable", "bsconv-u",
       "bsconv-s", "compconv", "slak", "shiftwise"]


def params(family, target, **options):
    return cost(fam.FAMILIES[family].build(target, **options)).params


def macs(family, target, **options):
    return cost(fam.FAMILIES[family].build(target, **options)).macs


# --------------------------------------------------------------------------------------------------------
# registration and import hygiene
# --------------------------------------------------------------------------------------------------------


def test_registered_ids_in_order():
    assert list(fam.FAMILIES) == IDS + ["osc-2", "osc"] == list(_REGISTRY)  # one registry, one order
    for fid in IDS:
        assert _REGISTRY[fid] is fam.FAMILIES[fid]
        assert fam.FAMILIES[fid].certainty in ("verified", "reconstructed")
        spec = fam.FAMILIES[fid].build(Target(16, 16, 7, input_size=9))
        assert spec.family == fid


def test_closed_forms_of_every_registered_family_by_id():
    # the solver's families go through the same registry as the rivals (count_params used to refuse them)
    t = Target(256, 256, 7, input_size=14)
    for fid in ("osc", "osc-2", "conv"):
        built = cost(get_family(fid).build(t))
        assert fam.count_params(fid, t) == built.params
        assert fam.count_macs(fid, t) == built.macs
    with pytest.raises(SpecError, match="unknown family 'nope'"):
        fam.count_params("nope", t)


def test_design_carries_the_solution_only_for_solver_families():
    t = Target(64, 64, 5, input_size=12)
    osc = get_family("osc").design(t)
    assert osc.solution is not None and osc.spec is osc.solution.spec
    assert osc.solution.cost == cost(osc.spec) and osc.solution.certificate.gap >= 0
    two = get_family("osc-2").design(t)
    assert two.solution is not None and two.solution.spec.stages <= 2
    plain = get_family("bsconv-u").design(t, with_bn=True)
    assert plain.solution is None and plain.spec == get_family("bsconv-u").build(t, with_bn=True)


@pytest.mark.parametrize("module", ["_common", "dense", "separable", "bsconv", "compconv", "large_kernel", "osc"])
def test_docstring_examples_of_each_family_module(module):
    result = doctest.testmod(importlib.import_module(f"osc_design.families.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("module", ["osc_design.families", "osc_design.compare"])
def test_import_does_not_load_sympy_or_scipy(module):
    code = (f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] in ('sympy', 'scipy')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("fid", IDS)
def test_specs_round_trip_through_json(fid):
    from osc_design import dumps, loads

    options = {"small_kernel": 3} if fid in ("slak", "shiftwise") else {}
    spec = fam.FAMILIES[fid].build(Target(64, 48, 7, stride=2, input_size=15), **options)
    assert loads(dumps(spec)) == spec


def test_symbols_are_module_attributes():
    s = fam.symbols()
    assert list(s) == list(fam.SYMBOL_NAMES)
    assert fam.C_in is s["C_in"] and fam.W_out is s["W_out"]
    with pytest.raises(AttributeError):
        fam.not_a_symbol  # noqa: B018


# --------------------------------------------------------------------------------------------------------
# papers.md section 0: baselines
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "c", "k", "expected"),
    [
        ("conv", 256, 3, 589_824),
        ("conv", 256, 7, 3_211_264),
        ("depthwise-separable", 256, 3, 67_840),  # 2 304 + 65 536
        ("depthwise-separable", 256, 7, 78_080),
        ("spatial-separable", 256, 3, 393_216),  # 2 K C^2
        ("spatial-separable", 256, 7, 917_504),
        ("depthwise-spatial-separable", 256, 3, 1_536 + 65_536),  # 2 K C depthwise + C^2 pointwise
        ("bsconv-u", 256, 3, 67_840),  # papers.md 3.6, bias=False
        ("bsconv-s", 256, 3, 35_072),  # M' = 64: 256*64 + 64*256 + 9*256
    ],
)
def test_published_params(family, c, k, expected):
    t = Target(c, c, k)
    assert params(family, t) == expected
    assert fam.count_params(family, t) == expected


def test_published_macs_and_ratio():
    t = Target(256, 256, 3, input_size=56)
    assert macs("depthwise-separable", t) == 212_746_240  # 56*56*67 840
    assert Fraction(params("depthwise-separable", t), params("conv", t)) == Fraction(1, 256) + Fraction(1, 9)
    assert fam.depthwise_part(Target(256, 256, 3), "depthwise-spatial-separable").params == 1_536


# --------------------------------------------------------------------------------------------------------
# BSConv (papers.md 3.6)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "p", "expected"), [(3, 0.25, 3), (10, 0.25, 4), (64, 0.25, 16), (32, 0.5, 16),
                                                 (256, 0.25, 64), (1, 1, 1), (100, 1, 100)])
def test_bsconv_mid_channels(m, p, expected):
    assert fam.bsconv_mid_channels(m, p) == expected
    spec = fam.build_bsconv_s(Target(m, 8, 3), p=p)
    assert spec.node_map["pw1"].out_channels == expected


def test_bsconv_s_with_bn_and_mid_bound():
    assert params("bsconv-s", Target(256, 256, 3), with_bn=True) == 35_072 + 2 * 64 + 2 * 256  # 35 712
    # min_mid raises the bottleneck: 256 * 0.25 = 64 < 100
    assert params("bsconv-s", Target(256, 256, 3), min_mid=100) == 256 * 100 + 100 * 256 + 9 * 256
    # p is an exact decimal: 0.1 * 70 = 7 (binary float would give 7.000000000000001 -> 8)
    assert fam.bsconv_mid_channels(70, 0.1) == 7


def test_bsconv_stride_puts_pointwise_at_input_resolution():
    t = Target(32, 64, 3, stride=2, input_size=16)  # output 8x8
    pointwise = 16 * 16 * 32 * 64
    depthwise = 8 * 8 * 64 * 9
    assert macs("bsconv-u", t) == pointwise + depthwise == 561_152
    assert params("bsconv-u", t, with_bn=True) == 32 * 64 + 9 * 64 + 2 * 64
    mid = 8  # ceil(0.25 * 32)
    assert macs("bsconv-s", t) == 16 * 16 * (32 * mid + mid * 64) + depthwise


# --------------------------------------------------------------------------------------------------------
# CompConv (papers.md 2.7)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("c_out", "d", "prim", "dropped"), [(256, 2, 43, 2), (512, 3, 37, 6), (64, 3, 5, 6),
                                                             (28, 3, 2, 0)])
def test_compconv_prim_and_dropped_channels(c_out, d, prim, dropped):
    assert fam.compconv_prim(c_out, d) == prim
    spec = fam.build_compconv(Target(max(c_out, 64), c_out, 3), depth=d)
    tail = 2 ** (d - 1) * prim
    assert spec.node_map["A0"].out_channels == tail - dropped  # surplus channels of X_A0 dropped
    assert spec.channels(spec.output) == c_out


def test_compconv_fig2_example_channel_split():
    # d = 3, C_prim = 2 -> units X_A2, X_B2 of 2, X_A1, X_B1 of 4, X_A0, X_B0 of 8: 28 channels
    spec = fam.build_compconv(Target(32, 28, 3), depth=3)
    widths = {n: spec.channels(n) for n in ("A2", "B2", "A1", "B1", "A0", "B0")}
    assert widths == {"A2": 2, "B2": 2, "A1": 4, "B1": 4, "A0": 8, "B0": 8}


@pytest.mark.parametrize(("c_in", "d"), [(64, 1), (128, 1), (256, 2), (512, 3), (1024, 3), (2048, 3), (1, 1),
                                         (255, 1)])
def test_compconv_adaptive_depth(c_in, d):
    assert fam.compconv_depth(c_in) == d
    assert dict(fam.build_compconv(Target(c_in, c_in, 3)).options)["depth"] == d


@pytest.mark.parametrize(
    ("c", "linear", "squared", "excess", "prim"),
    [
        (256, 166_410, 232_200, 2, 43),
        (512, 418_248, 614_052, 6, 37),
        (64, 18_720, 27_648, 0, 32),
        (128, 74_304, 110_592, 0, 64),
        (2048, 6_604_416, 9_710_820, 10, 147),
    ],
)
def test_compconv_eq8_vectors_and_graph(c, linear, squared, excess, prim):
    t = Target(c, c, 3)
    d = fam.compconv_depth(c)
    assert fam.compconv_eq8(c, c, 3, d) == linear
    assert fam.compconv_eq8(c, c, 3, d, "squared") == squared
    # the graph computes only the kept channels of X_A0: eq. 8 minus the dropped channels' taps
    tail = 2 ** (d - 1) * prim
    assert params("compconv", t) == linear - 9 * excess
    assert params("compconv", t, variant="squared") == squared - 9 * tail * excess


def test_compconv_large_c_limit():
    c = 14 * 1024  # d = 3; eq. 8 (A) / vanilla -> 1/14 + 1/49 + 4/49 = 0.1735
    ratio = params("compconv", Target(c, c, 3)) / (9 * c * c)
    assert abs(ratio - (1 / 14 + 5 / 49)) < 1e-4


def test_compconv_depth0_and_coverage():
    t = Target(256, 256, 3, input_size=8)
    assert params("compconv", t, depth=0) == params("conv", t)
    cov = coverage(fam.build_compconv(t))
    # d = 2: 43 identity-copied outputs see one (channel, tap) each; the other 213 see all 256 * 9
    assert cov.covered == 213 * 256 * 9 + 43
    assert not cov.full


def test_compconv_stride_copies_through_strided_1x1():
    t = Target(256, 128, 3, stride=2, input_size=15)  # output 8x8, d = 2, C_prim = 22, 22 copies
    spec = fam.build_compconv(t)
    node = spec.node_map["copies_strided"]
    assert (node.kernel_size, node.stride, node.groups, node.out_channels) == ((1, 1), (2, 2), 22, 22)
    first = 256 * 22 * 9
    body = (44 * 44 - 0) * 9  # B0: 44 -> 44
    tail = (44 - 4) * 9  # 6 * 22 = 132 -> drop 4 of X_A0's 44
    assert params("compconv", t) == first + body + tail + 22
    assert macs("compconv", t) == 64 * (first + body + tail + 22)


# --------------------------------------------------------------------------------------------------------
# SLaK and shift-wise (papers.md 4.3, 4.6)
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "nk", "ratio"), [(51, 11, 1.85), (49, 10, 1.96), (45, 9, 2.0), (13, 3, 1.73),
                                                (5, 1, 2.0)])
def test_shiftwise_slak_ratio(m, nk, ratio):
    assert fam.shiftwise_kernels(m, 5) == nk
    assert round(float(fam.shiftwise_slak_ratio(m, 5)), 2) == ratio
    if m == 5:  # k == M: our SLaK graph is the single k x k kernel (SLaK's code keeps two k x k strips: 2.0)
        assert fam.depthwise_part(Target(8, 8, 5), "slak").params == 8 * 25
        return
    # the same ratio from the built graphs: SLaK strips (its k x k branch removed by hand) vs shift-wise kernels
    c = 8
    t = Target(c, c, m)
    slak_strips = fam.depthwise_part(t, "slak").params - c * 25
    assert Fraction(slak_strips, fam.depthwise_part(t, "shiftwise").params) == fam.shiftwise_slak_ratio(m, 5)


def test_shiftwise_kernel_counts_k3_and_47():
    assert [fam.shiftwise_kernels(m, 3) for m in (51, 47, 13)] == [17, 16, 5]
    assert fam.shiftwise_kernels(47, 5) == 10
    assert round(float(fam.shiftwise_slak_ratio(47, 5)), 2) == 1.88


def test_slak_and_shiftwise_layer_figures():
    t = Target(96, 96, 51, input_size=56)
    slak = fam.depthwise_part(t, "slak")
    assert (slak.params, slak.macs) == (51_360, 161_064_960)  # 96 * (2*51*5 + 25), * 56 * 56
    sw = fam.depthwise_part(t, "shiftwise")
    assert (sw.params, sw.macs) == (26_400, 82_790_400)  # 96 * 11 * 25, at 56 x 56
    assert params("slak", t) == 51_360 + 96 * 96


def test_slak_k_equals_m_keeps_only_the_small_branch():
    spec = fam.build_slak(Target(8, 8, 5))
    assert [c.id for c in spec.convs] == ["small", "pw"]
    assert params("slak", Target(8, 8, 5)) == 8 * 25 + 64
    spec = fam.build_slak(Target(8, 8, (5, 9)))  # the tall strip 5 x 5 merges into the k x k branch
    assert sorted(c.id for c in spec.convs) == ["pw", "small", "wide"]


def test_shiftwise_graph_is_explicit_shifts_and_one_add():
    spec = fam.build_shiftwise(Target(4, 4, 13, input_size=20))  # nk = 3
    ops = [n.op for n in spec.nodes]
    assert ops.count("shift") == 6 and ops.count("add") == 1
    shifts = {n.id: n.shift for n in spec.nodes if n.op == "shift"}
    # strip of 15 over a 13-tap window starts at tap -1; slices centred at taps 1, 6, 11; window centre 6
    assert shifts == {"h0": (0, 5), "h1": (0, 0), "h2": (0, -5), "v0": (5, 0), "v1": (0, 0), "v2": (-5, 0)}


def test_shiftwise_stride_on_pointwise():
    t = Target(8, 8, 7, stride=2, input_size=10)  # output 5x5; k = 3, nk = 3
    depthwise = 10 * 10 * 8 * 3 * 9  # stride-1 size 10 x 10
    pointwise = 5 * 5 * 8 * 8
    assert macs("shiftwise", t, small_kernel=3) == depthwise + pointwise == 23_200


def _cross(rows, cols, tall_rows, wide_cols, short_rows, short_cols):
    """Window offsets covered by a tall strip and a wide strip (both clipped to the window)."""
    tall = {(y, x) for y in tall_rows for x in short_cols}
    wide = {(y, x) for y in short_rows for x in wide_cols}
    return {(y, x) for (y, x) in tall | wide if y in rows and x in cols}


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(
    ("family", "kernel", "k", "tall", "wide"),
    [
        # 7x7, k = 3: SLaK strips are the window's rows/cols -3..3; centre band -1..1
        ("slak", (7, 7), 3, range(-3, 4), range(-3, 4)),
        # shift-wise 7x7, k = 3: nk = 3 slices span 9 taps, -4..4 (beyond the window)
        ("shiftwise", (7, 7), 3, range(-4, 5), range(-4, 5)),
        # even kernel 8x8 (window -4..3), k = 4: nk = 2 slices cover -4..3 exactly; band -2..1
        ("shiftwise", (8, 8), 4, range(-4, 4), range(-4, 4)),
        ("slak", (8, 6), 2, range(-4, 4), range(-3, 3)),
    ],
)
def test_cross_shaped_dependence_brute_force(family, kernel, k, tall, wide, stride):
    t = Target(2, 3, kernel, stride=stride, input_size=12)
    spec = fam.FAMILIES[family].build(t, small_kernel=k)
    deps = brute_force_offsets(to_dict(spec), (stride, stride), margin=8)
    kh, kw = kernel
    band_h = range(-(kh // 2) + (kh - k) // 2, -(kh // 2) + (kh - k) // 2 + k)
    band_w = range(-(kw // 2) + (kw - k) // 2, -(kw // 2) + (kw - k) // 2 + k)
    expected = {(y, x) for y in tall for x in band_w} | {(y, x) for y in band_h for x in wide}
    window = {(y, x) for y in range(-(kh // 2), kh - kh // 2) for x in range(-(kw // 2), kw - kw // 2)}
    for o in range(3):
        for c in range(2):
            assert deps[(o, c)] == expected
    covered = len(expected & window)
    assert coverage(spec).exact_fraction == Fraction(covered, kh * kw)


def test_slak_coverage_fraction_7x7():
    assert coverage(fam.build_slak(Target(16, 16, 7))).exact_fraction == Fraction(7 * 5 + 5 * 7 - 25, 49)


# --------------------------------------------------------------------------------------------------------
# geometry: stride 2, even and rectangular kernels, custom padding (brute-force dependence)
# --------------------------------------------------------------------------------------------------------

FULL = ["conv", "depthwise-separable", "spatial-separable", "depthwise-spatial-separable", "bsconv-u", "bsconv-s"]


@pytest.mark.parametrize("family", FULL)
@pytest.mark.parametrize(("kernel", "stride", "padding"), [((4, 4), 2, None), ((3, 6), (2, 1), None),
                                                           ((5, 2), 2, (1, 0)), ((1, 7), 1, None)])
def test_full_families_see_exactly_the_window(family, kernel, stride, padding):
    t = Target(3, 2, kernel, stride=stride, padding=padding, input_size=(13, 11))
    spec = fam.FAMILIES[family].build(t)
    assert spec.spatial_sizes()[spec.output] == t.output_size
    (ph, pw), (sh, sw) = t.padding, t.stride
    window = {(ty - ph, tx - pw) for ty in range(kernel[0]) for tx in range(kernel[1])}
    deps = brute_force_offsets(to_dict(spec), (sh, sw), margin=9)
    assert all(deps[(o, c)] == window for o in range(2) for c in range(3))
    assert coverage(spec).full


def test_grouped_default_and_coverage():
    assert dict(fam.build_grouped(Target(256, 256, 3)).options) == {"groups": 2}
    assert dict(fam.build_grouped(Target(9, 15, 3)).options) == {"groups": 3}
    assert dict(fam.build_grouped(Target(7, 8, 3)).options) == {"groups": 1}
    spec = fam.build_grouped(Target(12, 12, 3), groups=4)
    assert cost(spec).params == 12 * 12 * 9 // 4
    assert coverage(spec).exact_fraction == Fraction(1, 4)


def test_spatial_separable_stride_macs_by_hand():
    t = Target(16, 16, 3, stride=2, input_size=8)  # K x 1 output 4 x 8, 1 x K output 4 x 4
    assert macs("spatial-separable", t) == 4 * 8 * 3 * 16 * 16 + 4 * 4 * 3 * 16 * 16 == 36_864
    assert macs("depthwise-spatial-separable", t) == 4 * 8 * 3 * 16 + 4 * 4 * (3 * 16 + 16 * 16)


# --------------------------------------------------------------------------------------------------------
# closed forms == exact graph counts (property test)
# --------------------------------------------------------------------------------------------------------

OPTION_STRATEGIES = {
    "conv": st.just({}),
    "grouped": st.one_of(st.just({}), st.builds(lambda g: {"groups": g}, st.integers(1, 8))),
    "depthwise-separable": st.just({}),
    "spatial-separable": st.just({}),
    "depthwise-spatial-separable": st.just({}),
    "bsconv-u": st.fixed_dictionaries({}, optional={"with_bn": st.booleans()}),
    "bsconv-s": st.fixed_dictionaries({}, optional={
        "p": st.sampled_from([0.1, 0.125, 0.25, 1 / 6, 0.5, 1.0, 0.3]),
        "min_mid": st.integers(1, 8), "with_bn": st.booleans()}),
    "compconv": st.fixed_dictionaries({}, optional={
        "depth": st.integers(0, 4), "c0": st.sampled_from([1, 16, 32, 128]),
        "variant": st.sampled_from(["linear", "squared"])}),
    "slak": st.fixed_dictionaries({}, optional={"small_kernel": st.integers(1, 7)}),
    "shiftwise": st.fixed_dictionaries({}, optional={"small_kernel": st.integers(1, 7)}),
}


@st.composite
def targets(draw):
    kernel = (draw(st.integers(1, 15)), draw(st.integers(1, 15)))
    padding = draw(st.one_of(st.none(), st.tuples(st.integers(0, 8), st.integers(0, 8))))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = (kernel[0] // 2, kernel[1] // 2) if padding is None else padding
    low = [max(1, kernel[a] - 2 * pads[a]) for a in (0, 1)]
    size = (draw(st.integers(low[0], low[0] + 30)), draw(st.integers(low[1], low[1] + 30)))
    return Target(draw(st.integers(1, 300)), draw(st.integers(1, 300)), kernel, stride, padding, size)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), target=targets())
def test_closed_forms_equal_graph_counts(data, target):
    for fid in IDS:
        family = fam.FAMILIES[fid]
        options = data.draw(OPTION_STRATEGIES[fid], label=fid)
        try:
            spec = family.build(target, **options)
        except SpecError:
            with pytest.raises(SpecError):
                family.params_expr(target, **options)
            continue
        exact = cost(spec)
        assert fam.evaluate(family.params_expr(target, **options), target) == exact.params, fid
        assert fam.evaluate(family.macs_expr(target, **options), target) == exact.macs, fid


@st.composite
def large_kernel_cases(draw):
    """Targets that slak, shiftwise and compconv accept: kernel sides of one parity, a matching small kernel."""
    parity = draw(st.integers(0, 1))
    kernel = tuple(2 * draw(st.integers(1, 7)) - 1 + parity for _ in range(2))
    size = (draw(st.integers(1, 30)), draw(st.integers(1, 30)))
    target = Target(draw(st.integers(1, 300)), draw(st.integers(1, 300)), kernel,
                    (draw(st.integers(1, 2)), draw(st.integers(1, 2))), input_size=size)
    k = draw(st.sampled_from([v for v in range(1, min(kernel) + 1) if v % 2 == min(kernel) % 2]))
    return target, k


@settings(max_examples=60, deadline=None)
@given(case=large_kernel_cases(), depth=st.integers(0, 3), variant=st.sampled_from(["linear", "squared"]))
def test_closed_forms_large_kernel_families(case, depth, variant):
    target, k = case
    for fid, options in (("slak", {"small_kernel": k}), ("shiftwise", {"small_kernel": k}),
                         ("compconv", {"depth": depth if target.kernel_size[0] % 2 else 0, "variant": variant})):
        family = fam.FAMILIES[fid]
        try:
            spec = family.build(target, **options)
        except SpecError as exc:  # only compconv may refuse here: too deep for the channel counts
            assert fid == "compconv" and "depth" in str(exc), exc
            continue
        exact = cost(spec)
        assert fam.evaluate(family.params_expr(target, **options), target) == exact.params, fid
        assert fam.evaluate(family.macs_expr(target, **options), target) == exact.macs, fid


def test_closed_forms_are_symbolic():
    s = fam.symbols()
    t = Target(64, 64, 3)
    expr = fam.FAMILIES["spatial-separable"].params_expr(t)
    assert expr.free_symbols == {s["C_in"], s["C_out"], s["K_h"], s["K_w"]}
    expr = fam.FAMILIES["compconv"].params_expr(Target(512, 512, 3))
    assert "ceiling" in str(expr)
    with pytest.raises(SpecError, match="input_size"):
        fam.evaluate(fam.FAMILIES["conv"].macs_expr(t), t)


@pytest.mark.parametrize("fid", IDS)
def test_asymptotic_class(fid):
    """params(C, K) / class(C, K) stays within a constant band over a wide grid (C = C_in = C_out, K x K)."""
    import sympy
    from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application, parse_expr,
                                            standard_transformations)

    family = fam.FAMILIES[fid]
    c_sym, k_sym, g_sym = sympy.symbols("C K g")
    form = parse_expr(family.asymptotic, local_dict={"C": c_sym, "K": k_sym, "g": g_sym},
                      transformations=standard_transformations + (implicit_multiplication_application, convert_xor))
    ratios = []
    for c in (1024, 4096, 16384):
        for k in (5, 15, 31):
            t = Target(c, c, k)
            exact = fam.count_params(fid, t)
            ratios.append(exact / float(form.subs({c_sym: c, k_sym: k, g_sym: 2})))
    assert max(ratios) / min(ratios) < 8, ratios


# --------------------------------------------------------------------------------------------------------
# option errors
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "target", "options", "match"),
    [
        ("bsconv-s", Target(8, 8, 3), {"p": 1.5}, r"`p` \(=1.5\) must be in \(0, 1\]"),
        ("bsconv-s", Target(8, 8, 3), {"p": 0}, r"`p` \(=0\) must be in \(0, 1\]"),
        ("bsconv-s", Target(8, 8, 3), {"p": "x"}, r"`p` \('x'\)|`p` \(='x'\) must be a number"),
        ("bsconv-s", Target(8, 8, 3), {"min_mid": 0}, r"`min_mid` \(=0\) must be >= 1"),
        ("bsconv-u", Target(8, 8, 3), {"with_bn": 1}, r"`with_bn` \(=1\) must be true or false"),
        ("compconv", Target(8, 8, 3), {"depth": -1}, r"`depth` \(=-1\) must be >= 0"),
        ("compconv", Target(8, 8, 3), {"c0": 0}, r"`c0` \(=0\) must be >= 1"),
        ("compconv", Target(8, 8, 3), {"variant": "cubic"}, r"`variant` \(='cubic'\)"),
        ("compconv", Target(8, 3, 3), {"depth": 3}, r"`depth` \(=3\) is too deep for `out_channels` \(=3\)"),
        ("compconv", Target(2, 64, 3), {"depth": 3}, r"`depth` \(=3\) needs 15 identity-copied input channels"),
        ("compconv", Target(8, 8, 4), {"depth": 1}, r"`kernel_size` \(=\(4, 4\)\) must have odd sides"),
        ("compconv", Target(256, 256, 3, padding=0), {}, r"`padding` \(=\(0, 0\)\) is too small"),
        ("grouped", Target(12, 8, 3), {"groups": 3}, r"`groups` \(=3\) must divide `in_channels` \(=12\) and "
                                                     r"`out_channels` \(=8\); try groups in \{1, 2, 4\}"),
        ("grouped", Target(12, 8, 3), {"groups": 0}, r"`groups` \(=0\) must be >= 1"),
        ("slak", Target(8, 8, 3), {}, r"`small_kernel` \(=5\) must be <= the shorter side \(=3\)"),
        ("slak", Target(8, 8, 8), {}, r"`small_kernel` \(=5\) cannot be centred .* try small_kernel=4"),
        ("slak", Target(8, 8, 7, padding=0), {}, r"`padding` \(=\(0, 0\)\) is too small"),
        ("shiftwise", Target(8, 8, 3), {}, r"`small_kernel` \(=5\) must be <= the longer side \(=3\)"),
        ("shiftwise", Target(8, 8, 7), {"small_kernel": 0}, r"`small_kernel` \(=0\) must be >= 1"),
        ("conv", Target(8, 8, 3), {"groups": 2}, r"conv: unknown option `groups`"),
        ("slak", Target(8, 8, 7), {"k": 3}, r"slak: unknown option `k` \(=3\); options: `small_kernel`"),
    ],
)
def test_option_errors(family, target, options, match):
    with pytest.raises(SpecError, match=match):
        fam.FAMILIES[family].build(target, **options)
    with pytest.raises(SpecError, match=match):
        fam.FAMILIES[family].params_expr(target, **options)


def test_depthwise_part_errors():
    t = Target(8, 8, 7)
    with pytest.raises(SpecError, match="`family` is needed"):
        fam.depthwise_part(t)
    with pytest.raises(SpecError, match="has no depthwise part"):
        fam.depthwise_part(t, "conv")
    with pytest.raises(SpecError, match="has no depthwise part"):
        fam.depthwise_part(fam.build_conv(t))
    assert fam.depthwise_part(fam.build_slak(t)).params == 8 * (7 * 5 * 2 + 25)
