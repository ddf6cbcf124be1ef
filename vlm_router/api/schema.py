"""The OpenAI chat-completions request, validated with pydantic; errors name the `param`."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..forced_calls import call_schema
from .errors import APIError
from .json_schema import check_schema

#: Error types of the checks across fields, each naming its `field` in the error's context; what the
#: message says of a field that is missing or misplaced.
_MISSING, _MISPLACED, _UNSUPPORTED = "missing_field", "misplaced_field", "unsupported_field"
_PLACEMENT = {_MISSING: "is required", _MISPLACED: "is only for assistant messages"}
M = TypeVar("M", bound=BaseModel)


def _unsupported(field: str) -> PydanticCustomError:
    return PydanticCustomError(_UNSUPPORTED, "'{field}' is not supported by this server", {"field": field})


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class TextPart(_Request):
    type: Literal["text"]
    text: str


def _url_object(value: Any) -> Any:
    """Some clients send `"image_url": "<url>"` instead of an object."""
    return {"url": value} if isinstance(value, str) else value


class ImageURL(_Request):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


_PIXELS = re.compile(r"^\s*(\d{1,6})\s*(?:\*\s*(\d{1,6})\s*)?$")
#: Smallest and largest `max_pixels` or `min_pixels` accepted at all; the model's budget and
#: `media.max_video_pixels` narrow the top.
MIN_PIXELS, MAX_PIXELS = 28 * 28, 4096 * 4096


def parse_pixels(value: object, name: str = "max_pixels") -> int | None:
    """A pixel count as an integer: an integer, or a string `W*H` of digits (never evaluated)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} must be an integer or a string 'W*H'")
    if isinstance(value, str):
        match = _PIXELS.match(value)
        if match is None:
            raise ValueError(f"{name} must be an integer or a string 'W*H' of digits, such as '360*420'")
        value = int(match[1]) * int(match[2] or 1)
    if not MIN_PIXELS <= value <= MAX_PIXELS:
        raise ValueError(f"{name} must be between {MIN_PIXELS} and {MAX_PIXELS}")
    return value


class ImageURLPart(_Request):
    """An image; `max_pixels` and `min_pixels` narrow the model's image budget for it (as in Qwen's processors)."""

    type: Literal["image_url"]
    image_url: Annotated[ImageURL, BeforeValidator(_url_object)]
    max_pixels: int | None = None
    min_pixels: int | None = None

    @field_validator("max_pixels", "min_pixels", mode="before")
    @classmethod
    def _pixels(cls, value: Any, info: ValidationInfo) -> int | None:
        return parse_pixels(value, info.field_name or "max_pixels")


class _VideoOptions(_Request):
    """Sampling options the original service accepted beside a video."""

    max_pixels: int | None = None
    fps: float | None = Field(None, gt=0, le=60)
    max_frames: int | None = Field(None, ge=1)

    @field_validator("max_pixels", mode="before")
    @classmethod
    def _pixels(cls, value: Any) -> int | None:
        return parse_pixels(value)


class VideoFramesPart(_VideoOptions):
    """A video as the list of its frames, already sampled by the client."""

    type: Literal["video"]
    video: list[str] = Field(min_length=1)


class VideoURL(_Request):
    url: str = Field(min_length=1)


class VideoURLPart(_VideoOptions):
    """A whole video, sampled by the server at `fps`."""

    type: Literal["video_url"]
    video_url: Annotated[VideoURL, BeforeValidator(_url_object)]


class RefusalPart(_Request):
    """An earlier assistant turn's refusal, as OpenAI's API returns it in history: the prompt reads it as text."""

    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | RefusalPart | ImageURLPart | VideoFramesPart | VideoURLPart, Field(discriminator="type")]


class CalledFunction(_Request):
    name: str = Field(min_length=1)
    arguments: str


class ToolCall(_Request):
    """A function call of an earlier assistant turn; `arguments` is JSON text, as OpenAI sends it."""

    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(_Request):
    model_config = ConfigDict(strict=True, extra="ignore")  # e.g. `name`, which prompts do not use

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_or_calls(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":  # an assistant's null content is empty text
            raise PydanticCustomError(_MISSING, "{field} " + _PLACEMENT[_MISSING], {"field": "content"})
        if self.tool_calls and self.role != "assistant":
            raise PydanticCustomError(_MISPLACED, "{field} " + _PLACEMENT[_MISPLACED], {"field": "tool_calls"})
        return self


class FunctionDefinition(_Request):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Request):
    type: Literal["function"]
    function: FunctionDefinition


class ChosenFunction(_Request):
    name: str = Field(min_length=1)


class NamedToolChoice(_Request):
    """A `tool_choice` naming the function the answer must call."""

    type: Literal["function"]
    function: ChosenFunction


class StreamOptions(_Request):
    include_usage: bool = False
    include_obfuscation: bool = Field(False, description="Accepted; no obfuscation field is sent.")


class JSONSchema(_Request):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _compilable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        check_schema(schema)
        return schema


class TextFormat(_Request):
    type: Literal["text"]


class JSONObjectFormat(_Request):
    type: Literal["json_object"]


class JSONSchemaFormat(_Request):
    type: Literal["json_schema"]
    json_schema: JSONSchema


