"""Versioned JSON for layer specs: deterministic dumps, schema-validated loads (parsed, never evaluated).

Documents are checked against their shipped JSON Schema by ``jsonschema`` (imported on the first load,
so commands that read no file never pay for it); :func:`schema_error` words its first violation as one
line naming the field and its value.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import SchemaError, SpecError, check_type
from .io import write_text
from .ops import OPS
from .spec import LayerSpec, Target

__all__ = [
    "FORMAT",
    "VERSION",
    "MAX_BYTES",
    "layer_schema",
    "to_dict",
    "from_dict",
    "dumps",
    "loads",
    "save",
    "load",
    "format_json",
    "schema_error",
    "parse_json",
    "read_capped",
]

FORMAT = "osc-design.layer"
VERSION = 1
MAX_BYTES = 10 * 1024 * 1024
"""Largest spec document accepted (10 MB)."""

_INFO_FIELDS = ("cost", "coverage", "certificate")


@cache
def layer_schema() -> dict[str, Any]:
    """The shipped JSON Schema (draft 2020-12) of layer-spec documents, version 1."""
    text = resources.files("osc_design").joinpath("schemas/layer-v1.schema.json").read_text("utf-8")
    return json.loads(text)


def to_dict(spec: LayerSpec, **info: Any) -> dict[str, Any]:
    """The JSON document of ``spec``; ``info`` adds informational fields (``cost``, ``coverage``, ``certificate``)."""
    check_type(spec, LayerSpec, "spec")
    unknown = set(info) - set(_INFO_FIELDS)
    if unknown:
        raise SpecError(f"unknown informational fields {sorted(unknown)}; allowed: {list(_INFO_FIELDS)}")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "family": spec.family,
        "options": spec.options_dict,
        "target": spec.target.to_dict(),
        "graph": {"nodes": [n.to_dict() for n in spec.nodes], "output": spec.output},
    }
    doc.update((k, info[k]) for k in _INFO_FIELDS if info.get(k) is not None)
    return doc


_VALIDATORS: dict[int, tuple[Any, Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    """The ``jsonschema`` validator of ``schema`` (built once per schema object). JSON integers only:
    ``3.0`` and ``true`` are not integers (``jsonschema`` alone accepts ``3.0``)."""
    hit = _VALIDATORS.get(id(schema))
    if hit is None or hit[0] is not schema:
        import jsonschema

        base = jsonschema.validators.validator_for(schema)
        strict = base.TYPE_CHECKER.redefine("integer", lambda _checker, value: type(value) is int)
        hit = _VALIDATORS[id(schema)] = (schema, jsonschema.validators.extend(base, type_checker=strict)(schema))
    return hit[1]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(path: Any) -> str:
    out = ""
    for key in path:
        out = f"{out}[{key}]" if isinstance(key, int) else (f"{out}.{key}" if out else str(key))
    return out or "document"


def _unknown(error: Any) -> str:
    props, patterns = error.schema.get("properties", {}), error.schema.get("patternProperties", {})
    return next(k for k in error.instance if k not in props and not any(re.search(p, k) for p in patterns))


_RULES = {
    "type": lambda v: "must be of type " + " or ".join(v if isinstance(v, list) else [v]),
    "const": lambda v: f"must be {v!r}",
    "enum": lambda v: "must be one of " + ", ".join(map(repr, v)),
    "minimum": lambda v: f"must be >= {v}",
    "minLength": lambda v: f"must have at least {v} character(s)",
    "minItems": lambda v: f"must have at least {v} item(s)",
    "maxItems": lambda v: f"must have at most {v} item(s)",
    "oneOf": lambda v: "must match exactly one of its alternatives",
}


def _message(error: Any) -> str:
    """One line naming the field, its value and the rule it breaks."""
    where, rule = _where(error.absolute_path), error.validator
    if rule == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        return f"`{where}`: missing field `{missing}`"
    if rule == "additionalProperties":
        return f"`{where}`: unknown field `{_unknown(error)}`"
    if rule is None:  # the `false` schema
        return f"`{where}`: not allowed here"
    if rule == "oneOf" and error.context and all(e.validator == "type" and not e.path for e in error.context):
        return f"`{where}` (={_show(error.instance)}): " + _RULES["type"]([e.validator_value for e in error.context])
    text = _RULES[rule](error.validator_value) if rule in _RULES else " ".join(error.message.split())
    return f"`{where}` (={_show(error.instance)}): {text}"


def schema_error(schema: dict[str, Any], doc: Any) -> str | None:
    """The most relevant violation of ``schema`` by ``doc`` (``jsonschema``'s ``best_match``) as one
    line naming the field and its value, or ``None`` when ``doc`` is valid.

    >>> schema_error(layer_schema(), {"format": "osc-design.layer"})
    '`document`: missing field `version`'
    """
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(doc))
    return None if error is None else _message(error)


def _check_header(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise SchemaError(f"a layer spec must be a JSON object, got {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise SchemaError(f"`format` (={fmt!r}): not an osc-design layer spec (expected {FORMAT!r})")
    version = doc.get("version")
    if type(version) is int and version > VERSION:
        raise SchemaError(
            f"`version` (={version}): written by a newer osc-design; this one reads version {VERSION}, "
            "upgrade osc-design"
        )
    if version != VERSION or type(version) is not int:
        raise SchemaError(f"`version` (={version!r}): unknown layer-spec version (expected {VERSION})")


def from_dict(doc: Any) -> LayerSpec:
    """Validate a parsed document against the schema and build its :class:`LayerSpec`."""
    _check_header(doc)
    err = schema_error(layer_schema(), doc)
    if err:
        raise SchemaError(err)
    t = doc["target"]
    try:
        target = Target(
            t["in_channels"], t["out_channels"], tuple(t["kernel_size"]), tuple(t.get("stride", (1, 1))),
            None if t.get("padding") is None else tuple(t["padding"]),
            None if t.get("input_size") is None else tuple(t["input_size"]), tuple(t.get("dilation", (1, 1))),
        )
    except SpecError as e:
        raise SchemaError(f"target: {e}") from None
    nodes = []
    for i, raw in enumerate(doc["graph"]["nodes"]):
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k != "op"}
        try:
            nodes.append(OPS[raw["op"]](**kwargs))
        except SpecError as e:
            raise SchemaError(f"graph.nodes[{i}]: {e}") from None
    options: Any = doc.get("options") or {}  # a mapping: LayerSpec freezes it
    try:
        return LayerSpec(target, tuple(nodes), doc["graph"]["output"], doc["family"], options)
    except SpecError as e:
        raise SchemaError(f"graph: {e}") from None


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SchemaError(f"duplicate field `{k}` in a JSON object")
        out[k] = v
    return out


def _reject_constant(name: str) -> None:
    raise SchemaError(f"{name} is not valid JSON")


_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def parse_json(text: str | bytes, what: str = "document", limit: int | None = MAX_BYTES) -> Any:
    """Parse JSON text strictly for the readers (specs, network descriptions, the latency cache): bytes
    must be UTF-8, no ``NaN``/``Infinity``, no duplicate field, integers of at most 4300 digits, at most
    ``limit`` bytes (``None``: any size); every failure is one :class:`SchemaError` line.

    >>> parse_json('{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> parse_json(b'[1, NaN]')
    Traceback (most recent call last):
    ...
    osc_design.errors.SchemaError: NaN is not valid JSON
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text) if limit else 0
    if limit is not None and size > limit:
        raise SchemaError(f"{what} of {size} bytes exceeds the {limit} byte limit")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
        if _SURROGATE.search(text):  # an escaped half of a UTF-16 pair left alone cannot be written out
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        return doc
    except SchemaError:  # NaN, Infinity or a duplicate field (the hooks above)
        raise
    except json.JSONDecodeError as e:
        raise SchemaError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise SchemaError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except UnicodeEncodeError:
        raise SchemaError("a string holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)") from None
    except RecursionError:
        raise SchemaError("JSON document nested too deeply") from None
    except ValueError as e:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise SchemaError(f"invalid JSON: {' '.join(str(e).split(';')[0].split())}") from None


def loads(text: str | bytes) -> LayerSpec:
    """Parse and validate a layer-spec JSON document (at most :data:`MAX_BYTES`; see :func:`parse_json`).

    >>> from osc_design.spec import GraphBuilder, Target
    >>> b = GraphBuilder(Target(8, 8, 3))
    >>> spec = b.build(b.conv2d(b.input, 8, 3, padding=1), family="conv")
    >>> loads(dumps(spec)) == spec
    True
    """
    check_type(text, (str, bytes, bytearray), "text", "JSON text (str or bytes)")
    return from_dict(parse_json(text, "spec document"))


def format_json(value: Any, indent: int = 0) -> str:
    """Deterministic pretty JSON: objects one field per line, lists of scalars on one line."""
    check_type(indent, int, "indent", "an integer")
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {format_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        return "[\n" + ",\n".join(f"{inner}{format_json(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False)


def dumps(spec: LayerSpec, **info: Any) -> str:
    """Deterministic JSON text of ``spec`` (same design, byte-identical output), ending in a newline."""
    return format_json(to_dict(spec, **info)) + "\n"


def save(spec: LayerSpec, path: str | os.PathLike[str], **info: Any) -> None:
    """Write ``spec`` as JSON to ``path`` atomically."""
    check_type(path, (str, os.PathLike), "path", "a path (str or os.PathLike)")
    write_text(path, dumps(spec, **info))


def read_capped(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the file ``path``, refused above :data:`MAX_BYTES` before reading (one
    :class:`SchemaError` line naming the path, as is a file that cannot be read)."""
    check_type(path, (str, os.PathLike), "path", "a path (str or os.PathLike)")
    try:
        size = os.stat(path).st_size
        if size > MAX_BYTES:
            raise SchemaError(f"{path}: {size} bytes exceeds the {MAX_BYTES} byte limit")
        return Path(path).read_bytes()
    except OSError as e:
        raise SchemaError(f"{path}: cannot read ({e.strerror or e})") from None


def load(path: str | os.PathLike[str]) -> LayerSpec:
    """Read and validate a layer-spec file (refused above :data:`MAX_BYTES` before reading)."""
    data = read_capped(path)
    try:
        return loads(data)
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None
