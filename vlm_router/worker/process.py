"""The worker process: loads one model and serves the requests the router sends over a pipe.

The model's family builds the pipeline (`Family.load_pipeline`). One with `add_request` and `step`
(`ContinuousBatchingPipeline`, the default with a scheduler) serves requests in batches; one with
`generate` only (`VLMPipeline`) serves them one at a time. Either way the GIL-holding calls live
here, never in the router's process.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ..generation import Completion, Delta, SamplingParams, configure, finish_reason
from .budget import Budget, TooLong, context_length
from .detokenizer import Detokenizer
from .protocol import Cancel, Failed, Finished, Generate, GeneratedText, LoadFailed, Ready, WorkerSpec


class _Shutdown(Exception):
    """The router asked the worker to exit, or went away."""


def main(conn: Connection, spec: WorkerSpec, beats: Any, beat_interval: float) -> None:
    """Process entry point. Once loaded, `beats` (a shared counter) counts up every `beat_interval` seconds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the router decides when workers stop
    try:
        pipeline = spec.family.load_pipeline(spec.model_dir, spec.device, spec.ov_config, spec.scheduler)
    except Exception as exc:  # whatever the pipeline raises is reported, not a crash
        conn.send(LoadFailed(f"{type(exc).__name__}: {exc}"))
        return
    threading.Thread(target=_beat, args=(beats, beat_interval), name="heartbeat", daemon=True).start()
    batching = hasattr(pipeline, "add_request")  # the family chose: batched steps, or one `generate` at a time
    conn.send(Ready(pid=os.getpid(), batching=batching))
    budget = Budget(pipeline.get_tokenizer(), context_length(spec.model_dir))
    serve = _Batching(pipeline, conn, budget) if batching else _Sequential(pipeline, conn, budget)
    try:
        serve.run()
    except _Shutdown:
        pass


def _beat(beats: Any, interval: float) -> None:
    """The heartbeat: shows the router this process runs while it waits for requests.

    openvino-genai's calls hold the GIL, so the beat pauses while one runs; the router counts the
    process's CPU time as a sign of life too.
    """
    while True:
        beats.value += 1
        time.sleep(interval)


def _tensors(arrays: list[np.ndarray]) -> list[Any]:
    """OpenVINO tensors: images as `(1, H, W, 3)`, videos as they are, `(frames, H, W, 3)`."""
    import openvino

    return [openvino.Tensor(np.ascontiguousarray(a[None] if a.ndim == 3 else a)) for a in arrays]


def _receive(conn: Connection, timeout: float | None) -> Any:
    """The next message, or `_Shutdown` when the router says so or is gone. `timeout=None` waits."""
    try:
        if not conn.poll(timeout):
            return None
        message = conn.recv()
    except (EOFError, OSError):
        raise _Shutdown from None
    if message is None:
        raise _Shutdown
    return message


def _refusal(request_id: int, exc: Exception) -> Failed:
    """What the router is told of a request the worker or the pipeline refused as it was asked."""
    if isinstance(exc, TooLong):
        return Failed(request_id, str(exc), code="context_length_exceeded", param=exc.param)
    return Failed(request_id, f"the model cannot take this request: {exc}", code="invalid_request")


@dataclass
class _Choice:
    """One choice of a request: its detokenizer, the text and log-probabilities not sent yet, how it ended."""

    text: Detokenizer
    pending: list[str] = field(default_factory=list)
    logprobs: list[tuple[str, float]] = field(default_factory=list)
    tokens: int = 0
    finish_reason: str | None = None


def _completion(reasons: tuple[str, ...], metrics: Any, completion_tokens: int, vision_encoding_s: float | None) -> Completion:
    """The `Completion` of a request whose openvino-genai perf metrics are `metrics`."""
    tpot_ms = metrics.get_tpot().mean
    # openvino-genai divides by the tokens of every choice; one choice's tokens come n to a step
    tpot_s = tpot_ms * len(reasons) / 1000 if completion_tokens > len(reasons) else None
    return Completion(reasons, metrics.get_num_input_tokens(), completion_tokens, tpot_s, vision_encoding_s)


@dataclass
class _Active:
    handle: Any
    params: SamplingParams
    #: How long `add_request` took, which is where the pipeline encodes the request's media.
    vision_encoding_s: float | None = None
    #: By openvino-genai's sequence id, in the order the sequences appeared.
    choices: dict[int, _Choice] = field(default_factory=dict)


