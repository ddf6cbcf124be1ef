"""The typed objects `/v1/responses` sends: OpenAI's `response` object, its output items and its stream events."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from .responses import ToolCall
from .responses_schema import FunctionTool, NamedFunction, ResponsesRequest, TextConfig

ItemStatus = Literal["in_progress", "completed", "incomplete"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    """The answer's text, as one `output_text` part."""

    id: str
    type: Literal["message"] = "message"
    status: ItemStatus
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallItem(BaseModel):
    """A function the answer calls; the client runs it and sends a `function_call_output` with its `call_id`."""

    id: str
    type: Literal["function_call"] = "function_call"
    status: ItemStatus
    call_id: str
    name: str
    arguments: str


OutputItem = OutputMessage | FunctionCallItem


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens: int
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()
    total_tokens: int

    @classmethod
    def of(cls, input_tokens: int, output_tokens: int) -> ResponseUsage:
        return cls(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens)


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"] = "max_output_tokens"


class ResponseObject(BaseModel):
    """OpenAI's `response`: the answer's output and usage, with the request's settings echoed."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete"] = "in_progress"
    error: None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool
    previous_response_id: None = None
    reasoning: None = None
    store: bool
    temperature: float | None
    text: TextConfig
    tool_choice: Literal["none", "auto", "required"] | NamedFunction
    tools: list[FunctionTool]
    top_p: float | None
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None
    metadata: dict[str, str]

    @classmethod
    def started(cls, request: ResponsesRequest, model: str) -> ResponseObject:
        """The response in progress, before any output: what its stream opens with."""
        echoed = ("instructions", "max_output_tokens", "parallel_tool_calls", "store", "temperature", "text", "tool_choice", "tools", "top_p", "user")
        return cls(
            id=new_id("resp"), created_at=int(time.time()), model=model, metadata=request.metadata or {}, **{name: getattr(request, name) for name in echoed}
        )

    def finished(self, output: list[OutputItem], finish_reason: str, usage: ResponseUsage) -> ResponseObject:
        """This response with its output: `incomplete` when the text ran into `max_output_tokens` (or the model's limit)."""
        incomplete = finish_reason == "length"
        details = IncompleteDetails() if incomplete else None
        return self.model_copy(update={"status": "incomplete" if incomplete else "completed", "incomplete_details": details, "output": output, "usage": usage})


def output_items(content: str | None, calls: list[ToolCall], finish_reason: str, message_id: str) -> list[OutputItem]:
    """A message of the text (unless the answer is only calls; `incomplete` if it ran out of tokens), then a `function_call` item per call."""
    items: list[OutputItem] = []
    if content is not None and (content or not calls):
        status: ItemStatus = "incomplete" if finish_reason == "length" else "completed"
        items.append(OutputMessage(id=message_id, status=status, content=[OutputText(text=content)]))
    for call in calls:
        items.append(FunctionCallItem(id=new_id("fc"), status="completed", call_id=call.id, name=call.function.name, arguments=call.function.arguments))
    return items


class ResponseEvent(BaseModel):
    """`response.created`, `.in_progress`, `.completed` or `.incomplete`: the whole response as it stands."""

    type: Literal["response.created", "response.in_progress", "response.completed", "response.incomplete"]
    sequence_number: int = 0
    response: ResponseObject


class OutputItemEvent(BaseModel):
    type: Literal["response.output_item.added", "response.output_item.done"]
    sequence_number: int = 0
    output_index: int
    item: OutputItem


class ContentPartEvent(BaseModel):
    type: Literal["response.content_part.added", "response.content_part.done"]
    sequence_number: int = 0
    item_id: str
    output_index: int
    content_index: int = 0
    part: OutputText


class TextDeltaEvent(BaseModel):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    sequence_number: int = 0
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str
    logprobs: list[Any] = Field(default_factory=list)


class TextDoneEvent(BaseModel):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    sequence_number: int = 0
    item_id: str
    output_index: int
    content_index: int = 0
    text: str
    logprobs: list[Any] = Field(default_factory=list)


class ArgumentsDeltaEvent(BaseModel):
    type: Literal["response.function_call_arguments.delta"] = "response.function_call_arguments.delta"
    sequence_number: int = 0
    item_id: str
    output_index: int
    delta: str


class ArgumentsDoneEvent(BaseModel):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    sequence_number: int = 0
    item_id: str
    output_index: int
    #: The function's name: openai 2.x's event type requires it, 3.x's has dropped it.
    name: str
    arguments: str


class ErrorEvent(BaseModel):
    """Generation failed after the stream began: the stream's last event."""

    type: Literal["error"] = "error"
    sequence_number: int = 0
    code: str | None
    message: str
    param: str | None


StreamEvent = ResponseEvent | OutputItemEvent | ContentPartEvent | TextDeltaEvent | TextDoneEvent | ArgumentsDeltaEvent | ArgumentsDoneEvent | ErrorEvent
