"""Layer-spec JSON: round trip, determinism, schema agreement, and every malformed-document error."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from hypothesis import given, settings

from osc_design import GraphBuilder, SchemaError, Target, dumps, layer_schema, load, loads, save
from osc_design.serialize import MAX_BYTES, schema_error, to_dict
from tests.strategies import graphs


def _example():
    b = GraphBuilder(Target(8, 8, 3, input_size=6))
    y = b.conv2d(b.input, 8, (3, 1), padding=(1, 0), groups=4, bias=True)
    y = b.channel_shuffle(y, 4)
    y = b.conv2d(y, 8, (1, 3), padding=(0, 1), groups=2)
    return b.build(y, family="osc-2", options={"max_stages": 2, "widths": [8]})


@settings(max_examples=100, deadline=None)
@given(graphs(max_channels=8, max_blocks=5))
def test_round_trip_and_determinism(spec):
    text = dumps(spec)
    back = loads(text)
    assert back == spec
    assert dumps(back) == text  # byte-identical
    jsonschema.validate(json.loads(text), layer_schema())


def test_example_round_trip_file(tmp_path):
    spec = _example()
    path = tmp_path / "spec.json"
    save(spec, path, cost={"params": 1}, certificate={"bound": 1.5})
    back = load(path)
    assert back == spec and back.options_dict == {"max_stages": 2, "widths": [8]}
    doc = json.loads(path.read_text())
    assert doc["format"] == "osc-design.layer" and doc["version"] == 1 and doc["cost"] == {"params": 1}
    assert list(tmp_path.iterdir()) == [path]  # the atomic write leaves no temporary file


def _doc():
    return to_dict(_example())


def _mutate(path, value):
    doc = _doc()
    *head, last = path
    node = doc
    for key in head:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_mutate(["format"], "onnx"), "`format` (='onnx'): not an osc-design layer spec"),
        (_mutate(["version"], 2), "`version` (=2): written by a newer osc-design"),
        (_mutate(["version"], 0), "`version` (=0): unknown layer-spec version"),
        (_mutate(["version"], "1"), "`version` (='1'): unknown layer-spec version"),
        (_mutate(["graph", "nodes", 1, "op"], "conv3d"), "`graph.nodes[1].op` (='conv3d'): must be one of"),
        (_mutate(["graph", "nodes", 1, "groups"], KeyError), "`graph.nodes[1]`: missing field `groups`"),
        (_mutate(["target", "in_channels"], KeyError), "`target`: missing field `in_channels`"),
        (_mutate(["graph", "nodes", 1, "kernel_size"], "3"),
         "`graph.nodes[1].kernel_size` (='3'): must be of type array"),
        (_mutate(["graph", "nodes", 1, "kernel_size"], [3.0, 1]),
         "`graph.nodes[1].kernel_size[0]` (=3.0): must be of type integer"),
        (_mutate(["graph", "nodes", 1, "groups"], True), "`graph.nodes[1].groups` (=True): must be of type integer"),
        (_mutate(["graph", "nodes", 1, "kernel_size"], [0, 1]), "`graph.nodes[1].kernel_size[0]` (=0): must be >= 1"),
        (_mutate(["graph", "nodes", 1, "eval"], "__import__('os')"), "`graph.nodes[1]`: unknown field `eval`"),
        (_mutate(["graph", "nodes", 3, "in_channels"], 4),
         "graph: node 'conv2' (conv2d): `in_channels` (=4) but its input 'shuffle1' has 8"),
        (_mutate(["graph", "nodes", 3, "in_channels"], 3),
         "graph.nodes[3]: node 'conv2' (conv2d): `groups` (=2) must divide `in_channels` (=3)"),
        (_mutate(["graph", "nodes", 3, "out_channels"], 6), "output node has 6 channels, target `out_channels` is 8"),
        (_mutate(["graph", "nodes", 1, "inputs"], ["conv2"]), "the graph has a cycle"),
        (_mutate(["graph", "nodes", 1, "inputs"], ["nowhere"]), "input 'nowhere' is not a node id"),
        (_mutate(["graph", "output"], "conv1"), "nodes ['shuffle1', 'conv2'] do not lead to the output 'conv1'"),
        (_mutate(["graph", "nodes", 2, "groups"], 3), "`groups` (=3) must divide its input's 8 channels"),
        (_mutate(["target", "input_size"], [0, 6]), "`target.input_size[0]` (=0): must be >= 1"),
        ("{", "invalid JSON at line 1, column 2"),
        ("[1, 2]", "a layer spec must be a JSON object, got list"),
        ('{"format": "osc-design.layer", "format": "x"}', "duplicate field `format`"),
        (_mutate(["options", "p"], 1.0).replace("1.0", "NaN"), "NaN is not valid JSON"),
        (b"\xff\xfe{", "not UTF-8 text"),
    ],
    ids=lambda v: str(v)[-30:],
)
def test_malformed_documents_name_field_and_value(text, message):
    with pytest.raises(SchemaError) as err:
        loads(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_channel_consistency_message():
    doc = _doc()
    doc["graph"]["nodes"][3]["in_channels"] = 16
    doc["graph"]["nodes"][3]["groups"] = 1
    with pytest.raises(SchemaError, match=r"`in_channels` \(=16\) but its input 'shuffle1' has 8 channels"):
        loads(json.dumps(doc))


def test_too_large_is_refused_before_parsing(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_BYTES + 1))
    with pytest.raises(SchemaError, match="exceeds the 10485760 byte limit"):
        load(big)
    with pytest.raises(SchemaError, match="exceeds"):
        loads(" " * (MAX_BYTES + 1))


def test_missing_file_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="cannot read"):
        load(tmp_path / "nope.json")


def _mutations(doc):
    """Single-field mutations of a valid document, for comparing validators."""
    values = [None, 0, -1, 1, 2.5, True, "x", [], [1], [1, 2], [0, 0], {}, {"a": 1}]
    paths = [["format"], ["version"], ["family"], ["target", "kernel_size"], ["target", "stride"],
             ["target", "input_size"], ["graph", "output"], ["graph", "nodes", 0, "channels"],
             ["graph", "nodes", 1, "groups"], ["graph", "nodes", 1, "padding"], ["graph", "nodes", 1, "bias"],
             ["graph", "nodes", 1, "op"], ["graph", "nodes", 2, "groups"], ["graph", "nodes", 2, "inputs"],
             ["options", "widths"], ["graph", "nodes", 1, "new"], ["graph", "extra"]]
    for path in paths:
        for value in values:
            d = copy.deepcopy(doc)
            node = d
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            yield d


def test_validation_agrees_with_plain_jsonschema():
    """The strict integer type (3.0 is not an integer) changes no verdict on these mutations, and every
    violation is worded as one line naming a field."""
    schema = layer_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    checked = 0
    for doc in _mutations(_doc()):
        ours = schema_error(schema, doc)
        assert (ours is None) == validator.is_valid(doc), (ours, doc)
        assert ours is None or (ours.startswith("`") and "\n" not in ours)
        checked += 1
    assert checked > 200


def test_integral_floats_are_not_integers():
    doc = _doc()
    doc["target"]["in_channels"] = 8.0
    assert jsonschema.Draft202012Validator(layer_schema()).is_valid(doc)  # plain jsonschema accepts 8.0
    assert schema_error(layer_schema(), doc) == "`target.in_channels` (=8.0): must be of type integer"
