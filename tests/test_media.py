"""Media units: data URLs, the address policy and image decoding."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from vlm_router.media import MediaError
from vlm_router.media.fetch import HostPolicy, decode_data_url
from vlm_router.media.images import decode_image

from .conftest import png_bytes


def test_data_url_roundtrip_and_mistakes():
    payload = png_bytes()
    url = "data:image/png;base64," + base64.b64encode(payload).decode()
    assert decode_data_url(url, 10**6, "image/") == payload
    for bad in ("data:image/png,rawtext", "data:text/plain;base64,aGk=", "data:image/png;base64,@@@@", "data:;base64,aGk="):
        with pytest.raises(MediaError) as caught:
            decode_data_url(bad, 10**6, "image/")
        assert caught.value.status == 400
    with pytest.raises(MediaError) as caught:
        decode_data_url(url, 10, "image/")
    assert caught.value.status == 413


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.2", "10.1.2.3", "192.168.0.1", "169.254.169.254", "0.0.0.0", "::1", "::ffff:127.0.0.1", "fe80::1", "224.0.0.1"]
)
def test_private_and_reserved_addresses_are_refused(address):
    assert not HostPolicy([]).address_allowed(address)


def test_public_addresses_and_allow_list():
    policy = HostPolicy(["localhost", "10.0.0.0/8", "[::1]"])
    assert HostPolicy([]).address_allowed("93.184.216.34")
    assert policy.address_allowed("10.9.8.7") and policy.address_allowed("::1")
    assert not policy.address_allowed("192.168.1.1")
    assert policy.host_allowed("LOCALHOST") and not policy.host_allowed("example.org")


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK"])
def test_modes_become_rgb(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    array = decode_image(encoded(Image.new(mode, (5, 3)), fmt), 10**6)
    assert array.shape == (3, 5, 3) and array.dtype == np.uint8


def test_exif_orientation_applied():
    image = Image.new("RGB", (8, 4))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    assert decode_image(encoded(image, "JPEG", exif=exif), 10**6).shape == (8, 4, 3)


def test_animation_uses_first_frame():
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert tuple(decode_image(data, 10**6)[0, 0]) == (255, 0, 0)


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(MediaError) as caught:
        decode_image(png_bytes(200, 200), 100 * 100)
    assert caught.value.status == 413


@pytest.mark.parametrize("data", [b"", b"not an image", png_bytes()[:40]])
def test_garbage_is_a_400(data):
    with pytest.raises(MediaError) as caught:
        decode_image(data, 10**6)
    assert caught.value.status == 400
