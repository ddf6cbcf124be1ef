"""`POST /v1/chat/completions`: validate, route, fetch media, prompt, generate, answer or stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from ..config import GenerationDefaults, MediaConfig, VideoSupport
from ..generation import Completion, SamplingParams
from ..family import Capabilities, CapabilityError
from ..media import MediaError
from ..media.loader import MediaLoader
from ..registry import ModelHandle, ModelRegistry, ModelUnavailable, Overloaded, UnknownModel
from ..worker.client import GenerationError, WorkerEngine, WorkerError
from .errors import APIError, bad_request
from .messages import Conversation, texts_with_params, to_conversation, videos_as_images
from .schema import ChatCompletionRequest, parse_request

log = logging.getLogger(__name__)


@dataclass
class ChatService:
    """What the chat endpoint needs from the server."""

    registry: ModelRegistry
    loader: MediaLoader
    media: MediaConfig


#: Bodies larger than this are parsed on a worker thread, so a big base64 image never stalls the loop.
_INLINE_PARSE_BYTES = 256 * 1024


async def read_json(request: web.Request) -> Any:
    body = await request.read()
    try:
        if len(body) <= _INLINE_PARSE_BYTES:
            return json.loads(body)
        return await asyncio.get_running_loop().run_in_executor(None, json.loads, body)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from None


def _find_model(registry: ModelRegistry, name: str | None) -> ModelHandle:
    try:
        return registry.get(name)
    except UnknownModel as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from None


def _check_request(handle: ModelHandle, request: ChatCompletionRequest, image_count: int, video_count: int) -> None:
    """The family's rules for this request; nothing to check while the family is not known yet."""
    family, caps = handle.family, handle.capabilities
    if family is None or caps is None:
        return
    try:
        caps.check(handle.name, image_count, video_count)
    except CapabilityError as exc:
        raise bad_request(str(exc), param="messages", code=f"capability_{exc.rule}") from None
    for text, param in texts_with_params(request):
        tag = family.reserved_tag_in(text)
        if tag is not None:
            raise bad_request(f"text may not contain the media placeholder '{tag}'", param=param, code="reserved_tag")


def _check_counts(media: MediaConfig, images: int, videos: int) -> None:
    for kind, count, limit in (("images", images, media.max_images_per_request), ("videos", videos, media.max_videos_per_request)):
        if count > limit:
            raise bad_request(f"{count} {kind} in one request, over the limit of {limit}", param="messages", code=f"too_many_{kind}")


def _check_shapes(handle: ModelHandle, caps: Capabilities, media: list[np.ndarray], params: list[str]) -> None:
    """Every image, and every video's frames, against the model's shape rules."""
    for array, param in zip(media, params):
        try:
            caps.check_image_shape(handle.name, array.shape[-2], array.shape[-3])
        except CapabilityError as exc:
            raise bad_request(str(exc), param=param, code=f"capability_{exc.rule}") from None


@dataclass
class _Prepared:
    """A request ready for its model's worker."""

    engine: WorkerEngine
    prompt: str
    images: list[np.ndarray]
    videos: list[np.ndarray]


async def _prepare(service: ChatService, handle: ModelHandle, request: ChatCompletionRequest, conversation: Conversation) -> _Prepared:
    """Load the model and the media side by side; checks that need the family run once it is known."""
    _check_counts(service.media, len(conversation.images), len(conversation.videos))
    _check_request(handle, request, len(conversation.images), len(conversation.videos))  # before any load, if possible
    engine_task = asyncio.ensure_future(handle.engine())
    try:
        if conversation.videos and handle.capabilities is None:
            await engine_task  # video sampling follows the family's defaults
            _check_request(handle, request, len(conversation.images), len(conversation.videos))
        images, videos = await asyncio.gather(service.loader.images(conversation.images), _videos(service, handle, conversation))
        engine = await engine_task
    except MediaError as exc:
        raise APIError(exc.status, exc.message, param=exc.param, code=exc.code) from None
    except ModelUnavailable as exc:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        raise APIError(503, str(exc), param="model", code="model_unavailable", headers=headers) from None
    finally:
        if not engine_task.done():
            engine_task.cancel()  # the load itself goes on for the next request
        elif not engine_task.cancelled():
            engine_task.exception()  # retrieved: reported above or superseded by a media error
    family, caps = handle.family, handle.capabilities
    assert family is not None and caps is not None  # set by a successful load
    _check_request(handle, request, len(images), len(videos))
    _check_shapes(handle, caps, images + videos, [r.param for r in conversation.images] + [r.param for r in conversation.videos])
    messages = conversation.messages
    if caps.video is VideoSupport.FRAMES:
        messages, images = videos_as_images(messages, images, videos)
        videos = []
        _check_counts(service.media, len(images), 0)  # the frames count as images
        _check_request(handle, request, len(images), 0)
    videos = [family.prepare_video(video) for video in videos]
    return _Prepared(engine, family.build_prompt(messages), images, videos)


