"""What a configured model loads from: its OpenVINO folder (fetched from `source:` when needed), its family
read from the folder's `config.json`, and the `WorkerSpec` its worker process is started with."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .config import ModelConfig, ServerConfig
from .convert import compiled_folder, is_openvino_folder
from .family import Family
from .hub import FetchError, fetch
from .plugins import FamilyRegistry
from .progress import Progress
from .worker.protocol import WorkerSpec

log = logging.getLogger(__name__)


class LoadError(Exception):
    """Why a model could not be loaded, in words for its users."""


async def model_folder(config: ModelConfig, cache_dir: Path, progress: Progress | None = None) -> Path:
    """The model's OpenVINO folder: its `path`, or its `source` as `vlm-router pull` fetches it (an OpenVINO folder as
    it is, a published export downloaded, anything else converted, into `cache_dir`), followed by `progress`."""
    if config.path is not None:
        if not is_openvino_folder(config.path):
            raise LoadError(_not_a_model_folder(config.path))
        return config.path
    try:
        return await fetch(config.source or "", cache_dir, config.weight_format, config.trust_remote_code, progress)
    except FetchError as exc:
        raise LoadError(str(exc)) from None


def _not_a_model_folder(path: Path) -> str:
    """Why `path` cannot be served, and the commands that make a model folder there."""
    what = "it does not exist" if not path.exists() else "no openvino_language_model.xml"
    return (
        f"{path} is not an OpenVINO model folder ({what}): fetch a model into it with `vlm-router pull <Hugging Face id> --out {path}`, "
        f"or build a tiny test model with `vlm-router make-tiny --family qwen2_vl --out {path}`"
    )


def read_model_config(folder: Path) -> dict[str, Any]:
    """The model folder's `config.json`."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {folder / 'config.json'}: {exc}") from None
    if not isinstance(config, dict):
        raise LoadError(f"{folder / 'config.json'} is not a JSON object")
    return config


def detect_family(families: FamilyRegistry, folder: Path) -> Family:
    """The family serving the model in `folder`, by its `config.json`."""
    config = read_model_config(folder)
    family = families.for_config(config)
    if family is None:
        architectures = f" or architectures {config['architectures']}" if config.get("architectures") else ""
        raise LoadError(
            f"no installed family serves model_type '{config.get('model_type')}'{architectures}; installed families: "
            + ", ".join(f"{f.name} ({', '.join(f.model_types)})" for f in families.families.values())
        )
    return family


def known_family(config: ModelConfig, families: FamilyRegistry) -> Family | None:
    """The family before any load: the installed one the entry names, or the one its folder already says."""
    if config.family is not None:
        return families.get(config.family)
    folder = config.path
    if folder is None and config.source and Path(config.source).is_dir():
        folder = Path(config.source)
    try:
        return detect_family(families, folder) if folder is not None else None
    except LoadError:
        return None


def missing_family(config: ModelConfig, families: FamilyRegistry) -> str:
    """Why an entry whose `family:` is not installed cannot load."""
    return f"family '{config.family}' is not installed; installed: {', '.join(families.names())}"


def family_for_model(family: Family, folder: Path) -> Family:
    """`family` as it serves the model in `folder` (its prompt format may depend on the checkpoint)."""
    try:
        return family.for_model(read_model_config(folder))
    except ValueError as exc:
        raise LoadError(f"family '{family.name}' cannot serve {folder}: {exc}") from None


def weights_gb(folder: Path) -> float:
    """What the model's weights take in memory, about: the size of its .bin files."""
    return sum(p.stat().st_size for p in folder.glob("*.bin")) / 1e9


def uses_batching(config: ModelConfig, family: Family | None) -> bool:
    """Continuous batching unless the device, the entry or the family says otherwise (a family not known yet does not).

    NPU runs no `ContinuousBatchingPipeline`, so a model on it gets `VLMPipeline` whatever its entry says, as
    OpenVINO Model Server does.
    """
    if config.device.upper() == "NPU":
        return False
    if config.scheduler.continuous_batching is not None:
        return config.scheduler.continuous_batching
    return family is None or family.continuous_batching


def ov_properties(config: ModelConfig, server: ServerConfig) -> dict[str, Any]:
    """The model's `ov_config` with the compile cache (`CACHE_DIR`) as `server.compile_cache` says.

    `auto` caches for devices other than CPU: CPU compiles a model faster than it reads one back
    (docs/benchmarks.md), GPU and NPU do not. The model's own `CACHE_DIR` wins; `""` turns the cache off.
    """
    properties = dict(config.ov_config)
    cache = server.compile_cache
    if cache is True or (cache == "auto" and not config.device.upper().startswith("CPU")):
        properties.setdefault("CACHE_DIR", str(compiled_folder(server.cache_dir, config.name)))
    if not properties.get("CACHE_DIR", True):
        del properties["CACHE_DIR"]
    return properties


def worker_spec(config: ModelConfig, server: ServerConfig, family: Family, folder: Path) -> WorkerSpec:
    """What the model's worker process loads: `folder` served by `family`, batched or one request at a time."""
    batching = uses_batching(config, family)
    if config.scheduler.continuous_batching and not batching:
        log.warning("model '%s': %s runs no continuous batching; serving one request at a time (VLMPipeline)", config.name, config.device)
    scheduler = config.scheduler.scheduler_config() if batching else None
    return WorkerSpec(config.name, str(folder), config.device, family, ov_properties(config, server), scheduler)
