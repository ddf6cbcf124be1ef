"""LLaVA-NeXT (v1.6 Mistral) prompts equal what the model's published chat template renders for the same messages."""

import pytest

from plugins.llava_next import CHAT_TEMPLATE, LlavaNextFamily

from .chat_templates import conversation, hf_messages, render

IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


CASES = {
    "text": [{"role": "user", "content": [text("Hello")]}],
    "single image": [{"role": "user", "content": [IMG, text("What is this?")]}],
    "several images, images first": [{"role": "user", "content": [text("Compare"), IMG, text(" and"), IMG]}],
    "system": [{"role": "system", "content": [text("Be brief.")]}, {"role": "user", "content": [IMG, text("Describe.")]}],
    "multi-turn": [
        {"role": "user", "content": [IMG, text("What colour?")]},
        {"role": "assistant", "content": [text("Red.")]},
        {"role": "user", "content": [text("And this one?"), IMG]},
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_prompt_matches_published_template(name):
    prompt = LlavaNextFamily().build_prompt(conversation(CASES[name]))
    assert prompt == render(CHAT_TEMPLATE, hf_messages(CASES[name]))
    assert prompt.endswith(" [/INST]"), "the template has no generation prompt: the last user turn ends the prompt"


def test_string_content_reads_as_one_text_part():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert LlavaNextFamily().build_prompt(conversation(messages)) == "<<SYS>>\nBe brief.\n<</SYS>>\n\n[INST] Hi [/INST]"


def test_every_text_part_of_a_system_turn_is_kept():
    """The template reads only a system turn's first part; nothing a client sends is dropped here."""
    messages = [{"role": "system", "content": [text("Be brief."), text(" Use French.")]}, {"role": "user", "content": "Hi"}]
    assert LlavaNextFamily().build_prompt(conversation(messages)) == "<<SYS>>\nBe brief. Use French.\n<</SYS>>\n\n[INST] Hi [/INST]"


def test_only_mistral_checkpoints_are_served():
    family = LlavaNextFamily()
    assert family.for_model({"model_type": "llava_next", "text_config": {"model_type": "mistral"}}) is family
    with pytest.raises(ValueError, match="text model is 'llama'"):
        family.for_model({"model_type": "llava_next", "text_config": {"model_type": "llama"}})
