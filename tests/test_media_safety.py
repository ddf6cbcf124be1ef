"""Media safety against real servers: address policy, redirects, timeouts, size caps, local files, decoding limits."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.server
import io
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from vlm_router.api.app import create_app
from vlm_router.config import MediaConfig
from vlm_router.media import MediaError
from vlm_router.media.fetch import MediaFetcher
from vlm_router.media.images import decode_image
from vlm_router.media.loader import MediaLoader, MediaRef, VideoRef

from .conftest import (
    MediaServer,
    ServerThread,
    data_url,
    image_part,
    make_video,
    png_bytes,
    router_config,
    user,
)

RED = png_bytes(64, 48, (200, 30, 30))


# --- servers ---------------------------------------------------------------------------------


def media_server_on(host: str) -> MediaServer:
    """A `MediaServer` listening on `host` (`127.0.0.2`, `::1`) instead of 127.0.0.1."""
    server = MediaServer()
    handler = server.httpd.RequestHandlerClass
    server.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server.httpd = type("Server", (http.server.ThreadingHTTPServer,), {"address_family": family})((host, 0), handler)
    server.url = f"http://{f'[{host}]' if ':' in host else host}:{server.httpd.server_address[1]}"
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    server.files["/red.png"] = (RED, "image/png")
    return server


@contextlib.contextmanager
def raw_server(respond: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A loopback HTTP server whose every GET is answered by `respond`; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with contextlib.suppress(OSError):
                respond(self)

        def log_message(self, *_: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def origin() -> Iterator[MediaServer]:
    """127.0.0.1, with an image and redirects of its own."""
    server = MediaServer()
    server.files["/red.png"] = (RED, "image/png")
    yield server
    server.close()


@pytest.fixture(scope="module")
def second_loopback() -> Iterator[MediaServer]:
    server = media_server_on("127.0.0.2")
    yield server
    server.close()


@pytest.fixture(scope="module")
def ipv6_loopback() -> Iterator[MediaServer]:
    server = media_server_on("::1")
    yield server
    server.close()


# --- loader helpers --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def media_loader(**media: Any) -> AsyncIterator[MediaLoader]:
    """A `MediaLoader` with a started fetcher, configured like `media:` in models.yaml."""
    config = MediaConfig(**media)
    fetcher = MediaFetcher(config)
    await fetcher.start()
    try:
        yield MediaLoader(fetcher, config)
    finally:
        await fetcher.close()


async def load(url: str, **media: Any) -> np.ndarray:
    async with media_loader(**media) as loader:
        return (await loader.images([MediaRef(url, "p")]))[0]


async def refusal(url: str, **media: Any) -> MediaError:
    with pytest.raises(MediaError) as caught:
        await load(url, **media)
    assert caught.value.param == "p"
    return caught.value


def is_red(image: np.ndarray) -> bool:
    return image.shape == (48, 64, 3) and tuple(image[0, 0]) == (200, 30, 30)


# --- addresses -------------------------------------------------------------------------------

REFUSED_BY_DEFAULT = {
    "loopback": "{origin}/red.png",
    "localhost by name": "http://localhost:{port}/red.png",
    "ipv6 loopback": "{v6}/red.png",
    "127.0.0.2": "{second}/red.png",
    "ipv4-mapped ipv6": "http://[::ffff:127.0.0.1]:{port}/red.png",
    "nat64 of loopback": "http://[64:ff9b::7f00:1]:{port}/red.png",
    "ipv4-compatible ipv6": "http://[::127.0.0.1]:{port}/red.png",
    "6to4 of a private address": "http://[2002:a00:1::1]/red.png",
    "short ipv4": "http://127.1:{port}/red.png",
    "decimal ipv4": "http://2130706433:{port}/red.png",
    "hex ipv4": "http://0x7f.0.0.1:{port}/red.png",
    "unspecified": "http://0.0.0.0:{port}/red.png",
    "unspecified ipv6": "http://[::]:{port}/red.png",
    "private 10/8": "http://10.255.255.1/red.png",
    "cloud metadata": "http://169.254.169.254/latest/meta-data/",
    "ipv6 link-local": "http://[fe80::1]/red.png",
    "ipv6 unique local": "http://[fd00::1]/red.png",
    "shared address space": "http://100.64.0.1/red.png",
    "multicast": "http://224.0.0.1/red.png",
}


@pytest.mark.parametrize("name", REFUSED_BY_DEFAULT)
async def test_non_public_addresses_are_refused_by_default(name, origin, second_loopback, ipv6_loopback):
    url = REFUSED_BY_DEFAULT[name].format(origin=origin.url, port=origin.url.rsplit(":", 1)[1], v6=ipv6_loopback.url, second=second_loopback.url)
    started = time.monotonic()
    error = await refusal(url)
    assert (error.status, error.code) == (400, "media_url_refused"), error.message
    assert time.monotonic() - started < 2  # refused before any connection attempt


ALLOWED = {
    "loopback by address": ("origin", {"allowed_hosts": ["127.0.0.1"]}),
    "loopback by name": ("localhost", {"allowed_hosts": ["localhost"]}),
    "name allowed by its address": ("localhost", {"allowed_hosts": ["127.0.0.1", "::1"]}),
    "127.0.0.2 by address": ("second", {"allowed_hosts": ["127.0.0.2"]}),
    "127.0.0.2 by cidr": ("second", {"allowed_hosts": ["127.0.0.0/8"]}),
    "::1 by address": ("v6", {"allowed_hosts": ["::1"]}),
    "::1 in brackets": ("v6", {"allowed_hosts": ["[::1]"]}),
    "::1 by cidr": ("v6", {"allowed_hosts": ["::1/128"]}),
    "mapped ipv4 by its ipv4": ("mapped", {"allowed_hosts": ["127.0.0.0/8"]}),
    "loopback with private networks": ("origin", {"allow_private_networks": True}),
    "::1 with private networks": ("v6", {"allow_private_networks": True}),
}


@pytest.mark.parametrize("name", ALLOWED)
async def test_allowed_hosts_and_private_networks_lift_the_refusal(name, origin, second_loopback, ipv6_loopback):
    which, media = ALLOWED[name]
    port = origin.url.rsplit(":", 1)[1]
    base = {
        "origin": origin.url,
        "localhost": f"http://localhost:{port}",
        "second": second_loopback.url,
        "v6": ipv6_loopback.url,
        "mapped": f"http://[::ffff:127.0.0.1]:{port}",
    }[which]
    assert is_red(await load(base + "/red.png", **media))


async def test_an_allow_list_entry_allows_only_what_it_names(second_loopback, ipv6_loopback):
    assert (await refusal(second_loopback.url + "/red.png", allowed_hosts=["127.0.0.1", "10.0.0.0/8", "localhost"])).code == "media_url_refused"
    assert (await refusal(ipv6_loopback.url + "/red.png", allowed_hosts=["127.0.0.0/8"])).code == "media_url_refused"


@pytest.mark.parametrize("host", ["224.0.0.1", "255.255.255.255"])
async def test_multicast_and_broadcast_are_never_fetched(origin, host):
    port = origin.url.rsplit(":", 1)[1]
    for media in ({"allow_private_networks": True}, {"allowed_hosts": ["0.0.0.0/0", host]}):
        error = await refusal(f"http://{host}:{port}/red.png", **media)
        assert error.code == "media_url_refused" and "no setting allows it" in error.message


async def test_unspecified_is_fetched_only_when_its_address_is_listed(origin):
    """0.0.0.0 reaches this machine: private networks do not open it, an entry for the address does."""
    url = f"http://0.0.0.0:{origin.url.rsplit(':', 1)[1]}/red.png"
    assert (await refusal(url, allow_private_networks=True)).code == "media_url_refused"
    assert is_red(await load(url, allowed_hosts=["0.0.0.0"]))
    assert is_red(await load(url, allowed_hosts=["0.0.0.0/8"]))


@pytest.mark.parametrize(
    ("url", "media"),
    [
        ("http://10.255.255.1/red.png", {"allowed_hosts": ["10.0.0.0/8"]}),
        ("http://10.255.255.1/red.png", {"allow_private_networks": True}),
        ("http://169.254.169.254/latest/meta-data/", {"allowed_hosts": ["169.254.169.254"]}),
        ("http://169.254.169.254/latest/meta-data/", {"allowed_hosts": ["169.254.0.0/16"]}),
    ],
)
async def test_allowing_an_unreachable_private_address_turns_the_refusal_into_a_connection_failure(url, media):
    error = await refusal(url, fetch_timeout_s=0.5, **media)
    # The fetch was tried: a timeout or refused connection, or an HTTP error where something answers there.
    assert error.status == 400 and error.code in ("media_unreachable", "invalid_media"), error.message


# --- redirects -------------------------------------------------------------------------------


async def test_every_redirect_is_checked(origin, second_loopback, ipv6_loopback):
    origin.redirects["/to-metadata"] = "http://169.254.169.254/latest/meta-data/"
    origin.redirects["/to-second"] = second_loopback.url + "/red.png"
    origin.redirects["/to-ipv6"] = ipv6_loopback.url + "/red.png"
    origin.redirects["/to-file"] = "file:///etc/passwd"
    loopback = {"allowed_hosts": ["127.0.0.1"], "fetch_timeout_s": 0.5}
    for path in ("/to-metadata", "/to-second", "/to-ipv6", "/to-file"):
        assert (await refusal(origin.url + path, **loopback)).code == "media_url_refused", path
    lifted = await refusal(origin.url + "/to-metadata", allowed_hosts=["127.0.0.1", "169.254.169.254"], fetch_timeout_s=0.5)
    assert lifted.code in ("media_unreachable", "invalid_media"), lifted.message
    assert is_red(await load(origin.url + "/to-second", allowed_hosts=["127.0.0.1", "127.0.0.2"]))


async def test_redirects_are_limited_to_five(origin):
    for i in range(6):
        origin.redirects[f"/hop{i}"] = f"/hop{i + 1}" if i < 5 else "/red.png"
    assert is_red(await load(origin.url + "/hop1", allowed_hosts=["127.0.0.1"]))  # five redirects
    error = await refusal(origin.url + "/hop0", allowed_hosts=["127.0.0.1"])  # six
    assert error.status == 400 and "redirects" in error.message


# --- size and time ---------------------------------------------------------------------------


async def test_an_endless_body_without_length_is_cut_off_at_the_cap():
    sent = [0]

    def endless(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.end_headers()
        chunk = b"\0" * 65536
        while sent[0] < 2**30:
            handler.wfile.write(chunk)
            sent[0] += len(chunk)

    with raw_server(endless) as url:
        started = time.monotonic()
        error = await refusal(url + "/endless.png", allowed_hosts=["127.0.0.1"], max_image_bytes=2**20)
        assert (error.status, error.code) == (413, "media_too_large")
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.2)
        assert sent[0] < 64 * 2**20  # the server could not send much past the cap before the connection closed


async def test_a_declared_length_over_the_cap_is_refused_before_reading(origin):
    origin.files["/big.png"] = (b"\0" * (2**20 + 1), "image/png")
    error = await refusal(origin.url + "/big.png", allowed_hosts=["127.0.0.1"], max_image_bytes=2**20)
    assert (error.status, error.code) == (413, "media_too_large")


async def test_compressed_bodies_are_not_expanded():
    bomb = gzip.compress(b"\0" * (64 * 2**20))

    def gzipped(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(bomb)))
        handler.end_headers()
        handler.wfile.write(bomb)

    with raw_server(gzipped) as url:
        config = MediaConfig(allowed_hosts=["127.0.0.1"])
        fetcher = MediaFetcher(config)
        await fetcher.start()
        try:
            assert await fetcher.download(url + "/bomb.png", 2**20) == bomb
        finally:
            await fetcher.close()
        error = await refusal(url + "/bomb.png", allowed_hosts=["127.0.0.1"], max_image_bytes=2**20)
        assert (error.status, error.code) == (400, "invalid_media") and "not a supported image format" in error.message, error.message  # read as sent


@pytest.mark.parametrize("style", ["no answer", "trickle"])
async def test_slow_servers_time_out(style):
    def slow(handler: http.server.BaseHTTPRequestHandler) -> None:
        if style == "no answer":
            time.sleep(3)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", "1000000")
        handler.end_headers()
        for _ in range(30):  # a byte every 0.1 s: each read is quick, the whole is not
            handler.wfile.write(b"\0")
            handler.wfile.flush()
            time.sleep(0.1)

    with raw_server(slow) as url:
        started = time.monotonic()
        error = await refusal(url + "/slow.png", allowed_hosts=["127.0.0.1"], fetch_timeout_s=0.5)
        assert error.code == "media_unreachable", error.message
        assert time.monotonic() - started < 2


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 * side**2 bytes."""
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


