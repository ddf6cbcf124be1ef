"""Request fields users bring from OpenAI and vLLM mean the same here: n, stop, seed, logprobs, penalties, response_format.

Each feature is checked with the real `openai` client, and streaming is checked to agree with the
whole answer.
"""

import json

import openai
import pytest

from .conftest import data_url, image_part, png_bytes, user

MODEL = "tiny-qwen2-vl"
HELLO = [user("Hello")]
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "kind": {"enum": ["cat", "dog"]}, "ok": {"type": "boolean"}},
    "required": ["name", "kind", "ok"],
    "additionalProperties": False,
}


def streamed(client: openai.OpenAI, **kw) -> tuple[dict[int, str], dict[int, str], list]:
    """Text and finish reason by choice index, and the chunks' logprobs content, from a stream."""
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    logprobs: list = []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                reasons[choice.index] = choice.finish_reason
            if choice.logprobs:
                logprobs.extend(choice.logprobs.content)
    return texts, reasons, logprobs


def test_n_gives_that_many_choices_counted_in_usage(client):
    kw = {"model": MODEL, "messages": HELLO, "max_tokens": 6, "temperature": 1.0, "seed": 7, "n": 3, "extra_body": {"ignore_eos": True}}
    answer = client.chat.completions.create(**kw)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert all(c.message.content and c.finish_reason == "length" for c in answer.choices)
    assert len({c.message.content for c in answer.choices}) > 1, "sampled choices differ"
    assert answer.usage.completion_tokens == 3 * 6
    texts, reasons, _ = streamed(client, **kw)
    assert texts == {c.index: c.message.content for c in answer.choices}
    assert reasons == {0: "length", 1: "length", 2: "length"}


def test_n_with_greedy_decoding_repeats_the_one_answer(client):
    answer = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=6, temperature=0, n=2)
    assert answer.choices[0].message.content == answer.choices[1].message.content


def test_without_a_seed_each_request_samples_anew(client):
    kw = {"model": MODEL, "messages": HELLO, "max_tokens": 12, "temperature": 1.2}
    assert len({client.chat.completions.create(**kw).choices[0].message.content for _ in range(3)}) > 1


def test_same_seed_gives_the_same_sampled_text(client):
    kw = {"model": MODEL, "messages": [user(image_part(data_url(png_bytes())), "Describe.")], "max_tokens": 12, "temperature": 1.2}
    first = client.chat.completions.create(seed=1234, **kw).choices[0].message.content
    assert client.chat.completions.create(seed=1234, **kw).choices[0].message.content == first
    assert streamed(client, seed=1234, **kw)[0] == {0: first}
    others = {client.chat.completions.create(seed=seed, **kw).choices[0].message.content for seed in (1, 2, 3)}
    assert others - {first}, "other seeds give other text"


@pytest.mark.parametrize("as_list", [False, True])
def test_stop_cuts_the_answer_before_the_stop_text(client, as_list):
    kw = {"model": MODEL, "messages": HELLO, "max_tokens": 24, "temperature": 0}
    full = client.chat.completions.create(**kw).choices[0].message.content
    cut = next(i for i in range(3, len(full) - 3) if full[i : i + 3].isalnum() and full.find(full[i : i + 3]) == i)
    stop = full[cut : cut + 3]
    answer = client.chat.completions.create(stop=[stop, "never-there"] if as_list else stop, **kw)
    assert answer.choices[0].message.content == full[:cut]
    assert answer.choices[0].finish_reason == "stop"
    assert streamed(client, stop=stop, **kw)[:2] == ({0: full[:cut]}, {0: "stop"})


def test_logprobs_have_openais_shape_and_spell_the_answer(client):
    kw = {"model": MODEL, "messages": HELLO, "max_tokens": 8, "temperature": 0, "logprobs": True, "extra_body": {"ignore_eos": True}}
    answer = client.chat.completions.create(**kw)
    content = answer.choices[0].logprobs.content
    assert len(content) == 8 == answer.usage.completion_tokens
    # a token that is part of a UTF-8 character reads as U+FFFD on its own
    assert "".join(t.token for t in content).replace("\ufffd", "") == answer.choices[0].message.content.replace("\ufffd", "")
    assert all(t.logprob <= 0 and t.bytes == list(t.token.encode()) and t.top_logprobs == [] for t in content)
    _, _, stream_logprobs = streamed(client, **kw)
    assert [(t.token, round(t.logprob, 4)) for t in stream_logprobs] == [(t.token, round(t.logprob, 4)) for t in content]
    plain = client.chat.completions.create(**{**kw, "logprobs": False})
    assert plain.choices[0].logprobs is None


