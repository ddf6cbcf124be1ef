"""Values OpenAI clients send that change nothing here, and the answers to unknown routes and wrong methods."""

import pytest

from vlm_router.api.app import create_app
from vlm_router.api.errors import APIError
from vlm_router.api.messages import texts_with_params, to_conversation
from vlm_router.api.schema import parse_request
from vlm_router.conversation import Text

from .conftest import router_config

MSG = [{"role": "user", "content": "hi"}]


def test_text_modality_and_include_obfuscation_are_accepted():
    request = parse_request({"messages": MSG, "modalities": ["text"], "stream": True, "stream_options": {"include_usage": True, "include_obfuscation": True}})
    assert request.stream_options is not None and request.stream_options.include_usage


@pytest.mark.parametrize("modalities", [["text", "audio"], ["audio"], ["image"]])
def test_other_modalities_are_refused(modalities):
    with pytest.raises(APIError) as caught:
        parse_request({"messages": MSG, "modalities": modalities})
    assert (caught.value.param, caught.value.code) == ("modalities", "unsupported_parameter")
    assert "only ['text']" in caught.value.message


def test_assistant_null_content_is_empty_and_refusal_parts_are_its_text():
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}, {"type": "text", "text": " Sorry."}]},
        {"role": "user", "content": "please"},
    ]
    request = parse_request({"messages": history})
    messages = to_conversation(request).messages
    assert messages[1].parts == [] and not messages[1].tool_calls
    assert messages[3].parts == [Text("I can't help with that."), Text(" Sorry.")]
    assert ("I can't help with that.", "messages.3.content.0.refusal") in list(texts_with_params(request))  # checked for reserved tags


@pytest.mark.parametrize("role", ["user", "system"])
def test_null_content_and_refusal_parts_stay_assistant_only(role):
    with pytest.raises(APIError) as caught:
        parse_request({"messages": [{"role": role, "content": None}]})
    assert caught.value.param == "messages.0.content"
    with pytest.raises(APIError) as caught:
        to_conversation(parse_request({"messages": [{"role": role, "content": [{"type": "refusal", "refusal": "no"}]}]}))
    assert caught.value.param == "messages.0.content.0"


@pytest.fixture
async def http(aiohttp_client, families):
    return await aiohttp_client(create_app(router_config([]), families))


async def test_unknown_route_is_a_404_naming_it_and_the_routes(http):
    response = await http.post("/v1/foo", json={})
    assert response.status == 404
    error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_route" and error["param"] is None
    assert error["message"].startswith("POST /v1/foo is not a route of this server; routes: ")
    assert "POST /v1/chat/completions" in error["message"] and "GET /v1/models/{model}" in error["message"]


async def test_wrong_method_is_a_405_naming_the_allowed_ones(http):
    response = await http.get("/v1/chat/completions")
    assert response.status == 405 and response.headers["Allow"] == "POST"
    error = (await response.json())["error"]
    assert error["code"] == "method_not_allowed" and "takes POST, not GET" in error["message"]


async def test_a_handlers_own_404_is_not_an_unknown_route(http):
    response = await http.get("/v1/models/no-such-model")
    assert response.status == 404 and (await response.json())["error"]["code"] == "model_not_found"


def test_history_with_null_content_and_refusals_generates(client):
    """The prompt of a refusal part is its text: the same answer as a text part."""
    as_refusal = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": "why"},
    ]
    as_text = [as_refusal[0], {"role": "assistant", "content": "No."}, as_refusal[2]]
    ask = {"model": "tiny-qwen2-vl", "max_tokens": 6, "temperature": 0}
    first = client.chat.completions.create(messages=as_refusal, **ask)
    assert first.choices[0].message.content == client.chat.completions.create(messages=as_text, **ask).choices[0].message.content
    empty = client.chat.completions.create(messages=[as_refusal[0], {"role": "assistant", "content": None}, as_refusal[2]], **ask)
    assert empty.usage.prompt_tokens < first.usage.prompt_tokens
