"""Qwen3-VL prompts: no default system prompt, a later system message kept, and tools as its template writes them."""

import json

import pytest

from vlm_router.api.messages import to_conversation
from vlm_router.api.schema import parse_request
from vlm_router.default_plugins.qwen3_vl import Qwen3VLFamily
from vlm_router.default_plugins.tiny.qwen3_vl import CHAT_TEMPLATE
from vlm_router.testing import IMG, conversation, hf_messages, render, text


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


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOL_CHATS = {
    "tools only": [{"role": "user", "content": "Weather in Paris?"}],
    "tools and system": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
    "call and result": [
        {"role": "user", "content": [IMG, text("Where is this, and what is the weather?")]},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ],
    "text, two calls, two results": [
        {"role": "user", "content": "Paris and Rome?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [CALL, {**CALL, "id": "call_2"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Rain"},
        {"role": "assistant", "content": "Paris is sunny, Rome rainy."},
        {"role": "user", "content": "Thanks."},
    ],
}


@pytest.mark.parametrize("name", TOOL_CHATS)
def test_tools_and_tool_turns_match_the_published_template(name):
    messages = TOOL_CHATS[name]
    request = parse_request({"messages": messages, "tools": [WEATHER]})
    prompt = Qwen3VLFamily().build_tool_prompt(to_conversation(request).messages, request.offered_tools)
    assert prompt == render(CHAT_TEMPLATE, hf_messages(messages), tools=[WEATHER])


def test_generated_calls_are_read_from_the_text():
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    content, calls = Qwen3VLFamily().parse_tool_calls(text)
    assert content == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    broken = "<tool_call>\n{not json}\n</tool_call>"
    assert Qwen3VLFamily().parse_tool_calls(broken) == (broken, [])
