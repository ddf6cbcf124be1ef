"""Prefix caching changes how fast a repeated prefix is served, never what greedy decoding answers."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from vlm_router.api.app import create_app

from .conftest import ServerThread, data_url, image_part, png_bytes, router_config, user


@pytest.fixture(scope="module")
def client(tiny_qwen, families) -> Iterator[openai.OpenAI]:
    models = [
        {"name": f"prefix-{on}", "path": str(tiny_qwen), "scheduler": {"enable_prefix_caching": on}, "defaults": {"max_tokens": 12}}
        for on in (True, False)
    ]
    with ServerThread(create_app(router_config(models), families)) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat(client: openai.OpenAI, model: str) -> list[str]:
    """A three-turn chat about one image, greedy: each answer, the earlier turns sent again each time."""
    picture = image_part(data_url(png_bytes(200, 150, (30, 120, 200))))
    messages: list[dict] = []
    answers = []
    for k, question in enumerate(("What is in the picture?", "And its colour?", "Say it again.")):
        messages.append(user(picture, question) if k == 0 else user(question))
        answer = client.chat.completions.create(model=model, messages=messages, temperature=0).choices[0].message.content
        messages.append({"role": "assistant", "content": answer})
        answers.append(answer)
    return answers


def test_greedy_answers_are_the_same_with_prefix_caching_on_and_off(client):
    cached = chat(client, "prefix-True")
    assert cached == chat(client, "prefix-True")  # the second time, every prefix is in the cache
    assert cached == chat(client, "prefix-False")
    assert all(cached)
