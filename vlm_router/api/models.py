"""`GET /v1/models` and `GET /v1/models/{model}`: each configured model as OpenAI lists it, plus its family,
capabilities and worker."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from ..config import VideoSupport
from ..progress import Phase
from ..registry import ModelHandle, ModelState

# Numbers typed `int | float` are shown as they are set: a whole number stays one in the JSON.


class ModelCapabilities(BaseModel):
    """What the model takes: its family's `Capabilities` with the entry's overrides."""

    model_config = ConfigDict(from_attributes=True)

    images: bool
    max_images: int | None
    video: VideoSupport
    max_frames: int | None
    video_fps: int | float
    max_aspect_ratio: int | float | None
    max_image_pixels: int | None
    min_image_pixels: int | None
    low_detail_pixels: int | None
    image_grid: int | None
    image_tile: int | None
    max_request_image_pixels: int | None


class LoadProgress(BaseModel):
    """What a loading model is doing: `downloading`, `converting` or `compiling` (None before the first of them:
    finding the folder, unloading others to make room), and how much of a download has arrived, 0 to 1, where known."""

    phase: Phase | None
    progress: float | None

    @classmethod
    def of(cls, handle: ModelHandle) -> LoadProgress | None:
        """The model's load while it runs, else None."""
        progress = handle.progress
        if handle.state is not ModelState.LOADING or progress is None:
            return None
        fraction = progress.fraction
        return cls(phase=progress.phase, progress=None if fraction is None else round(fraction, 3))


class ModelCard(BaseModel):
    """One model: OpenAI's model object, then its family, capabilities, state and worker."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: Literal["vlm-router"] = "vlm-router"
    aliases: list[str]
    family: str | None
    device: str
    capabilities: ModelCapabilities | None
    state: ModelState
    loading: LoadProgress | None
    #: Why the last load failed, or why the last worker stopped.
    error: str | None
    #: How the running worker serves requests; None while the model is not loaded.
    engine: Literal["continuous_batching", "sequential"] | None
    pid: int | None
    running: int
    waiting: int
    restarts: int
    #: Estimated weights plus KV cache while the model is loaded or loading, else 0.
    memory_gb: int | float
    #: Seconds since the last request ended, while the model is loaded.
    idle_s: float | None
    keep_alive_s: float | None

    @classmethod
    def of(cls, handle: ModelHandle) -> ModelCard:
        capabilities = handle.capabilities
        worker = handle.current_worker
        return cls(
            id=handle.name,
            created=handle.created,
            aliases=handle.config.aliases,
            family=handle.family.name if handle.family else handle.config.family,
            device=handle.config.device,
            capabilities=ModelCapabilities.model_validate(capabilities) if capabilities else None,
            state=handle.state,
            loading=LoadProgress.of(handle),
            error=handle.error,
            engine=None if worker is None else ("continuous_batching" if worker.batching else "sequential"),
            pid=handle.worker_pid,
            running=handle.running,
            waiting=handle.waiting,
            restarts=handle.restarts,
            memory_gb=round(handle.memory_gb, 3) if handle.occupies_memory else 0,
            idle_s=round(time.monotonic() - handle.last_used, 1) if worker is not None else None,
            keep_alive_s=handle.config.keep_alive_s,
        )


class ModelList(BaseModel):
    """The body of `GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def list_response(handles: Iterable[ModelHandle]) -> web.Response:
    """`GET /v1/models`: every configured model."""
    return _json(ModelList(data=[ModelCard.of(handle) for handle in handles]))


def model_response(handle: ModelHandle) -> web.Response:
    """`GET /v1/models/{model}`: the one model."""
    return _json(ModelCard.of(handle))


def _json(body: BaseModel) -> web.Response:
    return web.json_response(body.model_dump(mode="json"))
