"""Fetching and decoding a request's images and videos concurrently, decoding on worker threads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
from PIL import Image

from ..config import MediaConfig
from . import ByteBudget, MediaError
from .fetch import MediaFetcher, decode_data_url
from .images import Sizer, decode_image, probe
from .local import read_local
from .pixels import DecodeGate, PixelBudget
from .video import Sampling, VideoLimits, decode_video, fit

T = TypeVar("T")

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


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


@dataclass(frozen=True)
class RequestBudget:
    """What all media of one request may take together: bytes read and pixels decoded."""

    bytes: ByteBudget
    pixels: PixelBudget


class MediaLoader:
    """Turns a request's media references into arrays, under the configured limits.

    A URL may be `data:` (inline), http(s) (fetched), or a `file:` URL or bare path (read from
    `media.local_dir` when it is set); other schemes are refused. All media of one request count
    together against `media.max_media_bytes_per_request` and, for images and frames, against
    `media.max_pixels_per_request` (from their headers, before any is decoded): pass the request's
    `budget()` to every call for that request. Decoding in progress holds at most
    `media.max_image_pixels` source pixels at once, over all requests.
    """

    def __init__(self, fetcher: MediaFetcher, config: MediaConfig) -> None:
        self._fetcher = fetcher
        self._config = config
        self._gate = DecodeGate(config.max_image_pixels)

    def budget(self) -> RequestBudget:
        """A fresh per-request budget."""
        return RequestBudget(ByteBudget(self._config.max_media_bytes_per_request), PixelBudget(self._config.max_pixels_per_request))

    async def images(self, refs: list[MediaRef], budget: RequestBudget | None = None, sizes: Sequence[Sizer] | None = None) -> list[np.ndarray]:
        """`(H, W, 3)` RGB arrays for `refs`, in order, each decoded at its size of `sizes` (when given); errors name the item's `param`.

        Every image is read and its header checked before any of them is decoded.
        """
        budget = budget or self.budget()
        headers = await asyncio.gather(*(self._header(ref, budget) for ref in refs))
        each = sizes if sizes is not None else [None] * len(refs)
        return list(await asyncio.gather(*(self._decode(ref, data, pixels, size) for ref, (data, pixels), size in zip(refs, headers, each, strict=True))))

    async def fit(self, images: list[np.ndarray], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """`images` scaled to `sizes` (width, height), those already at theirs unchanged."""
        work = (_off_loop("messages", partial(_resized, image, size)) for image, size in zip(images, sizes, strict=True))
        return list(await asyncio.gather(*work))

    async def videos(self, refs: list[VideoRef], fps: float, max_frames: int | None, budget: RequestBudget | None = None) -> list[np.ndarray]:
        """`(frames, H, W, 3)` arrays for `refs`; `fps` and `max_frames` are the model's defaults and cap."""
        budget = budget or self.budget()
        return list(await asyncio.gather(*(self._video(ref, fps, max_frames, budget) for ref in refs)))

    async def _bytes(self, url: str, param: str, max_bytes: int, media_prefix: str, budget: ByteBudget) -> bytes:
        """The bytes `url` holds or names, at most `max_bytes`, counted towards `budget`."""
        if url[:5].lower() == "data:":
            data = await _off_loop(param, lambda: decode_data_url(url, max_bytes, media_prefix))
        elif url[:5].lower() == "file:" or not _SCHEME.match(url):
            data = await _off_loop(param, lambda: read_local(url, self._config.local_dir, max_bytes))
        else:
            return await _named(param, self._fetcher.download(url, max_bytes, budget))  # counted as it streams
        budget.take(len(data))
        return data

    async def _header(self, ref: MediaRef, budget: RequestBudget) -> tuple[bytes, int]:
        """An image's bytes and its pixel count, taken from `budget` before it is decoded."""
        data = await self._bytes(ref.url, ref.param, self._config.max_image_bytes, "image/", budget.bytes)
        width, height = await _off_loop(ref.param, lambda: probe(data, self._config.max_image_pixels))
        budget.pixels.take(width * height)
        return data, width * height

    async def _decode(self, ref: MediaRef, data: bytes, pixels: int, size: Sizer | None) -> np.ndarray:
        async with self._gate.hold(pixels):
            return await _off_loop(ref.param, lambda: decode_image(data, self._config.max_image_pixels, size))

    async def _video(self, ref: VideoRef, fps: float, model_max_frames: int | None, budget: RequestBudget) -> np.ndarray:
        config = self._config
        max_pixels = ref.max_pixels or config.video_max_pixels
        if max_pixels > config.max_video_pixels:
            raise MediaError(f"max_pixels {max_pixels} is over the limit of {config.max_video_pixels}", param=f"{ref.param}.max_pixels")
        caps = [n for n in (ref.max_frames, model_max_frames, config.max_video_frames) if n is not None]
        sampling = Sampling(fps=ref.fps or fps, max_frames=min(caps), max_pixels=max_pixels)
        if ref.url is None:
            if len(ref.frames) > sampling.max_frames:
                raise MediaError(f"{len(ref.frames)} frames, over the limit of {sampling.max_frames}", param=f"{ref.param}.video")
            frames = await self.images(list(ref.frames), budget, [lambda width, height: fit(width, height, max_pixels)] * len(ref.frames))
            return await _off_loop(f"{ref.param}.video", lambda: _same_size(frames))
        limits = VideoLimits(config.max_video_duration_s, config.max_image_pixels)
        param = f"{ref.param}.video_url.url"
        data = await self._bytes(ref.url, param, config.max_video_bytes, "video/", budget.bytes)
        video = await _off_loop(param, lambda: decode_video(data, sampling, limits))
        budget.pixels.take(video.shape[0] * video.shape[1] * video.shape[2])  # sampled frames, each decoded and scaled alone
        return video


def _same_size(frames: list[np.ndarray]) -> np.ndarray:
    """Client-sampled frames, already within the video's pixels, as one video at the first frame's size."""
    size = (frames[0].shape[1], frames[0].shape[0])
    return np.stack([_resized(frame, size) for frame in frames])


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC, reducing_gap=2.0))


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
