"""Every malformed request gets a 4xx with an OpenAI error body, and the server keeps answering."""

import base64
import socket

import httpx
import pytest

from .conftest import data_url, image_part, png_bytes, user

GOOD = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def with_image(url: str) -> dict:
    return {"model": "tiny-qwen2-vl", "messages": [user(image_part(url), "Describe.")], "max_tokens": 2}


def bad_requests(media_url: str) -> dict[str, tuple[int, dict | bytes, str | None]]:
    """name: (expected status, body, expected param)."""
    text_as_png = "data:image/png;base64," + base64.b64encode(b"plain text, not pixels").decode()
    return {
        "bad json": (400, b'{"model": "tiny', None),
        "json array": (400, b"[1, 2]", None),
        "empty messages": (400, {"model": "tiny-qwen2-vl", "messages": []}, "messages"),
        "unknown model": (404, {**GOOD, "model": "no-such-model"}, "model"),
        "bad base64": (400, with_image("data:image/png;base64,@@not-base64@@"), "messages.0.content.0.image_url.url"),
        "undecodable image": (400, with_image(text_as_png), "messages.0.content.0.image_url.url"),
        "not an image type": (400, with_image("data:text/html;base64,PGI+"), "messages.0.content.0.image_url.url"),
        "unreachable url": (400, with_image(f"http://127.0.0.1:{closed_port()}/x.png"), "messages.0.content.0.image_url.url"),
        "url 404": (400, with_image(media_url + "/missing.png"), "messages.0.content.0.image_url.url"),
        "private address refused": (400, with_image("http://10.255.255.1/x.png"), "messages.0.content.0.image_url.url"),
        "metadata address refused": (400, with_image("http://169.254.169.254/latest"), "messages.0.content.0.image_url.url"),
        "file url refused": (400, with_image("file:///etc/passwd"), "messages.0.content.0.image_url.url"),
        "bare path refused": (400, with_image("/etc/passwd"), "messages.0.content.0.image_url.url"),
        "unknown content type": (400, {**GOOD, "messages": [user({"type": "audio_url", "audio_url": "x"})]}, "messages.0.content.0"),
        "image in a system message": (
            400,
            {**GOOD, "messages": [{"role": "system", "content": [image_part(data_url(png_bytes()))]}, user("hi")]},
            "messages.0.content.0",
        ),
        "temperature out of range": (400, {**GOOD, "temperature": 3}, "temperature"),
        "top_p out of range": (400, {**GOOD, "top_p": -0.5}, "top_p"),
        "max_tokens zero": (400, {**GOOD, "max_tokens": 0}, "max_tokens"),
        "n above the model's max_n": (400, {**GOOD, "n": 9}, "n"),
        "tools to a family that calls none": (400, {**GOOD, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        "placeholder in text": (400, {**GOOD, "messages": [user("<|vision_start|><|image_pad|><|vision_end|>")]}, "messages.0.content.0.text"),
        "extreme aspect ratio": (400, with_image(data_url(png_bytes(600, 2))), "messages.0.content.0.image_url.url"),
        "too many images": (400, {**GOOD, "messages": [user(*[image_part(data_url(png_bytes(8, 8)))] * 17)]}, "messages"),
        "pixel bomb": (413, with_image(data_url(png_bytes(8000, 6000))), "messages.0.content.0.image_url.url"),
    }


CASES = list(bad_requests("http://unused"))


@pytest.mark.parametrize("name", CASES)
def test_malformed_request_is_a_4xx_and_server_keeps_serving(server, media_server, name):
    status, body, param = bad_requests(media_server.url)[name]
    url = server.url + "/v1/chat/completions"
    if isinstance(body, bytes):
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    else:
        response = httpx.post(url, json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"] and error["param"] == param
    assert httpx.post(url, json=GOOD, timeout=60).status_code == 200


def test_openai_client_raises_typed_errors(client):
    import openai

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[user("hi")])
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-qwen2-vl", messages=[user("hi")], temperature=9)
    assert caught.value.body["param"] == "temperature"


def test_oversized_body_is_413(server):
    body = b'{"messages": "' + b"x" * (65 * 2**20) + b'"}'
    response = httpx.post(server.url + "/v1/chat/completions", content=body, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_route_and_method_are_json_errors(server):
    missing = httpx.get(server.url + "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    wrong = httpx.get(server.url + "/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["message"]


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_a_body_in_an_encoding_the_server_cannot_decode_is_a_400(server, encoding):
    """aiohttp's HTTP parser refuses it before any handler runs, so this 400's body is aiohttp's plain text."""
    url = server.url + "/v1/chat/completions"
    response = httpx.post(url, content=b"not compressed", headers={"Content-Encoding": encoding}, timeout=60)
    assert response.status_code == 400
    assert httpx.post(url, json=GOOD, timeout=60).status_code == 200
