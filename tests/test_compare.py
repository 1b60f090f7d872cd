"""compare(): one row per family, exact costs, honest coverage, skipped families, best design."""

from __future__ import annotations

import dataclasses

import pytest

from osc_design import SpecError, Target, cost, solve
from osc_design.compare import Comparison, Design, best, compare, format_table, solution_document, sweep
from osc_design.registry import _REGISTRY

RIVALS = ["conv", "grouped", "depthwise-separable", "spatial-separable", "depthwise-spatial-separable", "bsconv-u",
          "bsconv-s", "compconv", "slak", "shiftwise"]


def test_compare_all_families_256_k7():
    t = Target(256, 256, 7, input_size=14)
    cmp = compare(t)
    assert isinstance(cmp, Comparison)
    # every registered family (the solver's osc / osc-2 included) is a row or skipped
    order = list(_REGISTRY)
    rows = [order.index(d.family) for d in cmp]
    assert rows == sorted(rows)  # registration order
    seen = {d.family for d in cmp} | {f for f, _ in cmp.skipped}
    assert seen == set(_REGISTRY)
    assert {d.family for d in cmp} == set(RIVALS) | {"osc", "osc-2"}  # small_kernel 5 <= 7: nothing skipped
    conv = cmp.get("conv")
    assert conv.cost.params == 256 * 256 * 49 == 3_211_264
    assert conv.cost.macs == 3_211_264 * 14 * 14
    assert conv.stages == 1 and conv.coverage.full and conv.asymptotic == "C^2 K^2"
    dws = cmp.get("depthwise-separable")
    assert dws.cost.params == 78_080 and dws.cost.macs == 78_080 * 196
    assert cmp.get("grouped").coverage.fraction == 0.5
    assert cmp.get("slak").coverage.exact_fraction == pytest.approx(45 / 49)
    assert not cmp.get("compconv").coverage.full
    # best: the fully covering design with the fewest params, found here by hand from the rows
    full = [d for d in cmp if d.coverage.full]
    fewest = min(d.cost.params for d in full)
    assert cmp.best.coverage.full and cmp.best.cost.params == fewest
    # among the rivals BSConv-S wins: 256*64 + 64*256 + 49*256 = 45 312 params
    rivals = compare(t, families=RIVALS)
    assert rivals.best.family == "bsconv-s" and rivals.best.cost.params == 45_312
    # with the solver's families the free-stage OSC wins; its design is the solver's own optimum
    assert cmp.best.family == "osc" and cmp.best.cost.params < 45_312
    assert cmp.get("osc").spec == solve(t).spec and cmp.get("osc-2").spec == solve(t, max_stages=2).spec


def test_skipped_families_are_reported():
    t = Target(64, 64, 3, input_size=8)
    cmp = compare(t, families=["conv", "slak", "shiftwise", "compconv"])
    assert [d.family for d in cmp] == ["conv", "compconv"]
    reasons = dict(cmp.skipped)
    assert set(reasons) == {"slak", "shiftwise"}
    assert "`small_kernel` (=5)" in reasons["slak"]
    assert "skipped slak:" in cmp.table()


def test_options_and_their_errors():
    t = Target(64, 64, 3)
    cmp = compare(t, families=["bsconv-s", "slak"], options={"bsconv-s": {"p": 0.5}, "slak": {"small_kernel": 3}})
    assert cmp.get("bsconv-s").cost.params == 64 * 32 + 32 * 64 + 9 * 64
    assert cmp.get("slak").spec.convs[0].kernel_size == (3, 3)
    bad_value = compare(t, families=["bsconv-s"], options={"bsconv-s": {"p": 1.5}})
    assert len(bad_value) == 0 and "`p` (=1.5)" in bad_value.skipped[0][1]
    with pytest.raises(SpecError, match="unknown option `q`"):
        compare(t, families=["bsconv-s"], options={"bsconv-s": {"q": 1}})
    with pytest.raises(SpecError, match="unknown family 'nope'"):
        compare(t, families=["nope"])
    with pytest.raises(SpecError, match="not compared"):
        compare(t, families=["conv"], options={"slak": {"small_kernel": 3}})
    with pytest.raises(SpecError, match="must be a Target"):
        compare("conv")  # type: ignore[arg-type]


