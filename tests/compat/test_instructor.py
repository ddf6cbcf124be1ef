"""instructor on the official client: a pydantic model through forced tool calls and through `json_schema`."""

from __future__ import annotations

import openai
import pytest

from .helpers import JSON_PROMPT, JSON_TOKENS, QWEN2, QWEN3, Answer, check_answer, outcome, require

pytestmark = pytest.mark.compat

instructor = require("instructor")


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
@pytest.mark.parametrize("mode", ["TOOLS", "JSON_SCHEMA", "JSON", "MD_JSON"])
def test_response_model(base_url: str, model: str, mode: str) -> None:
    """JSON and MD_JSON put the schema in the prompt only (`json_object`, free text): the model may miss the field."""
    client = instructor.from_openai(openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120), mode=instructor.Mode[mode])
    messages = [{"role": "user", "content": JSON_PROMPT}]
    answer = outcome(lambda: client.chat.completions.create(model=model, response_model=Answer, messages=messages, max_retries=0, max_tokens=JSON_TOKENS, temperature=0), content_ok=True)
    check_answer(answer)
