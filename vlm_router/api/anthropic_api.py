"""`POST /v1/messages`: Anthropic's Messages API, translated into a chat request and run through the shared generation path."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..generation import Completion, Delta
from .anthropic_schema import (
    AnthropicError,
    AnthropicErrorObject,
    Content,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    ErrorType,
    ImageBlock,
    InputJSONDelta,
    InputMessage,
    MessageDelta,
    MessageResponse,
    MessagesRequest,
    MessageStart,
    MessageStop,
    Ping,
    StopDelta,
    StopReason,
    StreamEvent,
    TextBlock,
    TextContent,
    TextDelta,
    Tool,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseContent,
    Usage,
)
from .chat import ChatService, generation, note, read_json
from .errors import APIError
from .replies import Reply, collect, sse_event, stream
from .request_log import record_of
from .responses import ChatCompletionResponse, ToolCall
from .schema import ChatCompletionRequest, parse_body, parse_request

PATH = "/v1/messages"

_TOOL_CHOICES = {"auto": "auto", "none": "none", "any": "required"}
_STOP_REASONS: dict[str, StopReason] = {"tool_calls": "tool_use", "length": "max_tokens"}


async def messages(request: web.Request, service: ChatService) -> web.StreamResponse:
    """A message, or its stream of events, for an Anthropic Messages request."""
    chat = to_chat(parse_body(MessagesRequest, await read_json(request)))
    async with generation(request, service, chat) as started:
        reply = Reply(model=started.handle.name, parse_tool_calls=started.parse_tool_calls, id_prefix="msg_")
        timeout = started.handle.config.request_timeout_s
        try:
            if chat.stream:
                return await stream(request, reply, started.outputs, False, timeout, _Events)
            message = to_message(await collect(reply, started.outputs, timeout))
            return web.Response(text=message.model_dump_json(), content_type="application/json")
        finally:
            note(record_of(request), reply)


def to_chat(asked: MessagesRequest) -> ChatCompletionRequest:
    """The chat request that asks the same: images as image_url parts, tool_use as tool_calls, tool_result as tool messages."""
    system = asked.system if isinstance(asked.system, str | None) else "\n".join(block.text for block in asked.system)
    messages = [{"role": "system", "content": system}] if system else []
    for message in asked.messages:
        messages.extend(_chat_messages(message))
    body: dict[str, Any] = {
        "model": asked.model,
        "messages": messages,
        "max_tokens": asked.max_tokens,
        "stream": asked.stream,
        "temperature": asked.temperature,
        "top_p": asked.top_p,
        "top_k": asked.top_k,
        "stop": asked.stop_sequences or None,
    }
    if asked.tools:
        body["tools"] = [{"type": "function", "function": _function(tool)} for tool in asked.tools]
    if (choice := asked.tool_choice) is not None:
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}} if choice.type == "tool" else _TOOL_CHOICES[choice.type]
    return parse_request({name: value for name, value in body.items() if value is not None})


def _function(tool: Tool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.input_schema}
    return {name: value for name, value in function.items() if value is not None}


def _chat_messages(message: InputMessage) -> list[dict[str, Any]]:
    """One Anthropic message as chat messages.

    A user turn's tool results come first, each a tool message of its text; their images (tool messages
    take text only) lead the user message that follows.
    """
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    blocks = message.content
    if message.role == "assistant":
        calls = [_call(block) for block in blocks if isinstance(block, ToolUseBlock)]
        text = "".join(_text_of([block for block in blocks if not isinstance(block, ToolUseBlock)], "assistant"))
        return [{"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})}]
    results = [block for block in blocks if isinstance(block, ToolResultBlock)]
    media: list[Any] = [part for result in results if not isinstance(result.content, str) for part in result.content if isinstance(part, ImageBlock)]
    tools = [{"role": "tool", "tool_call_id": r.tool_use_id, "content": _tool_text(r.content)} for r in results]
    rest = media + [block for block in blocks if not isinstance(block, ToolResultBlock)]
    return tools + ([{"role": "user", "content": _parts(rest)}] if rest or not results else [])


def _call(block: ToolUseBlock) -> dict[str, Any]:
    return {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": json.dumps(block.input, ensure_ascii=False)}}


def _tool_text(content: str | list[TextBlock | ImageBlock]) -> str:
    return content if isinstance(content, str) else "".join(block.text for block in content if isinstance(block, TextBlock))


def _text_of(blocks: list[Any], role: str) -> list[str]:
    """The texts of `blocks`, refusing any other block (a 400)."""
    for block in blocks:
        if not isinstance(block, TextBlock):
            raise APIError(400, f"{role} messages cannot hold {block.type} blocks", param="messages", code="invalid_value")
    return [block.text for block in blocks]


def _parts(blocks: list[Any]) -> list[dict[str, Any]]:
    """Text and image blocks as chat content parts; any other block (a tool_use, an assistant's) is refused."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": block.url}})
        else:
            parts.extend({"type": "text", "text": text} for text in _text_of([block], "user"))
    return parts


def to_message(answer: ChatCompletionResponse) -> MessageResponse:
    """The chat answer as an Anthropic message: its text block, then a tool_use block for each call."""
    choice = answer.choices[0]
    calls = choice.message.tool_calls or []
    content: list[Content] = [TextContent(text=choice.message.content or "")] if choice.message.content or not calls else []
    content += [_tool_use(call) for call in calls]
    usage = Usage(input_tokens=answer.usage.prompt_tokens, output_tokens=answer.usage.completion_tokens)
    return MessageResponse(id=answer.id, model=answer.model, content=content, stop_reason=_stop_reason(choice.finish_reason), usage=usage)


def _tool_use(call: ToolCall) -> ToolUseContent:
    """A call as a tool_use block; arguments that are not a JSON object (its `input` must be one) come as `{"arguments": text}`."""
    try:
        arguments = json.loads(call.function.arguments)
    except ValueError:
        arguments = None
    value = arguments if isinstance(arguments, dict) else {"arguments": call.function.arguments}
    return ToolUseContent(id="toolu_" + call.id.removeprefix("call_"), name=call.function.name, input=value)


def _stop_reason(finish_reason: str | None) -> StopReason:
    """Anthropic's stop reason for a chat finish reason; a stop text ends the turn as `end_turn` (see `MessageResponse`)."""
    return _STOP_REASONS.get(finish_reason or "", "end_turn")


_ERROR_TYPES: dict[int, ErrorType] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_body(error: APIError) -> AnthropicError:
    """An APIError as Anthropic's error body: the type its status has at Anthropic, and the same message."""
    kind = _ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
    return AnthropicError(error=AnthropicErrorObject(type=kind, message=error.message))


def error_response(error: APIError) -> web.Response:
    """How this route's errors leave: Anthropic's body, with the status and headers of the APIError."""
    return error.response(error_body(error))




class _Events:
    """Writes a stream's outputs as Anthropic's events; with tools offered, the text waits for its end to be read for calls."""

    def __init__(self, response: web.StreamResponse, reply: Reply, _include_usage: bool) -> None:
        self._response, self._reply = response, reply
        self._held: list[str] = []
        self._blocks = 0  #: content blocks opened
        self._text_open = False

    async def open(self) -> None:
        empty = Usage(input_tokens=0, output_tokens=0)  # input_tokens comes with message_delta, once known
        message = MessageResponse(id=self._reply.id, model=self._reply.model, content=[], stop_reason=None, usage=empty)
        await self._send(MessageStart(message=message))
        await self._send(Ping())

    async def write(self, item: Delta | Completion) -> None:
        reply = self._reply
        reply.saw(item)
        if isinstance(item, Delta):
            if reply.parse_tool_calls is not None:
                self._held.append(item.text)
            elif item.text:
                await self._text(item.text)
            return
        content, calls = reply.read_calls("".join(self._held)) if reply.parse_tool_calls is not None else (None, [])
        if content or not (calls or self._blocks):
            await self._text(content or "")
        if self._text_open:
            await self._send(ContentBlockStop(index=self._blocks - 1))
        for call in calls:
            block = _tool_use(call)
            await self._send(ContentBlockStart(index=self._blocks, content_block=block.model_copy(update={"input": {}})))
            await self._send(ContentBlockDelta(index=self._blocks, delta=InputJSONDelta(partial_json=json.dumps(block.input, ensure_ascii=False))))
            await self._send(ContentBlockStop(index=self._blocks))
            self._blocks += 1
        stop = StopDelta(stop_reason=_stop_reason("tool_calls" if calls else item.finish_reasons[0]))
        await self._send(MessageDelta(delta=stop, usage=Usage(input_tokens=item.prompt_tokens, output_tokens=item.completion_tokens)))
        await self._send(MessageStop())

    async def close(self) -> None:
        """Nothing: `message_stop` came with the outputs' end."""

    def failure(self, error: APIError) -> bytes:
        return sse_event(error_body(error), "error")

    async def _text(self, text: str) -> None:
        """Text of the message's text block, opening the block first."""
        if not self._text_open:
            await self._send(ContentBlockStart(index=self._blocks, content_block=TextContent(text="")))
            self._text_open, self._blocks = True, self._blocks + 1
        if text:
            await self._send(ContentBlockDelta(index=self._blocks - 1, delta=TextDelta(text=text)))

    async def _send(self, event: StreamEvent) -> None:
        await self._response.write(sse_event(event, event.type))