def test_best_tie_breaks():
    # stride 1: depthwise-separable and bsconv-u have equal params, MACs and stages -> the id decides
    t = Target(32, 32, 3, input_size=10)
    cmp = compare(t, families=["depthwise-separable", "bsconv-u"])
    a, b = cmp.get("depthwise-separable"), cmp.get("bsconv-u")
    assert (a.cost.params, a.cost.macs, a.stages) == (b.cost.params, b.cost.macs, b.stages)
    assert cmp.best.family == "bsconv-u"
    # stride 2: bsconv-u's pointwise runs at the input resolution -> more MACs, depthwise-separable wins
    cmp = compare(Target(32, 32, 3, stride=2, input_size=10), families=["bsconv-u", "depthwise-separable"])
    assert cmp.best.family == "depthwise-separable"
    # fewer stages breaks a params+MACs tie: a copy of the row with one stage more loses
    deeper = dataclasses.replace(a, family="aaa", stages=a.stages + 1)
    assert best([deeper, a]).family == "depthwise-separable"
    # no fully covering design: None
    assert best([d for d in compare(t, families=["grouped"])]) is None


def test_comparison_is_a_sequence_and_designs_are_frozen():
    cmp = compare(Target(16, 16, 3), families=["conv", "grouped"])
    assert len(cmp) == 2 and cmp[0].family == "conv" and [d.family for d in cmp[1:]] == ["grouped"]
    assert cmp.get("slak") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmp[0].family = "x"  # type: ignore[misc]
    assert isinstance(cmp[0], Design)
    row = cmp[0].row()
    assert row["params"] == 16 * 16 * 9 and row["macs"] is None and row["full_coverage"] is True


def test_format_table():
    cmp = compare(Target(16, 16, 3, input_size=4), families=["conv", "grouped"])
    lines = format_table(cmp.designs).splitlines()
    # macs_valid at 4x4, k3, padding 1: per axis 4 * 3 - 2 = 10 (position, tap) pairs on real pixels
    assert lines[0].split() == ["family", "params", "macs", "macs_valid", "stages", "coverage"]
    assert lines[2].split() == ["conv", "2,304", "36,864", f"{16 * 16 * 10 * 10:,}", "1", "full"]
    assert lines[3].split()[-1] == "50.00%"


def test_solver_families_carry_their_certificate():
    t = Target(64, 64, 5, input_size=12)
    cmp = compare(t)
    osc = cmp.get("osc")
    assert osc.solution is not None and cmp.optimal is osc.solution
    reference = solve(t)  # an independent call of the solver
    assert osc.solution.certificate.to_dict() == reference.certificate.to_dict()
    assert osc.solution.cost == cost(osc.spec) == reference.cost
    assert all(d.solution is None for d in cmp if d.family not in ("osc", "osc-2"))
    assert compare(t, families=["conv"]).optimal is None


def test_one_row_schema_for_csv_json_and_sweep():
    t = Target(32, 32, 3, input_size=10)
    cmp = compare(t, families=["conv", "grouped", "osc"])
    keys = ["family", "params", "bias_params", "macs", "macs_valid", "flops", "stages", "coverage", "full_coverage",
            "asymptotic"]
    assert [list(r) for r in cmp.rows()] == [keys] * 3
    conv = cmp.rows()[0]
    assert conv["params"] == 32 * 32 * 9 and conv["flops"] == 2 * conv["macs"] == 2 * 32 * 32 * 9 * 100
    with_latency = cmp.rows({"grouped": {"predicted_ms": 1.5}})
    assert with_latency[1]["predicted_ms"] == 1.5 and "predicted_ms" not in with_latency[0]
    doc = cmp.to_dict(input_size_default=True)
    assert list(doc) == ["target", "input_size_default", "designs", "skipped", "best", "optimal"]
    assert [list(d) for d in doc["designs"]] == [keys + ["spec"]] * 3
    assert doc["input_size_default"] is True and doc["best"] == cmp.best.family
    assert doc["optimal"] == solution_document(solve(t)) and doc["optimal"]["certificate"]["gap"] >= 0
    assert compare(t, families=["conv"]).to_dict()["optimal"] is None
    ticks = []
    rows = sweep([t, Target(16, 16, 3, input_size=10)], families=["conv", "grouped"], progress=lambda: ticks.append(1))
    assert len(ticks) == 2 and [r["channels"] for r in rows] == [32, 32, 16, 16]
    assert list(rows[0]) == ["channels", "kernel", "input_size"] + keys + ["best"]
    assert rows[0]["input_size"] == "10x10" and [r["best"] for r in rows] == [True, False, True, False]
    with pytest.raises(SpecError, match="sweep point"):
        compare(Target(16, 32, 3, input_size=8), families=["conv"]).grid_rows()


def test_od_compare_stays_the_function_after_the_module_is_imported():
    import importlib

    import osc_design as od

    importlib.import_module("osc_design.compare")
    assert callable(od.compare) and od.compare.__module__ == "osc_design.compare"
    assert od.compare(od.Target(8, 8, 3, input_size=8)).best is not None
