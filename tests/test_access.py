"""API keys and CORS against real servers on loopback ports, with the openai client and plain HTTP."""

from __future__ import annotations

import json
import logging

import aiohttp
import openai
import pytest

from vlm_router.api.app import create_app
from vlm_router.config import apply_environment

from .conftest import router_config

KEY = "sk-test-key-0123456789"
ENV_KEY = "sk-env-key-9876543210"
ORIGIN = "https://app.example"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


async def start(aiohttp_server, families, tiny_qwen, env: dict[str, str] | None = None, **server):
    """A server with one tiny model and the `server` settings; its base URL."""
    config = router_config([{"name": "m", "path": str(tiny_qwen)}], server=server)
    running = await aiohttp_server(create_app(apply_environment(config, env or {}), families))
    return str(running.make_url("")).rstrip("/")


def client(url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=300)


async def ask(client: openai.AsyncOpenAI) -> str:
    reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    return reply.choices[0].message.content


def cors_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


async def test_without_keys_everything_is_open(aiohttp_server, families, tiny_qwen):
    url = await start(aiohttp_server, families, tiny_qwen)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/v1/models") as response:
            assert response.status == 200
        async with http.post(url + "/v1/chat/completions", json=CHAT) as response:
            assert response.status == 200, await response.text()
    assert await ask(client(url, "anything"))


async def test_keys_close_everything_but_health(aiohttp_server, families, tiny_qwen, caplog):
    caplog.set_level(logging.DEBUG)
    url = await start(aiohttp_server, families, tiny_qwen, env={"VLM_API_KEYS": f" {ENV_KEY} ,"}, api_keys=[KEY])
    async with aiohttp.ClientSession() as http:
        closed = (("GET", "/v1/models"), ("GET", "/v1/models/m"), ("POST", "/v1/chat/completions"), ("GET", "/metrics"), ("GET", "/nowhere"))
        for method, path in closed:
            async with http.request(method, url + path, json=CHAT) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"] == "Bearer"
                error = (await response.json())["error"]
                assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key" and error["param"] is None
                assert "Authorization: Bearer" in error["message"]
        for header in ("Basic " + KEY, KEY, "Bearer", "Bearer " + KEY + "x", "Bearer " + KEY[:-1]):
            async with http.get(url + "/v1/models", headers={"Authorization": header}) as response:
                assert response.status == 401, header
                assert (await response.json())["error"]["code"] == "invalid_api_key"
        async with http.get(url + "/health") as response:
            assert response.status == 200 and (await response.json()) == {"status": "ok"}
        async with http.get(url + "/v1/models", headers={"Authorization": "bearer " + KEY}) as response:
            assert response.status == 200, "the scheme is case-insensitive"
        async with http.get(url + "/metrics", headers={"Authorization": "Bearer " + KEY}) as response:
            assert response.status == 200 and "vlm_router_requests_total" in await response.text(), "Prometheus scrapes with a key"

    with pytest.raises(openai.AuthenticationError) as caught:
        await client(url, "sk-wrong-key-000000").models.list()
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    with pytest.raises(openai.AuthenticationError):
        await ask(client(url, "sk-wrong-key-000000"))
    for key in (KEY, ENV_KEY):  # from models.yaml and from VLM_API_KEYS
        assert [m.id for m in (await client(url, key).models.list()).data] == ["m"]
        assert await ask(client(url, key))

    assert "wrong API key" in caplog.text and "no API key" in caplog.text
    for secret in (KEY, ENV_KEY, KEY[:-1], "sk-wrong-key"):
        assert secret not in caplog.text


async def test_cors_off_refuses_every_request_from_a_web_page(aiohttp_server, families, tiny_qwen):
    url = await start(aiohttp_server, families, tiny_qwen)
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", json=CHAT, headers={"Origin": ORIGIN}) as response:
            assert response.status == 403 and cors_headers(response) == {}
            assert (await response.json())["error"]["code"] == "cors_origin_not_allowed"
        # A form or a text/plain POST needs no preflight: it is refused all the same (CSRF).
        simple = {"Origin": "null", "Content-Type": "text/plain"}
        async with http.post(url + "/v1/chat/completions", data=json.dumps(CHAT), headers=simple) as response:
            assert response.status == 403 and (await response.json())["error"]["code"] == "cors_origin_not_allowed"
        preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        async with http.options(url + "/v1/chat/completions", headers=preflight) as response:
            assert response.status == 403 and cors_headers(response) == {}
        async with http.post(url + "/v1/chat/completions", data=json.dumps(CHAT), headers={"Content-Type": "text/plain"}) as response:
            assert response.status == 200, "a client that is not a web page sends no Origin"


async def test_cors_for_allowed_origins_with_keys(aiohttp_server, families, tiny_qwen):
    url = await start(aiohttp_server, families, tiny_qwen, api_keys=[KEY], cors_origins=[ORIGIN + "/", "https://other.example"])
    auth = {"Authorization": "Bearer " + KEY}
    async with aiohttp.ClientSession() as http:
        # The preflight carries no key and is answered before the key check.
        preflight = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os,openai-organization,x-evil",
        }
        async with http.options(url + "/v1/chat/completions", headers=preflight) as response:
            assert response.status == 204
            headers = cors_headers(response)
            assert headers["access-control-allow-origin"] == ORIGIN
            assert headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
            allowed = headers["access-control-allow-headers"].split(", ")
            assert allowed == ["authorization", "content-type", "x-request-id", "x-stainless-os", "openai-organization"]
            assert headers["access-control-max-age"] == "600"
            assert "Origin" in response.headers["Vary"]
        async with http.post(url + "/v1/chat/completions", json=CHAT, headers={**auth, "Origin": ORIGIN}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in response.headers["Vary"]
            assert response.headers["Access-Control-Expose-Headers"] == "Retry-After"
        stream = {**CHAT, "stream": True}
        async with http.post(url + "/v1/chat/completions", json=stream, headers={**auth, "Origin": ORIGIN}) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in response.headers["Vary"]
            assert (await response.text()).endswith("data: [DONE]\n\n")
        async with http.get(url + "/v1/models", headers={"Origin": ORIGIN}) as response:
            assert response.status == 401, "the browser may read why it was refused"
            assert response.headers["Access-Control-Allow-Origin"] == ORIGIN

        evil = "https://evil.example"
        async with http.post(url + "/v1/chat/completions", json=CHAT, headers={**auth, "Origin": evil}) as response:
            assert response.status == 403 and cors_headers(response) == {}, "even with a key, as a page may hold one"
            assert "Origin" in response.headers["Vary"]
        async with http.options(url + "/v1/chat/completions", headers={**preflight, "Origin": evil}) as response:
            assert response.status == 403 and cors_headers(response) == {}
            assert (await response.json())["error"]["code"] == "cors_origin_not_allowed"
        async with http.options(url + "/v1/models", headers={"Origin": ORIGIN}) as response:
            assert response.status == 401, "OPTIONS without Access-Control-Request-Method is no preflight"


async def test_cors_any_origin(aiohttp_server, families, tiny_qwen):
    url = await start(aiohttp_server, families, tiny_qwen, cors_origins=["*"])
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/v1/models", headers={"Origin": ORIGIN}) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "Access-Control-Allow-Credentials" not in response.headers
        preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"}
        async with http.options(url + "/v1/models/m", headers=preflight) as response:
            assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type, x-request-id"
        async with http.get(url + "/health") as response:
            assert cors_headers(response) == {}, "no Origin, no CORS headers"
