"""Whole-network planning: choose a design for every convolution, one family or under a global budget.

Scope and conventions: a plan covers the network's 2-D convolutions (as listed by the catalogue, a
description file or :func:`~osc_design.networks.extract.extract_convs`); params count conv weights
and biases (``total_params``), MACs are the padding-inclusive convention at each layer's input size.
Budgets are fractions of the planned convolutions' original totals.

A dilated convolution (dilation ``d``) is designed as its undilated target, every stage's dilation
then multiplied by ``d`` (:func:`dilate`), so the design's footprint is the dilated window; its
coverage is verified on that window and its reason says which target was searched.

A module the forward pass calls several times (weight sharing; ``ConvLayer.later_input_sizes``) is one
layer and one decision: its params count once, its MACs (and latency) at every call's input size, before
and after. Its design is built for the first call's size and must give the conv's output shape at every
later call's size (checked on the design graph itself); a design that does not is not a candidate, and a
layer left without one is kept, its reason saying which call.

Layers that no design improves stay as they are and say why: depthwise convolutions (already separable),
dilated ones whose padding is not a multiple of the dilation, 1x1 convolutions under a spatial family
(as BSConv's replacer does; only ``osc`` and ``osc-2`` slim them, by chains of grouped 1x1 convs with
shuffles, which is where most of a ResNet-50's parameters sit), and layers where the chosen family does
not save parameters or cannot be built. A grouped convolution is planned per group and lifted back
(:func:`osc_design.transform.lift_groups`).

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
and the family's designs: for ``osc``/``osc-2`` the solver's Pareto front): each layer takes exactly
one candidate, the capped total stays within the cap, the other total is minimised. It is solved
exactly as a mixed-integer linear program (``scipy.optimize.milp``, HiGHS), and the chosen plan's
totals are recomputed exactly (integers for params and MACs) and checked against the cap. The
Lagrangian dual value (bisection on the multiplier, each layer then picking independently) is a lower
bound on the optimum, reported as ``bound``: a certificate that needs no trust in the solver.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..cost import Cost, cost, node_cost
from ..coverage import coverage
from ..errors import InfeasibleDesignError, OptionError, SpecError
from ..ops import Conv2d
from ..spec import LayerSpec, Target
from .catalog import ConvLayer

__all__ = ["LayerChoice", "LayerPlan", "NetworkPlan", "plan_network", "layer_target", "layer_spec", "dilate",
           "load_plan",
           "plan_from_dict", "plan_schema", "save_plan", "OBJECTIVES"]

OBJECTIVES = ("params", "latency")
"""What :func:`plan_network` minimises per layer without a budget (and ``latency``: also under one)."""

PLAN_FORMAT = "osc-design.network-plan"
PLAN_VERSION = 1


@dataclass(frozen=True)
class LayerChoice:
    """One way to realise a layer (a candidate of the plan): ``spec`` None means the original convolution."""

    choice: str
    spec: LayerSpec | None
    cost: Cost
    coverage: float
    seconds: float | None = None
    """Predicted latency (seconds) of the layer's calls together, when the plan was made with a latency model."""

    def with_seconds(self, seconds: float) -> LayerChoice:
        return LayerChoice(self.choice, self.spec, self.cost, self.coverage, seconds)


@dataclass(frozen=True)
class LayerPlan:
    """The decision for one convolution."""

    layer: ConvLayer
    before: Cost
    chosen: LayerChoice
    reason: str
    candidates: tuple[LayerChoice, ...] = field(default=(), repr=False, compare=False)
    """Every candidate the planner weighed, the original first (not saved: a loaded plan has the original
    and the chosen one; plans compare by their decisions)."""

    @property
    def after(self) -> Cost:
        return self.chosen.cost

    @property
    def replaced(self) -> bool:
        return self.chosen.spec is not None

    def to_dict(self) -> dict[str, Any]:
        from ..serialize import to_dict

        layer = self.layer
        target: dict[str, Any] = {
            "in_channels": layer.in_channels, "out_channels": layer.out_channels,
            "kernel_size": list(layer.kernel_size), "stride": list(layer.stride), "padding": list(layer.padding),
            "groups": layer.groups, "bias": layer.bias, "input_size": list(layer.input_size)}
        if layer.dilation != (1, 1):  # optional fields, only when set: plans without them read as before
            target["dilation"] = list(layer.dilation)
        if any(layer.pre_padding):
            target["pre_padding"] = list(layer.pre_padding)
        if layer.keep_reason is not None:
            target["keep_reason"] = layer.keep_reason
        if layer.later_input_sizes:
            target["later_input_sizes"] = [list(size) for size in layer.later_input_sizes]
        before_s = self.candidates[0].seconds if self.candidates else None
        doc = {
            "name": layer.name,
            "calls": layer.calls,
            "target": target,
            "choice": self.chosen.choice,
            "reason": self.reason,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "coverage": self.chosen.coverage,
            "latency_ms": None if self.chosen.seconds is None else {
                "before": None if before_s is None else before_s * 1e3, "after": self.chosen.seconds * 1e3},
            "spec": None if self.chosen.spec is None else to_dict(self.chosen.spec),
        }
        if self.chosen.seconds is not None:  # the exact seconds, for loading (latency_ms rounds)
            doc["latency_s"] = {"before": before_s, "after": self.chosen.seconds}
        return doc


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
            slow, fast = self.latency("before"), self.latency("after")
            out["latency_s"] = {"before": slow, "after": fast, "ratio": fast / slow if slow and fast is not None
                                else None, "table": self.latency_table}
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
        return [{"name": lp.layer.name, "target": _target_text(lp.layer),
                 "choice": lp.chosen.choice, "params_before": lp.before.total_params,
                 "params_after": lp.after.total_params, "macs_before": lp.before.macs, "macs_after": lp.after.macs,
                 "coverage": lp.chosen.coverage,
                 **({} if self.latency_table is None else {
                     "latency_ms_before": (lp.candidates[0].seconds or 0.0) * 1e3,
                     "latency_ms_after": (lp.chosen.seconds or 0.0) * 1e3}),
                 "reason": lp.reason} for lp in self.layers]


