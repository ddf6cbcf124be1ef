"""Tool calling: the tools reach the model's prompt, calls in its answer come back in OpenAI's shape, families without
a tool template refuse to let the model decide (forced calls: test_forced_tool_calls.py)."""

import json

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from vlm_router.api.replies import ChatChunks, Reply, complete
from vlm_router.default_plugins.qwen3_vl import Qwen3VLFamily
from vlm_router.generation import Completion, Delta

from .conftest import user

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
CALLED = [
    user("Weather in Paris?"),
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
]
ANSWER = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_offered_tools_and_tool_turns_reach_the_model(client):
    kw = {"model": "tiny-qwen3-vl", "max_tokens": 4, "temperature": 0}
    plain = client.chat.completions.create(messages=[user("Weather in Paris?")], **kw)
    offered = client.chat.completions.create(messages=[user("Weather in Paris?")], tools=[WEATHER], **kw)
    assert offered.usage.prompt_tokens > plain.usage.prompt_tokens + 50, "the tool list is in the prompt"
    declined = client.chat.completions.create(messages=[user("Weather in Paris?")], tools=[WEATHER], tool_choice="none", **kw)
    assert declined.usage.prompt_tokens == plain.usage.prompt_tokens
    kw["extra_body"] = {"ignore_eos": True}
    answer = client.chat.completions.create(messages=CALLED, tools=[WEATHER], **kw)
    assert answer.usage.prompt_tokens > offered.usage.prompt_tokens + 10, "the call and the tool's answer are in the prompt"
    assert (answer.choices[0].finish_reason, answer.usage.completion_tokens) == ("length", 4)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(messages=CALLED, tools=[WEATHER], stream=True, **kw) if c.choices)
    assert streamed == answer.choices[0].message.content


@pytest.mark.parametrize(
    ("messages", "tools", "tool_choice", "param", "says"),
    [
        ([user("Hi")], [WEATHER], None, "tools", "to decide whether to call a function"),
        ([user("Hi")], [WEATHER], "auto", "tool_choice", "to decide whether to call a function"),
        (CALLED, None, None, "messages", "to read function calls"),
    ],
)
def test_families_without_a_tool_template_refuse_auto_tools_and_calls_in_history(client, messages, tools, tool_choice, param, says):
    """Tools offered as they are (auto by default) name `tools`; an explicit `auto` names `tool_choice`."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="tiny-llava", messages=messages, tools=tools or openai.NOT_GIVEN, tool_choice=tool_choice or openai.NOT_GIVEN, max_tokens=2
        )
    assert (caught.value.body["code"], caught.value.body["param"]) == ("unsupported_parameter", param)
    assert f"(family 'llava') has no tool template {says}" in caught.value.body["message"]


async def outputs(*items):
    for item in items:
        yield item


async def test_a_call_in_the_answer_is_an_openai_tool_call():
    reply = Reply(model="m", parse_tool_calls=Qwen3VLFamily().parse_tool_calls)
    response = await complete(reply, outputs(Delta(0, ANSWER[:20]), Delta(0, ANSWER[20:]), Completion(("stop",), 10, 30)), None)
    answer = ChatCompletion.model_validate(json.loads(response.body))
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


class Sink:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def write(self, data: bytes) -> None:
        self.events.append(json.loads(data.decode().removeprefix("data: ")))


async def test_a_streamed_call_arrives_whole_with_its_finish_reason():
    sink = Sink()
    chunks = ChatChunks(sink, Reply(model="m", parse_tool_calls=Qwen3VLFamily().parse_tool_calls), include_usage=False)
    for item in (Delta(0, ANSWER[:30]), Delta(0, ANSWER[30:]), Completion(("stop",), 10, 30)):
        await chunks.write(item)
    parsed = [ChatCompletionChunk.model_validate(event).choices[0] for event in sink.events]
    assert [c.delta.content for c in parsed] == ["Let me check.", None, None]
    assert parsed[1].delta.tool_calls[0].function.name == "get_weather" and parsed[1].delta.tool_calls[0].index == 0
    assert parsed[2].finish_reason == "tool_calls"