async def _videos(service: ChatService, handle: ModelHandle, conversation: Conversation) -> list[np.ndarray]:
    if not conversation.videos:
        return []
    caps = handle.capabilities
    assert caps is not None  # known before videos are loaded
    return await service.loader.videos(conversation.videos, caps.video_fps, caps.max_frames)


def sampling_params(request: ChatCompletionRequest, defaults: GenerationDefaults) -> SamplingParams:
    """The request's parameters over the model's defaults."""
    return SamplingParams(
        max_tokens=request.token_limit or defaults.max_tokens,
        temperature=request.temperature if request.temperature is not None else defaults.temperature,
        top_p=request.top_p if request.top_p is not None else defaults.top_p,
        seed=request.seed if request.seed is not None else defaults.seed,
        ignore_eos=request.ignore_eos,
    )


def _usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


async def chat_completions(request: web.Request, service: ChatService) -> web.StreamResponse:
    chat = parse_request(await read_json(request))
    handle = _find_model(service.registry, chat.model)
    conversation = to_conversation(chat)
    try:
        handle.admit()  # from here on the model counts this request, and is not unloaded
    except Overloaded as exc:
        raise APIError(429, str(exc), code="model_overloaded", headers={"Retry-After": str(round(exc.retry_after))}) from None
    try:
        ready = await _prepare(service, handle, chat, conversation)
        outputs = ready.engine.stream(ready.prompt, ready.images, ready.videos, sampling_params(chat, handle.config.defaults))
        return await _answer(request, chat, _Reply(model=handle.name), outputs, handle.config.request_timeout_s)
    finally:
        handle.release()


async def _answer(
    request: web.Request, chat: ChatCompletionRequest, reply: _Reply, outputs: AsyncGenerator[str | Completion, None], timeout: float | None
) -> web.StreamResponse:
    """One chat.completion, or the stream of chunks; generation ends by `timeout` seconds from now."""
    if chat.stream:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return await _stream(request, reply, outputs, include_usage, timeout)
    text: list[str] = []
    completion: Completion | None = None
    try:
        async with asyncio.timeout(timeout), contextlib.aclosing(outputs) as items:
            async for item in items:
                if isinstance(item, Completion):
                    completion = item
                else:
                    text.append(item)
    except Exception as exc:
        raise _generation_error(exc, reply.model, timeout) from None
    assert completion is not None
    return web.json_response(reply.completion("".join(text), completion))


def _generation_error(exc: Exception, model: str, timeout: float | None) -> APIError:
    """What a client is told when generation did not finish."""
    if isinstance(exc, TimeoutError):
        return APIError(504, f"the request ran past its deadline of {timeout:g} s", code="deadline_exceeded")
    if isinstance(exc, WorkerError):
        return APIError(503, f"model '{model}' stopped: {exc}; retry", code="worker_failed", headers={"Retry-After": "1"})
    if not isinstance(exc, GenerationError):
        log.error("generation failed for model '%s'", model, exc_info=exc)
    return APIError(500, f"generation failed: {exc}", code="generation_failed")


@dataclass
class _Reply:
    """Identity shared by every object of one answer."""

    model: str
    id: str = ""
    created: int = 0

    def __post_init__(self) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def completion(self, text: str, completion: Completion) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": completion.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": _usage(completion),
        }

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None, usage: dict | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return body


def _event(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


async def _stream(
    request: web.Request, reply: _Reply, outputs: AsyncGenerator[str | Completion, None], include_usage: bool, timeout: float | None
) -> web.StreamResponse:
    """Server-sent events: role first, text deltas, the finish reason, usage if asked, then [DONE]."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    try:
        async with asyncio.timeout(timeout), contextlib.aclosing(outputs) as items:
            await response.write(_event(reply.chunk({"role": "assistant", "content": ""})))
            async for item in items:
                if isinstance(item, Completion):
                    await response.write(_event(reply.chunk({}, item.finish_reason)))
                    if include_usage:
                        await response.write(_event(reply.chunk(None, usage=_usage(item))))
                elif item:
                    await response.write(_event(reply.chunk({"content": item})))
        await response.write(b"data: [DONE]\n\n")
    except ConnectionResetError:
        log.info("client left during a stream of '%s'; generation stopped", reply.model)
        return response
    except Exception as exc:
        error = _generation_error(exc, reply.model, timeout)
        with contextlib.suppress(ConnectionResetError):
            await response.write(_event(error.body()))
            await response.write(b"data: [DONE]\n\n")
    return response
