"""LLaVA-1.5 prompts equal what the model's published chat template renders for the same messages."""

import pytest

from plugins.llava import CHAT_TEMPLATE, LlavaFamily
from vlm_router.api.messages import to_conversation
from vlm_router.api.schema import parse_request

from .chat_templates import conversation, hf_messages, render

IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


CASES = {
    "text": [{"role": "user", "content": [text("Hello")]}],
    "single image": [{"role": "user", "content": [IMG, text("What is this?")]}],
    "several images, images first": [{"role": "user", "content": [text("Compare"), IMG, text("and"), IMG]}],
    "system": [{"role": "system", "content": [text("Be brief.")]}, {"role": "user", "content": [IMG, text("Describe.")]}],
    "multi-turn": [
        {"role": "user", "content": [IMG, text("What colour?")]},
        {"role": "assistant", "content": [text("Red.")]},
        {"role": "user", "content": [text("And this one?"), IMG]},
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_prompt_matches_published_template(name):
    messages = CASES[name]
    parsed = to_conversation(parse_request({"messages": messages}))
    prompt = LlavaFamily().build_prompt(parsed.messages)
    assert prompt == render(CHAT_TEMPLATE, hf_messages(messages))
    assert prompt.count("<image>") == len(parsed.images)


def test_string_content_reads_as_one_text_part():
    assert LlavaFamily().build_prompt(conversation([{"role": "user", "content": "Hello"}])) == "USER: Hello ASSISTANT:"
