"""The router's side of a worker process: start it, stream requests through it, notice when it dies."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import logging
import multiprocessing
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ..generation import Completion, Delta, SamplingParams
from . import process
from .heap import HeapTrimmer
from .procfs import cpu_ticks, rss_bytes
from .protocol import Cancel, Failed, Finished, Generate, GeneratedText, LoadFailed, Ready, WorkerSpec

log = logging.getLogger(__name__)
_SPAWN = multiprocessing.get_context("spawn")  # never fork a process that runs threads and OpenVINO


#: Heartbeats per stall timeout, and how often the heartbeat is checked.
_BEATS_PER_TIMEOUT = 4
#: The stall timeout the heartbeat is paced for when stalls are not watched.
_UNWATCHED_BEAT_S = 60.0


class WorkerError(Exception):
    """The worker could not start, or died with requests in flight."""


class GenerationError(Exception):
    """The pipeline broke on one request."""


class RequestRejected(GenerationError):
    """The worker refused one request as it was asked (e.g. longer than the model's context)."""

    def __init__(self, message: str, code: str, param: str | None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


class Worker:
    """One model's worker process, shared by every request for that model.

    With `stall_timeout`, a worker that shows no sign of life (its heartbeat or its CPU time) for
    that long is killed, which fails its requests at once. `trimmer` is asked to trim the router's
    heap after each request with media.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        on_exit: Callable[[Worker, str], None],
        stall_timeout: float | None = None,
        trimmer: HeapTrimmer | None = None,
    ) -> None:
        self.spec = spec
        self.pid: int | None = None
        self.batching = False
        #: The worker's resident memory, in bytes, the first time it was idle after serving: its size with
        #: the model's weights paged in (they are mapped from disk) and its kernels compiled.
        self.warm_rss: int | None = None
        self._on_exit = on_exit
        self._stall_timeout = stall_timeout
        self._trimmer = trimmer
        self._beats = _SPAWN.RawValue(ctypes.c_uint64, 0)
        self._watch: asyncio.Task[None] | None = None
        self._failure: str | None = None  # why the router killed the worker
        self._ids = itertools.count(1)
        self._streams: dict[int, asyncio.Queue[Any]] = {}
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"send-{spec.model}")
        self._conn: Connection | None = None
        self._process: Any = None
        self._ready: asyncio.Future[Ready] | None = None
        self._stopping = False
        self._dead = False

    async def start(self, timeout: float) -> None:
        """Spawn the worker and wait until its model is loaded; `WorkerError` says why not."""
        loop = asyncio.get_running_loop()
        self._conn, child = _SPAWN.Pipe()
        beat_interval = (self._stall_timeout or _UNWATCHED_BEAT_S) / _BEATS_PER_TIMEOUT
        self._process = _SPAWN.Process(
            target=process.main, args=(child, self.spec, self._beats, beat_interval), name=f"vlm-worker-{self.spec.model}", daemon=True
        )
        await loop.run_in_executor(None, self._process.start)
        child.close()  # only the worker holds its end, so its death reads as end-of-file here
        self._ready = loop.create_future()
        loop.add_reader(self._conn.fileno(), self._readable)
        try:
            ready = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except (WorkerError, TimeoutError) as exc:
            await self.stop(grace=0)
            raise WorkerError(str(exc) or f"the worker did not load the model within {timeout:g} s") from None
        self.pid, self.batching = ready.pid, ready.batching
        if self._stall_timeout is not None and cpu_ticks(self.pid) is not None:
            self._watch = loop.create_task(self._watch_heartbeat(self.pid, self._stall_timeout))

    @property
    def rss(self) -> int | None:
        """The worker's resident memory now, in bytes; None when it is not running or /proc cannot tell."""
        return None if self.pid is None or self._dead else rss_bytes(self.pid)

    async def _watch_heartbeat(self, pid: int, timeout: float) -> None:
        """Kill the worker once neither its heartbeat nor its CPU time has moved for `timeout` seconds.

        A step that holds the GIL pauses the heartbeat but uses CPU; a stopped or deadlocked worker does neither.
        """
        loop = asyncio.get_running_loop()
        signs, moved = (self._beats.value, cpu_ticks(pid)), loop.time()
        while not self._dead and not self._stopping:
            await asyncio.sleep(timeout / _BEATS_PER_TIMEOUT)
            now = (self._beats.value, cpu_ticks(pid))
            if now != signs:
                signs, moved = now, loop.time()
            elif loop.time() - moved >= timeout:
                self._failure = f"the worker stopped responding (no heartbeat nor CPU time for {timeout:g} s) and was killed"
                self._process.kill()  # the pipe's end-of-file then fails its requests
                return

    def _readable(self) -> None:
        assert self._conn is not None
        try:
            while self._conn.poll():
                self._dispatch(self._conn.recv())
        except (EOFError, OSError):
            self._died()

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, Ready | LoadFailed):
            if self._ready is not None and not self._ready.done():
                if isinstance(message, Ready):
                    self._ready.set_result(message)
                else:
                    self._ready.set_exception(WorkerError(message.message))
            return
        queue = self._streams.get(message.id)
        if queue is not None:  # else the request was cancelled and its last words can go
            queue.put_nowait(message)

    def _close_pipe(self) -> None:
        if self._conn is not None and not self._conn.closed:
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._conn.close()

    def _died(self) -> None:
        """The pipe reached end-of-file: fail what was in flight at once, then reap the process."""
        self._dead = True
        self._close_pipe()
        if self._watch is not None:
            self._watch.cancel()
        reason = self._failure or ("the worker stopped" if self._stopping else "the worker process exited unexpectedly")
        if not self._stopping:
            asyncio.get_running_loop().run_in_executor(None, self._reap, reason)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(WorkerError(reason))
        for queue in self._streams.values():
            queue.put_nowait(WorkerError(reason))
        self._on_exit(self, reason)

    def _reap(self, reason: str) -> None:
        self._process.join()
        code = self._process.exitcode
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        log.error("model '%s': worker process %s: %s (%s)", self.spec.model, self._process.pid, reason, how)

    async def stream(
        self, prompt: str, images: list[np.ndarray], videos: list[np.ndarray], params: SamplingParams
    ) -> AsyncGenerator[Delta | Completion, None]:
        """Yield each choice's new text as the worker produces it, then one `Completion`. Leaving early cancels the request."""
        if self._dead or self._stopping:
            raise WorkerError("the worker is not running")
        request_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams[request_id] = queue
        finished = False
        try:
            await self._send(Generate(request_id, prompt, images, videos, params))
            while True:
                message = await queue.get()
                if isinstance(message, GeneratedText):
                    yield message.delta
                elif isinstance(message, Finished):
                    finished = True
                    yield message.completion
                    return
                elif isinstance(message, Failed):
                    finished = True
                    if message.code is not None:
                        raise RequestRejected(message.message, message.code, message.param)
                    raise GenerationError(message.message)
                else:
                    finished = True
                    raise message
        finally:
            del self._streams[request_id]
            if not finished and not self._stopping:
                self._post(Cancel(request_id))
            if self._trimmer is not None and (images or videos):
                self._trimmer.soon()

    async def _send(self, message: Any) -> None:
        """Send on a thread of its own: a big image must not block the loop while the worker is mid-step."""
        await asyncio.get_running_loop().run_in_executor(self._sender, self._write, message)

    def _post(self, message: Any) -> None:
        self._sender.submit(self._write, message)

    def _write(self, message: Any) -> None:
        if self._conn is None:
            return
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            pass  # the worker is gone; the reader reports it

    async def stop(self, grace: float) -> None:
        """Ask the worker to exit, kill it after `grace` seconds; its memory returns to the system."""
        if self._process is None or self._stopping:
            return
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        self._post(None)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._process.join, grace)
        if self._process.is_alive():
            self._process.kill()
            await loop.run_in_executor(None, self._process.join, 5)
        self._sender.shutdown(wait=False)
        if not self._dead:
            self._died()
