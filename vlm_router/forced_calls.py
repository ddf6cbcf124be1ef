"""Forced function calls (`tool_choice` "required" or a named function): generation is constrained to one call.

The answer is the JSON object `{"name": ..., "arguments": {...}}`, constrained by `call_schema`: a name of
the tools the call may use and arguments valid against that tool's parameters. Families without a tool
template describe the tools with `instruction` (`Family.forced_tool_prompt`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .conversation import ToolCall

#: The arguments' schema of a function that declares no parameters: any object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON schema of a call to one of `tools` (OpenAI's tool objects): `anyOf` over them when there are several."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": tool["function"]["name"]}, "arguments": tool["function"].get("parameters") or ANY_OBJECT},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}


def instruction(tools: Sequence[Mapping[str, Any]]) -> str:
    """A system instruction listing `tools` with their JSON schemas and asking for one call, as JSON."""
    which = f"the function `{tools[0]['function']['name']}`" if len(tools) == 1 else "one of these functions"
    listed = "\n".join(json.dumps(tool["function"], ensure_ascii=False) for tool in tools)
    return (
        f"Answer by calling {which}. Each function, with the JSON schema of its arguments:\n{listed}\n\n"
        'Reply with the call alone, as a JSON object: {"name": <function name>, "arguments": <arguments object>}'
    )


def parse_forced_call(text: str) -> tuple[str, list[ToolCall]]:
    """The call in a constrained answer (ids left empty); none, and the text, when it was cut short.

    Control characters in its strings are taken (and escaped in `arguments`): a byte-level token the grammar
    reads as a letter (`Č`) may decode to one (0x0C).
    """
    try:
        call = json.loads(text, strict=False)
    except ValueError:
        return text, []
    return "", [ToolCall("", call["name"], json.dumps(call["arguments"], ensure_ascii=False))]
