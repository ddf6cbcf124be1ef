"""What a client receives: one chat.completion, or server-sent chunks, and errors once generation has begun."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import InitVar, dataclass
from typing import Protocol

from aiohttp import web
from pydantic import BaseModel

from .. import conversation
from ..generation import Completion, Delta
from ..worker.client import GenerationError, RequestRejected, WorkerError
from .errors import APIError
from .responses import (
    ChatCompletionLogProbs,
    ChatCompletionLogProbsContent,
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatCompletionResponseStreamChoice,
    ChatCompletionStreamResponse,
    ChatMessage,
    DeltaMessage,
    DeltaToolCall,
    FunctionCall,
    ToolCall,
    UsageInfo,
)

log = logging.getLogger(__name__)


def _usage(completion: Completion) -> UsageInfo:
    prompt, generated = completion.prompt_tokens, completion.completion_tokens
    return UsageInfo(prompt_tokens=prompt, completion_tokens=generated, total_tokens=prompt + generated)


async def complete(reply: Reply, outputs: AsyncGenerator[Delta | Completion, None], timeout: float | None) -> web.Response:
    """The whole answer as one chat.completion, once generation has finished."""
    answer = await collect(reply, outputs, timeout)
    return web.Response(text=answer.model_dump_json(), content_type="application/json")


async def collect(reply: Reply, outputs: AsyncGenerator[Delta | Completion, None], timeout: float | None) -> ChatCompletionResponse:
    """The whole answer, once generation has finished: what every API's non-streaming answer is made from."""
    texts: dict[int, list[str]] = defaultdict(list)
    logprobs: dict[int, list[tuple[str, float]]] = defaultdict(list)
    completion: Completion | None = None
    try:
        async with asyncio.timeout(timeout), contextlib.aclosing(outputs) as items:
            async for item in items:
                reply.saw(item)
                if isinstance(item, Completion):
                    completion = item
                else:
                    texts[item.index].append(item.text)
                    logprobs[item.index].extend(item.logprobs)
    except Exception as exc:
        raise generation_error(exc, reply.model, timeout) from None
    assert completion is not None
    choices = []
    for index, reason in enumerate(completion.finish_reasons):
        content, calls = reply.read_calls("".join(texts[index]))
        message = ChatMessage(content=content, tool_calls=calls or None)
        finish_reason = "tool_calls" if calls else reason
        choices.append(ChatCompletionResponseChoice(index=index, message=message, finish_reason=finish_reason, logprobs=reply.logprobs_of(logprobs[index])))
    return ChatCompletionResponse(id=reply.id, created=reply.created, model=reply.model, choices=choices, usage=_usage(completion))


#: The code of a request the worker passed on and the pipeline refused: its message is openvino-genai's own.
PIPELINE_REFUSED = "invalid_request"


def generation_error(exc: Exception, model: str, timeout: float | None) -> APIError:
    """What a client is told when generation did not finish.

    openvino-genai's messages (source paths, failed assertions) go to the log, never to the client.
    """
    if isinstance(exc, TimeoutError):
        return APIError(504, f"the request ran past its deadline of {timeout:g} s", code="deadline_exceeded")
    if isinstance(exc, WorkerError):
        return APIError(503, f"model '{model}' stopped: {exc}; retry", code="worker_failed", headers={"Retry-After": "1"})
    if isinstance(exc, RequestRejected) and exc.code != PIPELINE_REFUSED:
        return APIError(400, str(exc), param=exc.param, code=exc.code)  # the worker's own words
    if isinstance(exc, RequestRejected):
        log.warning("model '%s' refused a request: %s", model, exc)
        message = f"model '{model}' cannot take this request: its pipeline refused the input; the server log has the reason"
        return APIError(400, message, code=PIPELINE_REFUSED)
    log.error("generation failed for model '%s': %s", model, exc, exc_info=None if isinstance(exc, GenerationError) else exc)
    return APIError(500, "generation failed; the server log has the reason", code="generation_failed")


