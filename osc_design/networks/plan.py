"""Whole-network planning: choose a design for every convolution, one family or under a global budget.

Scope and conventions: a plan covers the network's 2-D convolutions (as listed by the catalogue, a
description file or :func:`~osc_design.networks.extract.extract_convs`); params count conv weights
and biases (``total_params``), MACs are the padding-inclusive convention at each layer's input size.
Budgets are fractions of the planned convolutions' original totals.

Layers that no design improves stay as they are and say why: depthwise convolutions (already
separable), dilated ones, 1x1 convolutions under a spatial family (as BSConv's replacer does; only
``osc`` and ``osc-2`` slim them, by chains of grouped 1x1 convs with shuffles, which is where most
of a ResNet-50's parameters sit), and layers where the chosen family does not save parameters or
cannot be built. A grouped convolution is planned per group and lifted
back (:func:`osc_design.transform.lift_groups`).

The policy ``any`` draws each layer's designs from every registered family and the OSC Pareto front
(the space of :func:`osc_design.latency.latency_candidates`, fully covering designs only).

Latency (``objective="latency"`` with a :class:`~osc_design.latency.LatencyModel`): every layer's
candidates, the original conv included, get a predicted latency (their missing ops are timed
together, round-robin, then cached). Without a budget each layer takes its fastest candidate; with
``budget_params`` or ``budget_macs`` the plan minimises the total predicted latency under that cap;
``budget_latency`` caps the total predicted latency (a fraction of the original convs') and
minimises params. Network latency is reported as the sum of the layers' predicted latencies, each
layer timed as its own module call.

Budgeted selection is a multiple-choice knapsack over each layer's candidates (the original conv
and the family's designs: for ``osc``/``osc-2`` the solver's Pareto front). It is solved by
Lagrangian relaxation (bisection on the multiplier, each layer then picks independently) followed
by a greedy repair that spends the remaining budget; the Lagrangian dual value is a lower bound on
the true optimum and is reported as ``bound`` so the plan's optimality gap is visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cost import Cost, cost, node_cost
from ..coverage import coverage
from ..errors import InfeasibleDesignError, SpecError
from ..ops import Conv2d
from ..spec import LayerSpec, Target
from .catalog import ConvLayer

__all__ = ["Candidate", "LayerPlan", "NetworkPlan", "plan_network", "layer_target", "layer_spec", "OBJECTIVES"]

OBJECTIVES = ("params", "latency")
"""What :func:`plan_network` minimises per layer without a budget (and ``latency``: also under one)."""

PLAN_FORMAT = "osc-design.network-plan"
PLAN_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """One way to realise a layer: ``spec`` None means the original convolution."""

    choice: str
    spec: LayerSpec | None
    cost: Cost
    coverage: float
    seconds: float | None = None
    """Predicted latency of one call (seconds), when the plan was made with a latency model."""

    def with_seconds(self, seconds: float) -> Candidate:
        return Candidate(self.choice, self.spec, self.cost, self.coverage, seconds)


@dataclass(frozen=True)
class LayerPlan:
    """The decision for one convolution."""

    layer: ConvLayer
    before: Cost
    chosen: Candidate
    reason: str
    candidates: tuple[Candidate, ...] = field(default=(), repr=False)

    @property
    def after(self) -> Cost:
        return self.chosen.cost

    @property
    def replaced(self) -> bool:
        return self.chosen.spec is not None

    def to_dict(self) -> dict[str, Any]:
        from ..serialize import to_dict

        layer = self.layer
        return {
            "name": layer.name,
            "target": {"in_channels": layer.in_channels, "out_channels": layer.out_channels,
                       "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
                       "padding": list(layer.padding), "groups": layer.groups, "bias": layer.bias,
                       "input_size": list(layer.input_size)},
            "choice": self.chosen.choice,
            "reason": self.reason,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "coverage": self.chosen.coverage,
            "latency_ms": None if self.chosen.seconds is None else {
                "before": self.candidates[0].seconds * 1e3 if self.candidates and self.candidates[0].seconds
                is not None else None, "after": self.chosen.seconds * 1e3},
            "spec": None if self.chosen.spec is None else to_dict(self.chosen.spec),
        }


@dataclass(frozen=True)
class NetworkPlan:
    """A plan for every convolution of a network, with totals over the planned layers."""

    network: str
    policy: str
    layers: tuple[LayerPlan, ...]
    budget: dict[str, Any] | None = None
    bound: float | None = None
    objective: str = "params"
    latency_table: str | None = None
    """The latency model's cache table id (backend, version, device, dtype, batch, threads), if any."""

    def total(self, which: str, field_name: str) -> int:
        """Sum of ``before``/``after`` costs over all layers, e.g. ``total("after", "macs")``."""
        return sum(getattr(getattr(lp, which), field_name) or 0 for lp in self.layers)

    def latency(self, which: str) -> float | None:
        """Sum of the layers' predicted latencies ``before`` or ``after`` (seconds; ``None`` without a model)."""
        if self.latency_table is None:
            return None
        return sum((lp.candidates[0] if which == "before" else lp.chosen).seconds or 0.0 for lp in self.layers)

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("total_params", "macs", "macs_valid"):
            before, after = self.total("before", name), self.total("after", name)
            out[name] = {"before": before, "after": after, "ratio": after / before if before else None}
        if self.latency_table is not None:
            before, after = self.latency("before"), self.latency("after")
            out["latency_s"] = {"before": before, "after": after, "ratio": after / before if before else None,
                                "table": self.latency_table}
        out["replaced_layers"] = sum(lp.replaced for lp in self.layers)
        out["layers"] = len(self.layers)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The network plan as JSON: format header, policy, objective, budget, totals and one entry per layer."""
        return {"format": PLAN_FORMAT, "version": PLAN_VERSION, "network": self.network, "policy": self.policy,
                "objective": self.objective, "budget": self.budget, "bound": self.bound, "totals": self.totals(),
                "layers": [lp.to_dict() for lp in self.layers]}

    def rows(self) -> list[dict[str, Any]]:
        """Flat per-layer rows (CSV)."""
        return [{"name": lp.layer.name,
                 "target": f"{lp.layer.in_channels}->{lp.layer.out_channels} k{lp.layer.kernel_size[0]}x"
                           f"{lp.layer.kernel_size[1]} s{lp.layer.stride[0]} g{lp.layer.groups} "
                           f"@{lp.layer.input_size[0]}x{lp.layer.input_size[1]}",
                 "choice": lp.chosen.choice, "params_before": lp.before.total_params,
                 "params_after": lp.after.total_params, "macs_before": lp.before.macs, "macs_after": lp.after.macs,
                 "coverage": lp.chosen.coverage,
                 **({} if self.latency_table is None else {
                     "latency_ms_before": (lp.candidates[0].seconds or 0.0) * 1e3,
                     "latency_ms_after": (lp.chosen.seconds or 0.0) * 1e3}),
                 "reason": lp.reason} for lp in self.layers]


def layer_target(layer: ConvLayer) -> Target:
    """The per-group target of a layer (``C_in/g -> C_out/g``) with the layer's own padding and input size."""
    g = layer.groups
    return Target(layer.in_channels // g, layer.out_channels // g, layer.kernel_size, layer.stride,
                  layer.padding, layer.input_size)


