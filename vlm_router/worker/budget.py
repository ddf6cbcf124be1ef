"""Fitting a completion into the model's context: prompt tokens plus `max_tokens` may not exceed it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..generation import SamplingParams


class TooLong(Exception):
    """The request cannot fit the model's context; the message gives the numbers."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def context_length(model_dir: str) -> int | None:
    """The language model's `max_position_embeddings`, from the folder's config.json, if it says."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = config.get("text_config") or config.get("llm_config") or {}
    value = text.get("max_position_embeddings") or config.get("max_position_embeddings")
    return value if isinstance(value, int) and value > 0 else None


def fit(params: SamplingParams, prompt_tokens: int, context: int | None) -> SamplingParams:
    """`params` with `max_tokens` within the context left after the prompt.

    A `max_tokens` the client chose must fit; the model's default shrinks to what is left. The count is
    the prompt's text tokens: images and videos add theirs inside the pipeline, so a prompt may still
    be longer than this allows.
    """
    if context is None:
        return params
    room = context - prompt_tokens
    if room < 1:
        raise TooLong(f"the prompt has {prompt_tokens} tokens, not under the model's context of {context} tokens", "messages")
    if params.max_tokens <= room:
        return params
    if params.max_tokens_given:
        raise TooLong(
            f"the prompt has {prompt_tokens} tokens and max_tokens is {params.max_tokens}: "
            f"{prompt_tokens + params.max_tokens} is over the model's context of {context} tokens",
            "max_tokens",
        )
    return replace(params, max_tokens=room)


@dataclass
class Budget:
    """The model's context, and each request's parameters fitted into it."""

    tokenizer: Any
    context: int | None

    def params(self, prompt: str, params: SamplingParams) -> SamplingParams:
        """`params` with `max_tokens` fitted to the context left after `prompt` (see `fit`)."""
        if self.context is None:
            return params
        return fit(params, self.tokenizer.encode(prompt).input_ids.get_shape()[-1], self.context)
