"""`models.yaml`: its schema, loading, and the original service's environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PORT = 9764
_DEVICE = re.compile(r"^(CPU|NPU|GPU(\.\d+)?|(AUTO|HETERO|MULTI)(:[A-Z0-9.,]+)?)$")


class ConfigError(Exception):
    """`models.yaml` (or an environment variable) is wrong; the message names where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    cache_dir: Path = Path("ov-model")
    compile_cache: Literal["auto"] | bool = Field(
        "auto", description="Keep compiled models in <cache_dir>/compiled/<model>; auto: for devices other than CPU."
    )
    default_model: str | None = None
    load_retry_s: float = Field(30.0, ge=0, description="Wait before retrying a model that failed to load.")
    max_loaded_models: int | None = Field(None, ge=1, description="Loading one more first unloads the least recently used idle model.")
    memory_budget_gb: float | None = Field(None, gt=0, description="Estimated memory of loaded models (weights plus KV cache) stays under this.")
    worker_start_timeout_s: float = Field(900.0, gt=0)
    worker_stall_timeout_s: float | None = Field(
        30.0, gt=0, description="A worker with no heartbeat nor CPU time for this long is killed, failing its requests (503), and replaced."
    )
    shutdown_grace_s: float = Field(30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish.")
    api_keys: list[Annotated[str, Field(min_length=8)]] = Field(
        default_factory=list, description="Bearer tokens a client must send; none: no authentication. VLM_API_KEYS adds more."
    )
    admin_keys: list[Annotated[str, Field(min_length=8)]] = Field(
        default_factory=list, description="Bearer tokens of the /v1/admin/ endpoints; none: those answer 403. VLM_ADMIN_KEYS adds more."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins browsers may call from ('*' for any); none: requests with an Origin are refused (403)."
    )
    allowed_host_names: list[str] = Field(
        default_factory=list,
        description="Host header names answered besides loopback ones ('*' for any); none: any unless bound to loopback.",
    )
    ui: bool = Field(True, description="Serve the browser playground at `/`. VLM_UI=false turns it off.")
    header_timeout_s: float = Field(15.0, gt=0, description="A request's headers must arrive within this of the connection's start or last answer.")
    body_timeout_s: float = Field(30.0, gt=0, description="The longest pause while a request's body arrives (408).")
    max_connections: int = Field(
        1000, ge=1, description="Open client connections (at most half the open-file limit); one more closes the longest idle."
    )


class MediaConfig(_Strict):
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names, addresses or CIDR ranges media URLs may be fetched from even when private or loopback.",
    )
    allow_private_networks: bool = Field(False, description="Fetch media from private, loopback and link-local addresses too.")
    local_dir: Path | None = Field(None, description="A folder whose files `file://` URLs and paths may name; none: local files refused.")
    max_messages: int = Field(512, ge=1, description="Messages one request may have.")
    max_media_bytes_per_request: int = Field(256 * 2**20, gt=0, description="Bytes of all images and videos of one request together.")
    fetch_timeout_s: float = Field(10.0, gt=0)
    max_image_bytes: int = Field(20 * 2**20, gt=0)
    max_image_pixels: int = Field(40_000_000, gt=0, description="Pixels of one image, from its header; also what decoding holds at once.")
    max_pixels_per_request: int = Field(
        128_000_000, gt=0, description="Decoded pixels of all images and frames of one request together, from their headers."
    )
    max_images_per_request: int = Field(16, ge=0)
    max_request_bytes: int = Field(64 * 2**20, gt=0)
    max_videos_per_request: int = Field(4, ge=0)
    max_video_bytes: int = Field(64 * 2**20, gt=0)
    max_video_duration_s: float = Field(600.0, gt=0)
    max_video_frames: int = Field(64, ge=1, description="Frames sampled from one video, at most.")
    video_max_pixels: int = Field(360 * 420, ge=784, description="Pixels per sampled frame when a request does not say.")
    max_video_pixels: int = Field(1280 * 720, ge=784, description="The largest `max_pixels` a request may ask for.")


class VideoSupport(str, Enum):
    NATIVE = "native"
    FRAMES = "frames"
    NONE = "none"


