"""Hostile request content that once reached past the router's checks: JSON schemas the engine's
grammar compiler refuses inside a batch step, media placeholders split across text parts, IPv6
translation addresses judged by the IPv4 inside, and openvino-genai's own error text."""

import logging

import openai
import pytest

from vlm_router.api.json_schema import SchemaError, check_schema
from vlm_router.api.replies import generation_error
from vlm_router.media.fetch import HostPolicy
from vlm_router.worker.client import RequestRejected

from .conftest import user
from .test_media_safety import origin, refusal  # noqa: F401 (a fixture)

#: Each passed the old shape check, and xgrammar raised on it inside `step()`, which killed the worker.
ENGINE_REFUSED = [
    {"anyOf": []},
    {"oneOf": []},
    {"enum": []},
    {"$ref": "#/$defs/missing"},
    {"type": "string", "pattern": "["},
    {"type": "integer", "minimum": 10, "maximum": 1},
    {"type": "string", "minLength": 5, "maxLength": 2},
    {"type": "array", "minItems": 5, "maxItems": 2},
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "(a"}}},
]


def response_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}


@pytest.mark.parametrize("schema", ENGINE_REFUSED)
def test_schemas_the_engine_refuses_are_refused_before_admission(schema):
    with pytest.raises(SchemaError) as caught:
        check_schema(schema)
    assert "/project/" not in str(caught.value) and "Check failed" not in str(caught.value)


async def test_no_schema_the_engine_refuses_reaches_the_worker(start):
    server = await start([{"name": "m"}])
    await server.ask("m")
    pid = (await server.models())["m"]["pid"]
    for schema in ENGINE_REFUSED:
        with pytest.raises(openai.BadRequestError) as caught:
            await server.ask("m", response_format=response_format(schema))
        assert caught.value.body["param"] == "response_format.json_schema.schema", schema
    good = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 10}}, "required": ["a"]}
    assert (await server.ask("m", response_format=response_format(good), max_tokens=16)).choices[0].message.content
    state = (await server.models())["m"]
    assert state["pid"] == pid and state["restarts"] == 0 and state["state"] == "ready"


@pytest.mark.parametrize(
    "parts",
    [
        ["<ov_genai_image_", "0>"],
        ["look <ov_genai_", "video_0", "> here"],
        ["<|vision_", "start|>"],
    ],
)
async def test_a_placeholder_split_across_text_parts_is_refused(start, parts):
    server = await start([{"name": "m"}])
    with pytest.raises(openai.BadRequestError) as caught:
        await server.ask("m", *parts)
    assert caught.value.body["code"] == "reserved_tag"
    assert caught.value.body["param"] == "messages.0.content"
    assert "/home/" not in caught.value.body["message"]
    served = await server.client.chat.completions.create(model="m", messages=[user("<ov_genai", "image_0>")], max_tokens=2, extra_body={"ignore_eos": True})
    assert served.usage.completion_tokens == 2, "the same texts in one message's parts are served"


TRANSLATED = {
    "nat64 of loopback": "http://[64:ff9b::127.0.0.1]:{port}/red.png",
    "nat64 local-use prefix": "http://[64:ff9b:1::7f00:1]:{port}/red.png",
    "6to4 of loopback": "http://[2002:7f00:1::1]:{port}/red.png",
    "6to4 of a public address": "http://[2002:808:808::1]:{port}/red.png",
    "teredo": "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:{port}/red.png",
}


@pytest.mark.parametrize("name", TRANSLATED)
async def test_ipv6_translation_addresses_are_not_judged_by_the_ipv4_inside(name, origin):  # noqa: F811 (the fixture imported above)
    url = TRANSLATED[name].format(port=origin.url.rsplit(":", 1)[1])
    for media in ({"allowed_hosts": ["127.0.0.1", "8.8.8.8/32", "0.0.0.0/0"]}, {"allow_private_networks": True}):
        assert (await refusal(url, **media)).code == "media_url_refused"


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "64:ff9b:1::7f00:1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"])
def test_ipv6_translation_addresses_open_when_listed_as_ipv6(address):
    assert HostPolicy([address]).address_allowed(address)
    assert HostPolicy(["64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"]).address_allowed(address)
    assert not HostPolicy(["relay.example"], allow_private=True).address_allowed(address, "relay.example")


def test_engine_text_goes_to_the_log_not_to_the_client(caplog):
    text = "Check 'outH > 0' failed at /home/jenkins/agent/workspace/openvino.genai/src/cpp/src/visual_language/clip.cpp:54"
    with caplog.at_level(logging.WARNING):
        error = generation_error(RequestRejected(text, "invalid_request", None), "m", None)
    assert error.status == 400 and "/home/jenkins" not in error.message and "outH" not in error.message
    assert text in caplog.text
    crash = generation_error(RuntimeError("Exception from src/inference/src/cpp/infer_request.cpp:223"), "m", None)
    assert crash.status == 500 and "infer_request" not in crash.message