async def test_the_request_budget_counts_all_media_together(origin, tmp_path):
    noise = noise_png(300)  # ~270 kB
    origin.files["/noise.png"] = (noise, "image/png")
    (tmp_path / "noise.png").write_bytes(noise)
    refs = [MediaRef(origin.url + "/noise.png", "a"), MediaRef(data_url(noise), "b"), MediaRef("noise.png", "c")]
    media = {"allowed_hosts": ["127.0.0.1"], "local_dir": tmp_path}
    async with media_loader(max_media_bytes_per_request=3 * len(noise), **media) as loader:
        assert len(await loader.images(refs)) == 3
    async with media_loader(max_media_bytes_per_request=2 * len(noise) + 10, **media) as loader:
        with pytest.raises(MediaError) as caught:
            await loader.images(refs)
        assert (caught.value.status, caught.value.code, caught.value.param) == (413, "request_media_too_large", "messages")
        budget = loader.budget()  # a video's frames and the images share the request's budget
        await loader.images(refs[:2], budget)
        frames = VideoRef("v", frames=(MediaRef("noise.png", "v.video.0"),))
        with pytest.raises(MediaError) as caught:
            await loader.videos([frames], fps=2, max_frames=None, budget=budget)
        assert caught.value.param == "messages"


# --- inline data -----------------------------------------------------------------------------


