"""The official `openai` and `anthropic` Python clients, with their defaults, against the tiny models."""

from __future__ import annotations

import base64

import anthropic
import openai
import pytest

from ..conftest import png_bytes
from .helpers import IMAGE_URL, JSON_PROMPT, JSON_TOKENS, PROMPT, QWEN2, QWEN3, TEXT_TOKENS, Answer, async_outcome, check_answer, outcome

pytestmark = pytest.mark.compat

TEXT = {"role": "user", "content": PROMPT}
IMAGE = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}
SAMPLING = {"max_tokens": TEXT_TOKENS, "temperature": 0}


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    """The official client with its defaults but retries."""
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
@pytest.mark.parametrize("message", [TEXT, IMAGE], ids=["text", "image"])
def test_chat(client: openai.OpenAI, model: str, message: dict) -> None:
    reply = outcome(lambda: client.chat.completions.create(model=model, messages=[message], **SAMPLING))
    assert reply.choices[0].message.role == "assistant" and isinstance(reply.choices[0].message.content, str)
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens > 0


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
def test_chat_stream(client: openai.OpenAI, model: str) -> None:
    chunks = outcome(lambda: list(client.chat.completions.create(model=model, messages=[IMAGE], stream=True, stream_options={"include_usage": True}, **SAMPLING)))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] in (["stop"], ["length"])


async def test_async_chat(base_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120) as client:
        reply = await async_outcome(lambda: client.chat.completions.create(model=QWEN2, messages=[IMAGE], **SAMPLING))
        assert reply.choices[0].message.content is not None

        async def streamed() -> str:
            stream = await client.chat.completions.create(model=QWEN2, messages=[TEXT], stream=True, **SAMPLING)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        assert await async_outcome(streamed)


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
def test_parse_structured_output(client: openai.OpenAI, model: str) -> None:
    """`chat.completions.parse` sends a strict `json_schema` response format and parses the answer."""
    reply = outcome(
        lambda: client.chat.completions.parse(model=model, messages=[{"role": "user", "content": JSON_PROMPT}], response_format=Answer, max_tokens=JSON_TOKENS, temperature=0),
        content_ok=True,
    )
    check_answer(reply.choices[0].message.parsed)


@pytest.mark.parametrize("content", [PROMPT, [{"role": "user", "content": [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": IMAGE_URL}]}]], ids=["text", "image"])
def test_responses(client: openai.OpenAI, content: str | list) -> None:
    reply = outcome(lambda: client.responses.create(model=QWEN2, input=content, max_output_tokens=TEXT_TOKENS, temperature=0))
    assert reply.status in ("completed", "incomplete") and isinstance(reply.output_text, str) and reply.usage.output_tokens > 0


def test_responses_stream(client: openai.OpenAI) -> None:
    events = outcome(lambda: list(client.responses.create(model=QWEN2, input=PROMPT, max_output_tokens=TEXT_TOKENS, temperature=0, stream=True)))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == events[-1].response.output_text


def test_responses_parse(client: openai.OpenAI) -> None:
    reply = outcome(lambda: client.responses.parse(model=QWEN3, input=JSON_PROMPT, text_format=Answer, max_output_tokens=JSON_TOKENS, temperature=0), content_ok=True)
    check_answer(reply.output_parsed)


def test_responses_stream_helper(client: openai.OpenAI) -> None:
    """`responses.stream` rebuilds the response from the events of a forced function call."""
    tool = {"type": "function", "name": "Answer", "parameters": Answer.model_json_schema(), "strict": False}

    def run() -> openai.types.responses.Response:
        with client.responses.stream(model=QWEN2, input=JSON_PROMPT, tools=[tool], tool_choice="required", max_output_tokens=JSON_TOKENS) as stream:
            return stream.get_final_response()

    call = outcome(run).output[-1]
    assert call.type == "function_call" and call.name == "Answer"
    check_answer(Answer.model_validate_json(call.arguments))


@pytest.mark.parametrize("stream", [False, True])
def test_completions(client: openai.OpenAI, stream: bool) -> None:
    if stream:
        chunks = outcome(lambda: list(client.completions.create(model=QWEN2, prompt=PROMPT, stream=True, **SAMPLING)))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
    else:
        text = outcome(lambda: client.completions.create(model=QWEN2, prompt=PROMPT, **SAMPLING)).choices[0].text
    assert text


@pytest.fixture(scope="module")
def claude(compat_server) -> anthropic.Anthropic:
    """Anthropic's client: its base URL is the server's root, the client adds `/v1/messages`."""
    return anthropic.Anthropic(base_url=compat_server.url, api_key="unused", max_retries=0, timeout=120)


ANTHROPIC_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png_bytes()).decode()}}


@pytest.mark.parametrize("content", [PROMPT, [{"type": "text", "text": "What is this?"}, ANTHROPIC_IMAGE]], ids=["text", "image"])
def test_anthropic_messages(claude: anthropic.Anthropic, content: str | list) -> None:
    reply = outcome(lambda: claude.messages.create(model=QWEN3, max_tokens=TEXT_TOKENS, messages=[{"role": "user", "content": content}]))
    assert reply.role == "assistant" and reply.content[0].type == "text" and reply.stop_reason in ("end_turn", "max_tokens")
    assert reply.usage.output_tokens > 0


def test_anthropic_stream(claude: anthropic.Anthropic) -> None:
    def run() -> tuple[str, anthropic.types.Message]:
        with claude.messages.stream(model=QWEN2, max_tokens=TEXT_TOKENS, messages=[{"role": "user", "content": PROMPT}]) as stream:
            return "".join(stream.text_stream), stream.get_final_message()

    text, final = outcome(run)
    assert text and final.content[0].text == text and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", [QWEN2, QWEN3])
def test_anthropic_forced_tool_use(claude: anthropic.Anthropic, model: str) -> None:
    tool = {"name": "Answer", "description": "The answer.", "input_schema": Answer.model_json_schema()}
    reply = outcome(lambda: claude.messages.create(model=model, max_tokens=JSON_TOKENS, tools=[tool], tool_choice={"type": "any"}, messages=[{"role": "user", "content": JSON_PROMPT}]))
    assert reply.stop_reason == "tool_use" and reply.content[-1].type == "tool_use" and reply.content[-1].name == "Answer"
    check_answer(Answer.model_validate(reply.content[-1].input))