class CapabilityOverrides(_Strict):
    """Per-model narrowing or widening of the family's capabilities."""

    images: bool | None = None
    max_images: int | None = Field(None, ge=0)
    video: VideoSupport | None = None
    max_frames: int | None = Field(None, ge=1)
    video_fps: float | None = Field(None, gt=0)
    max_image_pixels: int | None = Field(
        None, ge=784, description="The image budget: larger images are scaled down to this before the model sees them."
    )
    min_image_pixels: int | None = Field(None, ge=784, description="Smaller images are scaled up to this before the model sees them.")
    low_detail_pixels: int | None = Field(None, ge=784, description="The budget of an image sent with `detail: low`.")
    max_request_image_pixels: int | None = Field(
        None, ge=784, description="All images of a request together; more are scaled down by one factor before the model sees them."
    )


class GenerationDefaults(_Strict):
    """Generation parameters applied when a request leaves them out."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = Field(None, ge=0)


class SchedulerSettings(_Strict):
    """openvino-genai `SchedulerConfig` of a model's continuous-batching worker."""

    continuous_batching: bool | None = Field(None, description="None: as the family says; false: VLMPipeline, one request at a time.")
    cache_size_gb: int = Field(0, ge=0, description="KV cache size in whole GB; 0 lets it grow as needed.")
    max_num_seqs: int = Field(8, ge=1, description="Requests generating at once; more wait in the worker.")
    max_num_batched_tokens: int = Field(1024, ge=1)
    enable_prefix_caching: bool = Field(
        True, description="Reuse the KV cache of a prompt's prefix seen before: a follow-up turn about an image prefills only what is new."
    )
    dynamic_split_fuse: bool = True

    def scheduler_config(self) -> dict[str, Any]:
        """The fields of openvino-genai's SchedulerConfig to set."""
        return {
            "cache_size": self.cache_size_gb,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "enable_prefix_caching": self.enable_prefix_caching,
            "dynamic_split_fuse": self.dynamic_split_fuse,
        }


class WeightFormat(str, Enum):
    INT4 = "int4"
    INT8 = "int8"
    FP16 = "fp16"


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    family: str | None = None
    path: Path | None = None
    source: str | None = None
    weight_format: WeightFormat = WeightFormat.INT8
    trust_remote_code: bool = False
    device: str = "CPU"
    load: Literal["lazy", "eager"] = "lazy"
    capabilities: CapabilityOverrides = Field(default_factory=CapabilityOverrides)
    defaults: GenerationDefaults = Field(default_factory=GenerationDefaults)
    ov_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    max_n: int = Field(8, ge=1, le=128, description="Most choices (`n`) one request may ask for.")
    max_waiting: int = Field(32, ge=0, description="Requests beyond the running ones that may wait; more get a 429.")
    request_timeout_s: float | None = Field(600.0, gt=0, description="Deadline for a whole request; None: none.")
    keep_alive_s: float | None = Field(None, gt=0, description="Unload after this long idle; None: stay loaded.")
    recycle_growth_gb: float | None = Field(
        2.0, gt=0, description="A worker that is idle and has grown this much past its loaded size is replaced; None: never."
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"'{value}' is not a device: use CPU, GPU, GPU.N, NPU or AUTO")
        return value

    @model_validator(mode="after")
    def _path_or_source(self) -> ModelConfig:
        if (self.path is None) == (self.source is None):
            raise ValueError("give exactly one of 'path' (an OpenVINO model folder) or 'source' (to convert)")
        return self

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class RouterConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    models: list[ModelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RouterConfig:
        seen: dict[str, str] = {}
        for model in self.models:
            for name in model.names:
                if name in seen:
                    raise ValueError(f"model name or alias '{name}' is used by both '{seen[name]}' and '{model.name}'")
                seen[name] = model.name
        default = self.server.default_model
        if default is not None and default not in seen:
            raise ValueError(f"server.default_model '{default}' is not a configured model")
        return self

    def find(self, name: str) -> ModelConfig | None:
        """The model whose name, alias or source is `name`."""
        for model in self.models:
            if name in model.names or name == model.source:
                return model
        return None


def _describe_location(raw: Any, loc: tuple[int | str, ...]) -> str:
    """`models[2] ('qwen').device` for a pydantic error location inside `raw`."""
    parts: list[str] = []
    node = raw
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node) and isinstance(node[key], dict) and "name" in node[key]:
                label += f" ('{node[key]['name']}')"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(key))
        node = _child(node, key)
    return "".join(parts) or "(top level)"


