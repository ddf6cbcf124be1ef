"""Fetching and decoding a request's images and videos concurrently, decoding on worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image

from ..config import MediaConfig
from . import MediaError
from .fetch import MediaFetcher, decode_data_url
from .images import decode_image
from .video import Sampling, VideoLimits, decode_video, fit

T = TypeVar("T")


@dataclass(frozen=True)
class MediaRef:
    """A media URL of the request and the `param` path that names it in errors."""

    url: str
    param: str


@dataclass(frozen=True)
class VideoRef:
    """A video of the request: a whole file at `url`, or `frames` the client already sampled.

    `param` names the content part; errors name its `video_url.url`, `video` or `max_pixels`.
    """

    param: str
    url: str | None = None
    frames: tuple[MediaRef, ...] = ()
    fps: float | None = None
    max_pixels: int | None = None
    max_frames: int | None = None


class MediaLoader:
    """Turns a request's media references into arrays, under the configured limits."""

    def __init__(self, fetcher: MediaFetcher, config: MediaConfig) -> None:
        self._fetcher = fetcher
        self._config = config

    async def images(self, refs: list[MediaRef]) -> list[np.ndarray]:
        """`(H, W, 3)` RGB arrays for `refs`, in order; a `MediaError` names the failing item's `param`."""
        return list(await asyncio.gather(*(self._image(ref) for ref in refs)))

    async def videos(self, refs: list[VideoRef], fps: float, max_frames: int | None) -> list[np.ndarray]:
        """`(frames, H, W, 3)` arrays for `refs`; `fps` and `max_frames` are the model's defaults and cap."""
        return list(await asyncio.gather(*(self._video(ref, fps, max_frames) for ref in refs)))

    async def _image(self, ref: MediaRef) -> np.ndarray:
        limit = self._config.max_image_bytes
        if ref.url[:5].lower() == "data:":
            return await _off_loop(ref.param, lambda: self._decode_image(decode_data_url(ref.url, limit, "image/")))
        data = await _named(ref.param, self._fetcher.download(ref.url, limit))
        return await _off_loop(ref.param, lambda: self._decode_image(data))

    def _decode_image(self, data: bytes) -> np.ndarray:
        return decode_image(data, self._config.max_image_pixels)

    async def _video(self, ref: VideoRef, fps: float, model_max_frames: int | None) -> np.ndarray:
        config = self._config
        max_pixels = ref.max_pixels or config.video_max_pixels
        if max_pixels > config.max_video_pixels:
            raise MediaError(f"max_pixels {max_pixels} is over the limit of {config.max_video_pixels}", param=f"{ref.param}.max_pixels")
        caps = [n for n in (ref.max_frames, model_max_frames, config.max_video_frames) if n is not None]
        sampling = Sampling(fps=ref.fps or fps, max_frames=min(caps), max_pixels=max_pixels)
        if ref.url is None:
            if len(ref.frames) > sampling.max_frames:
                raise MediaError(f"{len(ref.frames)} frames, over the limit of {sampling.max_frames}", param=f"{ref.param}.video")
            frames = await self.images(list(ref.frames))
            return await _off_loop(f"{ref.param}.video", lambda: _same_size(frames, max_pixels))
        limits = VideoLimits(config.max_video_duration_s, config.max_image_pixels)
        url, param = ref.url, f"{ref.param}.video_url.url"
        if url[:5].lower() == "data:":
            return await _off_loop(param, lambda: decode_video(decode_data_url(url, config.max_video_bytes, "video/"), sampling, limits))
        data = await _named(param, self._fetcher.download(url, config.max_video_bytes))
        return await _off_loop(param, lambda: decode_video(data, sampling, limits))


def _same_size(frames: list[np.ndarray], max_pixels: int) -> np.ndarray:
    """Client-sampled frames as one video: all at the first frame's size, within `max_pixels`."""
    width, height = fit(frames[0].shape[1], frames[0].shape[0], max_pixels)
    resized = [np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC)) for f in frames]
    return np.stack(resized)


async def _named(param: str, work: Awaitable[T]) -> T:
    """Await `work`, naming `param` in the `MediaError` it may raise."""
    try:
        return await work
    except MediaError as exc:
        exc.param = exc.param or param
        raise


async def _off_loop(param: str, work: Callable[[], T]) -> T:
    """Run decoding `work` on a worker thread, never on the event loop; errors name `param`."""
    return await _named(param, asyncio.get_running_loop().run_in_executor(None, work))
