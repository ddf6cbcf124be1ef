"""Configured models: name to entry and family, lazy loading into worker processes, and unloading."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from enum import Enum
from pathlib import Path
from typing import Any

from .config import ModelConfig, RouterConfig, ServerConfig
from .convert import ConversionError, cache_folder, compiled_folder, convert, is_openvino_folder
from .family import Capabilities, Family
from .plugins import FamilyRegistry
from .worker.client import WorkerEngine, WorkerError
from .worker.heap import HeapTrimmer
from .worker.protocol import WorkerSpec

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


class LoadError(Exception):
    """Why a model could not be loaded, in words for its users."""


class _NoRoom(Exception):
    """Every loaded model is busy, so none can be unloaded to make room."""


class ModelHandle:
    """One configured model and its lifecycle: not loaded, loading, ready (a worker runs it), failed."""

    def __init__(self, config: ModelConfig, families: FamilyRegistry, server: ServerConfig, registry: ModelRegistry) -> None:
        self.config = config
        self._families = families
        self._server = server
        self._registry = registry
        self.state = ModelState.NOT_LOADED
        self.error: str | None = None
        self.load_count = 0
        self.load_failures = 0
        self.restarts = 0
        self.created = int(time.time())
        self.last_used = 0.0
        self.memory_gb = 0.0
        self.in_flight = 0
        self.family: Family | None = self._family_if_known()
        self._engine: WorkerEngine | None = None
        self._load_task: asyncio.Task[WorkerEngine] | None = None
        self._failed_at = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # unloads and replacements in the background, held until they end
        if config.family is not None and self.family is None:
            self._fail(self._missing_family())

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
        return self._engine is not None or self.state is ModelState.LOADING

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while the model is loaded."""
        return None if self._engine is None else self._engine.pid

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
        batching = self._engine.batching if self._engine is not None else self._batching(self.family)
        return self.config.scheduler.max_num_seqs if batching else 1

    def _batching(self, family: Family | None) -> bool:
        """Continuous batching unless the entry or the family says otherwise (a family not known yet does not)."""
        if self.config.scheduler.continuous_batching is not None:
            return self.config.scheduler.continuous_batching
        return family is None or family.continuous_batching

    def _family_if_known(self) -> Family | None:
        """The family, when the entry names an installed one or its folder already says which."""
        if self.config.family is not None:
            return self._families.get(self.config.family)
        folder = self.config.path
        if folder is None and self.config.source and Path(self.config.source).is_dir():
            folder = Path(self.config.source)
        try:
            return self._detect(folder) if folder is not None else None
        except LoadError:
            return None

    def _detect(self, folder: Path) -> Family:
        """The family serving the model in `folder`, by its `config.json`."""
        config = _model_config(folder)
        family = self._families.for_config(config)
        if family is None:
            architectures = f" or architectures {config['architectures']}" if config.get("architectures") else ""
            raise LoadError(
                f"no installed family serves model_type '{config.get('model_type')}'{architectures}; installed families: "
                + ", ".join(f"{f.name} ({', '.join(f.model_types)})" for f in self._families.families.values())
            )
        return family

    async def engine(self) -> WorkerEngine:
        """The running worker, started first if needed; concurrent callers share one load."""
        if self._engine is not None:
            return self._engine
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

    async def _load(self) -> WorkerEngine:
        self.state, self.error = ModelState.LOADING, None
        self.load_count += 1
        started = time.monotonic()
        try:
            if self.config.family is not None and self.family is None:
                raise LoadError(self._missing_family())
            folder = await self._model_folder()
            family = self.family = _for_model(self.family or self._detect(folder), folder)
            self.memory_gb = _weights_gb(folder) + self.config.scheduler.cache_size_gb
            await self._registry.make_room(self)
            log.info("loading model '%s' from %s", self.name, folder)
            engine = WorkerEngine(
                self._spec(family, folder), self._worker_exited, self._server.worker_stall_timeout_s, self._registry.trimmer
            )
            await engine.start(self._server.worker_start_timeout_s)
        except _NoRoom:
            self.state, self._load_task = ModelState.NOT_LOADED, None
            raise
        except Exception as exc:  # a broken model must fail alone, whatever broke
            message = str(exc) if isinstance(exc, LoadError | WorkerError) else f"{type(exc).__name__}: {exc}"
            self._fail(message)
            self._load_task = None
            raise LoadError(message) from None
        self._engine, self.state = engine, ModelState.READY
        self.last_used = time.monotonic()
        seconds = self.last_used - started
        mode = "continuous batching" if engine.batching else "one request at a time"
        log.info("model '%s' ready in %.1f s (worker %d, %s)", self.name, seconds, engine.pid, mode)
        if self._registry.on_load is not None:
            self._registry.on_load(self.name, seconds)
        return engine

    def _spec(self, family: Family, folder: Path) -> WorkerSpec:
        scheduler = self.config.scheduler.scheduler_config() if self._batching(family) else None
        ov_config = dict(self.config.ov_config)
        cache = self._server.compile_cache
        # auto: CPU compiles a model faster than it reads one back (docs/benchmarks.md); GPU and NPU do not
        if cache is True or (cache == "auto" and not self.config.device.upper().startswith("CPU")):
            ov_config.setdefault("CACHE_DIR", str(compiled_folder(self._server.cache_dir, self.name)))  # the model's own wins
        if not ov_config.get("CACHE_DIR", True):  # "" turns the cache off for this model
            del ov_config["CACHE_DIR"]
        return WorkerSpec(self.name, str(folder), self.config.device, family, ov_config, scheduler)

    def _missing_family(self) -> str:
        return f"family '{self.config.family}' is not installed; installed: {', '.join(self._families.names())}"

    def _fail(self, message: str) -> None:
        self.state, self.error, self._failed_at = ModelState.FAILED, message, time.monotonic()
        self.load_failures += 1
        log.error("model '%s' failed to load: %s", self.name, message)

    async def _model_folder(self) -> Path:
        if self.config.path is not None:
            if not is_openvino_folder(self.config.path):
                raise LoadError(f"{self.config.path} is not an OpenVINO model folder (no openvino_language_model.xml)")
            return self.config.path
        source = self.config.source or ""
        if is_openvino_folder(Path(source)):
            return Path(source)
        out = cache_folder(self._server.cache_dir, source, self.config.weight_format)
        log.info("converting '%s' to %s in %s", source, self.config.weight_format.value, out)
        try:
            return await convert(source, out, self.config.weight_format, self.config.trust_remote_code)
        except (ConversionError, OSError) as exc:
            raise LoadError(str(exc)) from None

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
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    def release(self) -> None:
        """A request admitted by `admit()` is over; an idle model starts its keep-alive countdown."""
        self.in_flight -= 1
        self.last_used = time.monotonic()
        if self.in_flight == 0:
            self._recycle_if_grown()
        if self.in_flight == 0 and self.config.keep_alive_s is not None:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self.config.keep_alive_s, self._expire)

    def _expire(self) -> None:
        """The keep-alive timer ran out with no request in between: unload in the background."""
        if self.in_flight == 0 and self._engine is not None:
            log.info("model '%s' idle for %.0f s: unloading", self.name, time.monotonic() - self.last_used)
            self._in_background(self.unload())

    def _recycle_if_grown(self) -> None:
        """Replace the idle worker if it grew `recycle_growth_gb` past its warm size (the first time it was idle).

        What large requests leave allocated inside OpenVINO (buffers sized for the largest input, the
        KV cache) is not freed when they end; only a new process gives it back. The size once loaded
        would not do: the weights are mapped from disk and come in with the first requests.
        """
        engine, limit = self._engine, self.config.recycle_growth_gb
        rss = None if engine is None or limit is None else engine.rss
        if engine is None or limit is None or rss is None:
            return
        if engine.warm_rss is None:
            engine.warm_rss = rss
            return
        if rss - engine.warm_rss < limit * 1e9:
            return
        log.info(
            "model '%s': worker %s holds %.2f GB, %.2f GB more than once warm: replacing it to give the memory back",
            self.name, engine.pid, rss / 1e9, (rss - engine.warm_rss) / 1e9,
        )  # fmt: skip
        self._in_background(self._replace(engine))

    async def _replace(self, engine: WorkerEngine) -> None:
        """Stop `engine` if it is still this model's and idle, then start a new worker."""
        if engine is self._engine and self.in_flight == 0:
            await self.unload()
            await self.engine()

    def _in_background(self, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a failed load is on the model already
            log.debug("model '%s': background task failed: %s", self.name, task.exception())

    async def unload(self, grace: float = UNLOAD_GRACE_S) -> None:
        """Stop the worker (killed after `grace` s); its memory returns to the system and the next request loads the model again."""
        engine, self._engine, self._load_task = self._engine, None, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if engine is not None:
            self.state, self.error = ModelState.NOT_LOADED, None
            await engine.stop(grace=grace)

    async def close(self, grace: float) -> None:
        """Stop what runs in the background, then the worker."""
        for task in self._tasks:
            task.cancel()
        await self.unload(grace)

    def _worker_exited(self, engine: WorkerEngine, reason: str) -> None:
        if engine is not self._engine:
            return  # unloaded on purpose, or an older worker
        self._engine, self._load_task = None, None
        self.state, self.error = ModelState.NOT_LOADED, reason
        self.restarts += 1
        self._in_background(self.engine())  # its replacement

    def describe(self) -> dict[str, Any]:
        """This model as an entry of `GET /v1/models`."""
        capabilities = self.capabilities
        engine = self._engine
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "vlm-router",
            "aliases": self.config.aliases,
            "family": self.family.name if self.family else self.config.family,
            "device": self.config.device,
            "capabilities": capabilities.as_dict() if capabilities else None,
            "state": self.state.value,
            "error": self.error,
            "engine": None if engine is None else ("continuous_batching" if engine.batching else "sequential"),
            "pid": self.worker_pid,
            "running": self.running,
            "waiting": self.waiting,
            "restarts": self.restarts,
            "memory_gb": round(self.memory_gb, 3) if self.occupies_memory else 0,
            "idle_s": round(time.monotonic() - self.last_used, 1) if engine is not None else None,
            "keep_alive_s": self.config.keep_alive_s,
        }


