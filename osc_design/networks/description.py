"""Network description files: the convolutions of a network as versioned, schema-validated JSON."""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from typing import Any

from ..errors import SchemaError, SpecError, check_type
from ..io import write_text
from ..serialize import format_json, parse_json, read_capped, schema_error
from .catalog import ConvLayer

__all__ = ["FORMAT", "VERSION", "PAIR_FIELDS", "network_schema", "layers_to_dict", "layers_from_dict", "load_network",
           "normalise_pairs", "save_network"]

FORMAT = "osc-design.network"
VERSION = 1

PAIR_FIELDS = ("kernel_size", "stride", "padding", "dilation", "input_size")
"""Fields that take ``[height, width]`` or, as on the command line, one integer ``N`` for ``[N, N]``."""


def normalise_pairs(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the shorthand ``N`` of each :data:`PAIR_FIELDS` entry written out as ``[N, N]``.

    >>> normalise_pairs({"kernel_size": 3, "stride": [2, 1]})
    {'kernel_size': [3, 3], 'stride': [2, 1]}
    """
    return {k: [v, v] if k in PAIR_FIELDS and type(v) is int else v for k, v in raw.items()}


@cache
def network_schema() -> dict[str, Any]:
    """The shipped JSON Schema of network descriptions, version 1."""
    return json.loads(resources.files("osc_design").joinpath("schemas/network-v1.schema.json").read_text("utf-8"))


def layers_to_dict(name: str, layers: list[ConvLayer], input_shape: tuple[int, ...] | None = None,
                   others: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The JSON document describing ``layers`` (in forward order), and the ``others`` convolution modules
    (``(name, reason)``, as :func:`~osc_design.networks.extract.extract_network` lists them) when given."""
    check_type(name, str, "name", "a network name (str)")
    check_type(layers, (list, tuple), "layers", "a list of ConvLayer")
    for i, layer in enumerate(layers):
        check_type(layer, ConvLayer, f"layers[{i}]")
    if input_shape is not None and (not isinstance(input_shape, (list, tuple))
                                    or not all(type(v) is int and v >= 1 for v in input_shape)):
        raise SpecError(f"`input_shape` (={input_shape!r}) must be a tuple of positive integers")
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": name}
    if input_shape is not None:
        doc["input_shape"] = list(input_shape)
    doc["layers"] = [_layer_dict(layer) for layer in layers]
    if others:
        doc["others"] = [{"name": n, "reason": why} for n, why in others]
    return doc


def _layer_dict(layer: ConvLayer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": layer.name, "in_channels": layer.in_channels, "out_channels": layer.out_channels,
        "kernel_size": list(layer.kernel_size), "stride": list(layer.stride), "padding": list(layer.padding),
        "dilation": list(layer.dilation), "groups": layer.groups, "bias": layer.bias,
        "input_size": list(layer.input_size)}
    if any(layer.pre_padding):  # optional fields, only when set: older files and readers stay valid
        out["pre_padding"] = list(layer.pre_padding)
    if layer.keep_reason is not None:
        out["keep_reason"] = layer.keep_reason
    if layer.later_input_sizes:
        out["later_input_sizes"] = [list(size) for size in layer.later_input_sizes]
    return out


def layers_from_dict(doc: Any) -> tuple[str, list[ConvLayer]]:
    """Validate a parsed network description and return ``(name, layers)``.

    A size field may be one integer ``N`` for ``[N, N]`` (:data:`PAIR_FIELDS`), normalised here."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise SchemaError(f"`format` (={got!r}): not an osc-design network description (expected {FORMAT!r})")
    version = doc.get("version")
    if type(version) is int and version > VERSION:
        raise SchemaError(f"`version` (={version}): written by a newer osc-design; this one reads version {VERSION}")
    err = schema_error(network_schema(), doc)
    if err:
        raise SchemaError(err)
    layers = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["layers"]):
        raw = normalise_pairs(raw)
        if raw["name"] in seen:
            raise SchemaError(f"`layers[{i}].name` (={raw['name']!r}): duplicate layer name")
        seen.add(raw["name"])
        groups = raw.get("groups", 1)
        for field in ("in_channels", "out_channels"):
            if raw[field] % groups:
                raise SchemaError(f"`layers[{i}].groups` (={groups}) must divide `{field}` (={raw[field]})")
        k = tuple(raw["kernel_size"])
        layers.append(ConvLayer(
            name=raw["name"], in_channels=raw["in_channels"], out_channels=raw["out_channels"], kernel_size=k,
            stride=tuple(raw.get("stride", (1, 1))), padding=tuple(raw.get("padding", (k[0] // 2, k[1] // 2))),
            groups=groups, bias=raw.get("bias", False), input_size=tuple(raw["input_size"]),
            dilation=tuple(raw.get("dilation", (1, 1))), pre_padding=tuple(raw.get("pre_padding", (0, 0, 0, 0))),
            keep_reason=raw.get("keep_reason"),
            later_input_sizes=tuple(tuple(size) for size in raw.get("later_input_sizes", ())),
        ))
        _check_sizes(layers[-1], raw, f"layers[{i}]")
    return doc["name"], layers


def _check_sizes(layer: ConvLayer, raw: dict[str, Any], where: str) -> None:
    """Every call's input size holds the layer's ``pre_padding`` and its kernel."""
    from dataclasses import replace

    for i, size in enumerate(layer.input_sizes):
        field = "input_size" if i == 0 else f"later_input_sizes[{i - 1}]"
        call = replace(layer, input_size=size, later_input_sizes=())
        if min(call.module_input_size) < 1:
            raise SchemaError(f"`{where}.pre_padding` (={raw['pre_padding']}) exceeds `{field}`")
        if min(call.output_size) < 1:
            raise SchemaError(f"`{where}.{field}` (={list(size)}) is too small for its kernel")


def load_network(path: str | os.PathLike[str]) -> tuple[str, list[ConvLayer]]:
    """Read a network description file (parsed strictly by :func:`~osc_design.serialize.parse_json`, never
    evaluated; at most 10 MB)."""
    data = read_capped(path)
    try:
        return layers_from_dict(parse_json(data, "network description"))
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None


def save_network(path: str | os.PathLike[str], name: str, layers: list[ConvLayer],
                 input_shape: tuple[int, ...] | None = None, others: list[tuple[str, str]] | None = None) -> None:
    """Write a network description atomically."""
    check_type(path, (str, os.PathLike), "path", "a path (str or os.PathLike)")
    write_text(path, format_json(layers_to_dict(name, layers, input_shape, others)) + "\n")
