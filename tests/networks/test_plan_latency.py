"""Network planning by predicted latency, on a fake deterministic timing law (no framework needed).

The knapsack plans are checked against brute force over every combination of a few layers'
candidates (the plan is the optimum) and the bound against the LP relaxation; per-layer choices against
the fake law applied independently of the latency model.
"""

from __future__ import annotations

import itertools

import pytest

from osc_design import InfeasibleDesignError, SpecError
from osc_design.latency import LatencyModel
from osc_design.networks.catalog import catalog_layers
from osc_design.networks.plan import layer_spec, plan_network
from tests.networks.test_plan import _distinct_layers
from tests.test_latency import Recorder, independent_latency


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("OSC_DESIGN_CACHE_DIR", str(tmp_path / "cache"))
    return LatencyModel("torch", threads=2, measure_fn=Recorder())


@pytest.mark.parametrize("policy", ["any", "osc", "bsconv-u"])
def test_latency_objective_takes_each_layers_fastest(model, policy):
    plan = plan_network(catalog_layers("cifar-resnet20"), policy, objective="latency", latency=model)
    assert plan.objective == "latency" and plan.latency_table == model.table_key.id
    for lp in plan.layers:
        keep = lp.candidates[0]
        assert keep.spec is None and keep.seconds == pytest.approx(independent_latency(layer_spec(lp.layer)))
        for c in lp.candidates[1:]:
            assert c.seconds == pytest.approx(independent_latency(c.spec))
        assert lp.chosen.seconds == min(c.seconds for c in lp.candidates)
    t = plan.totals()["latency_s"]
    assert t["before"] == pytest.approx(sum(lp.candidates[0].seconds for lp in plan.layers))
    assert t["after"] == pytest.approx(sum(lp.chosen.seconds for lp in plan.layers)) and t["after"] < t["before"]
    doc = plan.to_dict()
    assert doc["objective"] == "latency" and doc["totals"]["latency_s"]["table"] == model.table_key.id
    assert all(row["latency_ms_after"] <= row["latency_ms_before"] + 1e-12 for row in plan.rows())


def _val(c, key):
    return c.seconds if key == "latency" else getattr(c.cost, key)


def _brute_force(plan, minimise, cap_key, cap):
    best = None
    for combo in itertools.product(*(lp.candidates for lp in plan.layers)):
        if sum(_val(c, cap_key) for c in combo) <= cap * (1 + 1e-12):
            v = sum(_val(c, minimise) for c in combo)
            best = v if best is None or v < best else best
    return best


@pytest.mark.parametrize("budget, minimise, cap_key, binds", [
    ({"budget_params": 0.3, "objective": "latency"}, "latency", "total_params", False),
    ({"budget_macs": 0.4, "objective": "latency"}, "latency", "macs", False),
    ({"budget_latency": 0.4}, "total_params", "latency", True),
    ({"budget_latency": 0.5}, "total_params", "latency", True),
    ({"budget_latency": 0.7}, "total_params", "latency", True),
    ({"budget_latency": 0.8}, "total_params", "latency", False),
])
def test_budgets_with_latency_against_brute_force(model, budget, minimise, cap_key, binds):
    layers = _distinct_layers(4)
    plan = plan_network(layers, "osc", latency=model, **budget)
    frac = next(v for k, v in budget.items() if k.startswith("budget_"))

    def total(which, key):
        return sum((lp.candidates[0] if which == "before" else lp.chosen).seconds if key == "latency"
                   else getattr((lp.before if which == "before" else lp.chosen.cost), key) for lp in plan.layers)

    cap = frac * total("before", cap_key)
    # binds: each layer's own best breaks the cap, so the plan comes from the MILP, not the shortcut
    own_best = sum(_val(min(lp.candidates, key=lambda c: _val(c, minimise)), cap_key) for lp in plan.layers)
    assert (own_best > cap) == binds
    assert total("after", cap_key) <= cap * (1 + 1e-12)
    optimum = _brute_force(plan, minimise, cap_key, cap)
    got = total("after", minimise)
    assert got == pytest.approx(optimum, rel=1e-12)  # the exact optimum (MILP), not merely near it
    assert plan.bound <= optimum * (1 + 1e-9)
    assert plan.bound == pytest.approx(_lp_relaxation(plan, minimise, cap_key, cap), rel=1e-6)


def _lp_relaxation(plan, minimise, cap_key, cap):
    """The knapsack's LP relaxation (each layer a convex mix of its candidates), which the Lagrangian dual
    equals for one coupling constraint: the reported bound is as tight as a Lagrangian bound can be."""
    import numpy as np
    from scipy.optimize import linprog

    cands = [lp.candidates for lp in plan.layers]
    flat = [c for cs in cands for c in cs]
    rows, start = np.zeros((len(cands), len(flat))), 0
    for i, cs in enumerate(cands):
        rows[i, start:start + len(cs)], start = 1, start + len(cs)
    res = linprog([_val(c, minimise) for c in flat], A_ub=[[_val(c, cap_key) for c in flat]], b_ub=[cap],
                  A_eq=rows, b_eq=np.ones(len(cands)), bounds=(0, 1))
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "latency"}, "`objective` (='latency') needs a `latency` model"),
    ({"budget_latency": 0.5}, "`budget_latency` (=0.5) needs a `latency` model"),
    ({"budget_params": 0.5, "budget_latency": 0.5, "with_model": True},
     "give at most one budget, got budget_params=0.5, budget_latency=0.5"),
    ({"objective": "latency", "budget_latency": 0.5, "with_model": True},
     "`budget_latency` (=0.5) caps the latency that `objective` (='latency') would minimise: use objective='params'"),
    ({"objective": "speed", "with_model": True}, "`objective` (='speed') must be one of params, latency"),
    ({"objective": "latency", "latency": "torch"}, "`latency` (=str) must be a LatencyModel"),
    ({"budget_latency": 1.5, "with_model": True}, "`budget_latency` (=1.5) must be a fraction in (0, 1]"),
])
def test_latency_planning_errors(model, kwargs, message):
    kwargs = dict(kwargs)
    if kwargs.pop("with_model", False):
        kwargs["latency"] = model
    with pytest.raises(SpecError) as err:
        plan_network(_distinct_layers(2), "osc", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_latency_budget_below_the_fastest_plan(model):
    with pytest.raises(InfeasibleDesignError, match="predicted latency"):
        plan_network(_distinct_layers(2), "bsconv-u", budget_latency=0.001, latency=model)


def test_cli_network_latency(tmp_path, monkeypatch):
    """Real timings: the CLI plans CIFAR ResNet-20 by predicted latency on PyTorch."""
    pytest.importorskip("torch")
    import json

    from typer.testing import CliRunner

    from osc_design.cli import app

    monkeypatch.setenv("OSC_DESIGN_CACHE_DIR", str(tmp_path / "cache"))
    r = CliRunner().invoke(app, ["network", "cifar-resnet20", "--policy", "bsconv-u", "--objective", "latency",
                                 "--backend", "torch", "--batch", "1", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["objective"] == "latency" and doc["totals"]["latency_s"]["after"] <= doc["totals"]["latency_s"]["before"]
    assert all(layer["latency_ms"]["after"] <= layer["latency_ms"]["before"] for layer in doc["layers"]
               if layer["latency_ms"] is not None and layer["choice"] != "keep")
