"""What a client receives: one chat.completion, or server-sent chunks, and errors once generation has begun."""

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

from aiohttp import web

from ..generation import Completion
from ..worker.client import GenerationError, WorkerError
from .errors import APIError

log = logging.getLogger(__name__)


def _usage(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


async def complete(reply: Reply, outputs: AsyncGenerator[str | Completion, None], timeout: float | None) -> web.Response:
    """The whole answer as one chat.completion, once generation has finished."""
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
        raise generation_error(exc, reply.model, timeout) from None
    assert completion is not None
    return web.json_response(reply.completion("".join(text), completion))


def generation_error(exc: Exception, model: str, timeout: float | None) -> APIError:
    """What a client is told when generation did not finish."""
    if isinstance(exc, TimeoutError):
        return APIError(504, f"the request ran past its deadline of {timeout:g} s", code="deadline_exceeded")
    if isinstance(exc, WorkerError):
        return APIError(503, f"model '{model}' stopped: {exc}; retry", code="worker_failed", headers={"Retry-After": "1"})
    if not isinstance(exc, GenerationError):
        log.error("generation failed for model '%s'", model, exc_info=exc)
    return APIError(500, f"generation failed: {exc}", code="generation_failed")


@dataclass
class Reply:
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


async def stream(
    request: web.Request, reply: Reply, outputs: AsyncGenerator[str | Completion, None], include_usage: bool, timeout: float | None
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
        error = generation_error(exc, reply.model, timeout)
        with contextlib.suppress(ConnectionResetError):
            await response.write(_event(error.body()))
            await response.write(b"data: [DONE]\n\n")
    return response
