"""Network planning and conversion: BSConv's published counts, budgets, FlopCounterMode totals."""

from __future__ import annotations

import itertools
import json
import pickle
import random
import time

import pytest

from osc_design import InfeasibleDesignError, SpecError
from osc_design.errors import OptionError
from osc_design.networks.catalog import catalog_layers
from osc_design.networks.description import layers_from_dict, layers_to_dict, load_network, save_network
from osc_design.networks.plan import _solve_knapsack, plan_network


def _non_conv_params(name):
    torch_models = pytest.importorskip("osc_design.networks.torch_models", reason="needs torch")
    model = torch_models.build_model(name)
    import torch

    return sum(p.numel() for m in model.modules() if not isinstance(m, torch.nn.Conv2d)
               for p in m.parameters(recurse=False))


@pytest.mark.parametrize(
    ("network", "original", "bsconv_u", "bsconv_s"),
    [("cifar-resnet20", 278_330, 46_570, 33_105), ("cifar-resnet56", 861_626, 125_866, 83_505)],
)
def test_bsconv_published_parameter_counts(network, original, bsconv_u, bsconv_s):
    # BSConv README (zeiss-microscopy/BSConv) figures, 100 classes, all trainable parameters
    extra = _non_conv_params(network)
    layers = catalog_layers(network)
    u = plan_network(layers, "bsconv-u", network=network)
    s = plan_network(layers, "bsconv-s", network=network, options={"p": 0.25, "with_bn": True})
    assert u.total("before", "total_params") + extra == original
    assert u.total("after", "total_params") + extra == bsconv_u
    assert s.total("after", "total_params") + extra == bsconv_s


def test_converted_model_counts_and_forward():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from osc_design.networks.convert import convert
    from osc_design.networks.torch_models import build_model

    model = build_model("cifar-resnet20")
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    plan = plan_network(catalog_layers("cifar-resnet20"), "bsconv-s", options={"p": 0.25, "with_bn": True})
    converted = convert(model, plan, weights="random")
    assert sum(p.numel() for p in converted.parameters() if p.requires_grad) == 33_105
    assert all(torch.equal(before_state[k], v) for k, v in model.state_dict().items())  # original untouched
    x = torch.randn(2, 3, 32, 32)

    def conv_flops(m):
        m.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            y = m(x)
        return counter.get_flop_counts()["Global"][torch.ops.aten.convolution], y

    f0, y0 = conv_flops(model)
    f1, y1 = conv_flops(converted)
    assert y0.shape == y1.shape == (2, 100)
    assert f0 == 2 * 2 * plan.total("before", "macs")  # batch 2, FLOPs = 2 MACs
    assert f1 == 2 * 2 * plan.total("after", "macs")


def test_converted_osc_model_with_grouped_and_biased_convs():
    torch = pytest.importorskip("torch")
    from osc_design.networks.convert import convert
    from osc_design.networks.extract import extract_convs

    model = torch.nn.Sequential(
        torch.nn.Conv2d(8, 16, 3, padding=1, bias=True), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 5, stride=2, padding=2, groups=4), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
    )
    layers = extract_convs(model, (8, 12, 12))
    plan = plan_network(layers, "osc-2")
    reasons = {lp.layer.name: lp.reason for lp in plan.layers}
    assert reasons["4"] == "depthwise conv: already separable"
    assert plan.layers[1].replaced and plan.layers[1].chosen.spec.options_dict["lifted_groups"] == 4
    converted = convert(model, plan, weights="random")
    x = torch.randn(1, 8, 12, 12)
    assert converted(x).shape == model(x).shape
    assert sum(p.numel() for p in converted.parameters()) == plan.total("after", "total_params")


