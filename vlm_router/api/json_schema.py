"""What a `json_schema` response format may hold: the JSON Schema that openvino-genai's grammar compiler takes.

The compiler runs inside a batch step, where an error would stop every request of the model, so a
schema is checked here first and refused with a 400 naming the place that is wrong.
"""

from __future__ import annotations

from typing import Any

TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
#: Keywords whose value is one schema, a list of schemas, or a map of names to schemas.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "unevaluatedProperties", "unevaluatedItems")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "definitions", "patternProperties")
#: Deep enough for real schemas; deeper ones are refused rather than recursed into.
MAX_DEPTH = 32


class SchemaError(ValueError):
    """The schema cannot be compiled; the message names where."""


def check_schema(schema: Any, where: str = "schema", depth: int = 0) -> None:
    """Raise `SchemaError` for a schema openvino-genai's compiler would refuse."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"{where} must be an object or a boolean")
    if depth > MAX_DEPTH:
        raise SchemaError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for name in kinds:
        if not isinstance(name, str) or name not in TYPES:
            raise SchemaError(f"{where}.type: {name!r} is not a JSON Schema type ({', '.join(sorted(TYPES))})")
    ref = schema.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/", "#"))):
        raise SchemaError(f"{where}.$ref: only references inside the schema ('#/$defs/...') are supported")
    for key in _ONE:
        if key in schema:
            check_schema(schema[key], f"{where}.{key}", depth + 1)
    for key in _LIST:
        if key in schema:
            if not isinstance(schema[key], list):
                raise SchemaError(f"{where}.{key} must be a list of schemas")
            for i, item in enumerate(schema[key]):
                check_schema(item, f"{where}.{key}.{i}", depth + 1)
    for key in _MAP:
        if key in schema:
            if not isinstance(schema[key], dict):
                raise SchemaError(f"{where}.{key} must map names to schemas")
            for name, item in schema[key].items():
                check_schema(item, f"{where}.{key}.{name}", depth + 1)
