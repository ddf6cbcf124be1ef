"""What a request asks of generation, what comes back, and how that maps onto openvino-genai."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .json_grammar import compact_grammar


@dataclass(frozen=True)
class SamplingParams:
    """What a request asks of generation; `None` keeps the model's own default.

    A temperature above 0, or a `top_p`, turns sampling on; temperature 0 (or top_p 0) means greedy.
    """

    max_tokens: int
    #: Whether the client chose `max_tokens` (else it is the model's default, which may shrink to fit the context).
    max_tokens_given: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    ignore_eos: bool = False
    #: Choices to generate from the one prompt.
    n: int = 1
    #: Texts that end a choice; they are not part of its text.
    stop: tuple[str, ...] = ()
    #: Report each generated token's log-probability.
    logprobs: bool = False
    #: A JSON schema (as JSON text) the answer must match, as compact JSON (`json_grammar`).
    json_schema: str | None = None


@dataclass(frozen=True)
class Delta:
    """New text of choice `index`, with `(token, log-probability)` for its tokens when they were asked for."""

    index: int
    text: str
    logprobs: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    """The end of a generation: why each choice stopped, what it all cost, and the engine's timings."""

    finish_reasons: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int
    #: Mean seconds between one choice's output tokens (openvino-genai's TPOT, over all choices, times n).
    time_per_output_token_s: float | None = None
    #: Seconds spent turning the request's images and videos into embeddings; None without media.
    vision_encoding_s: float | None = None


def configure(config: Any, params: SamplingParams) -> Any:
    """`config` (a copy of the model's default GenerationConfig) with the request's parameters applied."""
    import openvino_genai

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
    for name in ("top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"):
        if (value := getattr(params, name)) is not None:
            setattr(config, name, value)
    # any int64 a client sends, as the unsigned seed; without one, each request samples anew
    config.rng_seed = (params.seed if params.seed is not None else random.getrandbits(64)) & (2**64 - 1)
    if params.n > 1:
        config.num_return_sequences = params.n
        if not config.do_sample:  # n greedy choices are the same choice n times, as OpenAI gives them
            config.do_sample, config.top_k = True, 1
    if params.stop:
        config.stop_strings = set(params.stop)
        config.include_stop_str_in_output = False
    if params.logprobs:
        config.logprobs = 1
    if params.json_schema is not None:
        grammar = compact_grammar(params.json_schema)  # no free whitespace: see json_grammar
        structured = {"grammar": grammar} if grammar is not None else {"json_schema": params.json_schema}
        config.structured_output_config = openvino_genai.StructuredOutputConfig(**structured)
    return config


def finish_reason(reason: Any) -> str:
    """OpenAI's name for an openvino-genai `GenerationFinishReason`."""
    return "length" if reason.name == "LENGTH" else "stop"