async def test_data_urls_are_size_checked_before_decoding():
    not_even_base64 = "data:image/png;base64," + "@" * (4 * 2**20)
    error = await refusal(not_even_base64, max_image_bytes=2**20)
    assert (error.status, error.code) == (413, "media_too_large")  # the size, not the bad base64
    assert (await refusal("data:video/mp4;base64," + "AAAA")).status == 400  # not an image type
    async with media_loader() as loader:
        with pytest.raises(MediaError) as caught:
            await loader.videos([VideoRef("v", url=data_url(RED))], fps=1, max_frames=None)
        assert caught.value.param == "v.video_url.url" and "video/" in caught.value.message


# --- local files -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "../etc/passwd", "red.png", "file://localhost/etc/hosts"])
async def test_local_files_are_refused_without_local_dir(url):
    error = await refusal(url)
    assert (error.status, error.code) == (400, "media_url_refused")
    assert "media.local_dir" in error.message


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".org", ".".join(["a" * 60] * 5), "xn--", "xn--zz-"])
async def test_invalid_host_names_are_a_400(host):
    error = await refusal(f"http://{host}/x.png")
    assert (error.status, error.code) == (400, "invalid_media")


@pytest.mark.parametrize("url", ["ftp://example.org/x.png", "gopher://example.org/x", "javascript:alert(1)", "C:\\red.png"])
async def test_other_schemes_are_refused(url):
    assert (await refusal(url)).code == "media_url_refused"


