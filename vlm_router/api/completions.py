"""`POST /v1/completions`: OpenAI's legacy text completions, answered as a chat of one user turn.

The prompt goes through the model's chat template as the user's message (as Ollama does for chat
models): these are instruction models, and clients of this API (llama-index's `OpenAILike`) send
plain text. The sampling fields are the chat request's own, with its ranges and errors.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..generation import Completion, Delta
from .chat import ChatService, generation, note, read_json
from .errors import bad_request
from .replies import ChatChunks, Reply, collect, sse_event, stream
from .request_log import record_of
from .responses import FinishReason, Omittable, UsageInfo
from .schema import UNSUPPORTED, ChatCompletionRequest, parse_body

PATH = "/v1/completions"
#: `max_tokens` when a request leaves it out or sends null, as OpenAI's.
DEFAULT_MAX_TOKENS = 16

#: Fields taken as they are from the chat request: same type, range and default.
_SHARED = (
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "seed",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "repetition_penalty",
    "ignore_eos",
)


class _CompletionFields(BaseModel):
    """The fields of a completion request that a chat request does not have."""

    model_config = ConfigDict(strict=True, extra="allow")  # e.g. `metadata`, ignored as on chat completions

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]] = Field(description="One text: a string or a list of one string.")
    max_tokens: int | None = Field(DEFAULT_MAX_TOKENS, ge=1, description="As OpenAI's: 16 when left out or null.")
    echo: bool = Field(False, description="Only false: the prompt is not repeated.")
    suffix: str | None = Field(None, description="Refused: no insertion.")
    logprobs: int | None = Field(None, ge=0, le=5, description="Refused: log-probabilities are on chat completions.")
    best_of: int | None = Field(None, ge=1, description="Only 1.")
    user: str | None = None


#: The request body: its own fields and the chat request's sampling fields.
CompletionRequest = create_model(
    "CompletionRequest",
    __base__=_CompletionFields,
    __doc__="OpenAI's legacy completions request.",
    **{name: (ChatCompletionRequest.model_fields[name].annotation, ChatCompletionRequest.model_fields[name]) for name in _SHARED},  # type: ignore[call-overload]
)


class CompletionChoice(BaseModel):
    """One choice's text, whole or (in a chunk) the part it adds; `finish_reason` is set at its end."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class CompletionResponse(BaseModel):
    """A `text_completion`: the whole answer, or one stream chunk (the usage chunk has no choices)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Omittable[UsageInfo] = None


def to_chat(request: _CompletionFields) -> ChatCompletionRequest:
    """The chat request of one user turn that answers `request`, or a 400 naming what is refused."""
    prompt = request.prompt[0] if isinstance(request.prompt, list) and len(request.prompt) == 1 else request.prompt
    if not isinstance(prompt, str):
        raise bad_request("prompt must be one string, or a list of one string: not token ids or several prompts", param="prompt", code="invalid_value")
    refused = {"echo": request.echo, "suffix": request.suffix, "logprobs": request.logprobs is not None, "best_of": (request.best_of or 1) > 1}
    for name, value in refused.items():
        if value:
            raise bad_request(f"'{name}' is not supported by /v1/completions", param=name, code="unsupported_parameter")
    shared = request.model_dump(include=set(_SHARED), exclude_unset=True)
    extra = {name: value for name, value in (request.model_extra or {}).items() if name in UNSUPPORTED}  # refused there unless neutral
    body: dict[str, Any] = {"model": request.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
    return parse_body(ChatCompletionRequest, {**shared, **extra, **body})


class _TextChunks(ChatChunks):
    """Writes a stream's outputs as `text_completion` chunks: no role chunk, text, each finish reason, usage if asked;
    it ends, or fails, as a chat stream does."""

    async def open(self) -> None:
        """Nothing: a completion's stream starts with its text."""

    async def write(self, item: Delta | Completion) -> None:
        self._reply.saw(item)
        if isinstance(item, Delta):
            if item.text:
                await self._send_text([CompletionChoice(index=item.index, text=item.text)])
            return
        for index, reason in enumerate(item.finish_reasons):
            await self._send_text([CompletionChoice(index=index, text="", finish_reason=reason)])
        if self._include_usage:
            await self._send_text([], self._reply.usage_chunk(item).usage)

    async def _send_text(self, choices: list[CompletionChoice], usage: UsageInfo | None = None) -> None:
        reply = self._reply
        await self._response.write(sse_event(CompletionResponse(id=reply.id, created=reply.created, model=reply.model, choices=choices, usage=usage)))


async def completions(request: web.Request, service: ChatService) -> web.StreamResponse:
    """`POST /v1/completions`: one `text_completion`, or its chunks."""
    chat = to_chat(parse_body(CompletionRequest, await read_json(request)))
    async with generation(request, service, chat) as started:
        reply = Reply(model=started.handle.name, n=started.params.n, id_prefix="cmpl-")
        timeout = started.handle.config.request_timeout_s
        try:
            if chat.stream:
                return await stream(request, reply, started.outputs, chat.include_usage, timeout, _TextChunks)
            answer = await collect(reply, started.outputs, timeout)
        finally:
            note(record_of(request), reply)
    choices = [CompletionChoice(index=c.index, text=c.message.content or "", finish_reason=c.finish_reason) for c in answer.choices]
    body = CompletionResponse(id=reply.id, created=reply.created, model=reply.model, choices=choices, usage=answer.usage)
    return web.Response(text=body.model_dump_json(), content_type="application/json")