class _Batching:
    """Continuous batching: new requests join the running batch between steps.

    `add_request` encodes a request's images and videos before it returns, and nothing steps meanwhile,
    so requests with media join one per step: the running streams get a token between two encodes.
    Text-only requests join at once.
    """

    def __init__(self, pipeline: Any, conn: Connection, budget: Budget) -> None:
        self._pipeline = pipeline
        self._conn = conn
        self._budget = budget
        self._tokenizer = pipeline.get_tokenizer()
        self._active: dict[int, _Active] = {}
        self._with_media: deque[Generate] = deque()

    def run(self) -> None:
        while True:
            timeout = 0 if self._active or self._with_media else None
            while (message := _receive(self._conn, timeout)) is not None:
                self._handle(message)
                timeout = 0
            if self._with_media:
                self._admit(self._with_media.popleft())
            if self._pipeline.has_non_finished_requests():
                self._pipeline.step()
            self._collect()

    def _handle(self, message: Generate | Cancel) -> None:
        if isinstance(message, Generate):
            if message.images or message.videos:
                self._with_media.append(message)
            else:
                self._admit(message)
            return
        active = self._active.pop(message.id, None)
        if active is not None:
            active.handle.cancel()
        else:
            self._with_media = deque(waiting for waiting in self._with_media if waiting.id != message.id)

    def _admit(self, message: Generate) -> None:
        try:
            params = self._budget.params(message.prompt, message.params)
            config = configure(self._pipeline.get_config(), params)
            started = time.perf_counter()
            handle = self._pipeline.add_request(message.id, message.prompt, _tensors(message.images), _tensors(message.videos), config)
        except Exception as exc:  # the verdict on this request only
            self._conn.send(_refusal(message.id, exc))
            return
        encoding_s = time.perf_counter() - started if message.images or message.videos else None
        self._active[message.id] = _Active(handle, params, encoding_s)

    def _choice(self, active: _Active, sequence: int) -> _Choice:
        if sequence not in active.choices:
            active.choices[sequence] = _Choice(Detokenizer(self._tokenizer))
        return active.choices[sequence]

    def _collect(self) -> None:
        """Send what each request generated in the last step; finish the ones that are done."""
        import openvino_genai

        for request_id, active in list(self._active.items()):
            if active.handle.can_read():
                for sequence, output in sorted(active.handle.read().items()):
                    choice = self._choice(active, sequence)
                    choice.pending.append(choice.text.add(list(output.generated_ids)))
                    choice.tokens += len(output.generated_ids)
                    if active.params.logprobs:
                        tokens = (self._tokenizer.decode([token]) for token in output.generated_ids)
                        choice.logprobs.extend(zip(tokens, output.generated_log_probs))
                    if output.finish_reason != openvino_genai.GenerationFinishReason.NONE:
                        choice.finish_reason = finish_reason(output.finish_reason)
            status = active.handle.get_status()
            done = len(active.choices) == active.params.n and all(c.finish_reason for c in active.choices.values())
            if not done and status == openvino_genai.GenerationStatus.RUNNING:
                self._flush(request_id, active)
                continue
            del self._active[request_id]
            if not done:
                self._conn.send(Failed(request_id, f"generation ended with status {status.name}"))
                continue
            for choice in active.choices.values():
                choice.pending.append(choice.text.end())
            self._flush(request_id, active)
            reasons = tuple(c.finish_reason or "stop" for c in active.choices.values())
            completion_tokens = sum(c.tokens for c in active.choices.values())
            completion = _completion(reasons, active.handle.get_perf_metrics(), completion_tokens, active.vision_encoding_s)
            self._conn.send(Finished(request_id, completion))

    def _flush(self, request_id: int, active: _Active) -> None:
        for index, choice in enumerate(active.choices.values()):
            if any(choice.pending) or choice.logprobs:
                self._conn.send(GeneratedText(request_id, Delta(index, "".join(choice.pending), tuple(choice.logprobs))))
                choice.pending.clear()
                choice.logprobs.clear()


class _Sequential:
    """`VLMPipeline`: one request at a time, the others wait in order."""

    def __init__(self, pipeline: Any, conn: Connection, budget: Budget) -> None:
        self._pipeline = pipeline
        self._conn = conn
        self._budget = budget
        self._queue: deque[Generate] = deque()
        self._cancelled: set[int] = set()

    def run(self) -> None:
        while True:
            if not self._queue:
                self._take(_receive(self._conn, None))
            request = self._queue.popleft()
            if request.id in self._cancelled:
                self._cancelled.discard(request.id)
                continue
            self._generate(request)

    def _take(self, message: Generate | Cancel) -> None:
        if isinstance(message, Generate):
            self._queue.append(message)
        else:
            self._cancelled.add(message.id)

    def _generate(self, request: Generate) -> None:
        import openvino_genai

        shutdown = False

        def on_text(text: str) -> Any:
            nonlocal shutdown
            try:
                while (message := _receive(self._conn, 0)) is not None:
                    self._take(message)
            except _Shutdown:  # raising through the pipeline's C++ would lose it; stop, then raise
                shutdown = True
            self._conn.send(GeneratedText(request.id, Delta(0, text)))
            stop = shutdown or request.id in self._cancelled
            return openvino_genai.StreamingStatus.CANCEL if stop else openvino_genai.StreamingStatus.RUNNING

        try:
            config = configure(self._pipeline.get_generation_config(), self._budget.params(request.prompt, request.params))
        except TooLong as exc:
            self._conn.send(_refusal(request.id, exc))
            return
        try:
            result = self._pipeline.generate(
                request.prompt,
                images=_tensors(request.images),
                videos=_tensors(request.videos),
                generation_config=config,
                streamer=on_text if request.params.n == 1 else None,  # it streams one sequence only
            )
        except Exception as exc:  # the pipeline's verdict on this request only
            self._conn.send(Failed(request.id, str(exc)))
            return
        if shutdown:
            raise _Shutdown
        if request.id in self._cancelled:
            self._cancelled.discard(request.id)
            return
        if request.params.n > 1:
            for index, text in enumerate(result.texts):
                self._conn.send(GeneratedText(request.id, Delta(index, text)))
        metrics = result.perf_metrics
        reasons = tuple(finish_reason(reason) for reason in result.finish_reasons)
        encoding_s = metrics.get_prepare_embeddings_duration().mean / 1000 if request.images or request.videos else None
        self._conn.send(Finished(request.id, _completion(reasons, metrics, metrics.get_num_generated_tokens(), encoding_s)))
