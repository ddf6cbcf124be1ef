"""The OpenAI Responses request (`POST /v1/responses`), validated with pydantic; errors name the `param` as OpenAI
does (`input[0].content[1].image_url`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from .errors import APIError
from .schema import FunctionDefinition, JSONObjectFormat, JSONSchema, TextFormat


class _Item(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _EchoedItem(BaseModel):
    """An item a client may send back as the server wrote it: its `id`, `status` and the like are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class InputText(_Item):
    type: Literal["input_text"]
    text: str


class OutputText(_EchoedItem):
    """An earlier answer's text, in an assistant message of the history (its `annotations` and `logprobs` are ignored)."""

    type: Literal["output_text"]
    text: str


class InputImage(_Item):
    """An image by URL or data URL; `detail: original` is the model's full budget, as `high` and `auto` are."""

    type: Literal["input_image"]
    image_url: str | None = Field(None, min_length=1)
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] = "auto"

    @model_validator(mode="after")
    def _by_url(self) -> InputImage:
        if self.file_id is not None:
            raise PydanticCustomError("unsupported_field", "files are not stored here: send the image as image_url (a URL or a data URL)", {"field": "file_id"})
        if self.image_url is None:
            raise PydanticCustomError("missing_field", "image_url is required", {"field": "image_url"})
        return self


InputContent = Annotated[InputText | InputImage | OutputText, Field(discriminator="type")]


class Message(_EchoedItem):
    """A message of the conversation; `type` may be left out."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputContent]


class FunctionCall(_EchoedItem):
    """A function the model called in an earlier turn."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutput(_EchoedItem):
    """What a called function returned, for its `call_id`."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputContent]


def _item_type(item: Any) -> Any:
    return item.get("type", "message") if isinstance(item, dict) else getattr(item, "type", None)


InputItem = Annotated[
    Annotated[Message, Tag("message")] | Annotated[FunctionCall, Tag("function_call")] | Annotated[FunctionCallOutput, Tag("function_call_output")],
    Discriminator(_item_type, custom_error_type="invalid_item", custom_error_message="input items are message, function_call and function_call_output"),
]


class FunctionTool(FunctionDefinition):
    """A function the model may call: the chat tool's `function`, flat."""

    type: Literal["function"]


class JSONSchemaTextFormat(JSONSchema):
    """Structured output: the chat `json_schema` response format, flat."""

    type: Literal["json_schema"]


class TextConfig(_Item):
    format: Annotated[TextFormat | JSONObjectFormat | JSONSchemaTextFormat, Field(discriminator="type")] = TextFormat(type="text")
    verbosity: Literal["low", "medium", "high"] | None = None


class NamedFunction(_Item):
    """A `tool_choice` naming the function the answer must call."""

    type: Literal["function"]
    name: str = Field(min_length=1)


#: Fields whose meaning needs state this server does not keep: any value but null is refused.
STATEFUL = ("previous_response_id", "conversation")


class ResponsesRequest(_Item):
    model_config = ConfigDict(strict=True, extra="allow")  # clients send fields such as `include` or `truncation`

    model: str | None = None
    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: TextConfig = TextConfig()
    tools: list[FunctionTool] = Field(default_factory=list, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedFunction = "auto"
    parallel_tool_calls: bool = True
    stream: bool = False
    store: bool = Field(True, description="Accepted either way: nothing is stored.")
    metadata: dict[str, str] | None = None
    user: str | None = None
    reasoning: dict[str, Any] | None = Field(None, description="Accepted and ignored.")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        """Clients such as litellm send null for a field they leave at its default."""
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if value is not None or name not in _DEFAULTED}
        return data


#: Fields with a default of their own, which null stands for.
_DEFAULTED = frozenset({"text", "tools", "tool_choice", "parallel_tool_calls", "stream", "store"})


def parse_responses_request(payload: Any) -> ResponsesRequest:
    """The request, or a 400 naming the most specific field that is wrong; `previous_response_id` and `conversation` are refused."""
    if not isinstance(payload, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    for name in STATEFUL:
        if payload.get(name) is not None:
            message = f"{name} is not supported: this server is stateless and stores no responses; send the whole conversation in input"
            raise APIError(400, message, param=name, code="unsupported_parameter")
    try:
        return ResponsesRequest.model_validate(payload)
    except ValidationError as exc:
        raise _to_api_error(max(exc.errors(), key=lambda e: len(e["loc"]))) from None


def _to_api_error(error: ErrorDetails) -> APIError:
    param = param_of(error["loc"], str((error.get("ctx") or {}).get("field", "")))
    if error["type"] == "extra_forbidden":
        return APIError(400, f"unknown field '{param}'", param=param, code="invalid_request")
    code = "unsupported_parameter" if error["type"] == "unsupported_field" else "invalid_value"
    return APIError(400, f"{param}: {error['msg']}" if param else error["msg"], param=param, code=code)


#: Type tags pydantic puts in an error's location after a list index or `format`: not fields the client sent.
_TAGS = frozenset({"message", "function_call", "function_call_output", "input_text", "input_image", "output_text", "text", "json_object", "json_schema"})


def param_of(loc: tuple[int | str, ...], field: str = "") -> str | None:
    """`input[0].content[1].image_url` from a pydantic location, without its union labels and type tags; `field` is appended."""
    param = ""
    previous: int | str | None = None
    for part in [*loc, field] if field else loc:
        is_label = isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part or part.startswith("constrained-") or part[:1].isupper())
        is_tag = part in _TAGS and (isinstance(previous, int) or previous == "format")
        if isinstance(part, int):
            param += f"[{part}]"
        elif not (is_label or is_tag):
            param += f".{part}" if param else part
        previous = part
    return param or None
