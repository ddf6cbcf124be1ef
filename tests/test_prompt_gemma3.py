"""Gemma 3 prompts beyond the published-template cases: string content trimmed, every system part kept."""

from vlm_router.default_plugins.gemma3 import Gemma3Family
from vlm_router.default_plugins.tiny.gemma3 import CHAT_TEMPLATE
from vlm_router.testing import conversation, render, text


def test_string_content_is_trimmed_as_the_template_does():
    messages = [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "  Hello  "}]
    expected = render(CHAT_TEMPLATE, messages, bos_token="<bos>").removeprefix("<bos>")
    assert Gemma3Family().build_prompt(conversation(messages)) == expected == (
        "<start_of_turn>user\nBe brief. \n\nHello<end_of_turn>\n<start_of_turn>model\n"
    )


def test_system_message_parts_are_all_kept():
    """The template keeps only the first part of a list-content system message; nothing a client sends is dropped."""
    messages = [{"role": "system", "content": [text("Be brief."), text(" Answer in French.")]}, {"role": "user", "content": "Hi"}]
    assert Gemma3Family().build_prompt(conversation(messages)) == (
        "<start_of_turn>user\nBe brief. Answer in French.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    )
