"""LlamaIndex's `OpenAILike`: completions (its default, `is_chat_model=False`), chat, and `structured_predict`."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import JSON_PROMPT, JSON_TOKENS, PROMPT, QWEN2, QWEN3, TEXT_TOKENS, Answer, check_answer, outcome, require

pytestmark = pytest.mark.compat

openai_like = require("llama_index.llms.openai_like")
from llama_index.core.llms import ChatMessage  # noqa: E402
from llama_index.core.prompts import PromptTemplate  # noqa: E402


def llm(base_url: str, model: str = QWEN2, max_tokens: int = TEXT_TOKENS, **options: Any) -> Any:
    """An `OpenAILike` on the suite's server, greedy and short; its defaults otherwise (`is_chat_model=False`)."""
    return openai_like.OpenAILike(model=model, api_base=base_url, api_key="unused", max_tokens=max_tokens, temperature=0, max_retries=0, timeout=120, **options)


def test_complete(base_url: str) -> None:
    """The defaults (`is_chat_model=False`): /v1/completions."""
    model = llm(base_url)
    assert outcome(lambda: model.complete(PROMPT)).text
    assert outcome(lambda: "".join(r.delta or "" for r in model.stream_complete(PROMPT)))


def test_chat(base_url: str) -> None:
    model = llm(base_url, is_chat_model=True)
    assert outcome(lambda: model.chat([ChatMessage(role="user", content=PROMPT)])).message.content
    assert outcome(lambda: "".join(r.delta or "" for r in model.stream_chat([ChatMessage(role="user", content=PROMPT)])))


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
def test_structured_predict(base_url: str, model: str) -> None:
    """A function-calling model: a forced call (`tool_choice: "required"`) of a tool named after the class."""
    chat = llm(base_url, model, JSON_TOKENS, is_chat_model=True, is_function_calling_model=True)
    check_answer(outcome(lambda: chat.structured_predict(Answer, PromptTemplate(JSON_PROMPT)), content_ok=True))