ResponseFormat = Annotated[TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")]


#: Fields with a meaning this server does not implement yet; any value but the default is refused.
UNSUPPORTED = ("functions", "function_call", "logit_bias", "audio", "prediction")
_NEUTRAL: tuple[object, ...] = (None, False, 0, [], {}, "none", "auto", {"type": "text"})


class ChatCompletionRequest(_Request):
    model_config = ConfigDict(strict=True, extra="allow")  # OpenAI clients send fields such as `user`

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    n: int | None = Field(None, ge=1, le=128, description="Choices; a model's `max_n` may allow fewer.")
    stop: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    top_k: int | None = Field(None, ge=-1, description="Extension, as in vLLM: -1 or 0 turns it off.")
    min_p: float | None = Field(None, ge=0, le=1, description="Extension, as in vLLM.")
    repetition_penalty: float | None = Field(None, gt=0, le=2, description="Extension, as in vLLM: 1 is none.")
    ignore_eos: bool = Field(False, description="Extension (as in vLLM): generate max_tokens tokens whatever comes.")
    modalities: list[str] | None = Field(None, description="Only `text`: the models write text.")

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> ChatCompletionRequest:
        for name, value in (self.model_extra or {}).items():
            if name in UNSUPPORTED and value not in _NEUTRAL:
                raise _unsupported(name)
        if self.top_logprobs:
            raise _unsupported("top_logprobs")
        if set(self.modalities or ()) - {"text"}:
            raise _unsupported("modalities")
        return self

    @field_validator("tool_choice")
    @classmethod
    def _named_tool_offered(cls, choice: str | NamedToolChoice | None, info: ValidationInfo) -> str | NamedToolChoice | None:
        tools = info.data.get("tools")
        if isinstance(choice, NamedToolChoice) and tools and choice.function.name not in (tool.function.name for tool in tools):
            raise PydanticCustomError("unknown_tool", "no function '{name}' in tools", {"name": choice.function.name})
        return choice

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk (`stream_options.include_usage`)."""
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def offered_tools(self) -> list[dict[str, Any]]:
        """The tools the model may call, as the chat template reads them; none when `tool_choice` is 'none'."""
        if not self.tools or self.tool_choice == "none":
            return []
        return [tool.model_dump(exclude_none=True) for tool in self.tools]

    @property
    def forced_tools(self) -> list[dict[str, Any]]:
        """The tools a forced call is made to (all for 'required', the named one); none when the model decides, or without tools."""
        if not self.tools or self.tool_choice in (None, "none", "auto"):
            return []
        named = self.tool_choice.function.name if isinstance(self.tool_choice, NamedToolChoice) else None
        return [tool.model_dump(exclude_none=True) for tool in self.tools if named in (None, tool.function.name)]

    @property
    def stop_texts(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def json_schema(self) -> str | None:
        """The JSON schema the answer must match, as JSON text: a forced call's, else a JSON object for `json_object`."""
        if forced := self.forced_tools:
            return json.dumps(call_schema(forced))
        if isinstance(self.response_format, JSONObjectFormat):
            return json.dumps({"type": "object"})
        if isinstance(self.response_format, JSONSchemaFormat):
            return json.dumps(self.response_format.json_schema.schema_ or {"type": "object"})
        return None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def parse_request(payload: Any) -> ChatCompletionRequest:
    """The chat request, or a 400 naming the most specific field that is wrong."""
    return parse_body(ChatCompletionRequest, payload)


def parse_body(model: type[M], payload: Any) -> M:
    """A request body as `model`, or a 400 naming the most specific field that is wrong."""
    if not isinstance(payload, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise _to_api_error(exc) from None


def _to_api_error(exc: ValidationError) -> APIError:
    error = max(exc.errors(), key=lambda e: len(e["loc"]))
    message, field = str(error["msg"]), str((error.get("ctx") or {}).get("field", ""))
    if error["type"] in _PLACEMENT:
        place = ".".join(str(p) for p in error["loc"][:2]) + "." + field
        return APIError(400, f"{place} {_PLACEMENT[error['type']]}", param=place, code="invalid_value")
    if error["type"] == _UNSUPPORTED:
        return APIError(400, message + _UNSUPPORTED_WHY.get(field, ""), param=field, code="unsupported_parameter")
    param = _param(error["loc"])
    if error["type"] == "extra_forbidden":
        return APIError(400, f"unknown field '{param}'", param=param, code="invalid_request")
    return APIError(400, f"{param}: {message}" if param else message, param=param, code="invalid_value")


_UNSUPPORTED_WHY = {
    "top_logprobs": ": openvino-genai reports the chosen token's log-probability only (use logprobs)",
    "modalities": ": only ['text']; the models write text only",
}
_PART_TYPES = ("text", "refusal", "image_url", "video", "video_url")
_FORMAT_TYPES = ("text", "json_object", "json_schema")
#: Union members pydantic names in locations: scalar types, and the models of unions without a discriminator.
_LABELS = ("str", "int", "float", "bool", NamedToolChoice.__name__)


def _param(loc: tuple[int | str, ...]) -> str | None:
    """`messages.0.content.1.image_url.url` from a pydantic location, without its union labels.

    pydantic puts the union member (`str`, `list[...]`) and the `type` tag of a content part (after a
    list index) or of a response format into locations; neither is a field the client sent.
    """
    kept: list[str] = []
    previous: int | str | None = None
    for part in loc:
        is_label = isinstance(part, str) and (part in _LABELS or "[" in part or part.startswith("constrained-"))
        is_tag = (isinstance(previous, int) and part in _PART_TYPES) or (previous == "response_format" and part in _FORMAT_TYPES)
        if not (is_label or is_tag):
            kept.append(str(part))
        previous = part
    return ".".join(kept) or None
