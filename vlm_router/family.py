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

from . import forced_calls
from .config import CapabilityOverrides, VideoSupport
from .conversation import Message, Text, ToolCall


class CapabilityError(Exception):
    """A request asks for something the model does not accept; `rule` names the rule broken."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class PixelRange:
    """The pixels one image may reach the worker with: larger ones are scaled down to `max`, smaller up to `min`."""

    max: int | None = None
    min: int | None = None

    def scale(self, width: int, height: int) -> float:
        """The factor that brings `width`x`height` into this range, aspect kept."""
        pixels = width * height
        if self.max is not None and pixels > self.max:
            return math.sqrt(self.max / pixels)
        if self.min is not None and pixels < self.min:
            return math.sqrt(self.min / pixels)
        return 1.0


@dataclass(frozen=True)
class Capabilities:
    """Which media a model accepts, how many, and at how many pixels."""

    images: bool = True
    max_images: int | None = None
    video: VideoSupport = VideoSupport.NONE
    #: Frames one video may have; `media.max_video_frames` caps it too.
    max_frames: int | None = None
    #: Frames per second sampled from a `video_url` when the request does not say.
    video_fps: float = 2.0
    #: Longest side over shortest side an image may have, when the model's preprocessing has a limit.
    max_aspect_ratio: float | None = None
    #: The image budget: pixels an image may have when it reaches the worker; larger ones are scaled down first,
    #: aspect kept. A request's `max_pixels` and `detail` may lower it, never raise it.
    max_image_pixels: int | None = None
    #: Pixels an image has at least when it reaches the worker; smaller ones are scaled up (aspect kept).
    min_image_pixels: int | None = None
    #: The budget of an image sent with `detail: low`: the family's smallest sensible one.
    low_detail_pixels: int | None = None
    #: The model's patch grid: image sides are snapped to multiples of it, from a bounded set (`image_size`).
    image_grid: int | None = None
    #: The side of the square tiles a model cuts images into by their aspect ratio alone (InternVL): images reach
    #: it as a whole grid of tiles, within the budget (`image_size`).
    image_tile: int | None = None
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

    def pixel_range(self, detail: str | None = None, max_pixels: int | None = None, min_pixels: int | None = None) -> PixelRange:
        """The pixels one image of a request may have: the budget, `detail: low`'s when asked, the request's
        `max_pixels`, whichever is least; at least the request's or the model's `min_pixels`, within that.

        Without a budget nothing is scaled up: a few bytes of image must not become megapixels of array.
        """
        low = self.low_detail_pixels if detail == "low" else None
        top = min((n for n in (self.max_image_pixels, low, max_pixels) if n is not None), default=None)
        bottom = max((n for n in (self.min_image_pixels, min_pixels) if n is not None), default=None)
        return PixelRange(top, None if bottom is None or top is None else min(bottom, top))

    def scaled_size(self, width: int, height: int, pixels: PixelRange | None = None) -> tuple[int, int]:
        """`width`x`height` brought into `pixels` (the model's range by default), aspect kept: the size to decode at."""
        scale = (pixels or self.pixel_range()).scale(width, height)
        return max(1, int(width * scale)), max(1, int(height * scale))

    def image_size(self, width: int, height: int, pixels: PixelRange | None = None) -> tuple[int, int]:
        """The size an image of `width`x`height` reaches the worker at.

        Brought into `pixels` (the model's range by default); with `image_grid`, each side is a whole
        number of grid cells, rounded down to three significant bits (1-8, 10, 12, 14, 16, 20, 24, ...
        cells, steps of at most 12.5%), so the worker sees a bounded set of shapes and keeps a bounded
        number of shape-specific buffers. Never over the range's `max` unless a side is one cell.
        """
        pixels = pixels or self.pixel_range()
        if self.image_tile is not None:
            return self._tiled_size(width, height, pixels, self.image_tile)
        if self.image_grid is None:
            return self.scaled_size(width, height, pixels)
        scale, grid = pixels.scale(width, height), self.image_grid
        cells = [max(1, round(side * scale / grid)) for side in (width, height)]
        if pixels.max is not None and cells[0] * cells[1] * grid * grid > pixels.max:
            cells = [max(1, int(side * scale / grid)) for side in (width, height)]
        return _coarse(cells[0]) * grid, _coarse(cells[1]) * grid

    @staticmethod
    def _tiled_size(width: int, height: int, pixels: PixelRange, tile: int) -> tuple[int, int]:
        """The grid of `tile`-pixel tiles, within `pixels` and no more than the image's own area needs, whose
        aspect ratio is closest to the image's (the larger on a tie)."""
        room = (pixels.max or width * height) // (tile * tile)
        tiles = max(1, min(room, math.ceil(max(width * height, pixels.min or 0) / (tile * tile))))
        grids = [(cols, rows) for cols in range(1, tiles + 1) for rows in range(1, tiles // cols + 1)]
        target = math.log(width / height)
        cols, rows = min(grids, key=lambda grid: (abs(math.log(grid[0] / grid[1]) - target), -grid[0] * grid[1]))
        return cols * tile, rows * tile

    def image_sizes(self, shapes: Sequence[tuple[int, int]], pixels: Sequence[PixelRange] | None = None) -> list[tuple[int, int]]:
        """The sizes a request's images of `shapes` (width, height) reach the worker at.

        Each is brought into its range of `pixels` (the model's by default); if they then have more than
        `max_request_image_pixels` together, all are scaled down by the same factor; then each is snapped
        to the grid (`image_size`).
        """
        ranges = list(pixels) if pixels is not None else [self.pixel_range()] * len(shapes)
        scaled = [self.scaled_size(width, height, limits) for (width, height), limits in zip(shapes, ranges, strict=True)]
        total = sum(width * height for width, height in scaled)
        limit = self.max_request_image_pixels
        if limit is None or total <= limit:
            return [self.image_size(width, height, limits) for (width, height), limits in zip(scaled, ranges)]
        shrink = math.sqrt(limit / total)
        return [
            self.image_size(max(1, int(width * shrink)), max(1, int(height * shrink)), replace(limits, min=None))
            for (width, height), limits in zip(scaled, ranges)
        ]


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
    #: `tool` turns, and `parse_tool_calls` reads calls from generated text. Others take tools only for a forced
    #: call (`forced_tool_prompt`).
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

    def forced_tool_prompt(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]]) -> str:
        """The prompt of a request whose answer is constrained to a call of one of `tools` (`tool_choice` 'required' or named).

        The default: a family with `tools` uses its tool template (`build_tool_prompt`); any other adds
        `forced_calls.instruction` (the tools' JSON schemas, and the call's JSON shape) to the system
        message, or as one first, and builds its plain prompt.
        """
        if self.tools:
            return self.build_tool_prompt(messages, tools)
        told = forced_calls.instruction(tools)
        if messages and messages[0].role == "system":
            told = f"{messages[0].text}\n\n{told}"
            messages = messages[1:]
        return self.build_prompt([Message("system", [Text(told)]), *messages])

    def for_model(self, config: Mapping[str, Any]) -> Family:
        """This family as it serves the model whose `config.json` is `config`; raise `ValueError` if it cannot.

        For families whose prompt format differs between checkpoints (InternVL picks its conversation
        template in config.json); the default serves every checkpoint the same way.
        """
        return self

    def load_pipeline(self, model_dir: str, device: str, properties: Mapping[str, Any], scheduler: Mapping[str, Any] | None) -> Any:
        """The openvino-genai pipeline serving the model in `model_dir`, built in the model's worker process.

        `properties` are the model's OpenVINO properties (`ov_config`); `scheduler` the `SchedulerConfig`
        fields, or None when the model runs one request at a time (`continuous_batching` off). The default
        builds `ContinuousBatchingPipeline`, or `VLMPipeline` without a scheduler. A family whose models need
        another pipeline or settings of their own overrides it; the worker drives a pipeline with
        `add_request` and `step` in batches, and any other through `generate`, one request at a time.
        """
        import openvino_genai

        if scheduler is None:
            return openvino_genai.VLMPipeline(model_dir, device, **properties)
        config = openvino_genai.SchedulerConfig()
        for name, value in scheduler.items():
            setattr(config, name, value)
        return openvino_genai.ContinuousBatchingPipeline(model_dir, config, device, dict(properties))

    def prepare_video(self, frames: np.ndarray) -> np.ndarray:
        """A video's `(frames, H, W, 3)` array as the model takes it natively (e.g. an even frame count)."""
        return frames

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        """Deprecated (removed in 0.3), with `build_tiny`: register `TinyModel`s with the `register_tiny_models` hook."""
        return {}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        """Deprecated (removed in 0.3): write a random-weight checkpoint of `model_type` into `out_dir`."""
        raise NotImplementedError(f"family '{self.name}' cannot build tiny models")
