"""`POST /v1/responses`: the openai client's `responses.create` against a real server on the tiny models, and the
translation and event stream checked offline against openai's own types."""

import json

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from vlm_router.api.errors import APIError
from vlm_router.api.replies import Reply
from vlm_router.api.responses_api import rename, to_chat
from vlm_router.api.responses_objects import ResponseObject
from vlm_router.api.responses_schema import parse_responses_request
from vlm_router.api.responses_stream import ResponseEvents
from vlm_router.default_plugins.qwen3_vl import Qwen3VLFamily
from vlm_router.generation import Completion, Delta

from .conftest import ENDLESS, data_url, png_bytes, user

MODEL = "tiny-qwen2-vl"
RED = data_url(png_bytes(64, 48, (220, 20, 20)))
EVENTS = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"], "additionalProperties": False},
}
PET = {
    "type": "object",
    "properties": {"kind": {"enum": ["cat", "dog"]}, "ok": {"type": "boolean"}},
    "required": ["kind", "ok"],
    "additionalProperties": False,
}


def post(server, **body) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", json=body, timeout=120)


def create(server, **body) -> Response:
    """The response, checked against openai's `Response` type (the client itself does not validate)."""
    body.setdefault("model", MODEL)
    body.setdefault("temperature", 0)
    body.setdefault("max_output_tokens", 12)
    answer = post(server, **body)
    assert answer.status_code == 200, answer.text
    return Response.model_validate(answer.json())


def chat_text(client, messages, **kw) -> str:
    return client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=12, **kw).choices[0].message.content


def test_string_input_answers_as_chat_does(server, client):
    answer = create(server, input="Describe the weather.")
    assert answer.id.startswith("resp_") and answer.object == "response" and answer.model == MODEL
    assert answer.status == "completed" or answer.incomplete_details.reason == "max_output_tokens"
    [message] = answer.output
    assert message.type == "message" and message.id.startswith("msg_") and message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert answer.output_text == chat_text(client, [user("Describe the weather.")])
    usage = answer.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens and usage.output_tokens > 0
    assert (answer.tool_choice, answer.tools, answer.parallel_tool_calls, answer.temperature, answer.max_output_tokens) == ("auto", [], True, 0, 12)


def test_the_openai_client_and_its_output_text(client):
    answer = client.responses.create(
        model=MODEL, input="Describe the weather.", temperature=0, max_output_tokens=12, store=False, metadata={"k": "v"}, user="u"
    )
    assert answer.output_text == chat_text(client, [user("Describe the weather.")])
    assert answer.metadata == {"k": "v"} and answer.user == "u"


def test_items_with_text_and_images_by_data_url_and_by_http_url(server, client, media_server):
    media_server.files["/red-responses.png"] = (png_bytes(64, 48, (220, 20, 20)), "image/png")

    def ask(url: str) -> Response:
        content = [{"type": "input_image", "image_url": url, "detail": "auto"}, {"type": "input_text", "text": "What is in the picture?"}]
        return create(server, input=[{"role": "user", "content": content}])

    by_data, by_url = ask(RED), ask(media_server.url + "/red-responses.png")
    assert by_data.output_text == by_url.output_text
    text_only = create(server, input=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is in the picture?"}]}])
    assert by_data.usage.input_tokens > text_only.usage.input_tokens
    chat = [user({"type": "image_url", "image_url": {"url": RED}}, "What is in the picture?")]
    assert by_data.output_text == chat_text(client, chat)


def test_instructions_are_the_system_message_and_history_is_sent_whole(server, client):
    plain = create(server, input="What colour?")
    told = create(server, input="What colour?", instructions="You describe images.")
    assert told.instructions == "You describe images."
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "You describe images."}, user("What colour?")], temperature=0, max_tokens=12
    )
    assert (told.output_text, told.usage.input_tokens) == (chat.choices[0].message.content, chat.usage.prompt_tokens)
    assert told.usage.input_tokens != plain.usage.input_tokens
    history = [
        {"role": "user", "content": "What colour?"},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": plain.output_text, "annotations": []}],
        },
        {"role": "user", "content": [{"type": "input_text", "text": "And now?"}]},
    ]
    follow_up = create(server, input=history)
    assert follow_up.usage.input_tokens > plain.usage.input_tokens + plain.usage.output_tokens


