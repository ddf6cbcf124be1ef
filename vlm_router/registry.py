"""Configured models by name, each one's lifecycle (lazy load, admission, keep-alive, unload), and the server's limits on loaded ones."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from enum import Enum

from . import loading
from .background import Background
from .config import ModelConfig, RouterConfig, ServerConfig
from .family import Capabilities, Family
from .loading import LoadError
from .plugins import FamilyRegistry
from .progress import Progress
from .worker.client import Worker, WorkerError
from .worker.heap import HeapTrimmer

log = logging.getLogger(__name__)

#: Seconds a worker gets to finish its current step when its model is unloaded.
UNLOAD_GRACE_S = 10.0


class ModelState(str, Enum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class UnknownModel(LookupError):
    pass


class ModelUnavailable(Exception):
    """The model cannot serve now; `retry_after` says in how many seconds to try again."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Overloaded(ModelUnavailable):
    """Too many requests wait for this model."""


class _NoRoom(Exception):
    """Every loaded model is busy, so none can be unloaded to make room."""


class ModelHandle:
    """One configured model and its lifecycle: not loaded, loading, ready (a worker runs it), failed.

    `make_room` is awaited before a worker starts, to unload others until this model fits; `on_load` is
    told the model's name and the seconds each load took; `trimmer` goes to the model's workers.
    """

    def __init__(
        self,
        config: ModelConfig,
        families: FamilyRegistry,
        server: ServerConfig,
        *,
        make_room: Callable[[ModelHandle], Awaitable[None]],
        on_load: Callable[[str, float], None],
        trimmer: HeapTrimmer | None = None,
    ) -> None:
        self.config = config
        self._families = families
        self._server = server
        self._make_room = make_room
        self._on_load = on_load
        self._trimmer = trimmer
        self.state = ModelState.NOT_LOADED
        self.error: str | None = None
        self.load_count = 0
        self.load_failures = 0
        self.restarts = 0
        self.created = int(time.time())
        self.last_used = 0.0
        self.memory_gb = 0.0
        #: How far its latest load got: a `source:` download or conversion, then compiling (the worker starting).
        self.progress: Progress | None = None
        self.in_flight = 0
        self._no_requests = asyncio.Event()  # set while `in_flight` is 0, for `drain()`
        self._no_requests.set()
        self.family: Family | None = loading.known_family(config, families)
        self._worker: Worker | None = None
        self._load_task: asyncio.Task[Worker] | None = None
        self._failed_at = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._background = Background(f"model '{config.name}'")  # unloads and replacements
        if config.family is not None and self.family is None:
            self._fail(loading.missing_family(config, families))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def capabilities(self) -> Capabilities | None:
        if self.family is None:
            return None
        return self.family.capabilities.overridden(self.config.capabilities)

    @property
    def occupies_memory(self) -> bool:
        return self._worker is not None or self.state is ModelState.LOADING

    @property
    def current_worker(self) -> Worker | None:
        """The running worker while the model is loaded."""
        return self._worker

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while the model is loaded."""
        return None if self._worker is None else self._worker.pid

    @property
    def running(self) -> int:
        """Requests in flight, up to what the model runs at once."""
        return min(self.in_flight, self.capacity)

    @property
    def waiting(self) -> int:
        """Requests in flight beyond what the model runs at once: queued for a slot."""
        return self.in_flight - self.running

    @property
    def capacity(self) -> int:
        """Requests the worker runs at once."""
        batching = self._worker.batching if self._worker is not None else loading.uses_batching(self.config, self.family)
        return self.config.scheduler.max_num_seqs if batching else 1

    async def worker(self) -> Worker:
        """The running worker, started first if needed; concurrent callers share one load."""
        if self._worker is not None:
            return self._worker
        if self.state is ModelState.FAILED:
            wait = self._failed_at + self._server.load_retry_s - time.monotonic()
            if wait > 0:
                raise ModelUnavailable(f"model '{self.name}' failed to load: {self.error}", retry_after=wait)
        if self._load_task is None:
            self._load_task = asyncio.create_task(self._load())
        try:
            return await asyncio.shield(self._load_task)
        except LoadError as exc:
            raise ModelUnavailable(f"model '{self.name}' failed to load: {exc}", retry_after=self._server.load_retry_s) from None
        except _NoRoom as exc:
            raise ModelUnavailable(str(exc), retry_after=5) from None

    async def _load(self) -> Worker:
        self.state, self.error = ModelState.LOADING, None
        self.load_count += 1
        started = time.monotonic()
        try:
            if self.config.family is not None and self.family is None:
                raise LoadError(loading.missing_family(self.config, self._families))
            self.progress = Progress(self.name)
            folder = await loading.model_folder(self.config, self._server.cache_dir, self.progress)
            family = self.family = loading.family_for_model(self.family or loading.detect_family(self._families, folder), folder)
            self.memory_gb = loading.weights_gb(folder) + self.config.scheduler.cache_size_gb
            await self._make_room(self)
            self.progress.begin("compiling")
            log.info("loading model '%s' from %s", self.name, folder)
            spec = loading.worker_spec(self.config, self._server, family, folder)
            worker = Worker(spec, self._worker_exited, self._server.worker_stall_timeout_s, self._trimmer)
            await worker.start(self._server.worker_start_timeout_s)
        except _NoRoom:
            self.state, self._load_task = ModelState.NOT_LOADED, None
            raise
        except Exception as exc:  # a broken model must fail alone, whatever broke
            message = str(exc) if isinstance(exc, LoadError | WorkerError) else f"{type(exc).__name__}: {exc}"
            self._fail(message)
            self._load_task = None
            raise LoadError(message) from None
        self._worker, self.state = worker, ModelState.READY
        self.last_used = time.monotonic()
        seconds = self.last_used - started
        mode = "continuous batching" if worker.batching else "one request at a time"
        log.info("model '%s' ready in %.1f s (worker %d, %s)", self.name, seconds, worker.pid, mode)
        self._on_load(self.name, seconds)
        return worker

    def _fail(self, message: str) -> None:
        self.state, self.error, self._failed_at = ModelState.FAILED, message, time.monotonic()
        self.load_failures += 1
        log.error("model '%s' failed to load: %s", self.name, message)

    def admit(self) -> None:
        """Count a request in flight until `release()`; past the running ones plus `max_waiting`, raise `Overloaded`.

        A model with requests in flight is never unloaded, so a request is admitted before it waits
        for the load or its media.
        """
        if self.in_flight >= self.capacity + self.config.max_waiting:
            raise Overloaded(
                f"model '{self.name}' is at capacity: {self.capacity} running and {self.config.max_waiting} waiting",
                retry_after=1,
            )
        self.in_flight += 1
        self._no_requests.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    def release(self) -> None:
        """A request admitted by `admit()` is over; an idle model starts its keep-alive countdown."""
        self.in_flight -= 1
        self.last_used = time.monotonic()
        if self.in_flight == 0:
            self._no_requests.set()
            self._recycle_if_grown()
        if self.in_flight == 0 and self.config.keep_alive_s is not None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self.config.keep_alive_s, self._expire)

    def _expire(self) -> None:
        """The keep-alive timer ran out with no request in between: unload in the background."""
        if self.in_flight == 0 and self._worker is not None:
            log.info("model '%s' idle for %.0f s: unloading", self.name, time.monotonic() - self.last_used)
            self._background.run(self.unload())

    def _recycle_if_grown(self) -> None:
        """Replace the idle worker if it grew `recycle_growth_gb` past its warm size (the first time it was idle).

        What large requests leave allocated inside OpenVINO (buffers sized for the largest input, the
        KV cache) is not freed when they end; only a new process gives it back. The size once loaded
        would not do: the weights are mapped from disk and come in with the first requests.
        """
        worker, limit = self._worker, self.config.recycle_growth_gb
        rss = None if worker is None or limit is None else worker.rss
        if worker is None or limit is None or rss is None:
            return
        if worker.warm_rss is None:
            worker.warm_rss = rss
            return
        if rss - worker.warm_rss < limit * 1e9:
            return
        log.info(
            "model '%s': worker %s holds %.2f GB, %.2f GB more than once warm: replacing it to give the memory back",
            self.name, worker.pid, rss / 1e9, (rss - worker.warm_rss) / 1e9,
        )  # fmt: skip
        self._background.run(self._replace(worker))

    async def _replace(self, worker: Worker) -> None:
        """Stop `worker` if it is still this model's and idle, then start a new one."""
        if worker is self._worker and self.in_flight == 0:
            await self.unload()
            await self.worker()

    async def unload(self, grace: float = UNLOAD_GRACE_S) -> None:
        """Stop the worker (killed after `grace` s); its memory returns to the system and the next request loads the model again."""
        worker, self._worker, self._load_task = self._worker, None, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if worker is not None:
            self.state, self.error = ModelState.NOT_LOADED, None
            await worker.stop(grace=grace)

    async def close(self, grace: float) -> None:
        """Stop what runs in the background, then the worker."""
        self._background.cancel()
        await self.unload(grace)

    async def drain(self) -> None:
        """For a model no longer served: wait until no request is in flight and no load runs, then `close()` it."""
        while True:
            load = self._load_task
            if self.in_flight:
                await self._no_requests.wait()
            elif load is not None and not load.done():
                await asyncio.wait([load])
            else:
                break
        await self.close(UNLOAD_GRACE_S)

    def _worker_exited(self, worker: Worker, reason: str) -> None:
        if worker is not self._worker:
            return  # unloaded on purpose, or an older worker
        self._worker, self._load_task = None, None
        self.state, self.error = ModelState.NOT_LOADED, reason
        self.restarts += 1
        self._background.run(self.worker())  # its replacement


