"""Function calls in generated text, in the `<tool_call>{"name": ..., "arguments": ...}</tool_call>` form Qwen models write."""

from __future__ import annotations

import json
import re

from .conversation import ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_tagged_calls(text: str) -> tuple[str, list[ToolCall]]:
    """The text outside well-formed `<tool_call>` blocks, and the calls in them (ids left empty).

    A block whose JSON has no string `name` stays in the text: the model did not make a call.
    """
    calls: list[ToolCall] = []
    kept: list[str] = []
    position = 0
    for match in _TAGGED.finditer(text):
        try:
            call = json.loads(match.group(1))
        except ValueError:
            continue
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            continue
        arguments = call.get("arguments", {})
        calls.append(ToolCall("", call["name"], arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)))
        kept.append(text[position : match.start()])
        position = match.end()
    kept.append(text[position:])
    return "".join(kept).strip() if calls else text, calls
