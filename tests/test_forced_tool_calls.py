"""Forced function calls: `tool_choice` 'required' or a named function constrains the answer to a valid call, on any family."""

import json
from typing import Any

import openai
import pytest

from vlm_router.conversation import Message, Text
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.forced_calls import call_schema, parse_forced_call

from .conftest import user

WEATHER_ARGS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 8}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
ALARM_ARGS = {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"], "additionalProperties": False}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": WEATHER_ARGS}},
    {"type": "function", "function": {"name": "set_alarm", "parameters": ALARM_ARGS}},
]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
ASK = [user("Weather in Paris?")]


def assert_matches(value: Any, schema: dict[str, Any]) -> None:
    """`value` against the keywords the tools here use (jsonschema is not installed)."""
    if "enum" in schema:
        assert value in schema["enum"]
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict) and set(schema["required"]) <= set(value) <= set(schema["properties"])
        for key, item in value.items():
            assert_matches(item, schema["properties"][key])
    elif kind == "string":
        assert isinstance(value, str) and len(value) <= schema.get("maxLength", len(value))
    elif kind == "boolean":
        assert isinstance(value, bool)


def check_call(call_id: str, name: str, arguments: str, names: set[str]) -> None:
    assert call_id.startswith("call_") and name in names
    assert_matches(json.loads(arguments), SCHEMAS[name])


CHOICES = [("required", {"get_weather", "set_alarm"})] + [({"type": "function", "function": {"name": name}}, {name}) for name in SCHEMAS]


@pytest.mark.parametrize("model", ["tiny-qwen2-vl", "tiny-qwen3-vl"])
@pytest.mark.parametrize(("choice", "names"), CHOICES, ids=["required", *SCHEMAS])
def test_a_forced_call_is_a_valid_tool_call(client, model, choice, names):
    kw = {"model": model, "messages": ASK, "tools": TOOLS, "tool_choice": choice, "max_tokens": 100, "temperature": 0}
    choice_ = client.chat.completions.create(**kw).choices[0]
    assert (choice_.finish_reason, choice_.message.content) == ("tool_calls", None)
    [call] = choice_.message.tool_calls
    check_call(call.id, call.function.name, call.function.arguments, names)

    chunks = [c.choices[0] for c in client.chat.completions.create(stream=True, **kw) if c.choices]
    assert not "".join(c.delta.content or "" for c in chunks)
    [streamed] = [d for c in chunks for d in c.delta.tool_calls or ()]
    assert streamed.index == 0 and chunks[-1].finish_reason == "tool_calls"
    check_call(streamed.id, streamed.function.name, streamed.function.arguments, names)
    assert (streamed.function.name, streamed.function.arguments) == (call.function.name, call.function.arguments)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}, "none"])
def test_tool_choice_without_tools_is_ignored(client, choice):
    answer = client.chat.completions.create(model="tiny-llava", messages=ASK, tool_choice=choice, max_tokens=3, extra_body={"ignore_eos": True})
    assert answer.choices[0].finish_reason == "length" and answer.choices[0].message.tool_calls is None


def test_a_family_without_a_tool_template_forces_calls_but_cannot_decide(client):
    kw = {"model": "tiny-llava", "messages": ASK, "tools": TOOLS, "max_tokens": 60, "temperature": 0}
    forced = client.chat.completions.create(tool_choice={"type": "function", "function": {"name": "get_weather"}}, **kw).choices[0]
    check_call(forced.message.tool_calls[0].id, forced.message.tool_calls[0].function.name, forced.message.tool_calls[0].function.arguments, {"get_weather"})
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(tool_choice="auto", **kw)
    assert (caught.value.body["code"], caught.value.body["param"]) == ("unsupported_parameter", "tool_choice")
    assert "has no tool template to decide whether to call a function" in caught.value.body["message"]


def test_a_tool_whose_schema_cannot_compile_is_named(client):
    bad = {"type": "function", "function": {"name": "bad", "parameters": {"type": "object", "properties": {"a": {"type": "strin"}}}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-qwen2-vl", messages=ASK, tools=[TOOLS[0], bad], tool_choice="required", max_tokens=4)
    assert caught.value.body["param"] == "tools.1.function.parameters"
    assert caught.value.body["message"].startswith("tool 'bad': ") and "properties.a.type" in caught.value.body["message"]


def test_the_call_schema_names_each_tool_with_its_parameters():
    one = call_schema(TOOLS[:1])
    assert one["properties"] == {"name": {"const": "get_weather"}, "arguments": WEATHER_ARGS} and one["required"] == ["name", "arguments"]
    both = call_schema([*TOOLS, {"type": "function", "function": {"name": "ping"}}])
    assert [option["properties"]["name"]["const"] for option in both["anyOf"]] == ["get_weather", "set_alarm", "ping"]
    assert both["anyOf"][2]["properties"]["arguments"] == {"type": "object"}


def test_a_forced_call_is_read_back_and_a_cut_one_stays_text():
    text, [call] = parse_forced_call('{"name": "set_alarm", "arguments": {"on": true}}')
    assert (text, call.name, json.loads(call.arguments)) == ("", "set_alarm", {"on": True})
    assert parse_forced_call('{"name": "set_al') == ('{"name": "set_al', [])


def test_the_default_forced_prompt_lists_the_tools_in_the_system_message():
    family = Qwen2VLFamily()
    prompt = family.forced_tool_prompt([Message("system", [Text("Be brief.")]), Message("user", [Text("Hi")])], TOOLS[:1])
    system = prompt.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\n") and "the function `get_weather`" in system
    assert json.dumps(WEATHER_ARGS) in system and '{"name": <function name>, "arguments": <arguments object>}' in system
    assert prompt.count("<|im_start|>system") == 1


def test_control_characters_in_a_forced_call_are_escaped_in_its_arguments():
    _, [call] = parse_forced_call('{"name": "get_weather", "arguments": {"city": "a\x0cb", "unit": "celsius"}}')
    assert call.arguments == '{"city": "a\\fb", "unit": "celsius"}'
