"""A small JSON Schema validator for the subset of draft 2020-12 that osc-design's schemas use.

Keywords: ``type const enum required properties additionalProperties items minItems maxItems
minimum minLength $ref allOf oneOf if/then`` and boolean schemas. Errors name the JSON path and
the value. The tests check it against the reference ``jsonschema`` implementation.
"""

from __future__ import annotations

from typing import Any

__all__ = ["first_error"]

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt(path: str, value: Any, rule: str) -> str:
    return f"`{path}` (={_show(value)}): {rule}"


def _child(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else key)


def first_error(schema: Any, value: Any, root: dict[str, Any], path: str = "") -> str | None:
    """The first violation of ``schema`` by ``value`` as a one-line message, or ``None``."""
    if schema is True:
        return None
    if schema is False:
        return f"`{path}`: not allowed here"
    if "$ref" in schema:
        ref = schema["$ref"]
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        err = first_error(target, value, root, path)
        if err:
            return err
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return _fmt(path or "document", value, f"must be of type {' or '.join(types)}")
    if "const" in schema and not (value == schema["const"] and type(value) is type(schema["const"])):
        return _fmt(path, value, f"must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        return _fmt(path, value, f"must be one of {', '.join(map(repr, schema['enum']))}")
    if "minimum" in schema and type(value) in (int, float) and value < schema["minimum"]:
        return _fmt(path, value, f"must be >= {schema['minimum']}")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        return _fmt(path, value, f"must have at least {schema['minLength']} character(s)")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return _fmt(path, value, f"must have at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return _fmt(path, value, f"must have at most {schema['maxItems']} item(s)")
        if "items" in schema:
            for i, item in enumerate(value):
                err = first_error(schema["items"], item, root, _child(path, i))
                if err:
                    return err
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"`{path or 'document'}`: missing field `{name}`"
        props = schema.get("properties", {})
        for name, item in value.items():
            if name in props:
                err = first_error(props[name], item, root, _child(path, name))
            elif "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    return f"`{path or 'document'}`: unknown field `{name}`"
                err = first_error(extra, item, root, _child(path, name))
            else:
                err = None
            if err:
                return err
    for sub in schema.get("allOf", []):
        if "if" in sub:
            if first_error(sub["if"], value, root, path) is None:
                err = first_error(sub["then"], value, root, path)
                if err:
                    return err
            continue
        err = first_error(sub, value, root, path)
        if err:
            return err
    if "oneOf" in schema:
        errors = [first_error(sub, value, root, path) for sub in schema["oneOf"]]
        passed = sum(e is None for e in errors)
        if passed > 1:
            return _fmt(path, value, "matches more than one alternative")
        if passed == 0:
            real = [e for e in errors if e is not None and "must be of type" not in e]
            return real[0] if real else errors[0]
    return None
