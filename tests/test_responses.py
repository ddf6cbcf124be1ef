"""The typed response objects serialize to OpenAI's documented shapes: keys in order, null where OpenAI sends
null, absent where it leaves a field out, and the openai package's own types read them."""

import json

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

from vlm_router.api.errors import APIError
from vlm_router.api.responses import (
    ChatCompletionLogProbs,
    ChatCompletionLogProbsContent,
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatCompletionResponseStreamChoice,
    ChatCompletionStreamResponse,
    ChatMessage,
    DeltaMessage,
    DeltaToolCall,
    FunctionCall,
    ToolCall,
    UsageInfo,
)

IDENTITY = {"id": "chatcmpl-1", "created": 1700000000, "model": "m"}
CALL = ToolCall(id="call_1", function=FunctionCall(name="get_weather", arguments='{"city": "Paris"}'))
USAGE = UsageInfo(prompt_tokens=10, completion_tokens=3, total_tokens=13)


def logprobs(*tokens: tuple[str, float]) -> ChatCompletionLogProbs:
    return ChatCompletionLogProbs(content=[ChatCompletionLogProbsContent(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in tokens])


def chunk(delta: DeltaMessage, **choice) -> ChatCompletionStreamResponse:
    return ChatCompletionStreamResponse(**IDENTITY, choices=[ChatCompletionResponseStreamChoice(index=0, delta=delta, **choice)])


def test_a_text_chunk_has_openais_keys_in_order_with_nulls_and_no_usage():
    sent = chunk(DeltaMessage(content="Hé")).model_dump_json()
    assert sent == (
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"Hé"},"finish_reason":null,"logprobs":null}]}'
    )
    assert ChatCompletionChunk.model_validate_json(sent).choices[0].delta.content == "Hé"


STREAMED_CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


@pytest.mark.parametrize(
    ("delta", "sent"),
    [
        (DeltaMessage(role="assistant", content=""), {"role": "assistant", "content": ""}),
        (DeltaMessage(), {}),
        (DeltaMessage(tool_calls=[DeltaToolCall(index=0, id=CALL.id, function=CALL.function)]), {"tool_calls": [STREAMED_CALL]}),
    ],
)
def test_a_delta_carries_only_its_fields(delta, sent):
    body = chunk(delta, finish_reason="stop").model_dump_json()
    assert json.loads(body)["choices"][0]["delta"] == sent
    assert ChatCompletionChunk.model_validate_json(body).choices[0].finish_reason == "stop"


def test_a_streamed_call_names_its_index_first():
    call = DeltaToolCall(index=1, id=CALL.id, function=CALL.function)
    assert list(json.loads(call.model_dump_json())) == ["index", "id", "type", "function"]
    parsed = ChatCompletionChunk.model_validate_json(chunk(DeltaMessage(tool_calls=[call])).model_dump_json())
    assert parsed.choices[0].delta.tool_calls[0].index == 1 and parsed.choices[0].delta.tool_calls[0].function.name == "get_weather"


def test_the_usage_chunk_has_no_choices():
    sent = json.loads(ChatCompletionStreamResponse(**IDENTITY, choices=[], usage=USAGE).model_dump_json())
    assert list(sent) == ["id", "object", "created", "model", "choices", "usage"]
    assert sent["choices"] == [] and sent["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert ChatCompletionChunk.model_validate(sent).usage.total_tokens == 13


def test_a_completion_with_a_call_and_logprobs_reads_as_openais():
    called = ChatCompletionResponseChoice(index=0, message=ChatMessage(content=None, tool_calls=[CALL]), finish_reason="tool_calls", logprobs=logprobs(("<", -0.5)))
    plain = ChatCompletionResponseChoice(index=1, message=ChatMessage(content="Sunny"), finish_reason="length", logprobs=None)
    sent = json.loads(ChatCompletionResponse(**IDENTITY, choices=[called, plain], usage=USAGE).model_dump_json())
    assert list(sent) == ["id", "object", "created", "model", "choices", "usage"] and sent["object"] == "chat.completion"
    assert sent["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }
    assert sent["choices"][0]["logprobs"] == {"content": [{"token": "<", "logprob": -0.5, "bytes": [60], "top_logprobs": []}], "refusal": None}
    assert sent["choices"][1] == {"index": 1, "message": {"role": "assistant", "content": "Sunny"}, "finish_reason": "length", "logprobs": None}
    parsed = ChatCompletion.model_validate(sent)
    assert parsed.choices[0].message.tool_calls[0].id == "call_1" and parsed.choices[0].logprobs.content[0].bytes == [60]


def test_a_log_probability_of_minus_infinity_is_sent_as_python_json_writes_it():
    sent = logprobs(("x", float("-inf"))).model_dump_json()
    assert '"logprob":-Infinity' in sent and json.loads(sent)["content"][0]["logprob"] == float("-inf")


def test_an_unknown_finish_reason_is_refused():
    with pytest.raises(ValidationError):
        chunk(DeltaMessage(), finish_reason="eos")


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (404, "not_found_error"), (500, "server_error"), (503, "service_unavailable")])
def test_the_error_body_keeps_all_four_fields(status, kind):
    response = APIError(status, "nope", code="x").response()
    sent = json.loads(response.body)
    assert sent == {"error": {"message": "nope", "type": kind, "param": None, "code": "x"}} and list(sent["error"]) == ["message", "type", "param", "code"]
    assert (response.status, response.content_type, response.charset) == (status, "application/json", "utf-8")
