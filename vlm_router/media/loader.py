"""Fetching and decoding every image of a request concurrently, decoding on worker threads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from ..config import MediaConfig
from . import MediaError
from .fetch import MediaFetcher, decode_data_url
from .images import decode_image


@dataclass(frozen=True)
class MediaRef:
    """A media URL of the request and the `param` path that names it in errors."""

    url: str
    param: str


async def load_images(refs: list[MediaRef], fetcher: MediaFetcher, config: MediaConfig) -> list[np.ndarray]:
    """RGB arrays for `refs`, in order; a `MediaError` names the failing item's `param`."""
    loop = asyncio.get_running_loop()

    def decode_inline(url: str) -> np.ndarray:
        return decode_image(decode_data_url(url, config.max_image_bytes, "image/"), config.max_image_pixels)

    async def load(ref: MediaRef) -> np.ndarray:
        try:
            if ref.url[:5].lower() == "data:":
                return await loop.run_in_executor(None, decode_inline, ref.url)
            data = await fetcher.download(ref.url, config.max_image_bytes)
            return await loop.run_in_executor(None, decode_image, data, config.max_image_pixels)
        except MediaError as exc:
            exc.param = ref.param
            raise

    return list(await asyncio.gather(*(load(ref) for ref in refs)))
