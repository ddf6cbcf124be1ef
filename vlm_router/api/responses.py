"""The typed objects `/v1/chat/completions` sends: OpenAI's chat.completion, its stream chunks, and the error body.

Fields come out in their declared order; an `Omittable` field is left out of the JSON, not sent as null,
while it has no value, as OpenAI leaves out `tool_calls` and a chunk's `usage`.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

#: A field that is absent from the JSON while it is None (the test is a C call: it runs for each chunk).
Omittable = Annotated[T | None, Field(exclude_if=functools.partial(operator.is_, None))]

#: Why a choice ended: a stop token or text, `max_tokens` or the context, or function calls in its text.
FinishReason = Literal["stop", "length", "tool_calls"]


class UsageInfo(BaseModel):
    """Tokens one request cost, over all its choices."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionLogProb(BaseModel):
    """A token, its log-probability and its UTF-8 bytes."""

    #: A log-probability of -inf is sent as `-Infinity` (as Python's json writes it), not as null.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    token: str
    logprob: float
    bytes: list[int]


class ChatCompletionLogProbsContent(ChatCompletionLogProb):
    """A generated token; no alternatives are reported, so `top_logprobs` is empty."""

    top_logprobs: list[ChatCompletionLogProb] = Field(default_factory=list)


class ChatCompletionLogProbs(BaseModel):
    """A choice's (or a chunk's) tokens with their log-probabilities; the server refuses nothing, so `refusal` is null."""

    content: list[ChatCompletionLogProbsContent]
    refusal: None = None


class FunctionCall(BaseModel):
    """The function an assistant called, and its arguments as JSON text."""

    name: str
    arguments: str


class ToolCall(BaseModel):
    """One function call of an assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class _CallIndex(BaseModel):
    index: int


class DeltaToolCall(ToolCall, _CallIndex):
    """A whole call in a stream, led by its `index` among the choice's calls (pydantic puts the last base's fields first)."""


class ChatMessage(BaseModel):
    """The assistant's answer of a choice; `content` is null when it only called functions."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: Omittable[list[ToolCall]] = None


class DeltaMessage(BaseModel):
    """What a chunk adds to a choice's message: only the fields it carries."""

    role: Omittable[Literal["assistant"]] = None
    content: Omittable[str] = None
    tool_calls: Omittable[list[DeltaToolCall]] = None


class ChatCompletionResponseChoice(BaseModel):
    """One choice of a whole answer."""

    index: int
    message: ChatMessage
    finish_reason: FinishReason
    logprobs: ChatCompletionLogProbs | None


class ChatCompletionResponseStreamChoice(BaseModel):
    """One choice's part of a chunk; `finish_reason` is set in its last."""

    index: int
    delta: DeltaMessage
    finish_reason: FinishReason | None = None
    logprobs: ChatCompletionLogProbs | None = None


class _ChatCompletionObject(BaseModel):
    """What a completion and each of its chunks open with: the answer's identity."""

    id: str
    object: str
    created: int
    model: str


class ChatCompletionResponse(_ChatCompletionObject):
    """The whole answer (`stream: false`)."""

    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatCompletionResponseChoice]
    usage: UsageInfo


class ChatCompletionStreamResponse(_ChatCompletionObject):
    """One server-sent chunk; the usage chunk has no choices."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatCompletionResponseStreamChoice]
    usage: Omittable[UsageInfo] = None


class ErrorInfo(BaseModel):
    """What went wrong; `param` names the request field at fault, `code` the kind of failure."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body, as an HTTP answer or a stream's last event."""

    error: ErrorInfo
