"""Decoding image bytes into RGB arrays, with a pixel limit checked before full decoding."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import MediaError


def _too_large(detail: str, max_pixels: int) -> MediaError:
    return MediaError(f"image is {detail}, over the limit of {max_pixels} pixels", status=413, code="image_too_large")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An `(H, W, 3)` uint8 RGB array: EXIF orientation applied, the first frame of an animation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise _too_large(f"{width}x{height}", max_pixels)
            image.seek(0)
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError:
        raise _too_large("enormous", max_pixels) from None
    except UnidentifiedImageError:
        raise MediaError("the image cannot be decoded: not a supported image format") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError(f"the image cannot be decoded: {exc}") from None