def test_max_output_tokens_makes_it_incomplete(server):
    answer = create(server, input="Tell a long story.", max_output_tokens=3)
    assert answer.status == "incomplete" and answer.incomplete_details.reason == "max_output_tokens"
    assert answer.usage.output_tokens == 3 and answer.output[0].status == "incomplete"


def test_stream_events_in_order_and_deltas_join_into_the_text(client):
    kw = {"model": MODEL, "input": "Describe the weather.", "temperature": 0, "max_output_tokens": 12}
    whole = client.responses.create(**kw)
    events = list(client.responses.create(stream=True, **kw))
    types = [event.type for event in events]
    deltas = types.count("response.output_text.delta")
    assert deltas >= 1
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed" if whole.status == "completed" else "response.incomplete",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert text == final.output_text == whole.output_text
    assert events[0].response.status == "in_progress" and events[0].response.id == final.id
    assert {event.item_id for event in events if hasattr(event, "item_id")} == {final.output[0].id}


def test_the_wire_format_has_event_lines_and_no_done(server):
    body = {"model": MODEL, "input": "hi", "stream": True, "max_output_tokens": 4}
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    blocks = [b for b in raw.split("\n\n") if b]
    for block in blocks:
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        assert EVENTS.validate_python(json.loads(data[6:])).type == event[7:]
    assert Response.model_validate(json.loads(blocks[-1].split("\n")[1][6:])["response"]).usage.output_tokens == 4


async def test_the_async_client_streams_and_answers(server):
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    kw = {"model": MODEL, "input": "Describe.", "temperature": 0, "max_output_tokens": 8}
    whole = await client.responses.create(**kw)
    events = [event async for event in await client.responses.create(stream=True, **kw)]
    assert events[-1].response.output_text == whole.output_text
    await client.close()


def test_json_schema_text_format_parses(server):
    answer = create(server, input="Who?", max_output_tokens=60, text={"format": {"type": "json_schema", "name": "pet", "schema": PET, "strict": True}})
    assert answer.status == "completed"
    value = json.loads(answer.output_text, strict=False)
    assert value["kind"] in ("cat", "dog") and isinstance(value["ok"], bool)
    assert answer.text.format.type == "json_schema" and answer.text.format.name == "pet"
    json_object = create(server, input="Who?", max_output_tokens=8, text={"format": {"type": "json_object"}})
    assert json_object.output_text.startswith("{") and json_object.text.format.type == "json_object"


@pytest.mark.parametrize("model", [MODEL, "tiny-qwen3-vl"])
def test_a_required_tool_call_is_a_function_call_item(server, model):
    answer = create(server, model=model, input="Weather in Paris?", tools=[WEATHER], tool_choice="required", max_output_tokens=100)
    [call] = answer.output
    assert call.type == "function_call" and call.id.startswith("fc_") and call.call_id.startswith("call_")
    assert call.name == "get_weather" and set(json.loads(call.arguments)) == {"city"} and call.status == "completed"
    assert answer.tools[0].name == "get_weather" and answer.tool_choice == "required"
    named = create(server, model=model, input="Weather?", tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=100)
    assert named.output[0].name == "get_weather" and named.tool_choice.name == "get_weather"


def test_a_streamed_call_and_the_calls_history(server, client):
    kw = {"model": "tiny-qwen3-vl", "input": "Weather in Paris?", "tools": [WEATHER], "tool_choice": "required", "max_output_tokens": 100, "temperature": 0}
    events = list(client.responses.create(stream=True, **kw))
    types = [event.type for event in events]
    assert types[2:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    call = events[-1].response.output[0]
    assert events[3].delta == events[4].arguments == call.arguments and events[2].item.status == "in_progress"
    turns = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments, "id": call.id, "status": "completed"},
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"},
    ]
    asked = create(server, model="tiny-qwen3-vl", input="Weather in Paris?", tools=[WEATHER])
    answered = create(server, model="tiny-qwen3-vl", input=turns, tools=[WEATHER])
    assert answered.usage.input_tokens > asked.usage.input_tokens + 10, "the call and its output are in the prompt"


