"""What a `json_schema` response format may hold: the JSON Schema that openvino-genai's grammar compiler takes.

openvino-genai converts a schema to a grammar with xgrammar inside a batch step, where an error stops
the step for every request of the model and leaves the pipeline unusable. So a schema is checked
here first: its shape by hand, with a 400 naming the place that is wrong, then by xgrammar's own
converter (the version openvino-genai bundles) as the worker calls it (`json_grammar`), so that a schema
openvino-genai would refuse is a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..json_grammar import compact_grammar

TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
#: Keywords whose value is one schema, a list of schemas, or a map of names to schemas.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "unevaluatedProperties", "unevaluatedItems")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "definitions", "patternProperties")
#: Lists the converter cannot take empty: there would be nothing to choose from.
_NON_EMPTY = ("anyOf", "oneOf", "enum")
#: Deep enough for real schemas; deeper ones are refused rather than recursed into.
MAX_DEPTH = 32
#: xgrammar's error text starts with a time and its source position, and an assertion's with the
#: failed expression: `[04:33:40] /project/cpp/x.cc:961: Check failed: (...) is false: reason`.
_COMPILER_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: (?:Check failed: .* is false: ?)?", re.DOTALL)


class SchemaError(ValueError):
    """The schema cannot be compiled; the message names where, or what the compiler found."""


def check_schema(schema: Any) -> None:
    """Raise `SchemaError` for a schema openvino-genai's grammar compiler would refuse."""
    check_shape(schema)
    try:
        grammar = compact_grammar(json.dumps(schema))  # as the worker converts it
    except (RuntimeError, ValueError) as exc:
        raise SchemaError(f"schema cannot be compiled to a grammar: {compiler_reason(str(exc))}") from None
    if grammar is None:
        raise SchemaError("json_schema response formats need the grammar compiler openvino-genai uses: install vlm-router[structured]")


def compiler_reason(text: str) -> str:
    """The reason in an xgrammar error, without its time stamp, source path and failed expression."""
    return _COMPILER_PREFIX.sub("", text.strip()).strip() or "refused by the grammar compiler"


def check_shape(schema: Any, where: str = "schema", depth: int = 0) -> None:
    """Raise `SchemaError`, naming the place, for a schema whose shape the compiler cannot take."""
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
    for key in _NON_EMPTY:
        if schema.get(key) == []:
            raise SchemaError(f"{where}.{key} must list at least one {'value' if key == 'enum' else 'schema'}")
    for key in _ONE:
        if key in schema:
            check_shape(schema[key], f"{where}.{key}", depth + 1)
    for key in _LIST:
        if key in schema:
            if not isinstance(schema[key], list):
                raise SchemaError(f"{where}.{key} must be a list of schemas")
            for i, item in enumerate(schema[key]):
                check_shape(item, f"{where}.{key}.{i}", depth + 1)
    for key in _MAP:
        if key in schema:
            if not isinstance(schema[key], dict):
                raise SchemaError(f"{where}.{key} must map names to schemas")
            for name, item in schema[key].items():
                check_shape(item, f"{where}.{key}.{name}", depth + 1)
