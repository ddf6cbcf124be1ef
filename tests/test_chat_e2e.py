"""End to end: the openai client against a real server running tiny OpenVINO models."""

import json

import httpx
import pytest

from .conftest import data_url, image_part, png_bytes, user

RED = data_url(png_bytes(64, 48, (220, 20, 20)))
BLUE_JPEG = data_url(png_bytes(56, 56, (20, 20, 220), fmt="JPEG"), "image/jpeg")


def ask(client, messages, model="tiny-qwen2-vl", **kw):
    kw.setdefault("max_tokens", 12)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model=model, messages=messages, **kw)


def streamed(client, messages, model="tiny-qwen2-vl", **kw):
    kw.setdefault("max_tokens", 12)
    kw.setdefault("temperature", 0)
    return list(client.chat.completions.create(model=model, messages=messages, stream=True, **kw))


def test_greedy_output_is_deterministic(client):
    first = ask(client, [user("Describe the weather.")])
    second = ask(client, [user("Describe the weather.")])
    assert first.choices[0].message.content
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.object == "chat.completion" and first.id.startswith("chatcmpl-")
    assert first.model == "tiny-qwen2-vl"


@pytest.mark.parametrize("model", ["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava"])
def test_streamed_text_equals_non_streamed_text(client, model):
    messages = [user(image_part(RED), "What is in the picture?")]
    whole = ask(client, messages, model=model)
    chunks = streamed(client, messages, model=model)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert all(c.id == chunks[0].id for c in chunks)


def test_stream_wire_format_and_usage_chunk(server):
    body = {
        "model": "tiny-qwen2-vl",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 5,
    }
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    objects = [json.loads(e[6:]) for e in events[:-1]]
    assert {o["object"] for o in objects} == {"chat.completion.chunk"}
    usage = objects[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 5
    assert all("usage" not in o for o in objects[:-1])


@pytest.mark.parametrize("model", ["tiny-qwen2-vl", "tiny-llava"])
def test_images_raise_prompt_tokens(client, model):
    none = ask(client, [user("Describe.")], model=model).usage.prompt_tokens
    one = ask(client, [user(image_part(RED), "Describe.")], model=model).usage.prompt_tokens
    two = ask(client, [user(image_part(RED), image_part(BLUE_JPEG), "Describe.")], model=model).usage.prompt_tokens
    assert none < one < two


def test_low_max_tokens_gives_length(client):
    answer = ask(client, [user("Tell a long story.")], max_tokens=3)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 3
    newer = ask(client, [user("Tell a long story.")], max_tokens=None, max_completion_tokens=2)
    assert newer.usage.completion_tokens == 2


def test_model_default_max_tokens_applies(client):
    """With `ignore_eos` the answer runs to its limit: this model's `defaults.max_tokens`, not the server's 1024."""
    answer = ask(client, [user("Tell a long story.")], max_tokens=None, extra_body={"ignore_eos": True})
    assert (answer.usage.completion_tokens, answer.choices[0].finish_reason) == (16, "length")


def test_image_by_url_from_an_allowed_host(client, media_server):
    media_server.files["/red.png"] = (png_bytes(64, 48, (220, 20, 20)), "image/png")
    media_server.redirects["/moved.png"] = "/red.png"
    by_data = ask(client, [user(image_part(RED), "Describe.")])
    by_url = ask(client, [user(image_part(media_server.url + "/red.png"), "Describe.")])
    redirected = ask(client, [user(image_part(media_server.url + "/moved.png"), "Describe.")])
    assert by_url.choices[0].message.content == by_data.choices[0].message.content
    assert redirected.choices[0].message.content == by_data.choices[0].message.content


def test_continued_chat_with_system_prompt_and_history_images(client):
    first_turn = [{"role": "system", "content": "You describe images."}, user(image_part(RED), "What colour?")]
    first = ask(client, first_turn)
    history = first_turn + [{"role": "assistant", "content": first.choices[0].message.content}]
    second = ask(client, history + [user(image_part(BLUE_JPEG), "And now?")])
    assert second.choices[0].message.content
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens


def test_alias_and_default_model(server, client):
    by_alias = ask(client, [user("hi")], model="demo")
    assert by_alias.model == "tiny-qwen2-vl"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 12, "temperature": 0}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == by_alias.choices[0].message.content


def test_seeded_sampling_repeats(client):
    kw = {"temperature": 1.0, "top_p": 0.9, "seed": 1234, "max_tokens": 12}
    first = ask(client, [user("Say something.")], **kw)
    again = ask(client, [user("Say something.")], **kw)
    assert first.choices[0].message.content == again.choices[0].message.content


def test_any_int64_seed_is_accepted(client):
    for seed in (-1, -(2**63), 2**63 - 1):
        assert ask(client, [user("hi")], temperature=0.7, seed=seed, max_tokens=2).usage.completion_tokens == 2


def test_models_endpoints(client, server):
    ask(client, [user("hi")])
    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {"tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava", "tiny-llava-next", "tiny-gemma3", "tiny-llava-next-video", "tiny-qwen3-vl", "no-video", "video-as-frames"}
    entry = listed["tiny-qwen2-vl"].model_dump()
    assert entry["family"] == "qwen2_vl" and entry["state"] == "ready" and entry["aliases"] == ["demo"]
    assert entry["capabilities"]["images"] is True and entry["capabilities"]["video"] == "native"
    one = httpx.get(server.url + "/v1/models/tiny-qwen2.5-vl").json()
    assert one["id"] == "tiny-qwen2.5-vl"
    assert httpx.get(server.url + "/v1/models/demo").json()["id"] == "tiny-qwen2-vl", "found by alias"
    missing = httpx.get(server.url + "/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_ignore_eos_generates_max_tokens(client):
    """Find a sampled answer that ends on its own, then ask again with `ignore_eos`."""
    kw = {"temperature": 1.0, "max_tokens": 200}
    for seed in range(100):
        messages = [user(f"word {seed} " * (seed % 7 + 1))]
        natural = ask(client, messages, seed=seed, **kw)
        if natural.choices[0].finish_reason == "stop":
            break
    else:
        pytest.fail("no sampled answer stopped by itself")
    assert natural.usage.completion_tokens < 200
    forced = ask(client, messages, seed=seed, extra_body={"ignore_eos": True}, **kw)
    assert forced.choices[0].finish_reason == "length" and forced.usage.completion_tokens == 200
