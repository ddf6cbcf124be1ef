"""What a model family is: its capabilities, its prompt format and how it builds a pipeline."""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import CapabilityOverrides, VideoSupport
from .conversation import Message, ToolCall


class CapabilityError(Exception):
    """A request asks for something the model does not accept; `rule` names the rule broken."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Capabilities:
    """Which media a model accepts, and how many."""

    images: bool = True
    max_images: int | None = None
    video: VideoSupport = VideoSupport.NONE
    #: Frames one video may have; `media.max_video_frames` caps it too.
    max_frames: int | None = None
    #: Frames per second sampled from a `video_url` when the request does not say.
    video_fps: float = 2.0
    #: Longest side over shortest side an image may have, when the model's preprocessing has a limit.
    max_aspect_ratio: float | None = None
    #: Pixels an image may have when it reaches the worker; larger ones are scaled down first, aspect kept.
    max_image_pixels: int | None = None
    #: The model's patch grid: image sides are snapped to multiples of it, from a bounded set (`image_size`).
    image_grid: int | None = None
    #: Pixels all images of one request may have together when they reach the worker, for a model whose
    #: memory grows faster than their sum; more are all scaled down by one factor (`image_sizes`).
    max_request_image_pixels: int | None = None

    def overridden(self, overrides: CapabilityOverrides) -> Capabilities:
        """These capabilities with a `models.yaml` entry's overrides applied."""
        changes = overrides.model_dump(exclude_none=True)
        return replace(self, **changes)

    def check(self, model: str, image_count: int, video_count: int = 0) -> None:
        """Raise `CapabilityError` if a request with these images and videos breaks a rule."""
        if video_count and self.video is VideoSupport.NONE:
            raise CapabilityError(f"model '{model}' does not accept video", rule="video")
        if image_count and not self.images:
            raise CapabilityError(f"model '{model}' does not accept images", rule="images")
        if self.max_images is not None and image_count > self.max_images:
            raise CapabilityError(
                f"model '{model}' accepts at most {self.max_images} image(s) per request, got {image_count}",
                rule="max_images",
            )

    def check_image_shape(self, model: str, width: int, height: int) -> None:
        """Raise `CapabilityError` for an image the model's preprocessing cannot take."""
        ratio = max(width, height) / max(1, min(width, height))
        if self.max_aspect_ratio is not None and ratio >= self.max_aspect_ratio:
            raise CapabilityError(
                f"model '{model}' needs images with an aspect ratio under {self.max_aspect_ratio:g}, got {width}x{height}",
                rule="max_aspect_ratio",
            )

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """`width`x`height` scaled down (never up) to `max_image_pixels`, aspect kept: the size to decode at."""
        scale = self._scale(width, height)
        return max(1, int(width * scale)), max(1, int(height * scale))

    def image_size(self, width: int, height: int) -> tuple[int, int]:
        """The size an image of `width`x`height` reaches the worker at.

        Scaled down to `max_image_pixels`; with `image_grid`, each side is a whole number of grid
        cells, rounded down to three significant bits (1-8, 10, 12, 14, 16, 20, 24, ... cells, steps
        of at most 12.5%), so the worker sees a bounded set of shapes and keeps a bounded number
        of shape-specific buffers. Never over `max_image_pixels` unless a side is one cell.
        """
        if self.image_grid is None:
            return self.scaled_size(width, height)
        scale, grid = self._scale(width, height), self.image_grid
        cells = [max(1, round(side * scale / grid)) for side in (width, height)]
        if self.max_image_pixels is not None and cells[0] * cells[1] * grid * grid > self.max_image_pixels:
            cells = [max(1, int(side * scale / grid)) for side in (width, height)]
        return _coarse(cells[0]) * grid, _coarse(cells[1]) * grid

    def image_sizes(self, shapes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """The sizes a request's images of `shapes` (width, height) reach the worker at.

        Each is scaled down to `max_image_pixels`; if they then have more than `max_request_image_pixels`
        together, all are scaled down by the same factor; then each is snapped to the grid (`image_size`).
        """
        scaled = [self.scaled_size(width, height) for width, height in shapes]
        total = sum(width * height for width, height in scaled)
        limit = self.max_request_image_pixels
        shrink = 1.0 if limit is None or total <= limit else math.sqrt(limit / total)
        return [self.image_size(max(1, int(width * shrink)), max(1, int(height * shrink))) for width, height in scaled]

    def _scale(self, width: int, height: int) -> float:
        return 1.0 if self.max_image_pixels is None else min(1.0, math.sqrt(self.max_image_pixels / (width * height)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "max_images": self.max_images,
            "video": self.video.value,
            "max_frames": self.max_frames,
            "video_fps": self.video_fps,
            "max_aspect_ratio": self.max_aspect_ratio,
            "max_image_pixels": self.max_image_pixels,
            "image_grid": self.image_grid,
            "max_request_image_pixels": self.max_request_image_pixels,
        }


def _coarse(cells: int) -> int:
    """`cells` rounded down to its three most significant bits."""
    drop = max(0, cells.bit_length() - 3)
    return cells >> drop << drop


#: Tags openvino-genai reads as media placeholders in any model's prompt.
_UNIVERSAL_TAGS = re.compile(r"<ov_genai_(image|video)_\d+>")


class Family(ABC):
    """A family of vision-language models served the same way.

    Subclass it in a plugin and hand an instance to `register` in the `register_families` hook.
    """

    #: Unique name, used as `family:` in models.yaml.
    name: str
    #: `model_type` values in a model folder's config.json that this family serves.
    model_types: tuple[str, ...]
    #: `architectures` in config.json this family serves, for a folder whose `model_type` no family claims
    #: (only when it has `model_types`; one listed by two families identifies neither).
    architectures: tuple[str, ...] = ()
    #: Default capabilities; models.yaml may override them per model.
    capabilities: Capabilities
    #: One line for `vlm-router plugins`.
    description: str = ""
    #: How images from earlier turns of a conversation are treated, for the docs and `plugins`.
    history_images: str = ""
    #: Prompt markup a client's text may not contain (it would be read as media placeholders).
    reserved_tags: tuple[str, ...] = ()
    #: Whether openvino-genai's ContinuousBatchingPipeline runs this family; if not, its workers use
    #: VLMPipeline, one request at a time.
    continuous_batching: bool = True
    #: Whether the family calls functions: `build_tool_prompt` renders the tools offered, tool calls and
    #: `tool` turns, and `parse_tool_calls` reads calls from generated text. Others refuse requests with tools.
    tools: bool = False

    def reserved_tag_in(self, text: str) -> str | None:
        """The first media placeholder found in a client's `text`, if any."""
        match = _UNIVERSAL_TAGS.search(text)
        if match:
            return match.group(0)
        return next((tag for tag in self.reserved_tags if tag in text), None)

    @abstractmethod
    def build_prompt(self, messages: Sequence[Message]) -> str:
        """The model's full prompt for `messages`, with the family's image and video tags, ready to tokenize."""

    def build_tool_prompt(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]]) -> str:
        """The prompt offering `tools` (OpenAI's tool objects), with the calls and `tool` turns of `messages`."""
        raise NotImplementedError(f"family '{self.name}' does not call functions")

    def parse_tool_calls(self, text: str) -> tuple[str, list[ToolCall]]:
        """The text without its function calls, and the calls (families with `tools`)."""
        raise NotImplementedError(f"family '{self.name}' does not call functions")

    def for_model(self, config: Mapping[str, Any]) -> Family:
        """This family as it serves the model whose `config.json` is `config`; raise `ValueError` if it cannot.

        For families whose prompt format differs between checkpoints (InternVL picks its conversation
        template in config.json); the default serves every checkpoint the same way.
        """
        return self

    def prepare_video(self, frames: np.ndarray) -> np.ndarray:
        """A video's `(frames, H, W, 3)` array as the model takes it natively (e.g. an even frame count)."""
        return frames

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        """For each `model_type` `build_tiny` can make offline, its presets (`tiny` first)."""
        return {}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        """Write a random-weight Hugging Face checkpoint of `model_type` into `out_dir`.

        `tiny` is a model of a few MB for tests; other presets give a real model's shapes, for benchmarks.
        """
        raise NotImplementedError(f"family '{self.name}' cannot build tiny models")
