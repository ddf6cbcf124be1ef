"""PydanticAI agents on `OpenAIChatModel` and `OpenAIResponsesModel`: free text and a pydantic output type (by
default a forced call of an output tool)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import JSON_PROMPT, JSON_TOKENS, PROMPT, QWEN2, QWEN3, TEXT_TOKENS, Answer, async_outcome, check_answer, outcome, require

pytestmark = pytest.mark.compat

pydantic_ai = require("pydantic_ai")
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

MODELS = {"chat": OpenAIChatModel, "responses": OpenAIResponsesModel}


def agent(base_url: str, api: str, model: str, max_tokens: int, **options: Any) -> Any:
    """An `Agent` on `api`'s model class, greedy and short."""
    provider = OpenAIProvider(base_url=base_url, api_key="unused")
    return pydantic_ai.Agent(MODELS[api](model, provider=provider), model_settings={"max_tokens": max_tokens, "temperature": 0}, **options)


@pytest.mark.parametrize("api", MODELS)
def test_text(base_url: str, api: str) -> None:
    result = outcome(lambda: agent(base_url, api, QWEN2, TEXT_TOKENS).run_sync(PROMPT))
    assert isinstance(result.output, str) and result.usage.output_tokens > 0


@pytest.mark.parametrize("api", MODELS)
@pytest.mark.parametrize("model", [QWEN2, QWEN3])
def test_output_type(base_url: str, api: str, model: str) -> None:
    result = outcome(lambda: agent(base_url, api, model, JSON_TOKENS, output_type=Answer, retries=0).run_sync(JSON_PROMPT), content_ok=True)
    check_answer(result.output)


@pytest.mark.parametrize("api", MODELS)
async def test_run_stream(base_url: str, api: str) -> None:
    async def run() -> str:
        async with agent(base_url, api, QWEN2, TEXT_TOKENS).run_stream(PROMPT) as result:
            return "".join([delta async for delta in result.stream_text(delta=True)])

    assert await async_outcome(run)


@pytest.mark.parametrize("api", MODELS)
async def test_run_stream_output_type(base_url: str, api: str) -> None:
    """A streamed forced call of the output tool: the tool-call deltas of chat, the function-call events of Responses."""

    async def run() -> Answer:
        async with agent(base_url, api, QWEN2, JSON_TOKENS, output_type=Answer, retries=0).run_stream(JSON_PROMPT) as result:
            return await result.get_output()

    check_answer(await async_outcome(run, content_ok=True))