def test_previous_response_id_is_refused(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_123")
    assert caught.value.body["param"] == "previous_response_id" and "stateless" in caught.value.body["message"]


@pytest.mark.parametrize(
    ("image", "param"),
    [
        ({"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"}, "input[0].content[1].image_url"),
        ({"type": "input_image", "detail": "auto"}, "input[0].content[1].image_url"),
        ({"type": "input_image", "file_id": "file-1", "detail": "auto"}, "input[0].content[1].file_id"),
        ({"type": "input_file", "file_id": "file-1"}, "input[0].content[1]"),
    ],
)
def test_a_bad_image_is_a_400_naming_it(server, image, param):
    answer = post(server, model=MODEL, input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}, image]}])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error


def test_null_is_the_default():
    request = parse_responses_request({"input": "x", "text": None, "tools": None, "tool_choice": None, "parallel_tool_calls": None, "store": None})
    assert (request.text.format.type, request.tools, request.tool_choice, request.parallel_tool_calls, request.store) == ("text", [], "auto", True, True)


def test_translation_to_chat_and_params_back():
    request = parse_responses_request(
        {
            "instructions": "Be brief.",
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Weather?"}, {"type": "input_image", "image_url": "http://x/a.png", "detail": "original"}],
                },
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
            ],
            "text": {"format": {"type": "json_schema", "name": "pet", "schema": PET}},
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "max_output_tokens": 9,
            "include": ["message.output_text.logprobs"],
        }
    )
    body, sources = to_chat(request)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "http://x/a.png", "detail": "high"}}
    assert body["messages"][2] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me check."}],
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
    }
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "pet", "schema": PET}}
    assert body["tools"] == [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}} and body["max_completion_tokens"] == 9
    assert rename("messages.1.content.1.image_url.url", sources) == "input[0].content[1].image_url"
    assert rename("messages.3.content", sources) == "input[3].output"
    assert rename("messages.0.content", sources) == "instructions"
    assert (rename("messages", sources), rename("tools", sources)) == ("input", "tools")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0]"),
        ({"input": "x", "temperature": 3}, "temperature"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "schema": PET}}}, "text.format.name"),
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].name"),
        ({"input": "x", "tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ],
)
def test_invalid_values_name_their_param(body, param):
    with pytest.raises(APIError) as caught:
        parse_responses_request(body)
    assert caught.value.status == 400 and caught.value.param == param


class Sink:
    def __init__(self) -> None:
        self.data = b""

    async def write(self, data: bytes) -> None:
        self.data += data


async def test_streamed_events_of_a_call_in_the_text_validate_as_openais():
    answer = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    sink = Sink()
    request = parse_responses_request({"input": "Weather?", "tools": [WEATHER]})
    writer = ResponseEvents(sink, Reply(model="m", parse_tool_calls=Qwen3VLFamily().parse_tool_calls), ResponseObject.started(request, "m"))
    await writer.open()
    for item in (Delta(0, answer[:30]), Delta(0, answer[30:]), Completion(("stop",), 10, 30)):
        await writer.write(item)
    events = [EVENTS.validate_python(json.loads(block.split("\n")[1][6:])) for block in sink.data.decode().split("\n\n") if block]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1].response
    assert final.output_text == "Let me check." and json.loads(final.output[1].arguments) == {"city": "Paris"}
    assert final.output[1].type == "function_call" and final.usage.input_tokens == 10
    error = EVENTS.validate_python(json.loads(writer.failure(APIError(504, "late", code="deadline_exceeded")).split(b"\n")[1][6:]))
    assert error.type == "error" and error.code == "deadline_exceeded" and error.sequence_number == len(events)


async def test_a_deadline_mid_stream_ends_it_with_an_error_event(start):
    server = await start([{"name": "m", "request_timeout_s": 1}])
    stream = await server.client.responses.create(model="m", input="Go on.", stream=True, max_output_tokens=ENDLESS, temperature=0)
    events = [event async for event in stream]
    assert [event.type for event in events[:4]] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert events[-1].type == "error" and events[-1].code == "deadline_exceeded" and events[-1].sequence_number == len(events) - 1
    assert "response.completed" not in {event.type for event in events}
