"""`POST /v1/messages` with the official anthropic client: the same answers as the chat endpoint, in Anthropic's shapes."""

from __future__ import annotations

import base64
import json

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message

from vlm_router.api.anthropic_api import _Events, error_body, to_message
from vlm_router.api.app import create_app
from vlm_router.api.errors import APIError
from vlm_router.api.replies import Reply, collect
from vlm_router.default_plugins.qwen3_vl import Qwen3VLFamily
from vlm_router.generation import Completion, Delta

from .conftest import ENDLESS, data_url, image_part, png_bytes, router_config, user

MODEL = "tiny-qwen2-vl"
KEY = "sk-test-key-0123456789"
WEATHER = {"name": "get_weather", "description": "The weather in a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
GREEDY = {"temperature": 0}
ANSWER = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture
def claude(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def create(claude: anthropic.Anthropic, **kw) -> Message:
    """A message, checked strictly against Anthropic's own type (the client itself builds its objects unchecked).

    The client no longer has `temperature`; older ones send it, and the server takes it.
    """
    kw.setdefault("model", MODEL)
    kw.setdefault("max_tokens", 8)
    kw.setdefault("extra_body", GREEDY)
    raw = claude.messages.with_raw_response.create(**kw)
    message = Message.model_validate(json.loads(raw.http_response.text))
    assert message.id.startswith("msg_") and (message.type, message.role) == ("message", "assistant")
    return message


def chat(client: openai.OpenAI, messages: list[dict], **kw):
    return client.chat.completions.create(model=kw.pop("model", MODEL), messages=messages, max_tokens=kw.pop("max_tokens", 8), temperature=0, **kw)


def test_text_and_system_prompt_match_the_chat_endpoint(claude, client):
    message = create(claude, system="Be brief.", messages=[{"role": "user", "content": "Hi"}])
    same = chat(client, [{"role": "system", "content": "Be brief."}, user("Hi")])
    assert message.model == MODEL and message.content[0].type == "text"
    assert message.content[0].text == same.choices[0].message.content
    assert (message.usage.input_tokens, message.usage.output_tokens) == (same.usage.prompt_tokens, same.usage.completion_tokens)
    blocks = create(claude, system=[{"type": "text", "text": "Be brief."}], messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    assert blocks.content == message.content and blocks.usage == message.usage
    longer = create(claude, system="Be brief. " * 4, messages=[{"role": "user", "content": "Hi"}])
    assert longer.usage.input_tokens > message.usage.input_tokens, "the system prompt is in the prompt"


def test_images_by_base64_and_url(claude, client, media_server):
    image = png_bytes(64, 48, (20, 200, 20))
    media_server.files["/green.png"] = (image, "image/png")
    encoded = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}
    by_url = {"type": "url", "url": media_server.url + "/green.png"}
    same = chat(client, [user(image_part(data_url(image)), "Describe.")])
    for source in (encoded, by_url):
        message = create(claude, messages=[{"role": "user", "content": [{"type": "image", "source": source}, {"type": "text", "text": "Describe."}]}])
        assert message.content[0].text == same.choices[0].message.content, source["type"]
        assert message.usage.input_tokens == same.usage.prompt_tokens


def test_max_tokens_and_stop_sequences(claude):
    short = create(claude, max_tokens=2, messages=[{"role": "user", "content": "Hello"}])
    assert (short.stop_reason, short.usage.output_tokens) == ("max_tokens", 2)
    full = create(claude, max_tokens=24, messages=[{"role": "user", "content": "Hello"}]).content[0].text
    cut = next(i for i in range(3, len(full) - 3) if full[i : i + 3].isalnum() and full.find(full[i : i + 3]) == i)
    stopped = create(claude, max_tokens=24, stop_sequences=[full[cut : cut + 3], "never-there"], messages=[{"role": "user", "content": "Hello"}])
    assert stopped.content[0].text == full[:cut]
    assert (stopped.stop_reason, stopped.stop_sequence) == ("end_turn", None), "the worker does not say which stop text matched"


def test_stream_events_and_text_match_the_message(claude, server):
    kw = {"model": MODEL, "max_tokens": 12, "extra_body": GREEDY, "messages": [{"role": "user", "content": "Tell me more."}]}
    whole = create(claude, **kw)
    with claude.messages.stream(**kw) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 1 and "".join(texts) == whole.content[0].text
    assert ([b.text for b in final.content], final.stop_reason, final.usage) == ([b.text for b in whole.content], whole.stop_reason, whole.usage)
    assert final.id.startswith("msg_")

    with httpx.stream("POST", server.url + "/v1/messages", json={**kw, **GREEDY, "stream": True}, timeout=120) as response:
        assert response.headers["content-type"] == "text/event-stream"
        body = response.read().decode()
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert all(json.loads(lines[1].removeprefix("data: "))["type"] == name for name, lines in zip(names, events))
    deltas = names.count("content_block_delta")
    assert names == ["message_start", "ping", "content_block_start", *["content_block_delta"] * deltas, "content_block_stop", "message_delta", "message_stop"]


def test_tools_and_tool_turns_reach_the_prompt_as_in_chat(claude, client):
    ask = {"role": "user", "content": "Weather in Paris?"}
    called = {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21 C"}, {"type": "text", "text": "Thanks."}]}
    kw = {"model": "tiny-qwen3-vl", "max_tokens": 4}
    plain = create(claude, messages=[ask], **kw)
    offered = create(claude, messages=[ask], tools=[WEATHER], **kw)
    assert offered.usage.input_tokens > plain.usage.input_tokens + 50, "the tool list is in the prompt"
    declined = create(claude, messages=[ask], tools=[WEATHER], tool_choice={"type": "none"}, **kw)
    assert declined.usage.input_tokens == plain.usage.input_tokens
    answer = create(claude, messages=[ask, called, result], tools=[WEATHER], **kw)
    tool = {"type": "function", "function": {"name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}
    calls = [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    history = [ask, {"role": "assistant", "content": "Let me check.", "tool_calls": calls}, {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny, 21 C"}, user("Thanks.")]
    same = chat(client, history, model="tiny-qwen3-vl", max_tokens=4, tools=[tool])
    assert answer.usage.input_tokens == same.usage.prompt_tokens > offered.usage.input_tokens


def test_a_tool_results_images_lead_the_next_user_message(claude, client):
    image = png_bytes(32, 32, (20, 20, 200))
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}
    called = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}]}
    result = {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "A map:"}, {"type": "image", "source": source}]}
    answer = create(claude, model="tiny-qwen3-vl", max_tokens=2, tools=[WEATHER], messages=[{"role": "user", "content": "Map?"}, called, {"role": "user", "content": [result]}])
    tool = {"type": "function", "function": {"name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}
    calls = [{"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    history = [user("Map?"), {"role": "assistant", "content": None, "tool_calls": calls}, {"role": "tool", "tool_call_id": "toolu_2", "content": "A map:"}, user(image_part(data_url(image)))]
    assert answer.usage.input_tokens == chat(client, history, model="tiny-qwen3-vl", max_tokens=2, tools=[tool]).usage.prompt_tokens


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_a_forced_tool_choice_answers_with_tool_use(claude, choice):
    kw = {"model": "tiny-qwen3-vl", "max_tokens": 100, "tools": [WEATHER], "tool_choice": choice, "messages": [{"role": "user", "content": "Weather?"}]}
    message = create(claude, **kw)
    assert message.stop_reason == "tool_use"
    [call] = [block for block in message.content if block.type == "tool_use"]
    assert call.id.startswith("toolu_") and call.name == "get_weather" and isinstance(call.input, dict)
    with claude.messages.stream(**kw) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and [(b.type, b.name, b.input) for b in final.content if b.type == "tool_use"] == [("tool_use", call.name, call.input)]


async def outputs(*items):
    for item in items:
        yield item


async def test_a_call_in_the_answer_is_a_tool_use_block():
    reply = Reply(model="m", parse_tool_calls=Qwen3VLFamily().parse_tool_calls)
    answer = await collect(reply, outputs(Delta(0, ANSWER[:20]), Delta(0, ANSWER[20:]), Completion(("stop",), 10, 30)), None)
    message = Message.model_validate(json.loads(to_message(answer).model_dump_json()))
    assert message.stop_reason == "tool_use" and message.content[0].text == "Let me check."
    assert (message.content[1].name, message.content[1].input) == ("get_weather", {"city": "Paris"}) and message.content[1].id.startswith("toolu_")


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    async def write(self, data: bytes) -> None:
        name, payload = data.decode().strip().split("\n")
        self.events.append((name.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))


async def test_a_streamed_call_is_a_tool_use_block_with_its_input_as_json():
    sink = Sink()
    events = _Events(sink, Reply(model="m", parse_tool_calls=Qwen3VLFamily().parse_tool_calls), False)
    await events.open()
    for item in (Delta(0, ANSWER[:30]), Delta(0, ANSWER[30:]), Completion(("stop",), 10, 30)):
        await events.write(item)
    names = [name for name, _ in sink.events]
    assert names == ["message_start", "ping", *["content_block_start", "content_block_delta", "content_block_stop"] * 2, "message_delta", "message_stop"]
    start, delta = sink.events[5][1], sink.events[6][1]
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {} and start["index"] == 1
    assert json.loads(delta["delta"]["partial_json"]) == {"city": "Paris"}
    assert sink.events[-2][1]["delta"]["stop_reason"] == "tool_use" and sink.events[-2][1]["usage"] == {"input_tokens": 10, "output_tokens": 30}


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (401, "authentication_error"), (404, "not_found_error"), (429, "rate_limit_error"), (503, "overloaded_error"), (504, "timeout_error"), (500, "api_error")])
def test_error_types_follow_the_status(status, kind):
    assert error_body(APIError(status, "nope")).model_dump() == {"type": "error", "error": {"type": kind, "message": "nope"}}


def test_errors_have_anthropics_shape(claude, server):
    with pytest.raises(anthropic.NotFoundError) as caught:
        create(claude, model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "not_found_error"
    assert "no-such-model" in caught.value.body["error"]["message"]
    bad = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(b"not an image").decode()}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(claude, messages=[{"role": "user", "content": [bad]}])
    assert set(caught.value.body) == {"type", "error"} and caught.value.body["error"]["type"] == "invalid_request_error"
    misplaced = [
        {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "assistant", "content": [{"type": "image", "source": {"type": "url", "url": "http://127.0.0.1/x.png"}}]},
        {"role": "system", "content": "Hi"},
    ]
    bodies = [{"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}, *({"model": MODEL, "max_tokens": 4, "messages": [m]} for m in misplaced)]
    for body in bodies:
        response = httpx.post(server.url + "/v1/messages", json=body, timeout=60)
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error", body
    response = httpx.get(server.url + "/v1/messages")
    assert response.status_code == 405 and response.json()["type"] == "error"
    assert "type" not in httpx.get(server.url + "/v1/models/no-such-model").json(), "other routes keep OpenAI's shape"


async def test_x_api_key_and_errors_mid_stream(aiohttp_server, families, tiny_qwen):
    config = router_config([{"name": "m", "path": str(tiny_qwen), "request_timeout_s": 1}], server={"api_keys": [KEY]})
    url = str((await aiohttp_server(create_app(config, families))).make_url("")).rstrip("/")
    claude = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0, timeout=120)
    message = await claude.messages.create(model="m", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert message.usage.output_tokens >= 1
    async with httpx.AsyncClient() as http:
        assert (await http.get(url + "/v1/models", headers={"x-api-key": KEY})).status_code == 200, "x-api-key opens every route"
        refused = await http.post(url + "/v1/messages", json={"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await anthropic.AsyncAnthropic(base_url=url, api_key="sk-wrong", max_retries=0).messages.create(model="m", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body == {"type": "error", "error": {"type": "authentication_error", "message": "Incorrect API key provided."}}

    seen = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with claude.messages.stream(model="m", max_tokens=ENDLESS, messages=[{"role": "user", "content": "Go on."}]) as stream:
            async for event in stream:
                seen.append(event.type)
    assert seen[:3] == ["message_start", "content_block_start", "content_block_delta"] and caught.value.status_code == 200, "the stream had begun"
    assert caught.value.body == {"type": "error", "error": {"type": "timeout_error", "message": "the request ran past its deadline of 1 s"}}