def test_json_schema_answer_parses_and_matches_even_from_random_weights(client):
    """No whitespace between JSON tokens: the random model closes the object within its budget.

    Its strings may hold a control character (parsed with `strict=False`): openvino-genai hands xgrammar its
    vocabulary as raw text, so a byte-level token such as `Č` passes the string's grammar and decodes to 0x0C.
    """
    response_format = {"type": "json_schema", "json_schema": {"name": "pet", "schema": SCHEMA, "strict": True}}
    kw = {"model": MODEL, "messages": [user("Who?")], "max_tokens": 60, "temperature": 0, "response_format": response_format}
    answer = client.chat.completions.create(**kw)
    assert answer.choices[0].finish_reason == "stop"
    value = json.loads(answer.choices[0].message.content, strict=False)
    assert set(value) == {"name", "kind", "ok"}
    assert isinstance(value["name"], str) and len(value["name"]) <= 8
    assert value["kind"] in ("cat", "dog") and isinstance(value["ok"], bool)
    assert streamed(client, **kw)[0] == {0: answer.choices[0].message.content}


def test_a_one_field_schema_finishes_well_inside_40_tokens(client):
    """Free whitespace between JSON tokens took the random model's whole budget; compact JSON takes 7 tokens."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "one", "schema": schema}}
    answer = client.chat.completions.create(model=MODEL, messages=[user("Who?")], max_tokens=40, temperature=0, response_format=response_format)
    assert answer.choices[0].finish_reason == "stop" and answer.usage.completion_tokens < 20
    value = json.loads(answer.choices[0].message.content)
    assert isinstance(value, dict) and type(value["a"]) is int
    assert answer.choices[0].message.content == json.dumps(value), "no whitespace but the separators"


def test_json_object_answer_is_a_small_json_object(client):
    """Any object is allowed, without free whitespace. The random model's digits run on without an end of their own;
    the repetition penalty ends its number, and the object closes after about 13 tokens."""
    kw = {
        "model": MODEL, "messages": [user("Who?")], "max_tokens": 40, "temperature": 0,
        "response_format": {"type": "json_object"}, "extra_body": {"repetition_penalty": 2.0},
    }  # fmt: skip
    answer = client.chat.completions.create(**kw).choices[0]
    assert answer.finish_reason == "stop", answer.message.content
    assert isinstance(json.loads(answer.message.content), dict)
    assert streamed(client, **kw)[0] == {0: answer.message.content}


@pytest.mark.parametrize(
    "extra",
    [
        {"presence_penalty": 1.5},
        {"frequency_penalty": -1.0},
        {"extra_body": {"top_k": 5, "min_p": 0.05, "repetition_penalty": 1.3}},
    ],
    ids=["presence_penalty", "frequency_penalty", "top_k min_p repetition_penalty"],
)
def test_sampling_parameters_change_the_answer_and_stream_alike(client, extra):
    kw = {"model": MODEL, "messages": HELLO, "max_tokens": 16, "temperature": 0.8, "seed": 5}
    baseline = client.chat.completions.create(**kw).choices[0].message.content
    body = {**kw, **extra}
    answer = client.chat.completions.create(**body).choices[0].message.content
    assert answer != baseline
    assert streamed(client, **body)[0] == {0: answer}


async def test_async_client_gets_n_choices_with_logprobs(server):
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    kw = {"max_tokens": 4, "n": 2, "temperature": 1, "logprobs": True, "extra_body": {"ignore_eos": True}}
    answer = await client.chat.completions.create(model=MODEL, messages=HELLO, **kw)
    assert [(c.index, c.finish_reason) for c in answer.choices] == [(0, "length"), (1, "length")]
    assert [len(c.logprobs.content) for c in answer.choices] == [4, 4]  # one per token
    assert answer.usage.completion_tokens == 2 * 4


def test_n_over_the_models_limit_and_unsupported_fields_are_400s(client):
    for kw, param in (({"n": 9}, "n"), ({"logprobs": True, "top_logprobs": 3}, "top_logprobs")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2, **kw)
        assert caught.value.body["param"] == param


def test_a_schema_the_pipeline_cannot_compile_is_a_400(client):
    """openvino-genai compiles the schema inside a batch step, where an error would stop the model's worker."""
    schema = {"type": "object", "properties": {"a": {"type": "no-such-type"}}}
    bad = {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2, response_format=bad)
    assert caught.value.body["param"] == "response_format.json_schema.schema"
    assert "schema.properties.a.type" in caught.value.body["message"]
    assert client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2).choices[0].message.content



def test_max_tokens_over_the_context_is_a_400_giving_both_numbers(client):
    """The tiny models have a context of 4096 tokens."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=5000)
    error = caught.value.body
    assert (error["code"], error["param"]) == ("context_length_exceeded", "max_tokens")
    assert "max_tokens is 5000" in error["message"] and "context of 4096 tokens" in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[user("word " * 6000)], max_tokens=4)
    assert (caught.value.body["code"], caught.value.body["param"]) == ("context_length_exceeded", "messages")


def test_the_default_max_tokens_shrinks_to_the_context_left(client):
    """`tiny-qwen2.5-vl` keeps the default of 1024 tokens; a long prompt leaves fewer, and the answer fills them."""
    long = [user("word " * 1150)]
    answer = client.chat.completions.create(model="tiny-qwen2.5-vl", messages=long, extra_body={"ignore_eos": True})
    assert answer.usage.prompt_tokens > 4096 - 1024
    assert answer.usage.prompt_tokens + answer.usage.completion_tokens == 4096
    assert answer.choices[0].finish_reason == "length"
