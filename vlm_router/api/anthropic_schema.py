"""Anthropic's Messages API in pydantic: the request `POST /v1/messages` takes, the message it answers, its stream events and error body."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Part(BaseModel):
    #: Block fields this server has no use for (`cache_control`, `citations`) are ignored, as prompts do not read them.
    model_config = ConfigDict(strict=True, extra="ignore")


class TextBlock(_Part):
    type: Literal["text"]
    text: str


class Base64Source(_Part):
    type: Literal["base64"]
    media_type: str = Field(min_length=1)
    data: str = Field(min_length=1)


class URLSource(_Part):
    type: Literal["url"]
    url: str = Field(min_length=1)


class ImageBlock(_Part):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]

    @property
    def url(self) -> str:
        """The image as the chat request takes it: its URL, or a data URL of its bytes."""
        source = self.source
        return source.url if isinstance(source, URLSource) else f"data:{source.media_type};base64,{source.data}"


class ToolUseBlock(_Part):
    """A tool call of an earlier assistant turn."""

    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


class ToolResultBlock(_Part):
    """What a tool called in the turn before answered; `is_error` is accepted, and the prompt shows the content alone."""

    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] = ""
    is_error: bool = False


Block = Annotated[TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


class InputMessage(_Part):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(_Part):
    """A client tool; Anthropic's server tools (web search and the like), which have a `type` of their own, are refused."""

    type: Literal["custom"] | None = None
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Part):
    """`auto`, `any` (some tool must be called), `tool` (the one named) or `none`; `disable_parallel_tool_use` is ignored."""

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, min_length=1)


class MessagesRequest(BaseModel):
    """The request body; fields not listed (`metadata`, `thinking`, `service_tier`...) are accepted and ignored."""

    model_config = ConfigDict(strict=True, extra="allow")

    model: str | None = None
    max_tokens: int = Field(ge=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseContent(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


Content = Annotated[TextContent | ToolUseContent, Field(discriminator="type")]
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class MessageResponse(BaseModel):
    """The assistant's message; `stop_sequence` stays null, as the worker does not say which stop text ended the answer."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[Content]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: Usage


class MessageStart(BaseModel):
    type: Literal["message_start"] = "message_start"
    message: MessageResponse


class Ping(BaseModel):
    type: Literal["ping"] = "ping"


class ContentBlockStart(BaseModel):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: Content


class TextDelta(BaseModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class InputJSONDelta(BaseModel):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str


class ContentBlockDelta(BaseModel):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: Annotated[TextDelta | InputJSONDelta, Field(discriminator="type")]


class ContentBlockStop(BaseModel):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class StopDelta(BaseModel):
    stop_reason: StopReason
    stop_sequence: str | None = None


class MessageDelta(BaseModel):
    """The end of the message: why it stopped, and its usage (`input_tokens` too, unknown when the stream began)."""

    type: Literal["message_delta"] = "message_delta"
    delta: StopDelta
    usage: Usage


class MessageStop(BaseModel):
    type: Literal["message_stop"] = "message_stop"


ErrorType = Literal[
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error", "timeout_error", "api_error", "overloaded_error"
]


class AnthropicErrorObject(BaseModel):
    type: ErrorType
    message: str


class AnthropicError(BaseModel):
    """An error body, and a stream's `error` event."""

    type: Literal["error"] = "error"
    error: AnthropicErrorObject


StreamEvent = MessageStart | Ping | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | AnthropicError
