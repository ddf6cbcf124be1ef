"""Request validation: each mistake is a 400 naming the param."""

import json

import pytest

from vlm_router.api.errors import APIError
from vlm_router.api.schema import parse_request
from vlm_router.forced_calls import call_schema

MSG = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}


def error_of(payload) -> APIError:
    with pytest.raises(APIError) as caught:
        parse_request(payload)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": []}, "messages"),
        ({}, "messages"),
        ({"messages": MSG, "temperature": 2.5}, "temperature"),
        ({"messages": MSG, "temperature": "hot"}, "temperature"),
        ({"messages": MSG, "top_p": 1.5}, "top_p"),
        ({"messages": MSG, "max_tokens": 0}, "max_tokens"),
        ({"messages": MSG, "max_completion_tokens": -1}, "max_completion_tokens"),
        ({"messages": MSG, "stream": "yes"}, "stream"),
        ({"messages": MSG, "n": 0}, "n"),
        ({"messages": MSG, "n": 129}, "n"),
        ({"messages": MSG, "seed": 2**63}, "seed"),
        ({"messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": MSG, "stop": [""]}, "stop.0"),
        ({"messages": MSG, "stop": ""}, "stop"),
        ({"messages": MSG, "presence_penalty": -2.5}, "presence_penalty"),
        ({"messages": MSG, "frequency_penalty": 2.5}, "frequency_penalty"),
        ({"messages": MSG, "top_logprobs": 21}, "top_logprobs"),
        ({"messages": MSG, "top_logprobs": 2, "logprobs": True}, "top_logprobs"),
        ({"messages": MSG, "top_k": -2}, "top_k"),
        ({"messages": MSG, "min_p": 1.5}, "min_p"),
        ({"messages": MSG, "repetition_penalty": 0}, "repetition_penalty"),
        ({"messages": MSG, "response_format": {"type": "xml"}}, "response_format"),
        ({"messages": MSG, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"messages": MSG, "tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name"),
        ({"messages": MSG, "tool_choice": "any"}, "tool_choice"),
        ({"messages": MSG, "tool_choice": {"type": "function"}}, "tool_choice.function"),
        ({"messages": MSG, "tool_choice": {"type": "function", "function": {"name": ""}}}, "tool_choice.function.name"),
        ({"messages": MSG, "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
        ({"messages": [{"role": "user", "content": None}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}, {"role": "tool"}]}, "messages.1.content"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": [{"type": "audio", "x": 1}]}]}, "messages.0.content.0"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0.content.0.image_url"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}]}, "messages.0.content.0.image_url.url"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "extra": 1}]}]}, "messages.0.content.0.extra"),
    ],
)
def test_mistakes_name_the_param(payload, param):
    assert error_of(payload).param == param


def test_body_must_be_an_object():
    assert error_of([1, 2]).code == "invalid_json"


def test_neutral_values_of_unsupported_fields_and_unknown_fields_are_accepted():
    request = parse_request({"messages": MSG, "tools": [], "tool_choice": "none", "logit_bias": {}, "top_logprobs": 0, "user": "u1"})
    assert request.model is None and request.token_limit is None


def test_stop_and_response_format_read_as_generation_asks():
    assert parse_request({"messages": MSG, "stop": "THE END"}).stop_texts == ("THE END",)
    assert parse_request({"messages": MSG, "stop": ["a", "b"]}).stop_texts == ("a", "b")
    assert parse_request({"messages": MSG, "response_format": {"type": "text"}}).json_schema is None
    assert parse_request({"messages": MSG, "response_format": {"type": "json_object"}}).json_schema == '{"type": "object"}'
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": True}}
    assert parse_request({"messages": MSG, "response_format": fmt}).json_schema == json.dumps(schema)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "f"}}])
def test_a_forced_call_is_the_json_schema_and_tool_choice_without_tools_is_neutral(choice):
    forced = parse_request({"messages": MSG, "tools": [TOOL, {**TOOL, "function": {"name": "g"}}], "tool_choice": choice})
    names = [tool["function"]["name"] for tool in forced.forced_tools]
    assert names == (["f", "g"] if choice == "required" else ["f"])
    assert json.loads(forced.json_schema or "") == call_schema(forced.forced_tools)
    alone = parse_request({"messages": MSG, "tool_choice": choice, "response_format": {"type": "json_object"}})
    assert (alone.forced_tools, alone.offered_tools, alone.json_schema) == ([], [], '{"type": "object"}')
    assert parse_request({"messages": MSG, "tools": [TOOL], "tool_choice": "auto"}).forced_tools == []


def test_bare_image_url_string_and_token_limits():
    request = parse_request(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}], "max_tokens": 9, "max_completion_tokens": 5}
    )
    assert request.messages[0].content[0].image_url.url == "http://x/y.png"
    assert request.token_limit == 5


@pytest.mark.parametrize(
    ("payload", "status", "param", "code", "message"),
    [
        ({"messages": [{"role": "user"}]}, 400, "messages.0.content", "invalid_value", "messages.0.content is required"),
        (
            {"messages": [{"role": "user", "content": "hi", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}]},
            400, "messages.0.tool_calls", "invalid_value", "messages.0.tool_calls is only for assistant messages",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 5}}, 400, "logit_bias", "unsupported_parameter", "'logit_bias' is not supported by this server"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}, 400, "top_logprobs", "unsupported_parameter",
            "'top_logprobs' is not supported by this server: openvino-genai reports the chosen token's log-probability only (use logprobs)",
        ),
    ],
    ids=["missing-content", "misplaced-tool-calls", "unsupported-field", "unsupported-with-why"],
)
def test_checks_across_fields_are_typed_errors_naming_the_field(payload, status, param, code, message):
    with pytest.raises(APIError) as caught:
        parse_request(payload)
    assert (caught.value.status, caught.value.param, caught.value.code, caught.value.message) == (status, param, code, message)