@dataclass
class Reply:
    """Identity shared by every object of one answer, and what the request asked of its shape."""

    model: str
    n: int = 1
    logprobs: bool = False
    #: Reads function calls from a choice's text, when the request offered tools.
    parse_tool_calls: Callable[[str], tuple[str, list[conversation.ToolCall]]] | None = None
    #: How the answer's id starts (`chatcmpl-`, `cmpl-`, `msg_`): each API's own.
    id_prefix: InitVar[str] = "chatcmpl-"
    id: str = ""
    created: int = 0
    #: When generation's first output arrived (`time.monotonic()`), and how it ended: for the request log.
    first_output_at: float | None = None
    completion: Completion | None = None

    def saw(self, item: Delta | Completion) -> None:
        """Note an output's timing and, at the end, its usage."""
        if self.first_output_at is None:
            self.first_output_at = time.monotonic()
        if isinstance(item, Completion):
            self.completion = item

    def __post_init__(self, id_prefix: str) -> None:
        self.id = f"{id_prefix}{uuid.uuid4().hex}"
        self.created = int(time.time())

    def read_calls(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """A choice's content and OpenAI `tool_calls`; content is None when only calls were made."""
        if self.parse_tool_calls is None:
            return text, []
        content, calls = self.parse_tool_calls(text)
        tool_calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCall(name=c.name, arguments=c.arguments)) for c in calls]
        return (content or None) if calls else content, tool_calls

    def logprobs_of(self, tokens: Sequence[tuple[str, float]]) -> ChatCompletionLogProbs | None:
        """OpenAI's `logprobs` of a choice: each token's log-probability (no alternatives: `top_logprobs` is empty)."""
        if not self.logprobs:
            return None
        return ChatCompletionLogProbs(content=[ChatCompletionLogProbsContent(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in tokens])

    def chunk(
        self, index: int, delta: DeltaMessage, finish_reason: str | None = None, logprobs: ChatCompletionLogProbs | None = None
    ) -> ChatCompletionStreamResponse:
        """A chunk of one choice; `finish_reason` is checked to be a `FinishReason`."""
        choice = ChatCompletionResponseStreamChoice(index=index, delta=delta, finish_reason=finish_reason, logprobs=logprobs)
        return ChatCompletionStreamResponse(id=self.id, created=self.created, model=self.model, choices=[choice])

    def usage_chunk(self, completion: Completion) -> ChatCompletionStreamResponse:
        """The stream's last chunk when usage was asked for: no choices, and the whole answer's usage."""
        return ChatCompletionStreamResponse(id=self.id, created=self.created, model=self.model, choices=[], usage=_usage(completion))


def sse_event(body: BaseModel, event: str | None = None) -> bytes:
    """A server-sent event of `body`'s JSON (aliases as field names), named `event` when given: what `model_dump_json`
    writes, as bytes without its round trip through str."""
    head = b"data: " if event is None else f"event: {event}\ndata: ".encode()
    return head + body.__pydantic_serializer__.to_json(body, by_alias=True) + b"\n\n"


class ChunkWriter(Protocol):
    """Writes one API's chunks of a stream: its opening ones, each output's, its end; and an error once it has begun."""

    async def open(self) -> None: ...

    async def write(self, item: Delta | Completion) -> None: ...

    async def close(self) -> None: ...

    def failure(self, error: APIError) -> bytes: ...


async def stream(
    request: web.Request,
    reply: Reply,
    outputs: AsyncGenerator[Delta | Completion, None],
    include_usage: bool,
    timeout: float | None,
    writer: Callable[[web.StreamResponse, Reply, bool], ChunkWriter] | None = None,
) -> web.StreamResponse:
    """Server-sent events: the `writer`'s chunks (chat.completion chunks, then [DONE], by default).

    The stream opens with the first output, so a request the worker refuses (longer than the context,
    say) is a plain HTTP error; one that fails later ends with an error event.
    """
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    chunks = (writer or ChatChunks)(response, reply, include_usage)
    try:
        async with asyncio.timeout(timeout), contextlib.aclosing(outputs) as items:
            try:
                first = await anext(items)
            except Exception as exc:
                raise generation_error(exc, reply.model, timeout) from None
            await response.prepare(request)
            await chunks.open()
            await chunks.write(first)
            async for item in items:
                await chunks.write(item)
        await chunks.close()
    except APIError:
        raise
    except ConnectionResetError:
        log.info("client left during a stream of '%s'; generation stopped", reply.model)
    except Exception as exc:
        error = generation_error(exc, reply.model, timeout)
        if not response.prepared:
            raise error from None
        with contextlib.suppress(ConnectionResetError):
            await response.write(chunks.failure(error))
    return response


class ChatChunks:
    """Writes a stream's outputs as chunks; with tools offered, each choice's text waits for its end to be read for calls."""

    def __init__(self, response: web.StreamResponse, reply: Reply, include_usage: bool) -> None:
        self._response, self._reply, self._include_usage = response, reply, include_usage
        self._held: dict[int, list[str]] = defaultdict(list)

    async def open(self) -> None:
        """Each choice's role, in index order."""
        for index in range(self._reply.n):
            await self._send(self._reply.chunk(index, DeltaMessage(role="assistant", content="")))

    async def write(self, item: Delta | Completion) -> None:
        reply = self._reply
        reply.saw(item)
        if isinstance(item, Delta):
            if reply.parse_tool_calls is not None:
                self._held[item.index].append(item.text)
                item = Delta(item.index, "", item.logprobs)
            if item.text or item.logprobs:
                await self._send(reply.chunk(item.index, DeltaMessage(content=item.text), logprobs=reply.logprobs_of(item.logprobs)))
            return
        for index, reason in enumerate(item.finish_reasons):
            if reply.parse_tool_calls is not None:
                content, calls = reply.read_calls("".join(self._held[index]))
                if content:
                    await self._send(reply.chunk(index, DeltaMessage(content=content)))
                if calls:
                    delta_calls = [DeltaToolCall(index=k, id=call.id, function=call.function) for k, call in enumerate(calls)]
                    await self._send(reply.chunk(index, DeltaMessage(tool_calls=delta_calls)))
                    reason = "tool_calls"
            await self._send(reply.chunk(index, DeltaMessage(), reason))
        if self._include_usage:
            await self._send(reply.usage_chunk(item))

    async def close(self) -> None:
        await self._response.write(b"data: [DONE]\n\n")

    def failure(self, error: APIError) -> bytes:
        """The error's body as a chunk, then [DONE]."""
        return sse_event(error.body()) + b"data: [DONE]\n\n"

    async def _send(self, chunk: ChatCompletionStreamResponse) -> None:
        await self._response.write(sse_event(chunk))
