"""`POST /v1/responses`: OpenAI's Responses API, stateless, as a chat request on the one generation path.

Nothing is stored: each request carries its whole conversation in `input`, as with `store: false`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .chat import ChatService, generation, note, read_json
from .errors import APIError
from .replies import Reply, collect, stream
from .request_log import record_of
from .responses import ChatCompletionResponse
from .responses_objects import ResponseObject, ResponseUsage, new_id, output_items
from .responses_schema import (
    FunctionCall,
    InputContent,
    InputImage,
    JSONObjectFormat,
    JSONSchemaTextFormat,
    Message,
    NamedFunction,
    ResponsesRequest,
    parse_responses_request,
)
from .responses_stream import ResponseEvents
from .schema import parse_request

PATH = "/v1/responses"


@dataclass(frozen=True)
class _Source:
    """Where a chat message comes from in the Responses request: its item, and the item's content."""

    item: str
    content: str


def _parts(content: str | list[InputContent]) -> str | list[dict[str, Any]]:
    """Responses content as chat content: text parts, and images by URL (`detail: original` is `high`)."""
    if isinstance(content, str):
        return content
    return [
        {"type": "image_url", "image_url": {"url": part.image_url, "detail": "high" if part.detail == "original" else part.detail}}
        if isinstance(part, InputImage)
        else {"type": "text", "text": part.text}
        for part in content
    ]


def _messages(request: ResponsesRequest) -> tuple[list[dict[str, Any]], list[_Source]]:
    """The chat messages, each with its `_Source`: `instructions` as a system message, then the input;
    a `function_call` item joins the assistant message before it, as a chat assistant turn holds its calls."""
    messages: list[dict[str, Any]] = []
    sources: list[_Source] = []

    def add(message: dict[str, Any], item: str, content: str) -> None:
        messages.append(message)
        sources.append(_Source(item, content))

    if request.instructions is not None:
        add({"role": "system", "content": request.instructions}, "instructions", "instructions")
    if isinstance(request.input, str):
        add({"role": "user", "content": request.input}, "input", "input")
        return messages, sources
    for i, item in enumerate(request.input):
        here = f"input[{i}]"
        if isinstance(item, Message):
            add({"role": item.role, "content": _parts(item.content)}, here, f"{here}.content")
        elif isinstance(item, FunctionCall):
            call = {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                add({"role": "assistant", "content": None, "tool_calls": [call]}, here, here)
        else:
            add({"role": "tool", "tool_call_id": item.call_id, "content": _parts(item.output)}, here, f"{here}.output")
    return messages, sources


def to_chat(request: ResponsesRequest) -> tuple[dict[str, Any], list[_Source]]:
    """The chat request's body, and each of its messages' `_Source`."""
    messages, sources = _messages(request)
    form = request.text.format
    response_format: dict[str, Any] | None = None
    if isinstance(form, JSONObjectFormat):
        response_format = {"type": "json_object"}
    elif isinstance(form, JSONSchemaTextFormat):
        response_format = {"type": "json_schema", "json_schema": form.model_dump(by_alias=True, exclude={"type"}, exclude_none=True)}
    choice = request.tool_choice
    body = {
        "model": request.model,
        "messages": messages,
        "stream": request.stream,
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "response_format": response_format,
        "tools": [{"type": "function", "function": tool.model_dump(exclude={"type"}, exclude_none=True)} for tool in request.tools] or None,
        "tool_choice": {"type": "function", "function": {"name": choice.name}} if isinstance(choice, NamedFunction) else choice,
    }
    return {name: value for name, value in body.items() if value is not None}, sources


def rename(param: str | None, sources: list[_Source]) -> str | None:
    """A chat request's `param` (`messages.2.content.1.image_url.url`) as the Responses field it came from
    (`input[1].content[1].image_url`)."""
    if param is None or not param.startswith("messages"):
        return param
    parts = param.split(".")
    if len(parts) == 1:
        return "input"
    source = sources[int(parts[1])]
    if parts[2:3] != ["content"]:
        return source.item
    renamed = source.content + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in parts[3:])
    return renamed.removesuffix(".url") if renamed.endswith(".image_url.url") else renamed


def _finished(started: ResponseObject, answer: ChatCompletionResponse) -> ResponseObject:
    choice = answer.choices[0]
    items = output_items(choice.message.content, choice.message.tool_calls or [], choice.finish_reason, new_id("msg"))
    return started.finished(items, choice.finish_reason, ResponseUsage.of(answer.usage.prompt_tokens, answer.usage.completion_tokens))


async def create_response(request: web.Request, service: ChatService) -> web.StreamResponse:
    """One `response` object, or its stream of events when `stream` is true."""
    asked = parse_responses_request(await read_json(request))
    body, sources = to_chat(asked)
    try:
        async with generation(request, service, parse_request(body)) as started:
            reply = Reply(model=started.handle.name, parse_tool_calls=started.parse_tool_calls)
            begun = ResponseObject.started(asked, started.handle.name)
            timeout = started.handle.config.request_timeout_s
            try:
                if asked.stream:
                    return await stream(request, reply, started.outputs, False, timeout, lambda response, reply, _: ResponseEvents(response, reply, begun))
                answer = _finished(begun, await collect(reply, started.outputs, timeout))
                return web.Response(text=answer.model_dump_json(by_alias=True), content_type="application/json")
            finally:
                note(record_of(request), reply)
    except APIError as exc:
        renamed = rename(exc.param, sources)
        if exc.param and renamed != exc.param:
            exc.message, exc.param = exc.message.replace(exc.param, renamed or ""), renamed
        raise
