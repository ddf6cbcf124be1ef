"""Configured models: name to entry and family, and lazy loading with one load per model."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from enum import Enum
from pathlib import Path
from typing import Any

from .config import ModelConfig, RouterConfig
from .convert import ConversionError, cache_folder, convert, is_openvino_folder
from .engine import Engine
from .family import Capabilities, Family
from .plugins import FamilyRegistry

log = logging.getLogger(__name__)


class ModelState(str, Enum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class UnknownModel(LookupError):
    pass


class ModelUnavailable(Exception):
    """The model cannot serve now; `retry_after` is when a new load may be tried, in seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class LoadError(Exception):
    """Why a model could not be loaded, in words for its users."""


class ModelHandle:
    """One configured model and its lifecycle: not loaded, loading, ready, failed."""

    def __init__(self, config: ModelConfig, families: FamilyRegistry, cache_dir: Path, retry_s: float) -> None:
        self.config = config
        self._families = families
        self._cache_dir = cache_dir
        self._retry_s = retry_s
        self.state = ModelState.NOT_LOADED
        self.error: str | None = None
        self.load_count = 0
        self.created = int(time.time())
        self.family: Family | None = self._family_if_known()
        self._engine: Engine | None = None
        self._load_task: asyncio.Task[Engine] | None = None
        self._failed_at = 0.0
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
        """The family serving the `model_type` in `folder/config.json`."""
        try:
            model_type = json.loads((folder / "config.json").read_text())["model_type"]
        except (OSError, ValueError, KeyError) as exc:
            raise LoadError(f"cannot read model_type from {folder / 'config.json'}: {exc}") from None
        family = self._families.for_model_type(model_type)
        if family is None:
            raise LoadError(
                f"no installed family serves model_type '{model_type}'; installed families: "
                + ", ".join(f"{f.name} ({', '.join(f.model_types)})" for f in self._families.families.values())
            )
        return family

    async def engine(self) -> Engine:
        """The ready engine, loading the model first if needed; concurrent callers share one load."""
        if self._engine is not None:
            return self._engine
        if self.state is ModelState.FAILED:
            wait = self._failed_at + self._retry_s - time.monotonic()
            if wait > 0:
                raise ModelUnavailable(f"model '{self.name}' failed to load: {self.error}", retry_after=wait)
        if self._load_task is None:
            self._load_task = asyncio.create_task(self._load())
        try:
            return await asyncio.shield(self._load_task)
        except LoadError as exc:
            raise ModelUnavailable(f"model '{self.name}' failed to load: {exc}", retry_after=self._retry_s) from None

    async def _load(self) -> Engine:
        self.state, self.error = ModelState.LOADING, None
        self.load_count += 1
        started = time.monotonic()
        log.info("loading model '%s'", self.name)
        try:
            if self.config.family is not None and self.family is None:
                raise LoadError(self._missing_family())
            folder = await self._model_folder()
            family = self.family = self.family or self._detect(folder)
            pipeline = await asyncio.get_running_loop().run_in_executor(
                None, family.create_pipeline, folder, self.config.device, dict(self.config.ov_config)
            )
        except Exception as exc:  # a broken model must fail alone, whatever broke
            message = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
            self._fail(message)
            self._load_task = None
            raise LoadError(message) from None
        self._engine = Engine(pipeline, self.name)
        self.state = ModelState.READY
        log.info("model '%s' ready in %.1f s", self.name, time.monotonic() - started)
        return self._engine

    def _missing_family(self) -> str:
        return f"family '{self.config.family}' is not installed; installed: {', '.join(self._families.names())}"

    def _fail(self, message: str) -> None:
        self.state, self.error, self._failed_at = ModelState.FAILED, message, time.monotonic()
        log.error("model '%s' failed to load: %s", self.name, message)

    async def _model_folder(self) -> Path:
        if self.config.path is not None:
            if not is_openvino_folder(self.config.path):
                raise LoadError(f"{self.config.path} is not an OpenVINO model folder (no openvino_language_model.xml)")
            return self.config.path
        source = self.config.source or ""
        if is_openvino_folder(Path(source)):
            return Path(source)
        out = cache_folder(self._cache_dir, source, self.config.weight_format)
        log.info("converting '%s' to %s in %s", source, self.config.weight_format.value, out)
        try:
            return await convert(source, out, self.config.weight_format, self.config.trust_remote_code)
        except (ConversionError, OSError) as exc:
            raise LoadError(str(exc)) from None

    def describe(self) -> dict[str, Any]:
        """This model as an entry of `GET /v1/models`."""
        capabilities = self.capabilities
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
        }

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


class ModelRegistry:
    """Every configured model, found by name or alias."""

    def __init__(self, config: RouterConfig, families: FamilyRegistry) -> None:
        server = config.server
        self.handles = [ModelHandle(m, families, server.cache_dir, server.load_retry_s) for m in config.models]
        self._by_name = {name: h for h in self.handles for name in h.config.names}
        self.default = self._by_name[server.default_model] if server.default_model else None

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

    async def load_eager(self) -> None:
        """Load the models marked `load: eager`; a failure is recorded on its model, never raised."""
        eager = [h for h in self.handles if h.config.load == "eager"]
        await asyncio.gather(*(h.engine() for h in eager), return_exceptions=True)

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
