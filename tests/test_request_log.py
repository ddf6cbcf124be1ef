"""Each request gets an id (the client's `X-Request-ID`, or a new one), echoed back and in its one log line."""

import json
import logging

import httpx
import pytest

from vlm_router.logs import JSONFormatter

from .conftest import data_url, image_part, png_bytes, user

BODY = {"model": "tiny-qwen2-vl", "messages": [user(image_part(data_url(png_bytes())), "Describe.")], "max_tokens": 4}


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "vlm_router.requests"]


@pytest.mark.parametrize("stream", [False, True])
def test_the_clients_request_id_is_echoed_and_logged_with_model_tokens_and_timings(server, caplog, stream):
    caplog.set_level(logging.INFO, logger="vlm_router.requests")
    answer = httpx.post(server.url + "/v1/chat/completions", json={**BODY, "stream": stream}, headers={"X-Request-ID": "trace-42"}, timeout=60)
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "trace-42"
    (record,) = [r for r in lines(caplog) if r.fields["request_id"] == "trace-42"]
    fields = record.fields
    assert (fields["model"], fields["stream"], fields["status"], fields["path"]) == ("tiny-qwen2-vl", stream, 200, "/v1/chat/completions")
    assert fields["prompt_tokens"] > 4 and fields["completion_tokens"] > 0
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
