"""langchain-openai's `ChatOpenAI` with its defaults: invoke, stream, an image, structured output by every method, the
Responses API."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from .helpers import IMAGE_URL, JSON_PROMPT, JSON_TOKENS, PROMPT, QWEN2, QWEN3, TEXT_TOKENS, Answer, check_answer, outcome, require

pytestmark = pytest.mark.compat

langchain_openai = require("langchain_openai")


def chat(base_url: str, model: str = QWEN2, max_tokens: int = TEXT_TOKENS, **options: Any) -> Any:
    """A `ChatOpenAI` on the suite's server, greedy and short."""
    return langchain_openai.ChatOpenAI(model=model, base_url=base_url, api_key="unused", max_tokens=max_tokens, temperature=0, max_retries=0, timeout=120, **options)


@pytest.mark.parametrize("options", [{}, {"use_responses_api": True}], ids=["chat", "responses"])
def test_invoke_and_stream(base_url: str, options: dict) -> None:
    llm = chat(base_url, **options)
    reply = outcome(lambda: llm.invoke(PROMPT))
    assert reply.text and reply.usage_metadata["output_tokens"] > 0
    assert outcome(lambda: "".join(chunk.text for chunk in llm.stream(PROMPT)))


@pytest.mark.parametrize("options", [{}, {"use_responses_api": True}], ids=["chat", "responses"])
def test_image(base_url: str, options: dict) -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}
    assert outcome(lambda: chat(base_url, **options).invoke([message])).text


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
@pytest.mark.parametrize("method", [None, "function_calling", "json_schema", "json_mode"])
def test_structured_output(base_url: str, model: str, method: str | None) -> None:
    """None is the library's default method; json_mode asks for any object, so the model may miss the field."""
    llm = chat(base_url, model, JSON_TOKENS).with_structured_output(Answer, **({"method": method} if method else {}))
    check_answer(outcome(lambda: llm.invoke(JSON_PROMPT), content_ok=True))


def test_structured_output_responses_api(base_url: str) -> None:
    llm = chat(base_url, QWEN3, JSON_TOKENS, use_responses_api=True).with_structured_output(Answer, method="json_schema")
    check_answer(outcome(lambda: llm.invoke(JSON_PROMPT), content_ok=True))


@pytest.mark.parametrize("tool_choice", [None, "any", "Answer"])
@pytest.mark.parametrize("model", [QWEN2, QWEN3])
def test_bind_tools(base_url: str, model: str, tool_choice: str | None) -> None:
    """`bind_tools` leaves tool_choice out (the server's default, "auto"): the model decides where its family has a
    tool template (qwen3_vl), elsewhere a documented 400 naming tool_choice; "any" and a name force a call anywhere."""
    llm = chat(base_url, model, JSON_TOKENS).bind_tools([Answer], **({"tool_choice": tool_choice} if tool_choice else {}))
    if tool_choice is None and model == QWEN2:
        with pytest.raises(openai.BadRequestError, match="has no tool template") as caught:
            llm.invoke(JSON_PROMPT)
        assert caught.value.body["param"] == "tools"
        return
    reply = outcome(lambda: llm.invoke(JSON_PROMPT))
    if tool_choice:
        assert [call["name"] for call in reply.tool_calls] == ["Answer"]
        check_answer(Answer.model_validate(reply.tool_calls[0]["args"]))