def layer_spec(layer: ConvLayer) -> LayerSpec:
    """The layer's own convolution as a one-node spec (groups, dilation and bias included)."""
    from ..spec import GraphBuilder

    b = GraphBuilder(Target(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                            layer.input_size))
    y = b.conv2d(b.input, layer.out_channels, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                 dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
    return b.build(y, family="conv")


def _original(layer: ConvLayer) -> Cost:
    conv = Conv2d(id=layer.name, inputs=("x",), in_channels=layer.in_channels, out_channels=layer.out_channels,
                  kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding,
                  dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
    return node_cost(conv, [layer.input_size], layer.output_size, layer.out_channels)


def _finish(layer: ConvLayer, spec: LayerSpec, choice: str) -> Candidate:
    """Lift a per-group design to the layer and give it the layer's bias."""
    from ..transform import lift_groups, with_output_bias

    cov = coverage(spec).fraction
    if layer.groups > 1:
        full = Target(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                      layer.input_size)
        spec = lift_groups(spec, layer.groups, full)
    if layer.bias:
        spec = with_output_bias(spec)
    return Candidate(choice, spec, cost(spec), cov)


CHANNEL_SEPARATING = ("osc", "osc-2", "any")
"""Policies that also slim 1x1 convolutions (chains of grouped 1x1 convs with shuffles)."""


def _why_kept(layer: ConvLayer, policy: str) -> str | None:
    if layer.kernel_size == (1, 1) and policy not in CHANNEL_SEPARATING:
        return f"1x1 conv: {policy} separates the kernel window, which a 1x1 conv does not have (osc can slim it)"
    if layer.groups == layer.in_channels and layer.in_channels > 1:
        return "depthwise conv: already separable"
    if layer.dilation != (1, 1):
        return "dilated conv: designs assume an undilated target"
    return None


CandidateFn = Callable[[ConvLayer, Target], list[tuple[str, LayerSpec]]]


def _family_candidates(family: str, options: Mapping[str, Any], budgeted: bool) -> CandidateFn:
    from ..registry import get_family

    if family == "any":
        def make_any(layer: ConvLayer, target: Target) -> list[tuple[str, LayerSpec]]:
            from ..latency import latency_candidates

            cands, _ = latency_candidates(target, verify="fast")
            return [(c.name, c.spec) for c in cands if c.name != "conv"]

        return make_any
    fam = get_family(family)

    def make(layer: ConvLayer, target: Target) -> list[tuple[str, LayerSpec]]:
        if budgeted and family in ("osc", "osc-2"):
            from ..solver import pareto_front

            opts = {k: v for k, v in options.items() if k != "objective"}
            if family == "osc-2":
                opts["max_stages"] = 2
            return [(f"{family}[{s.spec.stages}]", s.spec) for s in pareto_front(target, **opts)]
        return [(family, fam.build(target, **options))]

    return make


def plan_network(
    layers: Iterable[ConvLayer],
    policy: str = "osc",
    *,
    network: str = "network",
    options: Mapping[str, Any] | None = None,
    budget_params: float | None = None,
    budget_macs: float | None = None,
    budget_latency: float | None = None,
    objective: str = "params",
    latency: Any = None,
    progress: Callable[[str], None] | None = None,
) -> NetworkPlan:
    """Plan a design for every convolution.

    Parameters
    ----------
    layers:
        The network's convolutions, in forward order.
    policy:
        A family id (``"osc"``, ``"osc-2"``, ``"bsconv-u"``, ...): that family where it helps; ``"any"``:
        every family's design and the OSC Pareto front.
    options:
        Options for the family's builder (e.g. ``{"p": 0.25, "with_bn": True}`` for ``bsconv-s``).
    budget_params, budget_macs, budget_latency:
        At most one. A fraction in (0, 1] of the original total params, MACs or predicted latency of
        the planned convs. Under ``budget_params`` the plan minimises MACs (latency with
        ``objective="latency"``); under ``budget_macs`` params (latency); under ``budget_latency``
        params.
    objective:
        ``"params"`` (default): each layer takes its design with the fewest params; ``"latency"``: its
        fastest candidate by predicted latency, the original conv included (needs ``latency``).
    latency:
        A :class:`~osc_design.latency.LatencyModel` (backend, device, batch, threads): every candidate
        gets a predicted latency and the totals a ``latency_s`` entry. Needed by ``objective="latency"``
        and ``budget_latency``.
    progress:
        Called with each layer's name as it is planned (for progress bars).

    Examples
    --------
    >>> from osc_design.networks.catalog import catalog_layers
    >>> plan = plan_network(catalog_layers("cifar-resnet20"), "bsconv-u", network="cifar-resnet20")
    >>> plan.totals()["total_params"]["after"] < plan.totals()["total_params"]["before"]
    True
    """
    budgets = {"params": budget_params, "macs": budget_macs, "latency": budget_latency}
    given = [k for k, v in budgets.items() if v is not None]
    if len(given) > 1:
        raise SpecError(f"give at most one budget, got {', '.join('budget_' + k for k in given)}")
    for name, value in budgets.items():
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and 0 < value <= 1):
            raise SpecError(f"`budget_{name}` (={value!r}) must be a fraction in (0, 1]")
    if objective not in OBJECTIVES:
        raise SpecError(f"`objective` (={objective!r}) must be one of {', '.join(OBJECTIVES)}")
    if latency is not None:
        from ..latency import LatencyModel

        if not isinstance(latency, LatencyModel):
            raise SpecError(f"`latency` must be a LatencyModel, got {type(latency).__name__}")
    elif objective == "latency" or budget_latency is not None:
        raise SpecError("the latency objective and `budget_latency` need a `latency` model, e.g. "
                        "osc_design.latency.latency_model('torch')")
    if objective == "latency" and budget_latency is not None:
        raise SpecError("`budget_latency` caps the latency while another quantity is minimised: use "
                        "objective='params' with it")
    budgeted = bool(given)
    make = _family_candidates(policy, dict(options or {}), budgeted or objective == "latency")
    cache: dict[tuple[Any, ...], list[tuple[str, LayerSpec]] | str] = {}
    plans: list[tuple[ConvLayer, Cost, list[Candidate], str]] = []
    for layer in layers:
        if progress is not None:
            progress(layer.name)
        before = _original(layer)
        keep = Candidate("keep", None, before, 1.0)
        reason = _why_kept(layer, policy)
        if reason is not None:
            plans.append((layer, before, [keep], reason))
            continue
        target = layer_target(layer)
        key = (target, layer.groups, layer.bias)
        if key not in cache:
            try:
                cache[key] = make(layer, target)
            except (SpecError, InfeasibleDesignError) as e:
                cache[key] = f"{policy} cannot be built here: {e}"
        made = cache[key]
        if isinstance(made, str):
            plans.append((layer, before, [keep], made))
            continue
        try:
            options_ = [keep] + [_finish(layer, spec, choice) for choice, spec in made]
        except SpecError as e:
            plans.append((layer, before, [keep], str(e)))
            continue
        plans.append((layer, before, options_, ""))
    if latency is not None:
        plans = _predict(plans, latency)

    bound = None
    if budgeted:
        cap = given[0]
        minimise = "latency" if objective == "latency" else {"params": "macs", "macs": "total_params",
                                                              "latency": "total_params"}[cap]
        chosen, bound = _select_under_budget(plans, "total_params" if cap == "params" else cap, minimise,
                                             budgets[cap])  # type: ignore[arg-type]
    else:
        chosen = []
        for layer, before, cands, _ in plans:
            if objective == "latency":
                best = min(cands, key=lambda c: (c.seconds, c.cost.total_params, c.spec is not None))
            else:
                best = min(cands, key=lambda c: (c.cost.total_params, c.cost.macs or 0, c.spec is not None))
            chosen.append(best)
    result = []
    for (layer, before, cands, why), pick in zip(plans, chosen):
        if why:
            reason = why
        elif pick.spec is None and not budgeted:
            reason = (f"{policy} is not faster here" if objective == "latency"
                      else f"{policy} saves no parameters here")
        elif pick.spec is None:
            reason = "kept by the budget optimiser"
        elif budgeted:
            reason = "chosen by the budget optimiser"
        else:
            reason = "fastest predicted" if objective == "latency" else "fewest params"
        result.append(LayerPlan(layer, before, pick, reason, tuple(cands)))
    budget = None if not budgeted else {given[0]: budgets[given[0]]}
    return NetworkPlan(network, policy, tuple(result), budget, bound, objective,
                       None if latency is None else latency.table_key.id)


def _predict(plans: list[tuple[ConvLayer, Cost, list[Candidate], str]],
             model: Any) -> list[tuple[ConvLayer, Cost, list[Candidate], str]]:
    """Every candidate with its predicted latency (the original conv as a one-node spec)."""
    specs = {id(c): (layer_spec(layer) if c.spec is None else c.spec) for layer, _, cands, _ in plans for c in cands}
    fresh = model.prefetch(specs.values())
    memo: dict[LayerSpec, float] = {}

    def seconds(spec: LayerSpec) -> float:
        if spec not in memo:
            memo[spec] = model.predict(spec, fresh=fresh).seconds
        return memo[spec]

    return [(layer, before, [c.with_seconds(seconds(specs[id(c)])) for c in cands], why)
            for layer, before, cands, why in plans]


def _select_under_budget(plans: list[tuple[ConvLayer, Cost, list[Candidate], str]], cap_key: str, obj_key: str,
                         frac: float) -> tuple[list[Candidate], float]:
    """Multiple-choice knapsack: minimise one total (``total_params``, ``macs`` or ``latency``) subject to a
    cap on another, a fraction ``frac`` of the original convs' total (see module docstring)."""

    def val(c: Candidate, key: str) -> float:
        return (c.seconds or 0.0) if key == "latency" else int(getattr(c.cost, key) or 0)

    cands = [p[2] for p in plans]
    cap = frac * sum(val(c[0], cap_key) for c in cands)  # c[0] is the original conv
    least = sum(min(val(c, cap_key) for c in cs) for cs in cands)
    if least > cap:
        what = "predicted latency, seconds" if cap_key == "latency" else cap_key.replace("total_", "")
        raise InfeasibleDesignError(
            f"the budget ({frac:g} of {what}: {cap:,.6g}) is below the smallest "
            f"achievable total {least:,.6g} ({least / (cap / frac):.2%} of the original)")

    def pick(lam: float) -> list[Candidate]:
        return [min(cs, key=lambda c: (val(c, obj_key) + lam * val(c, cap_key), val(c, cap_key))) for cs in cands]

    def used(sel: list[Candidate]) -> int:
        return sum(val(c, cap_key) for c in sel)

    lo, hi = 0.0, 1.0
    while used(pick(hi)) > cap:
        hi *= 4
        if hi > 1e18:  # pragma: no cover - the feasibility check above guarantees termination
            break
    if used(pick(lo)) <= cap:
        hi = lo
    for _ in range(200):
        if hi - lo <= 1e-12 * hi:  # relative: the multiplier's scale is objective / cap units
            break
        mid = (lo + hi) / 2
        if used(pick(mid)) <= cap:
            hi = mid
        else:
            lo = mid
    selection = pick(hi)
    dual = sum(min(val(c, obj_key) + hi * val(c, cap_key) for c in cs) for cs in cands) - hi * cap
    # greedy repair: spend the slack on the swaps that save the most objective per unit of budget
    improved = True
    while improved:
        improved = False
        slack = cap - used(selection)
        best_gain, best_swap = 0.0, None
        for i, cs in enumerate(cands):
            cur = selection[i]
            for c in cs:
                extra = val(c, cap_key) - val(cur, cap_key)
                gain = val(cur, obj_key) - val(c, obj_key)
                if gain > 0 and extra <= slack:
                    rate = gain / max(extra, 1)
                    if rate > best_gain:
                        best_gain, best_swap = rate, (i, c)
        if best_swap is not None:
            selection[best_swap[0]] = best_swap[1]
            improved = True
    return selection, max(dual, 0.0)
