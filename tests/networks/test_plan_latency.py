"""Network planning by predicted latency, on a fake deterministic timing law (no framework needed).

The knapsack plans are checked against brute force over every combination of a few layers'
candidates; per-layer choices against the fake law applied independently of the latency model.
"""

from __future__ import annotations

import itertools

import pytest

from osc_design import InfeasibleDesignError, SpecError
from osc_design.latency import LatencyModel
from osc_design.networks.catalog import catalog_layers
from osc_design.networks.plan import layer_spec, plan_network
from tests.test_latency import Recorder, independent_latency


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("OSC_DESIGN_CACHE_DIR", str(tmp_path / "cache"))
    return LatencyModel("torch", threads=2, measure_fn=Recorder())


def _distinct_layers(n: int):
    """The first ``n`` distinct convs of ResNet-18 (7x7 stem, then 3x3s): 9, 6, 8 and 7 candidates under osc."""
    seen, out = set(), []
    for layer in catalog_layers("resnet18"):
        key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.input_size)
        if key not in seen:
            seen.add(key)
            out.append(layer)
    return out[:n]


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


def _brute_force(plan, minimise, cap_key, cap):
    def val(c, key):
        return c.seconds if key == "latency" else getattr(c.cost, key)

    best = None
    for combo in itertools.product(*(lp.candidates for lp in plan.layers)):
        if sum(val(c, cap_key) for c in combo) <= cap * (1 + 1e-12):
            v = sum(val(c, minimise) for c in combo)
            best = v if best is None or v < best else best
    return best


@pytest.mark.parametrize("budget, minimise, cap_key", [
    ({"budget_params": 0.3, "objective": "latency"}, "latency", "total_params"),
    ({"budget_macs": 0.4, "objective": "latency"}, "latency", "macs"),
    ({"budget_latency": 0.5}, "total_params", "latency"),
    ({"budget_latency": 0.8}, "total_params", "latency"),
])
def test_budgets_with_latency_against_brute_force(model, budget, minimise, cap_key):
    layers = _distinct_layers(4)
    plan = plan_network(layers, "osc", latency=model, **budget)
    frac = next(v for k, v in budget.items() if k.startswith("budget_"))

    def total(which, key):
        return sum((lp.candidates[0] if which == "before" else lp.chosen).seconds if key == "latency"
                   else getattr((lp.before if which == "before" else lp.chosen.cost), key) for lp in plan.layers)

    cap = frac * total("before", cap_key)
    assert total("after", cap_key) <= cap * (1 + 1e-12)
    optimum = _brute_force(plan, minimise, cap_key, cap)
    got = total("after", minimise)
    assert plan.bound <= optimum * (1 + 1e-9) and got >= optimum * (1 - 1e-12)
    assert got <= 1.25 * optimum  # Lagrangian + greedy repair: near the optimum on these small cases


def test_latency_planning_errors(model):
    layers = _distinct_layers(2)
    with pytest.raises(SpecError, match="need a `latency` model"):
        plan_network(layers, "osc", objective="latency")
    with pytest.raises(SpecError, match="need a `latency` model"):
        plan_network(layers, "osc", budget_latency=0.5)
    with pytest.raises(SpecError, match="at most one budget"):
        plan_network(layers, "osc", budget_params=0.5, budget_latency=0.5, latency=model)
    with pytest.raises(SpecError, match="objective='params'"):
        plan_network(layers, "osc", objective="latency", budget_latency=0.5, latency=model)
    with pytest.raises(SpecError, match="`objective`"):
        plan_network(layers, "osc", objective="speed", latency=model)
    with pytest.raises(SpecError, match="LatencyModel"):
        plan_network(layers, "osc", objective="latency", latency="torch")
    with pytest.raises(SpecError, match="budget_latency"):
        plan_network(layers, "osc", budget_latency=1.5, latency=model)
    with pytest.raises(InfeasibleDesignError, match="predicted latency"):
        plan_network(layers, "bsconv-u", budget_latency=0.001, latency=model)


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
