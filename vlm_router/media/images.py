"""Decoding image bytes into RGB arrays, with a pixel limit checked before full decoding."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import MediaError

#: The formats Pillow may open (JPEG includes MPO); anything else (EPS, PSD, ICO, ...) is refused before any decoder runs.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_WHITE = (255, 255, 255)


def _too_large(detail: str, max_pixels: int) -> MediaError:
    return MediaError(f"image is {detail}, over the limit of {max_pixels} pixels", status=413, code="image_too_large")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An `(H, W, 3)` uint8 RGB array: EXIF orientation applied, the first frame of an animation.

    Only the header is read before the size is checked against `max_pixels`, so a decompression
    bomb is refused without its pixels ever being allocated.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise _too_large(f"{width}x{height}", max_pixels)
            image.seek(0)
            return np.asarray(to_rgb(ImageOps.exif_transpose(image)), dtype=np.uint8)
    except Image.DecompressionBombError:
        raise _too_large("far too large (Pillow refused it as a decompression bomb)", max_pixels) from None
    except UnidentifiedImageError:
        raise MediaError(f"the image cannot be decoded: not a supported image format ({', '.join(FORMATS)})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaError(f"the image cannot be decoded: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` in RGB: transparency over white, 16-bit and 32-bit samples scaled to 8 bits."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        samples = np.clip(np.asarray(image, dtype=np.float32), 0, 65535) / 257
        return Image.fromarray(np.rint(samples).astype(np.uint8)).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