def _child(node: Any, key: int | str) -> Any:
    """`node[key]`, or None where `node` has no such key or index."""
    if isinstance(node, dict):
        return node.get(key)
    return node[key] if isinstance(node, list) and isinstance(key, int) and key < len(node) else None


def parse_config(raw: Any, source: str = "models.yaml") -> RouterConfig:
    """Validate already-parsed YAML; errors name the entry and the field."""
    if raw is None:
        raw = {}
    try:
        return RouterConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {_describe_location(raw, err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: Path | None, env: Mapping[str, str] = os.environ) -> RouterConfig:
    """Read `path` (if any), resolve relative paths against its folder, then apply the environment."""
    if path is None:
        config = RouterConfig()
        base = Path.cwd()
    else:
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        config = parse_config(raw, str(path))
        base = path.resolve().parent
    config = apply_environment(config, env)
    return _resolve_paths(config, base)


def _resolve_paths(config: RouterConfig, base: Path) -> RouterConfig:
    config.server.cache_dir = base / config.server.cache_dir
    if config.media.local_dir is not None:
        config.media.local_dir = base / config.media.local_dir
    for model in config.models:
        if model.path is not None:
            model.path = base / model.path
        if model.source is not None and model.source.startswith((".", "/")):
            model.source = str(base / model.source)
    return config


def apply_environment(config: RouterConfig, env: Mapping[str, str]) -> RouterConfig:
    """Apply the original service's variables over the file.

    `VLM_SERVICE_PORT` and `VLM_HOST` set the listening address, `VLM_UI` the playground, `VLM_API_KEYS` and `VLM_ADMIN_KEYS`
    (comma-separated) add API keys and admin keys; `VLM_DEVICE`,
    `VLM_COMPRESSION_WEIGHT_FORMAT` and `VLM_SEED` apply to every model that does not set its own;
    `VLM_MODEL_NAME` selects a configured model (by name, alias or source) or adds it as a `source`
    entry, and makes it the default model. A variable set to an empty value counts as unset, as
    compose passes one on when the shell has it empty.
    """
    env = {key: value for key, value in env.items() if key.startswith("VLM_") and value.strip()}
    data = config.model_dump(mode="python", exclude_unset=True)
    server = data.setdefault("server", {})
    if "VLM_SERVICE_PORT" in env:
        server["port"] = _env_int(env, "VLM_SERVICE_PORT")
    if "VLM_HOST" in env:
        server["host"] = env["VLM_HOST"]
    if "VLM_UI" in env:
        server["ui"] = env["VLM_UI"]
    for variable, field in (("VLM_API_KEYS", "api_keys"), ("VLM_ADMIN_KEYS", "admin_keys")):
        if variable in env:
            keys = [key.strip() for key in env[variable].split(",") if key.strip()]
            server[field] = [*server.get(field, []), *keys]
    models: list[dict[str, Any]] = data.setdefault("models", [])
    name = env.get("VLM_MODEL_NAME", "").strip()
    if name:
        known = config.find(name)
        if known is None:
            # The original service converted whatever it was given, remote code included.
            models.append({"name": name, "source": name, "trust_remote_code": True})
        server["default_model"] = known.name if known else name
    for model in models:
        if "VLM_DEVICE" in env:
            model.setdefault("device", env["VLM_DEVICE"])
        if "VLM_COMPRESSION_WEIGHT_FORMAT" in env:
            model.setdefault("weight_format", env["VLM_COMPRESSION_WEIGHT_FORMAT"].lower())
        if "VLM_SEED" in env:
            model.setdefault("defaults", {}).setdefault("seed", _env_int(env, "VLM_SEED"))
    return parse_config(data, "environment (VLM_* variables)")


def _env_int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ConfigError(f"{key}={env[key]!r} is not an integer") from None
