"""`POST /v1/chat/completions`: validate, route, admit, prepare, then answer or stream within the deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..config import GenerationDefaults, MediaConfig
from ..conversation import ToolCall
from ..generation import Completion, Delta, SamplingParams
from ..media.loader import MediaLoader
from ..registry import ModelHandle, ModelRegistry, Overloaded, UnknownModel
from .errors import APIError
from .messages import to_conversation
from .prepare import prepare
from .replies import Reply, complete, stream
from .request_log import RequestRecord, record_of
from .schema import ChatCompletionRequest, parse_request

log = logging.getLogger(__name__)

PATH = "/v1/chat/completions"


@dataclass
class ChatService:
    """What the chat endpoint needs from the server."""

    registry: ModelRegistry
    loader: MediaLoader
    media: MediaConfig


#: Bodies larger than this are parsed on a worker thread, so a big base64 image never stalls the loop.
_INLINE_PARSE_BYTES = 256 * 1024


async def read_json(request: web.Request) -> Any:
    try:
        body = await request.read()
    except RequestPayloadError as exc:  # e.g. a body that is not the gzip its Content-Encoding says
        raise APIError(400, f"the request body cannot be read: {exc}", code="invalid_body") from None
    try:
        if len(body) <= _INLINE_PARSE_BYTES:
            return json.loads(body)
        return await asyncio.get_running_loop().run_in_executor(None, json.loads, body)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None


def find_model(registry: ModelRegistry, name: str | None) -> ModelHandle:
    """The model by name or alias (the default one for no name), or a 404."""
    try:
        return registry.get(name)
    except UnknownModel as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from None


def sampling_params(request: ChatCompletionRequest, defaults: GenerationDefaults) -> SamplingParams:
    """The request's parameters over the model's defaults."""

    def pick(name: str) -> Any:
        value = getattr(request, name)
        return value if value is not None else getattr(defaults, name)

    top_k = pick("top_k")
    return SamplingParams(
        max_tokens=request.token_limit or defaults.max_tokens,
        max_tokens_given=request.token_limit is not None,
        **{name: pick(name) for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "seed")},
        top_k=top_k if top_k and top_k > 0 else None,
        ignore_eos=request.ignore_eos,
        n=request.n or 1,
        stop=request.stop_texts,
        logprobs=bool(request.logprobs),
        json_schema=request.json_schema,
    )


def _check_n_and_logprobs(handle: ModelHandle, chat: ChatCompletionRequest, batching: bool) -> None:
    """What the model's `max_n` allows of `n`, and its worker's batching of `logprobs`."""
    if chat.n and chat.n > handle.config.max_n:
        raise APIError(400, f"n is {chat.n}; model '{handle.name}' allows at most {handle.config.max_n}", param="n", code="invalid_value")
    if chat.logprobs and not batching:
        message = f"model '{handle.name}' runs on VLMPipeline, which reports no log-probabilities; continuous batching does"
        raise APIError(400, message, param="logprobs", code="unsupported_parameter")


@dataclass
class Generation:
    """A request admitted to its model and prepared: the outputs its API renders, and how they were asked for."""

    handle: ModelHandle
    params: SamplingParams
    outputs: AsyncGenerator[Delta | Completion, None]
    #: Reads function calls from the answer, when the request offered tools.
    parse_tool_calls: Callable[[str], tuple[str, list[ToolCall]]] | None


@contextlib.asynccontextmanager
async def generation(request: web.Request, service: ChatService, chat: ChatCompletionRequest) -> AsyncIterator[Generation]:
    """The one path every API takes: route, admit, load media and model, build the prompt, start generating.

    An API translates its request into `chat`, renders the outputs in its own shape, then `note`s the reply.
    The model counts the request until the block ends.
    """
    handle = find_model(service.registry, chat.model)
    record = record_of(request)
    record.model, record.stream = handle.name, chat.stream
    conversation = to_conversation(chat)
    try:
        handle.admit()  # from here on the model counts this request, and is not unloaded
    except Overloaded as exc:
        raise APIError(429, str(exc), code="model_overloaded", headers={"Retry-After": str(round(exc.retry_after))}) from None
    try:
        ready = await prepare(service.loader, service.media, handle, chat, conversation)
        _check_n_and_logprobs(handle, chat, ready.worker.batching)
        params = sampling_params(chat, handle.config.defaults)
        outputs = ready.worker.stream(ready.prompt, ready.images, ready.videos, params)
        yield Generation(handle, params, outputs, ready.parse_tool_calls)
    finally:
        handle.release()


async def chat_completions(request: web.Request, service: ChatService) -> web.StreamResponse:
    chat = parse_request(await read_json(request))
    async with generation(request, service, chat) as started:
        reply = Reply(model=started.handle.name, n=started.params.n, logprobs=started.params.logprobs, parse_tool_calls=started.parse_tool_calls)
        try:
            return await _answer(request, chat, reply, started.outputs, started.handle.config.request_timeout_s)
        finally:
            note(record_of(request), reply)


def note(record: RequestRecord, reply: Reply) -> None:
    """Usage and timings, for the request's log line and metrics."""
    if reply.first_output_at is not None:
        record.ttft_s = reply.first_output_at - record.started
    if (done := reply.completion) is not None:
        record.prompt_tokens, record.completion_tokens = done.prompt_tokens, done.completion_tokens
        record.tpot_s, record.vision_encoding_s = done.time_per_output_token_s, done.vision_encoding_s


async def _answer(
    request: web.Request, chat: ChatCompletionRequest, reply: Reply, outputs: AsyncGenerator[Delta | Completion, None], timeout: float | None
) -> web.StreamResponse:
    """One chat.completion, or the stream of chunks; generation ends by `timeout` seconds from now."""
    if chat.stream:
        return await stream(request, reply, outputs, chat.include_usage, timeout)
    return await complete(reply, outputs, timeout)