def layer_target(layer: ConvLayer) -> Target:
    """The per-group target the family designs for (``C_in/g -> C_out/g``), with the layer's input size.

    Undilated: the layer's own kernel, stride and padding. A dilated layer (dilation ``d``, padding a
    multiple of ``d``) is designed as its undilated target, padding ``padding / d``; :func:`dilate`
    then spreads the design over the dilated window.
    """
    g, d = layer.groups, layer.dilation
    padding = (layer.padding[0] // d[0], layer.padding[1] // d[1])
    return Target(layer.in_channels // g, layer.out_channels // g, layer.kernel_size, layer.stride, padding,
                  layer.input_size)


def _full_target(layer: ConvLayer, groups: int = 1) -> Target:
    """The layer's own convolution as a target (dilation included), or its per-group one for ``groups``."""
    return Target(layer.in_channels // groups, layer.out_channels // groups, layer.kernel_size, layer.stride,
                  layer.padding, layer.input_size, layer.dilation)


def _target_text(layer: ConvLayer) -> str:
    """``"3->32 k3x3 s2 g1 @64x64"``: a stride or dilation shown as one number when both axes agree, the
    dilation only when it is not 1; a module called several times ends with its calls' distinct input
    sizes and ``xN``.

    >>> _target_text(ConvLayer("c", 8, 8, (3, 3), (2, 1), (2, 2), 1, False, (14, 14), dilation=(2, 2)))
    '8->8 k3x3 s2x1 g1 d2 @14x14'
    >>> _target_text(ConvLayer("c", 8, 8, (3, 3), (1, 1), (1, 1), 1, False, (14, 14),
    ...                        later_input_sizes=((7, 7), (14, 14))))
    '8->8 k3x3 s1 g1 @14x14,7x7 x3'
    """
    def pair(p: tuple[int, int]) -> str:
        return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"

    dilation = "" if layer.dilation == (1, 1) else f" d{pair(layer.dilation)}"
    sizes = ",".join(f"{h}x{w}" for h, w in dict.fromkeys(layer.input_sizes))
    calls = f" x{layer.calls}" if layer.calls > 1 else ""
    return (f"{layer.in_channels}->{layer.out_channels} k{layer.kernel_size[0]}x{layer.kernel_size[1]} "
            f"s{pair(layer.stride)} g{layer.groups}{dilation} @{sizes}{calls}")


def layer_spec(layer: ConvLayer) -> LayerSpec:
    """The layer's own convolution as a one-node spec (groups, dilation and bias included)."""
    from ..spec import GraphBuilder

    b = GraphBuilder(_full_target(layer))
    y = b.conv2d(b.input, layer.out_channels, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                 dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
    return b.build(y, family="conv")


def dilate(spec: LayerSpec, target: Target) -> LayerSpec:
    """``spec`` (a design for an undilated target) spread over the dilated window of ``target``.

    Every spatial offset is multiplied by ``target.dilation`` ``(dh, dw)``: each conv's dilation (along
    the axes where it has more than one tap) and padding, each shift. So the footprint is the undilated
    one times ``d``, and ``spec`` covers its window exactly when the result covers ``target``'s
    (:func:`~osc_design.coverage.coverage` checks the result against the dilated window itself). The
    option ``dilated_by`` records ``d``.

    >>> from osc_design.spec import GraphBuilder
    >>> b = GraphBuilder(Target(4, 4, 3, input_size=9))
    >>> y = b.conv2d(b.conv2d(b.input, 4, (3, 1), padding=(1, 0), groups=4), 4, (1, 3), padding=(0, 1))
    >>> wide = dilate(b.build(y), Target(4, 4, 3, padding=2, input_size=9, dilation=2))
    >>> [(c.dilation, c.padding) for c in wide.convs]
    [((2, 1), (2, 0)), ((1, 2), (0, 2))]
    >>> from osc_design.coverage import coverage
    >>> coverage(wide).full
    True
    """
    from dataclasses import replace

    from ..ops import Shift

    dh, dw = target.dilation
    nodes = []
    for nid in spec.order:
        node = spec.node_map[nid]
        if isinstance(node, Conv2d):  # an axis with one tap stays undilated: its dilation changes nothing
            (kh, kw), (ah, aw) = node.kernel_size, node.dilation
            node = replace(node, dilation=(ah * dh if kh > 1 else ah, aw * dw if kw > 1 else aw),
                           padding=(node.padding[0] * dh, node.padding[1] * dw))
        elif isinstance(node, Shift):
            node = replace(node, shift=(node.shift[0] * dh, node.shift[1] * dw))
        nodes.append(node)
    from ..spec import _freeze_options

    options = _freeze_options({**spec.options_dict, "dilated_by": [dh, dw]})
    return LayerSpec(target, tuple(nodes), spec.output, spec.family, options)


def _call(layer: ConvLayer, size: tuple[int, int]) -> ConvLayer:
    """``layer`` as one call on an input of ``size`` (a shared module's later call)."""
    from dataclasses import replace

    return replace(layer, input_size=size, later_input_sizes=())


def _over_calls(costs: Iterable[Cost]) -> Cost:
    """A module's cost over its calls (in call order): its params once, every count per position summed.

    >>> _over_calls([Cost(9, 1, 90, 80, 10, 0, 0), Cost(9, 1, 45, 40, 5, 0, 0)]).to_dict()["macs"]
    135
    """
    from dataclasses import replace

    first, *later = costs
    for c in later:
        first = first + replace(c, params=0, bias_params=0)
    return first


def _original(layer: ConvLayer) -> Cost:
    """The layer's own convolution, at every call's input size."""
    conv = Conv2d(id=layer.name, inputs=("x",), in_channels=layer.in_channels, out_channels=layer.out_channels,
                  kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding,
                  dilation=layer.dilation, groups=layer.groups, bias=layer.bias)
    calls = [_call(layer, size) for size in layer.input_sizes]
    return _over_calls(node_cost(conv, [c.input_size], c.output_size, c.out_channels) for c in calls)


def _spec_at(spec: LayerSpec, size: tuple[int, int], index: int) -> LayerSpec:
    """``spec`` on the input of call ``index`` (``size``), the same graph: :class:`SpecError` when the graph
    does not give the convolution's output shape there."""
    try:
        return LayerSpec(spec.target.with_input_size(size), spec.nodes, spec.output, spec.family, spec.options)
    except SpecError as e:
        raise SpecError(f"call {index} of the module, on {size[0]}x{size[1]}: {e}") from None


def _call_specs(layer: ConvLayer, spec: LayerSpec | None) -> list[LayerSpec]:
    """The spec of every call of the layer: the design's (``spec``) or, for ``None``, the original conv's."""
    if spec is None:
        return [layer_spec(_call(layer, size)) for size in layer.input_sizes]
    return [spec, *(_spec_at(spec, size, i) for i, size in enumerate(layer.later_input_sizes, start=2))]


def _design_cost(layer: ConvLayer, spec: LayerSpec) -> Cost:
    """The design's cost over the layer's calls (:class:`SpecError` when a later call's size does not suit it)."""
    return _over_calls(cost(s) for s in _call_specs(layer, spec))


def _finish(layer: ConvLayer, spec: LayerSpec, choice: str) -> LayerChoice | str:
    """Dilate a per-group design to the layer's window, lift it to the layer and give it the layer's bias;
    why not, when the design does not suit a later call of a shared module."""
    from ..transform import lift_groups, with_output_bias

    if layer.dilation != (1, 1):
        spec = dilate(spec, _full_target(layer, layer.groups))
    cov = coverage(spec).fraction
    if layer.groups > 1:
        spec = lift_groups(spec, layer.groups, _full_target(layer))
    if layer.bias:
        spec = with_output_bias(spec)
    if not layer.later_input_sizes:
        return LayerChoice(choice, spec, cost(spec), cov)
    try:
        return LayerChoice(choice, spec, _design_cost(layer, spec), cov)
    except SpecError as e:
        return f"the {choice} design cannot serve every call of the shared module (weight sharing): {e}"


CHANNEL_SEPARATING = ("osc", "osc-2", "any")
"""Policies that also slim 1x1 convolutions (chains of grouped 1x1 convs with shuffles)."""


def _why_kept(layer: ConvLayer, policy: str) -> str | None:
    if layer.keep_reason is not None:
        return layer.keep_reason
    if layer.kernel_size == (1, 1) and policy not in CHANNEL_SEPARATING:
        return f"1x1 conv: {policy} separates the kernel window, which a 1x1 conv does not have (osc can slim it)"
    if layer.groups == layer.in_channels and layer.in_channels > 1:
        return "depthwise conv: already separable"
    if any(p % d for p, d in zip(layer.padding, layer.dilation, strict=True)):
        return (f"dilated conv: padding {layer.padding} is not a multiple of the dilation {layer.dilation}, "
                "so it has no undilated target to design for")
    return None


def _searched(layer: ConvLayer, pick: LayerChoice) -> str:
    """What a dilated layer's chosen design was searched for (said in its reason), else ``""``."""
    if layer.dilation == (1, 1) or pick.spec is None:
        return ""
    t, (dh, dw) = layer_target(layer), layer.dilation
    by = f"{dh}" if dh == dw else f"{dh}x{dw}"
    return (f"; designed for the undilated target {t.describe()} (padding {t.padding[0]}x{t.padding[1]}), every "
            f"stage's dilation times {by}: coverage verified on the dilated window")


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


class _Layer(NamedTuple):
    """A layer being planned: its original cost, its candidates (the original first) and, when it is
    kept whatever the budget, why."""

    layer: ConvLayer
    before: Cost
    candidates: list[LayerChoice]
    why: str


BUDGETS = ("params", "macs", "latency")


def _is_fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1


def _check_request(budgets: Mapping[str, float | None], objective: str, latency: Any) -> str | None:
    """Check the budget, objective and latency-model rules; the budget given (``None``: no budget).

    Each broken rule raises :class:`~osc_design.errors.OptionError` with the argument and the rule:
    ``one-budget``, ``fraction``, ``choice``, ``type``, ``needs-latency`` and ``latency-twice``."""
    given = [k for k in BUDGETS if budgets[k] is not None]
    if len(given) > 1:
        shown = ", ".join(f"budget_{k}={budgets[k]!r}" for k in given)
        raise OptionError(f"give at most one budget, got {shown}", f"budget_{given[1]}", "one-budget")
    for name in given:
        if not _is_fraction(budgets[name]):
            raise OptionError(f"`budget_{name}` (={budgets[name]!r}) must be a fraction in (0, 1]",
                              f"budget_{name}", "fraction")
    if objective not in OBJECTIVES:
        raise OptionError(f"`objective` (={objective!r}) must be one of {', '.join(OBJECTIVES)}",
                          "objective", "choice")
    if latency is not None:
        from ..latency import LatencyModel

        if not isinstance(latency, LatencyModel):
            raise OptionError(f"`latency` (={type(latency).__name__}) must be a LatencyModel, e.g. "
                              "osc_design.latency.latency_model('torch')", "latency", "type")
    elif objective == "latency" or "latency" in given:
        option = "objective" if objective == "latency" else "budget_latency"
        what = "`objective` (='latency')" if objective == "latency" else f"`budget_latency` (={budgets['latency']!r})"
        raise OptionError(f"{what} needs a `latency` model, e.g. osc_design.latency.latency_model('torch')",
                          option, "needs-latency")
    if objective == "latency" and "latency" in given:
        raise OptionError(f"`budget_latency` (={budgets['latency']!r}) caps the latency that `objective` "
                          "(='latency') would minimise: use objective='params' with a latency budget",
                          "budget_latency", "latency-twice")
    return given[0] if given else None


def _candidates(layers: Iterable[ConvLayer], policy: str, make: CandidateFn,
                progress: Callable[[str], None] | None) -> list[_Layer]:
    """Every layer with its candidates: the original conv, then the family's designs (built once per
    distinct per-group target)."""
    made: dict[tuple[Any, ...], list[tuple[str, LayerSpec]] | str] = {}
    out = []
    for layer in layers:
        if progress is not None:
            progress(layer.name)
        before = _original(layer)
        keep = [LayerChoice("keep", None, before, 1.0)]
        why = _why_kept(layer, policy)
        if why is not None:
            out.append(_Layer(layer, before, keep, why))
            continue
        target = layer_target(layer)
        key = (target, layer.groups, layer.bias)
        if key not in made:
            try:
                made[key] = make(layer, target)
            except (SpecError, InfeasibleDesignError) as e:
                made[key] = f"{policy} cannot be built here: {e}"
        designs = made[key]
        if isinstance(designs, str):
            out.append(_Layer(layer, before, keep, designs))
            continue
        finished = [_finished(layer, spec, choice) for choice, spec in designs]
        usable = [c for c in finished if isinstance(c, LayerChoice)]
        why = str(finished[0]) if finished and not usable else ""
        out.append(_Layer(layer, before, keep + usable, why))
    return out


def _finished(layer: ConvLayer, spec: LayerSpec, choice: str) -> LayerChoice | str:
    """:func:`_finish`, or why the design cannot replace the layer: one candidate that cannot (a design that cannot
    carry the layer's bias, under ``--policy any``) leaves the others."""
    try:
        return _finish(layer, spec, choice)
    except SpecError as e:
        return str(e)


def plan_network(layers: Iterable[ConvLayer], policy: str = "osc", *, network: str = "network",
                 options: Mapping[str, Any] | None = None, budget_params: float | None = None,
                 budget_macs: float | None = None, budget_latency: float | None = None, objective: str = "params",
                 latency: Any = None, progress: Callable[[str], None] | None = None) -> NetworkPlan:
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
        params. The plan is the exact optimum (see the module docstring).
    objective:
        ``"params"`` (default): each layer takes its design with the fewest params; ``"latency"``: its
        fastest candidate by predicted latency, the original conv included (needs ``latency``).
    latency:
        A :class:`~osc_design.latency.LatencyModel` (backend, device, batch, threads): every candidate
        gets a predicted latency and the totals a ``latency_s`` entry. Needed by ``objective="latency"``
        and ``budget_latency``.
    progress:
        Called with each layer's name as it is planned (for progress bars).

    Every rule on these arguments is checked here: two budgets, a budget outside (0, 1], an unknown objective
    or family, or a latency objective or budget without a model raise :class:`~osc_design.errors.SpecError`
    naming the argument and value; a budget below the least achievable total, ``InfeasibleDesignError``.

    Examples
    --------
    >>> from osc_design.networks.catalog import catalog_layers
    >>> plan = plan_network(catalog_layers("cifar-resnet20"), "bsconv-u", network="cifar-resnet20")
    >>> plan.totals()["total_params"]["after"] < plan.totals()["total_params"]["before"]
    True
    """
    budgets = {"params": budget_params, "macs": budget_macs, "latency": budget_latency}
    cap = _check_request(budgets, objective, latency)
    make = _family_candidates(policy, dict(options or {}), cap is not None or objective == "latency")
    planned = _candidates(layers, policy, make, progress)
    if latency is not None:
        planned = _predict(planned, latency)
    bound = None
    if cap is None:
        chosen = [_fewest(p.candidates, objective) for p in planned]
    else:
        minimise = "latency" if objective == "latency" else {"params": "macs", "macs": "total_params",
                                                              "latency": "total_params"}[cap]
        frac = budgets[cap]
        assert frac is not None
        chosen, bound = _select_under_budget(planned, "total_params" if cap == "params" else cap, minimise, frac)
    result = tuple(LayerPlan(p.layer, p.before, pick, _reason(p, pick, policy, objective, cap is not None),
                             tuple(p.candidates)) for p, pick in zip(planned, chosen, strict=True))
    return NetworkPlan(network, policy, result, None if cap is None else {cap: budgets[cap]}, bound, objective,
                       None if latency is None else latency.table_key.id)


def _fewest(candidates: Sequence[LayerChoice], objective: str) -> LayerChoice:
    """A layer's best candidate without a budget: the fastest, or the fewest params (then MACs); ties
    keep the original."""
    if objective == "latency":
        return min(candidates, key=lambda c: (c.seconds or 0.0, c.cost.total_params, c.spec is not None))
    return min(candidates, key=lambda c: (c.cost.total_params, c.cost.macs or 0, c.spec is not None))


def _reason(planned: _Layer, pick: LayerChoice, policy: str, objective: str, budgeted: bool) -> str:
    return planned.why or _choice_reason(pick, policy, objective, budgeted) + _searched(planned.layer, pick)


def _choice_reason(pick: LayerChoice, policy: str, objective: str, budgeted: bool) -> str:
    if budgeted:
        return "kept by the budget optimiser" if pick.spec is None else "chosen by the budget optimiser"
    if pick.spec is None:
        return f"{policy} is not faster here" if objective == "latency" else f"{policy} saves no parameters here"
    return "fastest predicted" if objective == "latency" else "fewest params"


def _predict(planned: list[_Layer], model: Any) -> list[_Layer]:
    """Every candidate with its predicted latency (the original conv as a one-node spec), summed over the
    layer's calls (each at its input size)."""
    specs = {id(c): _call_specs(p.layer, c.spec) for p in planned for c in p.candidates}
    fresh = model.prefetch([s for calls in specs.values() for s in calls])
    memo: dict[LayerSpec, float] = {}

    def seconds(spec: LayerSpec) -> float:
        if spec not in memo:
            memo[spec] = model.predict(spec, fresh=fresh).seconds
        return memo[spec]

    return [p._replace(candidates=[c.with_seconds(math.fsum(seconds(s) for s in specs[id(c)])) for c in p.candidates])
            for p in planned]


def _value(c: LayerChoice, key: str) -> float:
    """A candidate's ``total_params`` or ``macs`` (an exact int) or predicted ``latency`` (seconds, a float)."""
    return (c.seconds or 0.0) if key == "latency" else int(getattr(c.cost, key) or 0)


def _total(values: Iterable[float]) -> float:
    """An exact sum: integers stay integers, floats are summed without rounding drift (``math.fsum``)."""
    values = list(values)
    return sum(values) if all(isinstance(v, int) for v in values) else math.fsum(values)


def _select_under_budget(planned: list[_Layer], cap_key: str, obj_key: str,
                         frac: float) -> tuple[list[LayerChoice], float]:
    """Multiple-choice knapsack: minimise one total (``total_params``, ``macs`` or ``latency``) subject to a
    cap on another, a fraction ``frac`` of the original convs' total; the plan and the Lagrangian bound."""
    cands = [p.candidates for p in planned]
    obj = [[_value(c, obj_key) for c in cs] for cs in cands]
    use = [[_value(c, cap_key) for c in cs] for cs in cands]
    cap = frac * _total(u[0] for u in use)  # u[0] is the original conv
    least = _total(min(u) for u in use)
    if least > cap:
        what = "predicted latency, seconds" if cap_key == "latency" else cap_key.replace("total_", "")
        raise InfeasibleDesignError(
            f"the budget ({frac:g} of {what}: {cap:,.6g}) is below the smallest "
            f"achievable total {least:,.6g} ({least / (cap / frac):.2%} of the original)")
    # each layer's best (the least budget among equals): when it fits the cap it is the optimum
    picks = [min(range(len(o)), key=lambda j: (o[j], u[j])) for o, u in zip(obj, use, strict=True)]
    if _total(u[j] for u, j in zip(use, picks, strict=True)) > cap:
        picks = _solve_knapsack(obj, use, cap)
    return [cs[j] for cs, j in zip(cands, picks, strict=True)], _lagrangian_bound(obj, use, cap)


def _lagrangian_bound(obj: list[list[float]], use: list[list[float]], cap: float) -> float:
    """The Lagrangian dual value ``max over lam >= 0 of sum_i min_j (obj_ij + lam use_ij) - lam cap``, a lower
    bound on the knapsack's optimum: bisection on ``lam`` for the smallest multiplier whose relaxed picks
    (each layer independently) fit the cap."""

    def used(lam: float) -> float:
        def pick(o: list[float], u: list[float]) -> float:
            return min(zip(o, u, strict=True), key=lambda ou: (ou[0] + lam * ou[1], ou[1]))[1]

        return _total(pick(o, u) for o, u in zip(obj, use, strict=True))

    lo, hi = 0.0, 1.0
    while used(hi) > cap and hi <= 1e18:  # the caller checked that the cap is achievable
        hi *= 4
    if used(lo) <= cap:
        hi = lo
    for _ in range(200):
        if hi - lo <= 1e-12 * hi:  # relative: the multiplier's scale is objective / cap units
            break
        mid = (lo + hi) / 2
        if used(mid) <= cap:
            hi = mid
        else:
            lo = mid
    dual = sum(min(oj + hi * uj for oj, uj in zip(o, u, strict=True)) for o, u in zip(obj, use, strict=True)) - hi * cap
    return max(dual, 0.0)


def _pow2_scale(values: Iterable[float], size: float) -> float:
    """A power of two that brings the largest ``|value|`` near ``size`` (exact: integers stay integers)."""
    top = max((abs(v) for v in values), default=0.0)
    return 1.0 if top == 0 else 2.0 ** round(math.log2(size / top))


def _solve_knapsack(obj: list[list[float]], use: list[list[float]], cap: float) -> list[int]:
    """The index of each layer's candidate in the exact optimum of the multiple-choice knapsack
    (``scipy.optimize.milp``: one binary per candidate, one pick per layer, one capacity row).

    HiGHS works in floating point with a small absolute feasibility tolerance (1e-6): integer data
    (params, MACs) up to 2**40 is passed as is, with the cap rounded down to an integer, so the tolerance
    cannot admit a plan one unit over; seconds (and larger counts) are scaled by a power of two to near
    2**30. The objective is scaled to near 2**20, so the default absolute gap (1e-6) is far below one
    unit. The chosen plan's total is then recomputed exactly (in integers, or with ``math.fsum``); should
    the tolerance have admitted a plan over the cap, the row is tightened by the excess and the program
    solved again. Where floating point cannot separate plans that close to the cap (counts beyond 2**53,
    seconds within about 1e-15 of it), the plan that uses the least budget is returned: it fits."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    starts = np.cumsum([0] + [len(o) for o in obj])
    spans = list(zip(starts[:-1], starts[1:], strict=True))
    flat_obj, flat_use = [v for o in obj for v in o], [v for u in use for v in u]
    integral = all(isinstance(v, int) for v in flat_use)
    exact = integral and max(flat_use) <= 2**40  # HiGHS refuses entries above 1e15
    scale = 1.0 if exact else _pow2_scale(flat_use, 2.0**30)
    one_each = np.zeros((len(obj), len(flat_obj)))
    for i, (a, b) in enumerate(spans):
        one_each[i, a:b] = 1.0
    row = np.array([flat_use], dtype=float) * scale
    c = np.array(flat_obj, dtype=float) * _pow2_scale(flat_obj, 2.0**20)
    limit = math.floor(cap) if exact else cap * scale
    for attempt in range(8):
        rows = [LinearConstraint(one_each, 1, 1), LinearConstraint(row, -np.inf, limit)]
        res = milp(c, integrality=np.ones_like(c), bounds=Bounds(0, 1), constraints=rows,
                   options={"mip_rel_gap": 0.0})
        if res.x is None:  # tightened past every plan
            break
        picks = [int(np.argmax(res.x[a:b])) for a, b in spans]
        excess = _total(u[j] for u, j in zip(use, picks, strict=True)) - cap
        if excess <= 0:
            return picks
        limit -= excess * scale + 1e-6 * 2**attempt
    return [min(range(len(u)), key=u.__getitem__) for u in use]


# -- plan files: the document of NetworkPlan.to_dict, loaded back -------------------------------------------
def plan_schema() -> dict[str, Any]:
    """The shipped JSON Schema of network plans (``network ... -f json``), version 1."""
    import json
    from importlib import resources

    return json.loads(resources.files("osc_design").joinpath("schemas/plan-v1.schema.json").read_text("utf-8"))


def _plan_layer(raw: Mapping[str, Any], where: str) -> ConvLayer:
    """The planned convolution of a plan entry (sizes may be one integer ``N`` for ``[N, N]``)."""
    from .description import normalise_pairs

    t = normalise_pairs(raw["target"])
    k, groups = tuple(t["kernel_size"]), t.get("groups", 1)
    for side in ("in_channels", "out_channels"):
        if t[side] % groups:
            raise SpecError(f"`{where}.target.groups` (={groups}) must divide `{side}` (={t[side]})")
    layer = ConvLayer(raw["name"], t["in_channels"], t["out_channels"], k, tuple(t.get("stride", (1, 1))),
                      tuple(t.get("padding", (k[0] // 2, k[1] // 2))), groups, t.get("bias", False),
                      tuple(t["input_size"]), tuple(t.get("dilation", (1, 1))),
                      tuple(t.get("pre_padding", (0, 0, 0, 0))), t.get("keep_reason"),
                      tuple(tuple(size) for size in t.get("later_input_sizes", ())))
    for i, call in enumerate(_call(layer, size) for size in layer.input_sizes):
        if min(call.module_input_size) < 1 or min(call.output_size) < 1:
            field = "input_size" if i == 0 else f"later_input_sizes[{i - 1}]"
            shown = t["input_size"] if i == 0 else t["later_input_sizes"][i - 1]
            raise SpecError(f"`{where}.target.{field}` (={shown}) is too small for its kernel and padding")
    if raw.get("calls", layer.calls) != layer.calls:
        raise SpecError(f"`{where}.calls` (={raw['calls']}) is not 1 + the {len(layer.later_input_sizes)} "
                        "`target.later_input_sizes`")
    return layer


def _checked(saved: Any, found: Cost, what: str) -> Cost:
    """``found`` (recomputed), after checking the saved cost document (if any) agrees with it."""
    if saved is not None:
        ours = found.to_dict()
        wrong = sorted(k for k, v in saved.items() if ours.get(k, v) != v)
        if wrong:
            raise SpecError(f"`{what}.{wrong[0]}` (={saved[wrong[0]]!r}) is not the layer's cost "
                            f"({ours[wrong[0]]!r}): the plan was edited or written for another layer")
    return found


def _layer_plan(raw: Mapping[str, Any], where: str) -> LayerPlan:
    from ..serialize import from_dict

    layer = _plan_layer(raw, where)
    before = _checked(raw.get("before"), _original(layer), f"{where}.before")
    seconds = raw.get("latency_s") or {}
    if seconds.get("after") is None and raw.get("latency_ms"):  # a plan without exact seconds: from ms
        seconds = {k: None if v is None else v / 1e3 for k, v in raw["latency_ms"].items()}
    keep = LayerChoice("keep", None, before, 1.0, seconds.get("before"))
    if raw.get("spec") is None:
        if raw["choice"] != "keep":
            raise SpecError(f"`{where}.choice` (={raw['choice']!r}) has no `spec`: a kept layer's choice is 'keep'")
        return LayerPlan(layer, before, keep, raw.get("reason", ""), (keep,))
    if layer.keep_reason is not None:
        raise SpecError(f"`{where}.spec`: the layer is kept ({layer.keep_reason}), it cannot have a design")
    try:
        spec = from_dict(raw["spec"])
    except SpecError as e:
        raise SpecError(f"`{where}.spec`: {e}") from None
    if (spec.target.in_channels, spec.target.out_channels) != (layer.in_channels, layer.out_channels) or \
            spec.target.kernel_size != layer.kernel_size or spec.target.stride != layer.stride or \
            spec.target.dilation != layer.dilation:
        raise SpecError(f"`{where}.spec`: its target ({spec.target}) is not the layer's convolution")
    try:
        found = _design_cost(layer, spec)
    except SpecError as e:
        raise SpecError(f"`{where}.spec`: {e}") from None
    after = _checked(raw.get("after"), found, f"{where}.after")
    fraction = raw["coverage"] if raw.get("coverage") is not None else coverage(spec).fraction
    chosen = LayerChoice(raw["choice"], spec, after, fraction, seconds.get("after"))
    return LayerPlan(layer, before, chosen, raw.get("reason", ""), (keep, chosen))


def plan_from_dict(doc: Any) -> NetworkPlan:
    """Validate a parsed plan document (:meth:`NetworkPlan.to_dict`) and build its :class:`NetworkPlan`.

    Every layer's costs are recomputed from its convolution and design (exact integers) and must agree
    with the saved ``before``/``after`` where given; ``totals`` are derived, never read. Raises
    :class:`~osc_design.errors.SchemaError` naming the field for a document that does not validate.
    """
    from ..errors import SchemaError
    from ..serialize import schema_error

    got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
    if got != PLAN_FORMAT:
        raise SchemaError(f"`format` (={got!r}): not an osc-design network plan (expected {PLAN_FORMAT!r})")
    if type(doc.get("version")) is int and doc["version"] > PLAN_VERSION:
        raise SchemaError(f"`version` (={doc['version']}): written by a newer osc-design; this one reads version "
                          f"{PLAN_VERSION}")
    err = schema_error(plan_schema(), doc)
    if err:
        raise SchemaError(err)
    names = [raw["name"] for raw in doc["layers"]]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SchemaError(f"`layers`: duplicate layer name {dup!r}")
    try:
        layers = tuple(_layer_plan(raw, f"layers[{i}]") for i, raw in enumerate(doc["layers"]))
    except SpecError as e:
        raise SchemaError(str(e)) from None
    table = ((doc.get("totals") or {}).get("latency_s") or {}).get("table")
    return NetworkPlan(doc["network"], doc["policy"], layers, doc.get("budget"), doc.get("bound"),
                       doc.get("objective", "params"), table)


def load_plan(path: Any) -> NetworkPlan:
    """Read a plan file written by ``osc-design network ... -f json -o plan.json`` (or :func:`save_plan`):
    the :class:`NetworkPlan` that :func:`~osc_design.networks.convert.convert` takes.

    Parsed, never evaluated; at most 10 MB. Raises :class:`~osc_design.errors.SchemaError` naming the
    file and the field.

    >>> import pathlib, tempfile
    >>> from osc_design.networks.catalog import catalog_layers
    >>> plan = plan_network(catalog_layers("cifar-resnet20")[:3], "osc-2", network="c20")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "plan.json"
    >>> save_plan(path, plan)
    >>> load_plan(path) == plan
    True
    """
    import json
    from pathlib import Path

    from ..errors import SchemaError
    from ..serialize import MAX_BYTES, _pairs_hook, _reject_constant

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SchemaError(f"{size} bytes exceeds the {MAX_BYTES} byte limit")
        with path.open("rb") as fh:
            return plan_from_dict(json.load(fh, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant))
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SchemaError(f"{path}: invalid JSON ({e})") from None


def save_plan(path: Any, plan: NetworkPlan) -> None:
    """Write ``plan`` as JSON (the document of ``network -f json``), atomically (:mod:`osc_design.io`)."""
    import json

    from ..io import write_text

    write_text(path, json.dumps(plan.to_dict(), indent=2) + "\n")
