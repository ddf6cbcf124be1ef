"""The messages between the router and a model's worker process, and what the worker is told to load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..family import Family
from ..generation import Completion, Delta, SamplingParams


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to load its model; `scheduler` is None for one request at a time.

    `family` travels to the worker process (pickled, its class imported there) and builds the pipeline.
    """

    model: str
    model_dir: str
    device: str
    family: Family
    ov_config: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] | None = None


# Router to worker. `None` asks the worker to finish its requests' current step and exit.


@dataclass(frozen=True)
class Generate:
    id: int
    prompt: str
    images: list[np.ndarray]
    videos: list[np.ndarray]
    params: SamplingParams


@dataclass(frozen=True)
class Cancel:
    """The client left: stop the request and free its KV cache."""

    id: int


# Worker to router.


@dataclass(frozen=True)
class Ready:
    pid: int
    batching: bool


@dataclass(frozen=True)
class LoadFailed:
    message: str


@dataclass(frozen=True)
class GeneratedText:
    """New text of one choice of a request, generated since the last."""

    id: int
    delta: Delta


@dataclass(frozen=True)
class Finished:
    id: int
    completion: Completion


@dataclass(frozen=True)
class Failed:
    """The worker refused one request as asked (`code` says why, `param` names the field) or the pipeline broke on it.

    Either way the worker goes on serving the others.
    """

    id: int
    message: str
    code: str | None = None
    param: str | None = None
