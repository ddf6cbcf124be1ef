"""The playground's page over plain HTTP: its files and headers, `server.ui`, API keys, and the server's own origin."""

from __future__ import annotations

import re

import aiohttp
import pytest

from vlm_router.api.app import create_app
from vlm_router.api.playground import CONTENT_SECURITY_POLICY
from vlm_router.config import apply_environment, parse_config

from .conftest import router_config

KEY = "sk-test-key-0123456789"
BAD_BODY = {"model": "m", "messages": []}  # refused by validation (400) after the access checks, so no model loads


async def start(aiohttp_server, families, **server) -> str:
    """A server whose one model is never loaded by these tests; its base URL."""
    app = create_app(router_config([{"name": "m", "path": "unused"}], server=server), families)
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


async def test_the_page_and_its_files_are_served_with_a_content_security_policy(aiohttp_server, families):
    url = await start(aiohttp_server, families)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/") as response:
            assert response.status == 200 and response.content_type == "text/html"
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert "connect-src 'self'" in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            page = await response.text()
        linked = re.findall(r'(?:src|href)="(/[^"]*)"', page)
        assert sorted(linked) == ["/ui/favicon.svg", "/ui/playground.css", "/ui/playground.js"]
        types = {"/ui/favicon.svg": "image/svg+xml", "/ui/playground.css": "text/css", "/ui/playground.js": "javascript"}
        for path in linked:
            async with http.get(url + path) as response:
                assert response.status == 200 and types[path] in response.content_type, path
                assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
                etag = response.headers["ETag"]
            async with http.get(url + path, headers={"If-None-Match": etag}) as response:
                assert response.status == 304, "the browser's copy is current"
        async with http.get(url + "/ui/../config.py") as response:
            assert response.status == 404
        async with http.get(url + "/ui/missing.js") as response:
            assert response.status == 404 and (await response.json())["error"]["code"] == "unknown_route"


async def test_the_page_uses_only_the_public_api(aiohttp_server, families):
    url = await start(aiohttp_server, families)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/ui/playground.js") as response:
            script = await response.text()
    assert sorted(set(re.findall(r'fetch\("([^"]+)"', script))) == ["/v1/chat/completions", "/v1/models"]
    assert "innerHTML" not in script, "answers are text, never markup"


async def test_ui_false_serves_no_page(aiohttp_server, families):
    url = await start(aiohttp_server, families, ui=False)
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/ui/playground.js"):
            async with http.get(url + path) as response:
                assert response.status == 404 and (await response.json())["error"]["code"] == "unknown_route", path


@pytest.mark.parametrize(("value", "served"), [("false", False), ("0", False), ("true", True)])
def test_vlm_ui_sets_the_page(value, served):
    assert apply_environment(parse_config({"models": []}), {"VLM_UI": value}).server.ui is served


async def test_with_keys_the_page_is_open_and_the_api_is_not(aiohttp_server, families):
    url = await start(aiohttp_server, families, api_keys=[KEY])
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/ui/playground.js", "/ui/playground.css"):
            async with http.get(url + path) as response:
                assert response.status == 200, path
        async with http.get(url + "/v1/models") as response:
            assert response.status == 401
        async with http.post(url + "/", json=BAD_BODY) as response:
            assert response.status == 401, "only GET and HEAD are open"
    url = await start(aiohttp_server, families, api_keys=[KEY], ui=False)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/") as response:
            assert response.status == 401, "with the page off, / is no open route: its 404 would list the routes"


async def test_the_page_is_served_whatever_origin_asks(aiohttp_server, families):
    """Chromium sends an Origin with a page's module script: the files are public, and the API still checks it."""
    url = await start(aiohttp_server, families, host="0.0.0.0")
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/ui/playground.js", headers={"Origin": "http://vlm.example:9764"}) as response:
            assert response.status == 200
        async with http.get(url + "/v1/models", headers={"Origin": "http://vlm.example:9764"}) as response:
            assert response.status == 403


TRUSTED = "allowed"


@pytest.mark.parametrize(
    ("host", "origin", "server", "expected"),
    [
        # The page's own POSTs: Origin is the scheme, host and port the browser loaded it from.
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}", {}, TRUSTED),
        ("localhost:{port}", "http://localhost:{port}", {}, TRUSTED),
        ("[::1]:{port}", "http://[::1]:{port}", {}, TRUSTED),
        ("10.1.2.3:{port}", "http://10.1.2.3:{port}", {"host": "0.0.0.0"}, TRUSTED),
        ("vlm.example", "https://vlm.example", {"host": "0.0.0.0", "allowed_host_names": ["vlm.example"]}, TRUSTED),
        ("vlm.example:443", "https://vlm.example", {"host": "0.0.0.0", "allowed_host_names": ["vlm.example"]}, TRUSTED),
        # A name that could have been rebound to this server is not trusted without allowed_host_names.
        ("vlm.example:{port}", "http://vlm.example:{port}", {"host": "0.0.0.0"}, "server.allowed_host_names"),
        # Another port or host of the same machine is another origin.
        ("127.0.0.1:{port}", "http://127.0.0.1:8080", {}, "server.cors_origins"),
        ("127.0.0.1:{port}", "http://localhost:{port}", {}, "server.cors_origins"),
        ("vlm.example", "http://vlm.example:8443", {"host": "0.0.0.0", "allowed_host_names": ["vlm.example"]}, "server.cors_origins"),
        ("127.0.0.1:{port}", "null", {}, "server.cors_origins"),
    ],
)
async def test_the_servers_own_origin_is_allowed_when_its_host_cannot_be_rebound(aiohttp_server, families, host, origin, server, expected):
    """`expected`: TRUSTED, or the setting the 403's message points to."""
    url = await start(aiohttp_server, families, **server)
    port = url.rsplit(":", 1)[1]
    headers = {"Host": host.format(port=port), "Origin": origin.format(port=port)}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", json=BAD_BODY, headers=headers) as response:
            body = await response.json()
    if expected == TRUSTED:
        assert response.status == 400, body
        assert "Access-Control-Allow-Origin" not in response.headers, "a same-origin answer needs no CORS headers"
    else:
        assert response.status == 403 and body["error"]["code"] == "cors_origin_not_allowed", body
        assert expected in body["error"]["message"]
