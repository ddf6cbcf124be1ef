"""Running one loaded openvino-genai pipeline: generation off the event loop, text streamed back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """What a request asks of generation; `None` keeps the model's own default.

    A temperature above 0, or a `top_p`, turns sampling on; temperature 0 (or top_p 0) means greedy.
    """

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """The end of a generation: why it stopped and what it cost."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


_DONE = object()


class Engine:
    """One pipeline, answering one request at a time on a thread of its own.

    `VLMPipeline.generate()` releases the GIL, so the event loop keeps serving while it runs.
    """

    def __init__(self, pipeline: Any, name: str) -> None:
        self._pipeline = pipeline
        self._active: set[threading.Event] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{name}")

    def generation_config(self, params: SamplingParams) -> Any:
        """The model's default generation config with the request's parameters applied."""
        config = self._pipeline.get_generation_config()  # a fresh copy each call
        config.apply_chat_template = False
        config.max_new_tokens = params.max_tokens
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

    async def stream(self, prompt: str, images: list[np.ndarray], params: SamplingParams) -> AsyncGenerator[str | Completion, None]:
        """Yield text as it is generated, then one `Completion`. Leaving early stops the generation."""
        import openvino
        import openvino_genai

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()
        self._active.add(cancelled)
        config = self.generation_config(params)

        def on_text(text: str) -> openvino_genai.StreamingStatus:
            loop.call_soon_threadsafe(queue.put_nowait, text)
            return openvino_genai.StreamingStatus.CANCEL if cancelled.is_set() else openvino_genai.StreamingStatus.RUNNING

        def run() -> Any:
            if cancelled.is_set():
                return None
            tensors = [openvino.Tensor(np.ascontiguousarray(image[None])) for image in images]
            return self._pipeline.generate(prompt, images=tensors, generation_config=config, streamer=on_text)

        future = loop.run_in_executor(self._executor, run)
        future.add_done_callback(lambda _: queue.put_nowait(_DONE))
        try:
            while (item := await queue.get()) is not _DONE:
                yield item  # type: ignore[misc]
            result = await future
            metrics = result.perf_metrics
            reason = "length" if result.finish_reasons[0] == openvino_genai.GenerationFinishReason.LENGTH else "stop"
            yield Completion(reason, metrics.get_num_input_tokens(), metrics.get_num_generated_tokens())
        finally:
            cancelled.set()
            self._active.discard(cancelled)

    def close(self) -> None:
        """Stop running generations at their next token and drop queued ones."""
        for cancelled in list(self._active):
            cancelled.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