def _model_config(folder: Path) -> dict[str, Any]:
    """The model folder's `config.json`."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {folder / 'config.json'}: {exc}") from None
    if not isinstance(config, dict):
        raise LoadError(f"{folder / 'config.json'} is not a JSON object")
    return config


def _for_model(family: Family, folder: Path) -> Family:
    """`family` as it serves the model in `folder` (its prompt format may depend on the checkpoint)."""
    try:
        return family.for_model(_model_config(folder))
    except ValueError as exc:
        raise LoadError(f"family '{family.name}' cannot serve {folder}: {exc}") from None


def _weights_gb(folder: Path) -> float:
    """What the model's weights take in memory, about: the size of its .bin files."""
    return sum(p.stat().st_size for p in folder.glob("*.bin")) / 1e9


class ModelRegistry:
    """Every configured model, found by name or alias; keeps loaded models within the server's limits."""

    def __init__(self, config: RouterConfig, families: FamilyRegistry) -> None:
        self._server = config.server
        #: Called with a model's name and the seconds its load took (conversion included), after each load.
        self.on_load: Callable[[str, float], None] | None = None
        self.handles = [ModelHandle(m, families, config.server, self) for m in config.models]
        self._by_name = {name: h for h in self.handles for name in h.config.names}
        self.default = self._by_name[self._server.default_model] if self._server.default_model else None
        self._room = asyncio.Lock()
        self.trimmer = HeapTrimmer()

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
        """Unload least recently used idle models until `incoming` fits `max_loaded_models` and the memory budget."""
        budget, most = self._server.memory_budget_gb, self._server.max_loaded_models
        if budget is not None and incoming.memory_gb > budget:
            raise LoadError(f"needs about {incoming.memory_gb:.1f} GB, over the memory budget of {budget:g} GB")
        async with self._room:
            while True:
                loaded = [h for h in self.handles if h is not incoming and h.occupies_memory]
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

    async def load_eager(self) -> None:
        """Load the models marked `load: eager`; a failure is recorded on its model, never raised."""
        eager = [h for h in self.handles if h.config.load == "eager"]
        await asyncio.gather(*(h.engine() for h in eager), return_exceptions=True)

    async def close(self, grace: float = UNLOAD_GRACE_S) -> None:
        """Stop every model's worker, killing those still running after `grace` seconds."""
        await asyncio.gather(*(h.close(grace) for h in self.handles))
