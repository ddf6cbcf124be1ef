"""Qwen3-VL prompts: no default system prompt, and a later system message kept where the template drops it."""

from plugins.qwen3_vl import CHAT_TEMPLATE, Qwen3VLFamily

from .chat_templates import conversation, render


def test_no_default_system_prompt():
    prompt = Qwen3VLFamily().build_prompt(conversation([{"role": "user", "content": "Hi"}]))
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_later_system_message_is_kept_where_the_template_drops_it():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello?"},
    ]
    prompt = Qwen3VLFamily().build_prompt(conversation(messages))
    kept = "<|im_start|>system\nAnswer in French.<|im_end|>\n"
    assert prompt.replace(kept, "") == render(CHAT_TEMPLATE, messages)
    assert kept in prompt
