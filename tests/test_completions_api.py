"""`POST /v1/completions` end to end: the openai client's `completions.create` against the tiny models."""

import json

import httpx
import openai
import pytest
from openai.types import Completion

PROMPT = "Describe the weather."


def complete(client, **kw):
    kw.setdefault("model", "tiny-qwen2-vl")
    kw.setdefault("prompt", PROMPT)
    kw.setdefault("max_tokens", 8)
    kw.setdefault("temperature", 0)
    return client.completions.create(**kw)


def test_prompt_is_one_user_turn_of_the_chat_template(client):
    text = complete(client)
    chat = client.chat.completions.create(model="tiny-qwen2-vl", messages=[{"role": "user", "content": PROMPT}], max_tokens=8, temperature=0)
    assert text.object == "text_completion" and text.id.startswith("cmpl-") and text.model == "tiny-qwen2-vl"
    assert text.choices[0].text == chat.choices[0].message.content
    assert text.choices[0].finish_reason == chat.choices[0].finish_reason
    assert text.usage.prompt_tokens == chat.usage.prompt_tokens


def test_body_is_an_openai_completion(server):
    body = {"model": "demo", "prompt": [PROMPT], "max_tokens": 4, "temperature": 0, "user": "someone", "echo": False, "stream_options": None}
    response = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    raw = response.json()
    completion = Completion.model_validate(raw)
    assert raw["choices"][0]["logprobs"] is None and completion.choices[0].index == 0
    assert completion.usage.completion_tokens == 4 and completion.usage.total_tokens == completion.usage.prompt_tokens + 4


def test_max_tokens_defaults_to_16(client):
    # tiny-qwen2.5-vl's own default is 1024: 16 comes from the completions API
    reply = complete(client, model="tiny-qwen2.5-vl", max_tokens=None, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 16 and reply.choices[0].finish_reason == "length"


def test_stream_equals_whole_answer(client):
    whole = complete(client, n=2, temperature=1, seed=5)
    chunks = list(complete(client, n=2, temperature=1, seed=5, stream=True, stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"text_completion"} and len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("cmpl-")
    texts: dict[int, str] = {}
    finishes = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        texts[choice.index] = texts.get(choice.index, "") + choice.text
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == {c.index: c.text for c in whole.choices}
    assert finishes == {c.index: c.finish_reason for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_wire_format(server):
    body = {"model": "tiny-qwen2-vl", "prompt": "hi", "max_tokens": 3, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in response.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    objects = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all("usage" not in o and "role" not in o["choices"][0] for o in objects)  # no role chunk, no usage unless asked
    assert objects[0]["choices"][0]["text"] and objects[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [[1, 2]]}, "prompt"),
        ({"echo": True}, "echo"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 0}, "logprobs"),
        ({"best_of": 2}, "best_of"),
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ],
)
def test_refused_requests_name_the_field(client, fields, param):
    with pytest.raises(openai.BadRequestError) as caught:
        complete(client, **{k: v for k, v in fields.items() if k == "prompt"}, extra_body={k: v for k, v in fields.items() if k != "prompt"})
    assert caught.value.body["param"] == param, caught.value.body


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as caught:
        complete(client, model="no-such-model")
    assert caught.value.body["code"] == "model_not_found"