def test_budget_is_respected_and_reported():
    layers = catalog_layers("resnet18")
    start = time.perf_counter()
    plan = plan_network(layers, "osc", budget_params=0.2)
    elapsed = time.perf_counter() - start
    before, after = plan.total("before", "total_params"), plan.total("after", "total_params")
    assert after <= 0.2 * before
    assert plan.bound is not None and plan.bound <= plan.total("after", "macs")
    assert all(lp.chosen.coverage == 1.0 for lp in plan.layers)
    assert elapsed < 60  # benchmarks/bench_network.py measures the real figure
    # budgeting by MACs minimises params under the cap
    by_macs = plan_network(layers, "osc", budget_macs=0.5)
    assert by_macs.total("after", "macs") <= 0.5 * by_macs.total("before", "macs")


def _distinct_layers(n: int):
    """The first ``n`` distinct convs of ResNet-18 (7x7 stem, then 3x3s): 9, 6, 8 and 7 candidates under osc."""
    seen, out = set(), []
    for layer in catalog_layers("resnet18"):
        key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.input_size)
        if key not in seen:
            seen.add(key)
            out.append(layer)
    return out[:n]


@pytest.mark.parametrize("policy, budget, minimise, cap_key, binds", [
    ("osc", {"budget_params": 0.2}, "macs", "total_params", False),
    ("osc", {"budget_macs": 0.3}, "total_params", "macs", False),
    ("osc-2", {"budget_macs": 0.2}, "total_params", "macs", True),
    ("osc-2", {"budget_macs": 0.3}, "total_params", "macs", False),
])
def test_budget_plan_is_the_brute_force_optimum(policy, budget, minimise, cap_key, binds):
    plan = plan_network(_distinct_layers(4), policy, **budget)
    (frac,) = budget.values()
    cap = frac * plan.total("before", cap_key)
    # binds: each layer's own best breaks the cap, so the plan comes from the MILP, not the shortcut
    own_best = sum(getattr(min(lp.candidates, key=lambda c: getattr(c.cost, minimise)).cost, cap_key)
                   for lp in plan.layers)
    assert (own_best > cap) == binds
    combos = itertools.product(*(lp.candidates for lp in plan.layers))
    optimum = min(sum(getattr(c.cost, minimise) for c in combo) for combo in combos
                  if sum(getattr(c.cost, cap_key) for c in combo) <= cap)
    assert plan.total("after", cap_key) <= cap
    assert plan.total("after", minimise) == optimum  # exact, in integers
    assert plan.bound <= optimum


def _brute_knapsack(obj, use, cap):
    best = None
    for picks in itertools.product(*(range(len(o)) for o in obj)):
        if sum(u[j] for u, j in zip(use, picks, strict=True)) <= cap:
            value = sum(o[j] for o, j in zip(obj, picks, strict=True))
            best = value if best is None or value < best else best
    return best


@pytest.mark.parametrize("scale", [1, 10**6, 10**12, 10**15, 10**18, 1e-6, 1.0])
def test_knapsack_solver_is_exact_on_large_and_tiny_numbers(scale):
    """Random instances with counts up to 1e20 (beyond what HiGHS takes unscaled) and seconds near 1e-6:
    the solver's plan always fits the cap (checked in integers) and reaches the brute-force optimum
    wherever floating point can tell the plans apart (counts below 2**53)."""
    rng = random.Random(scale)
    for _ in range(25):
        sizes = [rng.randint(1, 5) for _ in range(rng.randint(1, 5))]
        if isinstance(scale, int):
            use = [[rng.randint(1, 100) * scale + rng.randint(0, 9) for _ in range(k)] for k in sizes]
            obj = [[rng.randint(0, 100) * scale + rng.randint(0, 9) for _ in range(k)] for k in sizes]
        else:
            use = [[rng.random() * scale for _ in range(k)] for k in sizes]
            obj = [[rng.random() * scale for _ in range(k)] for k in sizes]
        least, most = sum(min(u) for u in use), sum(max(u) for u in use)
        cap = least + (int if isinstance(scale, int) else float)(rng.random() * (most - least))
        picks = _solve_knapsack(obj, use, cap)
        assert sum(u[j] for u, j in zip(use, picks, strict=True)) <= cap
        got, best = sum(o[j] for o, j in zip(obj, picks, strict=True)), _brute_knapsack(obj, use, cap)
        if isinstance(scale, float):
            assert got == pytest.approx(best, rel=1e-9)
        elif scale < 2**53:
            assert got == best


