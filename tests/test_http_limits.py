"""Connections and request bytes: the connection cap, header and body timeouts, `Expect: 100-continue`, the Host check.

Each test serves the app as `vlm-router serve` does (`start_server`) on a loopback port and speaks raw
HTTP/1.1 to it. No model is loaded: every request here is answered before one would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from vlm_router.api.app import create_app
from vlm_router.api.connections import start_server
from vlm_router.config import parse_config

Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve(families) -> AsyncIterator[Serve]:
    """Starts a server with the given `server` settings; its port."""
    runners = []

    async def start(**server: Any) -> int:
        config = parse_config({"models": [{"name": "m", "path": "/nonexistent"}], "server": server})
        runner = await start_server(create_app(config, families), config.server, port=0)
        runners.append(runner)
        return runner.addresses[0][1]

    yield start
    for runner in runners:
        await runner.cleanup()


async def connect(port: int, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def answer(reader: asyncio.StreamReader, timeout: float = 5) -> tuple[int, dict]:
    """The status and JSON body of the next answer on `reader`."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return status, json.loads(await asyncio.wait_for(reader.readexactly(length), timeout))


async def closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes the connection (without answering) within `timeout`."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionError:  # reset, or a write of ours met the closed connection
        return True
    except TimeoutError:
        return False


def post(length: int, *headers: str, path: str = "/v1/chat/completions") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def health(port: int, host: str = "127.0.0.1", **headers: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/health", headers={"Host": host, **headers}) as response:
            return response.status, await response.json()


async def test_connections_beyond_the_cap_close_the_longest_idle_and_health_still_answers(serve):
    port = await serve(max_connections=8)
    idle = [await connect(port) for _ in range(20)]
    await asyncio.sleep(0.2)
    shut = [await closed(reader, 0.2) for reader, _ in idle]
    assert shut == [True] * 12 + [False] * 8, "the 12 longest idle were closed for newer ones"
    assert await health(port) == (200, {"status": "ok"})
    for _, writer in idle:
        writer.close()


async def test_when_every_connection_is_busy_a_new_one_is_closed_and_stalled_bodies_end_with_408(serve):
    port = await serve(max_connections=4, body_timeout_s=1)
    started = time.monotonic()
    busy = [await connect(port, post(100) + b'{"model"') for _ in range(4)]  # 8 of 100 bytes, then nothing
    await asyncio.sleep(0.2)
    reader, _ = await connect(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert await closed(reader, 1), "every connection has a request in progress: a new one is closed"
    for reader, _ in busy:
        status, body = await answer(reader)
        assert status == 408 and body["error"]["code"] == "body_timeout"
        assert await closed(reader, 1)
    assert time.monotonic() - started < 3
    assert await health(port) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    "request_bytes",
    [
        post(100) + b"{}",  # a Content-Length longer than the body
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n{",  # a huge chunk
    ],
    ids=["content-length", "chunk-size"],
)
async def test_a_body_that_stops_arriving_ends_with_408(serve, request_bytes):
    port = await serve(body_timeout_s=0.5)
    reader, _ = await connect(port, request_bytes)
    status, body = await answer(reader, timeout=3)
    assert status == 408 and set(body["error"]) == {"message", "type", "param", "code"}


async def test_a_body_that_keeps_arriving_is_not_cut_off(serve):
    port = await serve(body_timeout_s=0.5)
    reader, writer = await connect(port, post(40))
    for piece in (b'{"model": "m",', b' "messages": [], ', b'"x": 1}'.ljust(11)):
        await asyncio.sleep(0.3)  # 0.9 s in all, no pause longer than 0.5 s
        writer.write(piece)
    status, body = await answer(reader)
    # Read whole: the empty `messages` is the complaint (a cut body would be invalid JSON, param None).
    assert (status, body["error"]["param"], body["error"]["code"]) == (400, "messages", "invalid_value"), body


async def test_headers_must_arrive_within_the_header_timeout(serve):
    port = await serve(header_timeout_s=1)
    silent, _ = await connect(port)
    slow, writer = await connect(port, b"GET /health HTTP/1.1\r\n")
    started = time.monotonic()
    for _ in range(5):  # a header byte every 0.3 s never completes the headers in time
        await asyncio.sleep(0.3)
        with contextlib.suppress(ConnectionError):
            writer.write(b"X")
    assert await closed(silent, 1) and await closed(slow, 1)
    assert time.monotonic() - started < 2.5


async def test_expect_100_continue_is_answered_413_for_a_body_over_the_limit(serve):
    port = await serve()
    reader, _ = await connect(port, post(100 * 2**20, "Expect: 100-continue"))
    status, body = await answer(reader)
    assert status == 413 and body["error"]["code"] == "request_entity_too_large"
    assert await closed(reader, 1)

    reader, writer = await connect(port, post(2, "Expect: 100-continue"))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"{}")
    status, body = await answer(reader)
    assert status == 400 and body["error"]["param"] == "messages"

    reader, _ = await connect(port, post(2, "Expect: something-else"))
    status, body = await answer(reader)
    assert status == 417 and body["error"]["code"] == "expectation_failed"


async def test_expect_100_continue_waits_for_the_key_check(serve):
    port = await serve(api_keys=["sk-test-key-0123456789"])
    reader, _ = await connect(port, post(2, "Expect: 100-continue"))
    status, body = await answer(reader)
    assert status == 401 and body["error"]["code"] == "invalid_api_key", "no 100 Continue before the key check"


async def test_bound_to_loopback_only_loopback_host_names_are_answered(serve):
    port = await serve()
    for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}", "app.localhost"):
        assert await health(port, host) == (200, {"status": "ok"}), host
    for host in (f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.evil.example", "localhost@evil.example"):
        status, body = await health(port, host)
        assert status == 403 and body["error"]["code"] == "host_not_allowed", host


async def test_allowed_host_names_widen_the_host_check(serve):
    port = await serve(allowed_host_names=["api.example"])
    assert (await health(port, "api.example:443"))[0] == 200
    assert (await health(port, "localhost"))[0] == 200
    assert (await health(port, "evil.example"))[0] == 403
    port = await serve(allowed_host_names=["*"])
    assert (await health(port, "evil.example"))[0] == 200


async def test_bound_to_all_addresses_any_host_name_is_answered(serve):
    port = await serve(host="0.0.0.0")
    assert (await health(port, "my-server.lan"))[0] == 200
