"""Public functions check what they are given: a wrong-typed argument raises the package's own error
(:class:`osc_design.OscDesignError`, a ``ValueError``), whose message names the argument and shows its value,
never an ``AttributeError`` or ``TypeError`` from deep inside."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import osc_design as od
from osc_design import backends, serialize, transform
from osc_design.compare import compare
from osc_design.cost import node_cost, xla_flops
from osc_design.coverage import coverage, dependence
from osc_design.networks import catalog, description

TARGET = od.Target(8, 8, 3, input_size=6)
_b = od.GraphBuilder(TARGET)
SPEC = _b.build(_b.conv2d(_b.input, 8, 3, padding=1), family="conv")
LAYER = catalog.catalog_layers("cifar-resnet20")[0]

BAD: dict[str, Any] = {"dict": {"a": 1}, "target": TARGET, "str": "abc", "none": None, "float": 1.5}
"""Wrong values of every kind; ``target`` is a Target where a LayerSpec (or anything else) belongs."""

SPEC_ARG = ("spec", frozenset())
# function id -> (argument, the BAD kinds that are valid for it, call with the value in that argument)
CALLS: dict[str, tuple[str, frozenset[str], Callable[[Any], Any]]] = {
    "cost": (*SPEC_ARG, lambda v: od.cost(v)),
    "cost_by_node": (*SPEC_ARG, lambda v: od.cost_by_node(v)),
    "cost.node_cost": ("node", frozenset(), lambda v: node_cost(v)),
    "cost.xla_flops": (*SPEC_ARG, lambda v: xla_flops(v)),
    "cost.xla_flops/batch": ("batch", frozenset(), lambda v: xla_flops(SPEC, v)),
    "cost/input_size": ("input_size", frozenset({"none"}), lambda v: od.cost(SPEC, v)),
    "coverage": (*SPEC_ARG, lambda v: coverage(v)),
    "coverage/dep": ("dep", frozenset({"none"}), lambda v: coverage(SPEC, v)),
    "dependence": (*SPEC_ARG, lambda v: dependence(v)),
    "dumps": (*SPEC_ARG, lambda v: od.dumps(v)),
    "serialize.to_dict": (*SPEC_ARG, lambda v: serialize.to_dict(v)),
    "save": (*SPEC_ARG, lambda v: od.save(v, "unused.json")),
    "save/path": ("path", frozenset({"str"}), lambda v: od.save(SPEC, v)),
    "load/path": ("path", frozenset({"str"}), lambda v: od.load(v)),
    "loads/text": ("text", frozenset({"str"}), lambda v: od.loads(v)),
    "serialize.format_json/indent": ("indent", frozenset(), lambda v: serialize.format_json({}, v)),
    "GraphBuilder/target": ("target", frozenset({"target"}), lambda v: od.GraphBuilder(v)),
    "transform.lift_groups": (*SPEC_ARG, lambda v: transform.lift_groups(v, 2, TARGET)),
    "transform.lift_groups/groups": ("groups", frozenset(), lambda v: transform.lift_groups(SPEC, v, TARGET)),
    "transform.lift_groups/target": ("target", frozenset({"target"}), lambda v: transform.lift_groups(SPEC, 2, v)),
    "transform.with_output_bias": (*SPEC_ARG, lambda v: transform.with_output_bias(v)),
    "catalog_layers/name": ("name", frozenset(), lambda v: catalog.catalog_layers(v)),
    "catalog_layers/num_classes": ("num_classes", frozenset({"none"}),
                                   lambda v: catalog.catalog_layers("cifar-resnet20", v)),
    "network_input_shape/name": ("name", frozenset(), lambda v: catalog.network_input_shape(v)),
    "num_classes/name": ("name", frozenset(), lambda v: catalog.num_classes(v)),
    "layers_to_dict/name": ("name", frozenset({"str"}), lambda v: description.layers_to_dict(v, [LAYER])),
    "layers_to_dict/layers": ("layers", frozenset(), lambda v: description.layers_to_dict("n", v)),
    "layers_to_dict/layers[0]": ("layers[0]", frozenset(), lambda v: description.layers_to_dict("n", [v])),
    "layers_to_dict/input_shape": ("input_shape", frozenset({"none"}),
                                   lambda v: description.layers_to_dict("n", [LAYER], v)),
    "save_network/path": ("path", frozenset({"str"}), lambda v: description.save_network(v, "n", [LAYER])),
    "save_network/name": ("name", frozenset({"str"}), lambda v: description.save_network("unused.json", v, [])),
    "load_network/path": ("path", frozenset({"str"}), lambda v: description.load_network(v)),
    "compare/target": ("target", frozenset({"target"}), lambda v: compare(v)),
    "compare/options": ("options", frozenset({"none", "dict"}), lambda v: compare(TARGET, ["conv"], v)),
    "get_family/family_id": ("unknown family", frozenset(), lambda v: od.get_family(v)),
    "verify": (*SPEC_ARG, lambda v: backends.verify(v, "torch")),
    "verify/backend": ("backend", frozenset(), lambda v: backends.verify(SPEC, v)),
    "export_source": (*SPEC_ARG, lambda v: backends.export_source(v, "jax")),
    "export_source/to": ("to", frozenset(), lambda v: backends.export_source(SPEC, v)),
    "get_backend/name": ("name", frozenset(), lambda v: backends.get_backend(v)),
    "random_weights": (*SPEC_ARG, lambda v: backends.random_weights(v)),
    "copy_weights": (*SPEC_ARG, lambda v: backends.copy_weights(None, None, v)),
    "cross_check": (*SPEC_ARG, lambda v: backends.cross_check(v)),
    "backends.resolve_input_size": (*SPEC_ARG, lambda v: backends.resolve_input_size(v)),
    "backends.program": (*SPEC_ARG, lambda v: backends.program.program(v)),
}


def cases():
    return [pytest.param(fid, kind, id=f"{fid}-{kind}") for fid, (_, valid, _) in CALLS.items() for kind in BAD
            if kind not in valid]


@pytest.mark.parametrize("fid, kind", cases())
def test_wrong_typed_argument_raises_the_packages_error_naming_it(fid, kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, but never into the checkout
    argument, _, call = CALLS[fid]
    value = BAD[kind]
    with pytest.raises(od.OscDesignError) as info:
        call(value)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert (f"`{argument}`" if argument != "unknown family" else argument) in message
    assert repr(value)[:20] in message
    assert list(tmp_path.iterdir()) == []


def test_the_issues_examples():
    with pytest.raises(od.SpecError, match=r"`spec` \(=Target\(in_channels=8.*must be a LayerSpec, got Target"):
        od.cost(TARGET)
    with pytest.raises(od.SpecError, match=r"`name`: unknown network 'resnet101'; expected one of resnet18"):
        catalog.catalog_layers("resnet101")


def test_a_dilated_target_is_refused_by_the_solver_and_compare_with_the_way_to_design_it():
    import osc_design as od
    from osc_design.compare import compare
    from osc_design.errors import SpecError

    target = od.Target(16, 16, 3, padding=2, dilation=2)
    for call in (lambda: od.solve(target), lambda: compare(target)):
        with pytest.raises(SpecError, match="dilation 2x2: .*networks.plan.dilate"):
            call()