@pytest.fixture
def local_dir(tmp_path: Path) -> Path:
    """`tmp_path/media` with red.png, a subfolder, links in and out; `tmp_path/secret.png` outside."""
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "red.png").write_bytes(RED)
    (media / "sub" / "red copy.png").write_bytes(RED)
    (tmp_path / "secret.png").write_bytes(RED)
    (media / "inside-link.png").symlink_to(media / "red.png")
    (media / "outside-link.png").symlink_to(tmp_path / "secret.png")
    (media / "etc-link").symlink_to("/etc")
    (media / "clip.mp4").write_bytes(make_video(2))
    os.mkfifo(media / "fifo.png")
    return media


async def test_files_inside_local_dir_are_read(local_dir):
    for url in ("red.png", str(local_dir / "red.png"), (local_dir / "red.png").as_uri(), "sub/red copy.png", "sub/../red.png", "inside-link.png"):
        assert is_red(await load(url, local_dir=local_dir)), url
    async with media_loader(local_dir=local_dir) as loader:
        video = await loader.videos([VideoRef("v", url=(local_dir / "clip.mp4").as_uri(), fps=1)], fps=1, max_frames=None)
        frames = await loader.videos([VideoRef("w", frames=(MediaRef("red.png", "w.video.0"), MediaRef("sub/red copy.png", "w.video.1")))], fps=1, max_frames=None)
    assert video[0].shape[0] == 2 and frames[0].shape[0] == 2


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "media_url_refused"),
        ("/etc/passwd", "media_url_refused"),
        ("../secret.png", "media_url_refused"),
        ("sub/../../secret.png", "media_url_refused"),
        ("file://{media}/%2e%2e/secret.png", "media_url_refused"),
        ("{media}/../secret.png", "media_url_refused"),
        ("outside-link.png", "media_url_refused"),
        ("etc-link/passwd", "media_url_refused"),
        ("file://otherhost{media}/red.png", "media_url_refused"),
        ("missing.png", "invalid_media"),
        ("sub", "invalid_media"),
        ("fifo.png", "invalid_media"),
    ],
)
async def test_files_outside_local_dir_and_non_files_are_refused(local_dir, url, code):
    started = time.monotonic()
    error = await refusal(url.format(media=local_dir), local_dir=local_dir)
    assert (error.status, error.code) == (400, code), error.message
    assert time.monotonic() - started < 2  # a FIFO does not block


