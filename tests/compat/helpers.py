"""Telling a protocol failure (the server or its wire format is wrong) from a content failure (the random-weight
model wrote values a library's schema refuses), and the small shared pieces of the compat tests."""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anthropic
import httpx
import openai
import pydantic
import pytest

from ..conftest import data_url, png_bytes

T = TypeVar("T")

#: Max tokens for free text: the tiny models write nonsense, a few tokens show the protocol works.
TEXT_TOKENS = 16
#: Max tokens for structured answers: a forced call's `{"name": "Answer", "arguments": {"a": 72}}` takes 28 to 38.
JSON_TOKENS = 64
#: The models the suite serves; qwen3_vl has a tool template (tool_choice "auto" works there only).
QWEN2, QWEN3 = "tiny-qwen2-vl", "tiny-qwen3-vl"
IMAGE_URL = data_url(png_bytes())
PROMPT = "Say hello."
JSON_PROMPT = "Answer as JSON with an integer a."

#: Errors of the wire: an HTTP status, a broken connection. Found anywhere in an error's chain they fail a test.
PROTOCOL_ERRORS: tuple[type[BaseException], ...] = (openai.APIError, anthropic.APIError, httpx.HTTPError)


class Answer(pydantic.BaseModel):
    """The small schema of the structured calls: bounded, as a random-weight model repeats digits without end."""

    a: int = pydantic.Field(ge=0, le=99)


def require(module: str) -> Any:
    """The library `module`, or a skip of the whole test module naming the extra that installs it."""
    return pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[compat]'")


def content_errors() -> tuple[type[BaseException], ...]:
    """The libraries' own content-validation errors (each where installed): a value the schema refuses, an
    answer cut at max_tokens, a structured answer that is not JSON."""
    found: list[type[BaseException]] = [pydantic.ValidationError, json.JSONDecodeError, openai.LengthFinishReasonError]
    for module, name in (
        ("instructor.core.exceptions", "InstructorRetryException"),
        ("instructor.core.exceptions", "IncompleteOutputException"),
        ("langchain_core.exceptions", "OutputParserException"),
        ("pydantic_ai.exceptions", "UnexpectedModelBehavior"),
    ):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, its causes and contexts, and the errors of instructor's failed attempts."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        stack += [a.exception for a in getattr(current, "failed_attempts", None) or () if isinstance(getattr(a, "exception", None), BaseException)]


def classify(error: BaseException, content_ok: bool) -> str:
    """"protocol" or "content" for an error a library raised; other errors are protocol failures too."""
    if any(isinstance(e, PROTOCOL_ERRORS) for e in _chain(error)):  # litellm's errors subclass openai's
        return "protocol"
    return "content" if content_ok and isinstance(error, content_errors()) else "protocol"


def _settle(error: Exception, content_ok: bool) -> None:
    if classify(error, content_ok) == "content":
        pytest.xfail(f"content failure (random weights), allowed as the library validates content: {type(error).__name__}: {str(error)[:300]}")
    raise error


def outcome(call: Callable[[], T], content_ok: bool = False) -> T:
    """`call()`'s result; a content failure xfails the test where `content_ok` (the library checks content against a
    schema), any other failure is raised and fails it."""
    try:
        return call()
    except Exception as error:
        _settle(error, content_ok)
        raise  # unreachable: _settle raises or xfails


async def async_outcome(call: Callable[[], Awaitable[T]], content_ok: bool = False) -> T:
    """`outcome` for a coroutine function."""
    try:
        return await call()
    except Exception as error:
        _settle(error, content_ok)
        raise


def check_answer(answer: object) -> None:
    """A structured answer parsed into `Answer`, its field an int."""
    assert isinstance(answer, Answer), f"not an Answer: {answer!r}"
    assert isinstance(answer.a, int) and 0 <= answer.a <= 99
