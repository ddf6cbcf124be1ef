"""Decoding image bytes into RGB arrays: a pixel limit checked from the header, downscaled decoding."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from . import MediaError

#: The formats Pillow may open (JPEG includes MPO); anything else (EPS, PSD, ICO, ...) is refused before any decoder runs.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_WHITE = (255, 255, 255)
#: The size (width, height) an upright image of the given width and height is to be decoded at.
Sizer = Callable[[int, int], tuple[int, int]]
#: EXIF orientations that swap width and height.
_TRANSPOSED = (5, 6, 7, 8)


def _too_large(detail: str, max_pixels: int) -> MediaError:
    return MediaError(f"image is {detail}, over the limit of {max_pixels} pixels", status=413, code="image_too_large")


def probe(data: bytes, max_pixels: int) -> tuple[int, int]:
    """The image's width and height, read from its header; refused past `max_pixels` without decoding."""
    with _errors_as_media_errors(max_pixels):
        width, height = _open(data, max_pixels).size
    return width, height


def decode_image(data: bytes, max_pixels: int, size: Sizer | None = None) -> np.ndarray:
    """An `(H, W, 3)` uint8 RGB array: EXIF orientation applied, the first frame of an animation.

    Only the header is read before the size is checked against `max_pixels`, so a decompression
    bomb is refused without its pixels ever being allocated. With `size` (upright width and height
    to output width and height) the image comes out at that size; a JPEG is then decoded at a
    reduced scale (DCT scaling, up to 8x), other formats are reduced by whole factors before resampling.
    """
    with _errors_as_media_errors(max_pixels):
        image = _open(data, max_pixels)
        transposed = image.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSED
        upright = image.size[::-1] if transposed else image.size
        target = size(*upright) if size is not None else upright
        image.draft(None, target[::-1] if transposed else target)  # JPEG only: no smaller than asked
        image.seek(0)
        image = to_rgb(ImageOps.exif_transpose(image))
        if target != image.size:
            image = image.resize(target, Image.Resampling.BICUBIC, reducing_gap=2.0)
        return np.asarray(image, dtype=np.uint8)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(f"{width}x{height}", max_pixels)
    return image


@contextmanager
def _errors_as_media_errors(max_pixels: int) -> Iterator[None]:
    try:
        yield
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