async def test_local_files_obey_the_size_cap(local_dir):
    (local_dir / "big.png").write_bytes(noise_png(300))
    assert (await refusal("big.png", local_dir=local_dir, max_image_bytes=100_000)).status == 413


# --- decoding --------------------------------------------------------------------------------


@cache
def bomb_png(side: int = 30000) -> bytes:
    """A valid `side`x`side` 1-bit PNG of zeros: about 100 kB that would decode to `side`**2 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\0" * (1 + (side + 7) // 8)) * 1000
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(rows) for _ in range(side // 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("max_pixels", [40_000_000, 10**12])
def test_decompression_bomb_is_refused_from_its_header(max_pixels):
    assert len(bomb_png()) < 200_000
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        decode_image(bomb_png(), max_pixels)
    assert (caught.value.status, caught.value.code) == (413, "image_too_large")
    assert time.monotonic() - started < 0.5  # 900 megapixels were never decoded


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_formats_decode_to_rgb(fmt):
    array = decode_image(encoded(Image.new("RGB", (10, 6), (200, 30, 30)), fmt), 10**6)
    assert array.shape == (6, 10, 3) and array.dtype == np.uint8
    assert np.abs(array[3, 5].astype(int) - (200, 30, 30)).max() < 40


@pytest.mark.parametrize(
    ("image", "fmt", "expected"),
    [
        (Image.new("RGBA", (4, 4), (200, 30, 30, 255)), "PNG", (200, 30, 30)),
        (Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG", (255, 255, 255)),  # transparent: white, not black
        (Image.new("LA", (4, 4), (0, 0)), "PNG", (255, 255, 255)),
        (Image.new("L", (4, 4), 77), "PNG", (77, 77, 77)),
        (Image.new("1", (4, 4), 1), "PNG", (255, 255, 255)),
        (Image.new("I;16", (4, 4), 40000), "PNG", (156, 156, 156)),  # 16 bits scaled, not clipped
        (Image.new("I;16", (4, 4), 65535), "TIFF", (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "JPEG", (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 255)), "TIFF", (0, 0, 0)),
        (Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "WEBP", (255, 255, 255)),
    ],
)
def test_modes_become_rgb_sensibly(image, fmt, expected):
    array = decode_image(encoded(image, fmt), 10**6)
    assert array.shape == (4, 4, 3)
    assert np.abs(array[0, 0].astype(int) - expected).max() <= 2


def test_palette_with_transparency_becomes_white():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert tuple(decode_image(encoded(image, "PNG", transparency=1), 10**6)[0, 0]) == (255, 255, 255)
    assert tuple(decode_image(encoded(image, "PNG"), 10**6)[0, 0]) == (10, 20, 30)


def test_animated_webp_uses_the_first_frame():
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert tuple(decode_image(data, 10**6)[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "PCX", "EPS", "TGA"])
def test_other_formats_are_refused(fmt):
    with pytest.raises(MediaError) as caught:
        decode_image(encoded(Image.new("RGB", (16, 16)), fmt), 10**6)
    assert caught.value.status == 400 and "not a supported image format" in caught.value.message


# --- end to end ------------------------------------------------------------------------------


def post(server: ServerThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", json={"model": "tiny-qwen2-vl", "max_tokens": 2, **body}, timeout=60)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:{port}/red.png",
        "http://127.0.0.2:{port}/red.png",
        "http://0.0.0.0:{port}/red.png",
        "http://[::ffff:10.1.2.3]/red.png",
        "http://10.1.2.3/red.png",
        "http://169.254.169.254/latest/meta-data/",
        "{origin}/to-metadata",
        "file:///etc/passwd",
        "/etc/passwd",
        "../../etc/passwd",
    ],
)
def test_refusals_end_to_end(server, origin, url):
    origin.redirects["/to-metadata"] = "http://169.254.169.254/latest/meta-data/"
    port = origin.url.rsplit(":", 1)[1]
    error = error_of(post(server, {"messages": [user(image_part(url.format(origin=origin.url, port=port)), "Describe.")]}), 400)
    assert error["code"] == "media_url_refused" and error["param"] == "messages.0.content.0.image_url.url", error


def test_bomb_and_message_count_end_to_end(server):
    error = error_of(post(server, {"messages": [user(image_part(data_url(bomb_png())))]}), 413)
    assert error["code"] == "image_too_large" and error["param"] == "messages.0.content.0.image_url.url"
    error = error_of(post(server, {"messages": [user("hi")] * 513}), 400)
    assert error["code"] == "too_many_messages" and error["param"] == "messages"


@pytest.fixture(scope="module")
def hardened(tiny_models, families, tmp_path_factory) -> Iterator[tuple[ServerThread, Path]]:
    """A server with media from a local folder only, few messages and a small media budget."""
    folder = tmp_path_factory.mktemp("hardened")
    (folder / "media").mkdir()
    (folder / "media" / "red.png").write_bytes(RED)
    (folder / "media" / "noise.png").write_bytes(noise_png(300))
    (folder / "secret.png").write_bytes(RED)
    (folder / "media" / "outside-link.png").symlink_to(folder / "secret.png")
    media = {"local_dir": str(folder / "media"), "max_messages": 3, "max_media_bytes_per_request": 400_000}
    config = router_config([{"name": "tiny-qwen2-vl", "path": str(tiny_models["qwen2_vl"])}], media=media)
    with ServerThread(create_app(config, families)) as running:
        yield running, folder / "media"


def test_local_dir_server_end_to_end(hardened, origin):
    server, folder = hardened
    answered = post(server, {"messages": [user(image_part("red.png"), image_part((folder / "red.png").as_uri()), "Compare.")]})
    assert answered.status_code == 200, answered.text
    frames = {"type": "video", "video": ["red.png", "red.png"]}
    assert post(server, {"messages": [user(frames, "What happens?")]}).status_code == 200
    param = "messages.0.content.0.image_url.url"
    for url in ("outside-link.png", "../secret.png", "/etc/passwd", origin.url + "/red.png"):
        error = error_of(post(server, {"messages": [user(image_part(url))]}), 400)
        assert (error["code"], error["param"]) == ("media_url_refused", param), url
    error = error_of(post(server, {"messages": [user(image_part("noise.png"), image_part("noise.png"))]}), 413)
    assert (error["code"], error["param"]) == ("request_media_too_large", "messages")
    error = error_of(post(server, {"messages": [user("hi")] * 4}), 400)
    assert (error["code"], error["param"]) == ("too_many_messages", "messages")