def test_infeasible_budget_and_bad_options():
    layers = catalog_layers("cifar-resnet20")
    with pytest.raises(InfeasibleDesignError, match="below the smallest achievable total"):
        plan_network(layers, "bsconv-u", budget_params=0.01)
    with pytest.raises(SpecError, match="unknown family 'nope'"):
        plan_network(layers, "nope")


@pytest.mark.parametrize("kwargs, message", [
    ({"budget_params": 1.5}, "`budget_params` (=1.5) must be a fraction in (0, 1]"),
    ({"budget_params": 2}, "`budget_params` (=2) must be a fraction in (0, 1]"),
    ({"budget_macs": 0.0}, "`budget_macs` (=0.0) must be a fraction in (0, 1]"),
    ({"budget_macs": -0.5}, "`budget_macs` (=-0.5) must be a fraction in (0, 1]"),
    ({"budget_params": float("nan")}, "`budget_params` (=nan) must be a fraction in (0, 1]"),
    ({"budget_params": True}, "`budget_params` (=True) must be a fraction in (0, 1]"),
    ({"budget_latency": 0}, "`budget_latency` (=0) must be a fraction in (0, 1]"),
    ({"budget_params": 0.5, "budget_macs": 0.5}, "give at most one budget, got budget_params=0.5, budget_macs=0.5"),
    ({"objective": "latency"}, "`objective` (='latency') needs a `latency` model"),
    ({"budget_latency": 0.5}, "`budget_latency` (=0.5) needs a `latency` model"),
    ({"objective": "fast"}, "`objective` (='fast') must be one of params, latency"),
])
def test_every_option_rule_names_the_option_and_value(kwargs, message):
    """The rules the CLI relies on plan_network for: one line naming the option and its value."""
    with pytest.raises(OptionError) as err:
        plan_network(catalog_layers("cifar-resnet20"), "osc", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    # the argument and the rule travel with the error (the CLI words them as its flags), also through pickle
    assert err.value.option in kwargs
    again = pickle.loads(pickle.dumps(err.value))
    assert (str(again), again.option, again.rule) == (str(err.value), err.value.option, err.value.rule)


def test_description_round_trip(tmp_path):
    layers = catalog_layers("mobilenet_v2")
    path = tmp_path / "net.json"
    save_network(path, "mobilenet_v2", layers, (3, 224, 224))
    assert load_network(path) == ("mobilenet_v2", layers)
    doc = layers_to_dict("x", layers)
    doc["layers"][0]["groups"] = 5
    with pytest.raises(SpecError, match=r"`layers\[0\].groups` \(=5\) must divide `in_channels` \(=3\)"):
        layers_from_dict(json.loads(json.dumps(doc)))
    doc = layers_to_dict("x", layers)
    doc["version"] = 2
    with pytest.raises(SpecError, match="written by a newer osc-design"):
        layers_from_dict(doc)


def test_policy_any_replaces_biased_convs_without_the_candidates_that_cannot_carry_a_bias():
    """A candidate that cannot take the layer's bias (compconv ends in a shuffle) drops out alone; the layer is
    still replaced by the cheapest of the others, which carries the bias (params include it)."""
    from osc_design.networks.catalog import ConvLayer

    layer = ConvLayer("b", 32, 32, (5, 5), (1, 1), (2, 2), 1, True, (16, 16))
    (lp,) = plan_network([layer], "any").layers
    assert lp.replaced and "compconv" not in [c.choice for c in lp.candidates]
    assert len(lp.candidates) > 2 and lp.chosen.cost.bias_params == 32
    plain = plan_network([ConvLayer("b", 32, 32, (5, 5), (1, 1), (2, 2), 1, False, (16, 16))], "any").layers[0]
    assert lp.chosen.cost.params == plain.chosen.cost.params and "compconv" in [c.choice for c in plain.candidates]