class ModelRegistry:
    """Every configured model, found by name or alias; keeps loaded models within the server's limits."""

    def __init__(self, config: RouterConfig, families: FamilyRegistry) -> None:
        self._server = config.server
        self._families = families
        #: Called with a model's name and the seconds its load took (conversion included), after each load.
        self.on_load: Callable[[str, float], None] | None = None
        self._trimmer = HeapTrimmer()  # the router's one heap, trimmed after requests for any model
        self._room = asyncio.Lock()
        #: Handles no longer served, each with the task that drains it (`ModelHandle.drain`).
        self._retiring: dict[ModelHandle, asyncio.Task[None]] = {}
        #: The drains of the handles a new handle replaces: its first load waits for them.
        self._predecessors: dict[ModelHandle, list[asyncio.Task[None]]] = {}
        self._background = Background("models")  # eager loads and the drains after `apply`
        self._serve([self._handle(m) for m in config.models], self._server.default_model)

    def _handle(self, model: ModelConfig) -> ModelHandle:
        return ModelHandle(model, self._families, self._server, make_room=self.make_room, on_load=self._loaded, trimmer=self._trimmer)

    def _serve(self, handles: list[ModelHandle], default: str | None) -> None:
        """Route requests to `handles`, and those naming no model to the one called `default`."""
        self.handles = handles
        self._by_name = {name: h for h in handles for name in h.config.names}
        self.default = self._by_name[default] if default else None

    @property
    def every_handle(self) -> list[ModelHandle]:
        """The served handles and those still draining after a reload."""
        return [*self.handles, *self._retiring]

    def apply(self, config: RouterConfig, keep: Collection[str]) -> list[ModelHandle]:
        """Serve `config`'s models from now on: those named in `keep` by their current handle, the others by new ones.

        A handle no longer served takes no new request; its requests in flight end on its worker, which then
        stops. A new handle of the same name loads only after that. New `load: eager` models start loading.
        Returns the new handles.
        """
        kept = {h.name: h for h in self.handles if h.name in keep}
        new = [self._handle(m) for m in config.models if m.name not in kept]
        for old in self.handles:
            if old.name not in kept:
                self._retiring[old] = self._background.run(self._retire(old))
        for handle in new:
            self._predecessors[handle] = [task for old, task in self._retiring.items() if old.name == handle.name]
        served = {**kept, **{h.name: h for h in new}}
        self._serve([served[m.name] for m in config.models], config.server.default_model)
        self._background.run(self.load_eager(new))
        return new

    async def _retire(self, handle: ModelHandle) -> None:
        await handle.drain()
        log.info("model '%s' of the previous configuration has finished its requests and stopped", handle.name)
        del self._retiring[handle]
        self._predecessors.pop(handle, None)

    def _loaded(self, model: str, seconds: float) -> None:
        """A model's load took `seconds`: tell `on_load`, whoever set it since."""
        if self.on_load is not None:
            self.on_load(model, seconds)

    def get(self, name: str | None) -> ModelHandle:
        """The model called `name`, or the default model when `name` is empty."""
        if not name:
            if self.default is None:
                raise UnknownModel("no model given and no default model is configured")
            return self.default
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownModel(f"model '{name}' does not exist; available: {', '.join(h.name for h in self.handles)}") from None

    async def make_room(self, incoming: ModelHandle) -> None:
        """Wait for the handles `incoming` replaces after a reload to stop, then unload least recently used idle models
        until `incoming` fits `max_loaded_models` and the memory budget."""
        budget, most = self._server.memory_budget_gb, self._server.max_loaded_models
        if budget is not None and incoming.memory_gb > budget:
            raise LoadError(f"needs about {incoming.memory_gb:.1f} GB, over the memory budget of {budget:g} GB")
        if predecessors := self._predecessors.pop(incoming, None):
            log.info("model '%s': waiting for the requests in flight on its previous configuration", incoming.name)
            await asyncio.wait(predecessors)
        async with self._room:
            while True:
                loaded = [h for h in self.every_handle if h is not incoming and h.occupies_memory]
                over_count = most is not None and len(loaded) >= most
                over_memory = budget is not None and sum(h.memory_gb for h in loaded) + incoming.memory_gb > budget
                if not (over_count or over_memory):
                    return
                idle = [h for h in loaded if h.in_flight == 0 and h.state is ModelState.READY]
                if not idle:
                    raise _NoRoom(f"cannot load model '{incoming.name}' now: every loaded model is busy; retry shortly")
                victim = min(idle, key=lambda h: h.last_used)
                log.info("unloading model '%s' (least recently used) to make room for '%s'", victim.name, incoming.name)
                await victim.unload()

    def start(self) -> None:
        """Begin loading the `load: eager` models; the server answers meanwhile."""
        self._background.run(self.load_eager())

    async def load_eager(self, handles: Iterable[ModelHandle] | None = None) -> None:
        """Load the models of `handles` (default: all) marked `load: eager`; a failure is recorded on its model, never raised."""
        eager = [h for h in (self.handles if handles is None else handles) if h.config.load == "eager"]
        await asyncio.gather(*(h.worker() for h in eager), return_exceptions=True)

    async def close(self, grace: float = UNLOAD_GRACE_S) -> None:
        """Stop every model's worker, draining ones included, killing those still running after `grace` seconds."""
        self._background.cancel()
        await asyncio.gather(*(h.close(grace) for h in self.every_handle))
