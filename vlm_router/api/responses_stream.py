"""A `/v1/responses` stream: OpenAI's Responses events, each `event: <type>` and `data: <json>` with its sequence number.

Text streams as it comes; with tools offered, it waits for the end, to be read for function calls, as chat's does.
"""

from __future__ import annotations

from aiohttp import web

from ..generation import Completion, Delta
from .errors import APIError
from .replies import Reply, sse_event
from .responses_objects import (
    ArgumentsDeltaEvent,
    ArgumentsDoneEvent,
    ContentPartEvent,
    ErrorEvent,
    FunctionCallItem,
    OutputItem,
    OutputItemEvent,
    OutputMessage,
    OutputText,
    ResponseEvent,
    ResponseObject,
    ResponseUsage,
    StreamEvent,
    TextDeltaEvent,
    TextDoneEvent,
    new_id,
    output_items,
)


class ResponseEvents:
    """Writes one answer's events (a `ChunkWriter` of `replies.stream`) for the response `started`."""

    def __init__(self, response: web.StreamResponse, reply: Reply, started: ResponseObject) -> None:
        self._response, self._reply, self._started = response, reply, started
        self._sequence = 0
        self._texts: list[str] = []
        self._message_id = new_id("msg")
        #: With tools offered, the text is held to the end and read for calls.
        self._live = reply.parse_tool_calls is None

    def _bytes(self, event: StreamEvent) -> bytes:
        event.sequence_number = self._sequence
        self._sequence += 1
        return sse_event(event, event.type)

    async def _send(self, *events: StreamEvent) -> None:
        await self._response.write(b"".join(self._bytes(event) for event in events))

    async def open(self) -> None:
        await self._send(ResponseEvent(type="response.created", response=self._started), ResponseEvent(type="response.in_progress", response=self._started))
        if self._live:
            await self._open_message(self._message_id, 0)

    async def write(self, item: Delta | Completion) -> None:
        self._reply.saw(item)
        if isinstance(item, Completion):
            await self._finish(item)
            return
        self._texts.append(item.text)
        if self._live and item.text:
            await self._send(TextDeltaEvent(item_id=self._message_id, output_index=0, delta=item.text))

    async def close(self) -> None:
        """Nothing follows the final `response.completed` (or `response.incomplete`)."""

    def failure(self, error: APIError) -> bytes:
        return self._bytes(ErrorEvent(code=error.code, message=error.message, param=error.param))

    async def _open_message(self, item_id: str, index: int) -> None:
        added = OutputMessage(id=item_id, status="in_progress", content=[])
        await self._send(
            OutputItemEvent(type="response.output_item.added", output_index=index, item=added),
            ContentPartEvent(type="response.content_part.added", item_id=item_id, output_index=index, part=OutputText(text="")),
        )

    async def _finish(self, completion: Completion) -> None:
        text = "".join(self._texts)
        content, calls = self._reply.read_calls(text) if not self._live else (text, [])
        reason = "tool_calls" if calls else completion.finish_reasons[0]
        items = output_items(content, calls, reason, self._message_id)
        for index, item in enumerate(items):
            await self._item(item, index)
        done = self._started.finished(items, reason, ResponseUsage.of(completion.prompt_tokens, completion.completion_tokens))
        await self._send(ResponseEvent(type="response.incomplete" if done.status == "incomplete" else "response.completed", response=done))

    async def _item(self, item: OutputItem, index: int) -> None:
        """The item's events, from its `added` (unless its text streamed live) to its `done`."""
        if isinstance(item, FunctionCallItem):
            added = item.model_copy(update={"status": "in_progress", "arguments": ""})
            await self._send(
                OutputItemEvent(type="response.output_item.added", output_index=index, item=added),
                ArgumentsDeltaEvent(item_id=item.id, output_index=index, delta=item.arguments),
                ArgumentsDoneEvent(item_id=item.id, output_index=index, name=item.name, arguments=item.arguments),
                OutputItemEvent(type="response.output_item.done", output_index=index, item=item),
            )
            return
        part = item.content[0]
        if not self._live:
            await self._open_message(item.id, index)
            if part.text:
                await self._send(TextDeltaEvent(item_id=item.id, output_index=index, delta=part.text))
        await self._send(
            TextDoneEvent(item_id=item.id, output_index=index, text=part.text),
            ContentPartEvent(type="response.content_part.done", item_id=item.id, output_index=index, part=part),
            OutputItemEvent(type="response.output_item.done", output_index=index, item=item),
        )
