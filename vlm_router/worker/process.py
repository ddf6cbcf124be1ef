"""The worker process: loads one model and serves the requests the router sends over a pipe.

With a scheduler it runs `ContinuousBatchingPipeline` (add_request / step), so requests batch;
without one it runs `VLMPipeline`, one request at a time. Either way the GIL-holding calls live
here, never in the router's process.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ..generation import Completion, configure, finish_reason
from .protocol import Cancel, Failed, Finished, Generate, LoadFailed, Ready, Text, WorkerSpec


class _Shutdown(Exception):
    """The router asked the worker to exit, or went away."""


def main(conn: Connection, spec: WorkerSpec) -> None:
    """Process entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the router decides when workers stop
    try:
        pipeline = _load(spec)
    except Exception as exc:  # whatever the pipeline raises is reported, not a crash
        conn.send(LoadFailed(f"{type(exc).__name__}: {exc}"))
        return
    conn.send(Ready(pid=os.getpid(), batching=spec.scheduler is not None))
    serve = _Batching(pipeline, conn) if spec.scheduler is not None else _Sequential(pipeline, conn)
    try:
        serve.run()
    except _Shutdown:
        pass


def _load(spec: WorkerSpec) -> Any:
    import openvino_genai

    if spec.scheduler is None:
        return openvino_genai.VLMPipeline(spec.model_dir, spec.device, **spec.ov_config)
    scheduler = openvino_genai.SchedulerConfig()
    for name, value in spec.scheduler.items():
        setattr(scheduler, name, value)
    return openvino_genai.ContinuousBatchingPipeline(spec.model_dir, scheduler, spec.device, spec.ov_config)


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


@dataclass
class _Active:
    handle: Any
    streamer: Any
    pending: list[str] = field(default_factory=list)


class _Batching:
    """Continuous batching: new requests join the running batch between steps."""

    def __init__(self, pipeline: Any, conn: Connection) -> None:
        self._pipeline = pipeline
        self._conn = conn
        self._active: dict[int, _Active] = {}

    def run(self) -> None:
        while True:
            timeout = 0 if self._active else None
            while (message := _receive(self._conn, timeout)) is not None:
                self._handle(message)
                timeout = 0
            if self._pipeline.has_non_finished_requests():
                self._pipeline.step()
            self._collect()

    def _handle(self, message: Generate | Cancel) -> None:
        if isinstance(message, Cancel):
            active = self._active.pop(message.id, None)
            if active is not None:
                active.handle.cancel()
            return
        import openvino_genai

        config = configure(self._pipeline.get_config(), message.params)
        try:
            handle = self._pipeline.add_request(message.id, message.prompt, _tensors(message.images), _tensors(message.videos), config)
        except Exception as exc:  # the pipeline's verdict on this request only
            self._conn.send(Failed(message.id, str(exc)))
            return
        pending: list[str] = []

        def on_text(text: str) -> Any:
            pending.append(text)
            return openvino_genai.StreamingStatus.RUNNING

        self._active[message.id] = _Active(handle, openvino_genai.TextStreamer(self._pipeline.get_tokenizer(), on_text), pending)

    def _collect(self) -> None:
        """Send what each request generated in the last step; finish the ones that are done."""
        import openvino_genai

        for request_id, active in list(self._active.items()):
            reason = None
            if active.handle.can_read():
                for output in active.handle.read().values():
                    active.streamer.write(output.generated_ids)
                    if output.finish_reason != openvino_genai.GenerationFinishReason.NONE:
                        reason = output.finish_reason
            status = active.handle.get_status()
            if reason is None and status == openvino_genai.GenerationStatus.RUNNING:
                self._flush(request_id, active)
                continue
            del self._active[request_id]
            if reason is None:
                self._conn.send(Failed(request_id, f"generation ended with status {status.name}"))
                continue
            active.streamer.end()
            self._flush(request_id, active)
            metrics = active.handle.get_perf_metrics()
            completion = Completion(finish_reason(reason), metrics.get_num_input_tokens(), metrics.get_num_generated_tokens())
            self._conn.send(Finished(request_id, completion))

    def _flush(self, request_id: int, active: _Active) -> None:
        if active.pending:
            self._conn.send(Text(request_id, "".join(active.pending)))
            active.pending.clear()


class _Sequential:
    """`VLMPipeline`: one request at a time, the others wait in order."""

    def __init__(self, pipeline: Any, conn: Connection) -> None:
        self._pipeline = pipeline
        self._conn = conn
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
            self._conn.send(Text(request.id, text))
            stop = shutdown or request.id in self._cancelled
            return openvino_genai.StreamingStatus.CANCEL if stop else openvino_genai.StreamingStatus.RUNNING

        config = configure(self._pipeline.get_generation_config(), request.params)
        try:
            result = self._pipeline.generate(
                request.prompt, images=_tensors(request.images), videos=_tensors(request.videos), generation_config=config, streamer=on_text
            )
        except Exception as exc:  # the pipeline's verdict on this request only
            self._conn.send(Failed(request.id, str(exc)))
            return
        if shutdown:
            raise _Shutdown
        if request.id in self._cancelled:
            self._cancelled.discard(request.id)
            return
        metrics = result.perf_metrics
        completion = Completion(finish_reason(result.finish_reasons[0]), metrics.get_num_input_tokens(), metrics.get_num_generated_tokens())
        self._conn.send(Finished(request.id, completion))
