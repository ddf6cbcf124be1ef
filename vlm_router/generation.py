"""What a request asks of generation, what it costs, and how that maps onto openvino-genai."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    """What a request asks of generation; `None` keeps the model's own default.

    A temperature above 0, or a `top_p`, turns sampling on; temperature 0 (or top_p 0) means greedy.
    """

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    ignore_eos: bool = False


@dataclass(frozen=True)
class Completion:
    """The end of a generation: why it stopped and what it cost."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def configure(config: Any, params: SamplingParams) -> Any:
    """`config` (a copy of the model's default GenerationConfig) with the request's parameters applied."""
    config.apply_chat_template = False  # families build the whole prompt
    config.max_new_tokens = params.max_tokens
    config.ignore_eos = params.ignore_eos
    greedy = params.temperature == 0 or params.top_p == 0
    if greedy:
        config.do_sample = False
    elif params.temperature is not None:
        config.do_sample = True
        config.temperature = params.temperature
    if params.top_p and not greedy:
        config.do_sample = True
        config.top_p = params.top_p
    if params.seed is not None:
        config.rng_seed = params.seed & (2**64 - 1)  # any int64 a client sends, as the unsigned seed
    return config


def finish_reason(reason: Any) -> str:
    """OpenAI's name for an openvino-genai `GenerationFinishReason`."""
    return "length" if reason.name == "LENGTH" else "stop"
