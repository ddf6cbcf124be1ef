"""Each request gets an id (the client's `X-Request-ID`, or a new one), echoed back and in its one log line."""

import json
import logging
import sys
from urllib.parse import quote

import aiohttp
import httpx
import pytest

from vlm_router.api.app import create_app
from vlm_router.config import parse_config
from vlm_router.logs import JSONFormatter, RateLimit, TextFormatter

from .conftest import data_url, image_part, png_bytes, user

BODY = {"model": "tiny-qwen2-vl", "messages": [user(image_part(data_url(png_bytes())), "Describe.")], "max_tokens": 4}


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "vlm_router.requests"]


@pytest.mark.parametrize("stream", [False, True])
def test_the_clients_request_id_is_echoed_and_logged_with_model_tokens_and_timings(server, caplog, stream):
    caplog.set_level(logging.INFO, logger="vlm_router.requests")
    body = {**BODY, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}
    answer = httpx.post(server.url + "/v1/chat/completions", json=body, headers={"X-Request-ID": "trace-42"}, timeout=60)
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "trace-42"
    usage = json.loads(answer.text.split("\n\n")[-3].removeprefix("data: "))["usage"] if stream else answer.json()["usage"]
    (record,) = [r for r in lines(caplog) if r.fields["request_id"] == "trace-42"]
    fields = record.fields
    assert (fields["model"], fields["stream"], fields["status"], fields["path"]) == ("tiny-qwen2-vl", stream, 200, "/v1/chat/completions")
    assert (fields["prompt_tokens"], fields["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert 0 <= fields["ttft_s"] <= fields["duration_s"]
    assert "Describe" not in record.getMessage() and "base64" not in record.getMessage(), "no prompt text or media"


def test_without_a_usable_id_the_server_makes_one(server, caplog):
    caplog.set_level(logging.INFO, logger="vlm_router.requests")
    plain = httpx.get(server.url + "/health", timeout=60)
    odd = httpx.get(server.url + "/health", headers={"X-Request-ID": "spaces and <markup> are not kept"}, timeout=60)
    ids = {plain.headers["X-Request-ID"], odd.headers["X-Request-ID"]}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
    assert {r.fields["request_id"] for r in lines(caplog)} >= ids


def test_errors_are_logged_with_their_status(server, caplog):
    caplog.set_level(logging.INFO, logger="vlm_router.requests")
    answer = httpx.post(server.url + "/v1/chat/completions", json={**BODY, "model": "nope"}, headers={"X-Request-ID": "bad-1"}, timeout=60)
    assert answer.status_code == 404 and answer.headers["X-Request-ID"] == "bad-1"
    assert [r.fields["status"] for r in lines(caplog) if r.fields["request_id"] == "bad-1"] == [404]


def test_json_log_lines_carry_the_fields():
    record = logging.LogRecord("vlm_router.requests", logging.INFO, __file__, 1, "%s %s", ("id-1", "status=200"), None)
    record.fields = {"request_id": "id-1", "status": 200, "model": "demo"}
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "id-1 status=200" and line["request_id"] == "id-1" and line["status"] == 200
    assert line["level"] == "INFO" and line["time"].endswith("Z")


async def test_a_control_character_in_a_request_cannot_write_a_log_line_of_its_own(aiohttp_server, families, caplog):
    caplog.set_level(logging.INFO)
    config = parse_config({"models": [{"name": "m", "path": "/nonexistent"}], "server": {"api_keys": ["sk-test-key-0123456789"]}})
    running = await aiohttp_server(create_app(config, families))
    forged = "x\n2026-01-01 00:00:00,000 ERROR vlm_router: forged\r\x1b[2K\u2028"
    async with aiohttp.ClientSession() as http:
        async with http.get(running.make_url("/v1/models/" + quote(forged))) as response:
            assert response.status == 401
    records = [r for r in caplog.records if "forged" in r.getMessage() and r.name.startswith("vlm_router")]
    assert {r.name for r in records} == {"vlm_router.requests", "vlm_router.api.access"}, "the request line and the 401 line"
    for record in records:
        for line in (TextFormatter().format(record), JSONFormatter().format(record)):
            assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
        assert "x\\n2026-01-01 00:00:00,000 ERROR vlm_router: forged\\r\\x1b[2K\\u2028" in TextFormatter().format(record)


def test_a_traceback_is_indented_under_its_line():
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 ERROR forged")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    first, *rest = TextFormatter().format(record).split("\n")
    assert first.endswith("ERROR x: failed") and rest and all(line.startswith("    ") for line in rest)


def test_repeated_warnings_from_one_call_are_rate_limited():
    limit = RateLimit(burst=3, window_s=10)

    def record(created: float, line: int = 7, level: int = logging.WARNING) -> logging.LogRecord:
        made = logging.LogRecord("x", level, "a.py", line, "too many open files", (), None)
        made.created = created
        return made

    assert [limit.filter(record(t)) for t in range(6)] == [True] * 3 + [False] * 3
    assert limit.filter(record(5, line=8)), "another call has a window of its own"
    assert all(limit.filter(record(5, level=logging.INFO)) for _ in range(10)), "info lines (one per request) are never dropped"
    later = record(12)
    assert limit.filter(later) and later.getMessage() == "too many open files (3 more like this dropped in the last 12 s)"
