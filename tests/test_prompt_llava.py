"""LLaVA-1.5 prompts equal what the model's published chat template renders for the same messages."""

import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from plugins.llava import CHAT_TEMPLATE, LlavaFamily
from vlm_router.api.messages import to_conversation
from vlm_router.api.schema import parse_request

# transformers gives `{% generation %}` a meaning for training masks; rendering ignores it.
TEMPLATE = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def render_template(messages: list[dict]) -> str:
    """The published template, with Hugging Face's `{"type": "image"}` for each image part."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    hf = [{**m, "content": [{"type": "image"} if p["type"] == "image_url" else p for p in m["content"]]} for m in messages]
    return env.from_string(TEMPLATE).render(messages=hf, add_generation_prompt=True)


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
    conversation = to_conversation(parse_request({"messages": messages}))
    prompt = LlavaFamily().build_prompt(conversation.messages)
    assert prompt == render_template(messages)
    assert prompt.count("<image>") == len(conversation.images)


def test_string_content_reads_as_one_text_part():
    request = parse_request({"messages": [{"role": "user", "content": "Hello"}]})
    assert LlavaFamily().build_prompt(to_conversation(request).messages) == "USER: Hello ASSISTANT:"
