"""LiteLLM's `completion` and `responses` through its `openai/` provider: text, an image, streaming."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .helpers import IMAGE_URL, PROMPT, QWEN2, TEXT_TOKENS, async_outcome, outcome, require

pytestmark = pytest.mark.compat

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price list at import
litellm = require("litellm")

IMAGE = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]


def options(base_url: str) -> dict[str, Any]:
    """The arguments of every call: the `openai/` provider on the suite's server, greedy, no retries."""
    return {"model": f"openai/{QWEN2}", "api_base": base_url, "api_key": "unused", "temperature": 0, "num_retries": 0}


@pytest.mark.parametrize("content", [PROMPT, IMAGE], ids=["text", "image"])
def test_completion(base_url: str, content: str | list) -> None:
    reply = outcome(lambda: litellm.completion(messages=[{"role": "user", "content": content}], max_tokens=TEXT_TOKENS, **options(base_url)))
    assert isinstance(reply.choices[0].message.content, str) and reply.usage.completion_tokens > 0


def test_completion_stream(base_url: str) -> None:
    chunks = outcome(lambda: list(litellm.completion(messages=[{"role": "user", "content": IMAGE}], max_tokens=TEXT_TOKENS, stream=True, **options(base_url))))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_acompletion(base_url: str) -> None:
    reply = await async_outcome(lambda: litellm.acompletion(messages=[{"role": "user", "content": PROMPT}], max_tokens=TEXT_TOKENS, **options(base_url)))
    assert reply.choices[0].message.content is not None


@pytest.mark.parametrize("stream", [False, True])
def test_responses(base_url: str, stream: bool) -> None:
    def run() -> str:
        reply = litellm.responses(input=PROMPT, max_output_tokens=TEXT_TOKENS, stream=stream, **options(base_url))
        return "".join(e.delta for e in reply if e.type == "response.output_text.delta") if stream else reply.output[0].content[0].text

    assert outcome(run)
