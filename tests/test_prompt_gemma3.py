"""Gemma 3 prompts equal what the model's published chat template renders, less the `<bos>` the tokenizer adds."""

import pytest

from plugins.gemma3 import CHAT_TEMPLATE, Gemma3Family

from .chat_templates import conversation, hf_messages, render

IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


CASES = {
    "text": [{"role": "user", "content": "  Hello  "}],
    "single image": [{"role": "user", "content": [IMG, text("What is this?")]}],
    "several images, in place": [{"role": "user", "content": [text("Compare "), IMG, text(" and "), IMG]}],
    "system": [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": [IMG, text("Describe.")]}],
    "multi-turn": [
        {"role": "user", "content": [IMG, text("What colour?")]},
        {"role": "assistant", "content": "Red."},
        {"role": "user", "content": [text("And this one?"), IMG]},
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_prompt_matches_published_template(name):
    expected = render(CHAT_TEMPLATE, hf_messages(CASES[name]), bos_token="<bos>")
    assert expected.startswith("<bos>")
    assert Gemma3Family().build_prompt(conversation(CASES[name])) == expected.removeprefix("<bos>")


def test_system_message_parts_are_all_kept():
    """The template keeps only the first part of a list-content system message; nothing a client sends is dropped."""
    messages = [{"role": "system", "content": [text("Be brief."), text(" Answer in French.")]}, {"role": "user", "content": "Hi"}]
    assert Gemma3Family().build_prompt(conversation(messages)) == (
        "<start_of_turn>user\nBe brief. Answer in French.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )
