"""The outcome classifier itself: a protocol error fails a test even wrapped in a content error."""

from __future__ import annotations

import httpx
import openai
import pydantic
import pytest

from .helpers import Answer, classify, outcome

pytestmark = pytest.mark.compat


def validation_error() -> pydantic.ValidationError:
    try:
        Answer.model_validate({"a": 1000})
    except pydantic.ValidationError as error:
        return error
    raise AssertionError("no validation error")


def status_error() -> openai.APIStatusError:
    response = httpx.Response(500, request=httpx.Request("POST", "http://x/v1/chat/completions"))
    return openai.InternalServerError("boom", response=response, body=None)


def wrapped() -> pydantic.ValidationError:
    error = validation_error()
    error.__cause__ = status_error()
    return error


@pytest.mark.parametrize(
    ("error", "content_ok", "kind"),
    [
        (validation_error(), True, "content"),
        (validation_error(), False, "protocol"),
        (status_error(), True, "protocol"),
        (wrapped(), True, "protocol"),
        (KeyError("choices"), True, "protocol"),
    ],
    ids=["validation", "validation-not-allowed", "http-500", "validation-from-http-500", "parse-error"],
)
def test_classify(error: Exception, content_ok: bool, kind: str) -> None:
    assert classify(error, content_ok) == kind


def test_outcome_raises_protocol_failures() -> None:
    def fail() -> None:
        raise status_error()

    with pytest.raises(openai.InternalServerError):
        outcome(fail, content_ok=True)
