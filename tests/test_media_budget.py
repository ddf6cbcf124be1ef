"""Decoded pixels are bounded: per request from the headers, for decoding at once, and by each family's image size."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from vlm_router.api.app import create_app
from vlm_router.config import MediaConfig
from vlm_router.default_plugins.qwen2_vl import IMAGE_TOKENS, Qwen2VLFamily
from vlm_router.family import Capabilities
from vlm_router.media import MediaError
from vlm_router.media.fetch import MediaFetcher
from vlm_router.media.images import decode_image
from vlm_router.media.loader import MediaLoader, MediaRef, VideoRef
from vlm_router.media.pixels import DecodeGate

from .conftest import ServerThread, data_url, image_part, png_bytes, router_config, user


def gray_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


async def load(config: MediaConfig, images: list[MediaRef], videos: list[VideoRef] = ()) -> None:
    """Load one request's media (data URLs only: the fetcher is never started)."""
    loader = MediaLoader(MediaFetcher(config), config)
    budget = loader.budget()
    await asyncio.gather(loader.images(images, budget), loader.videos(list(videos), fps=1, max_frames=None, budget=budget))


def test_the_request_pixel_budget_is_checked_from_headers_before_decoding():
    """24 images of 16 MP (384 MP, 1.2 GB decoded) are refused from their headers; none is decoded."""
    big = data_url(gray_png(4000, 4000))
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        asyncio.run(load(MediaConfig(), [MediaRef(big, f"m.{i}") for i in range(24)]))
    assert (caught.value.status, caught.value.code, caught.value.param) == (413, "request_pixels_too_large", "messages")
    assert time.monotonic() - started < 1.5  # decoding even one of them takes longer than reading all headers


def test_images_and_frames_share_the_pixel_budget():
    config = MediaConfig(max_pixels_per_request=1_000_000)
    image = MediaRef(data_url(gray_png(800, 800)), "i")
    frames = VideoRef("v", frames=(MediaRef(data_url(gray_png(400, 400)), "v.video.0"),) * 3)
    asyncio.run(load(config, [image]))
    asyncio.run(load(config, [], [frames]))
    with pytest.raises(MediaError) as caught:
        asyncio.run(load(config, [image], [frames]))
    assert caught.value.code == "request_pixels_too_large"


def test_the_decode_gate_holds_at_most_its_capacity():
    async def run() -> list[int]:
        gate, held, seen = DecodeGate(10), [0], []

        async def decode(pixels: int) -> None:
            async with gate.hold(pixels):
                held[0] += min(pixels, 10)
                seen.append(held[0])
                await asyncio.sleep(0.01)
                held[0] -= min(pixels, 10)

        await asyncio.gather(*(decode(p) for p in (6, 6, 4, 50, 3, 3, 3, 6)))
        return seen

    seen = asyncio.run(run())
    assert len(seen) == 8 and max(seen) <= 10


def test_a_large_jpeg_is_decoded_at_a_reduced_scale():
    """A 6000x6000 JPEG asked for at 300x300 never holds its 108 MB of full-size pixels."""
    script = """
import io, resource, sys
from PIL import Image
from vlm_router.media.images import decode_image
buffer = io.BytesIO(); Image.new("RGB", (6000, 6000), (90, 120, 200)).save(buffer, "JPEG"); data = buffer.getvalue()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
array = decode_image(data, 40_000_000, lambda w, h: (300, 300))
assert array.shape == (300, 300, 3), array.shape
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    grown_mb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert grown_mb < 30


def test_decoded_size_follows_exif_orientation():
    image = Image.new("RGB", (400, 200), (200, 30, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated: upright it is 200x400
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    assert decode_image(buffer.getvalue(), 10**6, lambda w, h: (w // 4, h // 4)).shape == (100, 50, 3)


QWEN = Capabilities(max_aspect_ratio=200, max_image_pixels=1280 * 28 * 28, image_grid=28, max_request_image_pixels=4 * 1280 * 28 * 28)


def test_family_image_sizes_are_bounded_in_pixels_and_shapes():
    shapes = {QWEN.image_size(w, h) for w in range(28, 8000, 11) for h in range(28, 8000, 13) if max(w, h) / min(w, h) < 200}
    assert all(w % 28 == 0 and h % 28 == 0 and w * h <= 1280 * 28 * 28 for w, h in shapes)
    assert len(shapes) < 500  # exact 28-pixel grids would be about 10,000
    assert QWEN.image_size(56, 56) == (56, 56)  # small images are not scaled
    assert Capabilities(max_image_pixels=10_000).image_size(400, 100) == (200, 50)


def test_a_requests_images_are_scaled_down_together_to_the_familys_request_pixels():
    """openvino-genai encodes a request's images in one pass, its memory growing with the square of their patches."""
    alone = QWEN.image_sizes([(1000, 1000)])
    assert alone == [QWEN.image_size(1000, 1000)]
    sixteen = QWEN.image_sizes([(1000, 1000)] * 16)
    assert len(set(sixteen)) == 1 and sixteen[0][0] < alone[0][0]
    total = sum(w * h for w, h in sixteen)  # each side snapped to its grid: at most half a cell more
    assert 0.5 * QWEN.max_request_image_pixels <= total <= 1.15 * QWEN.max_request_image_pixels
    assert QWEN.image_sizes([(300, 200)] * 3) == [QWEN.image_size(300, 200)] * 3  # within the budget: as alone


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def budget_server(tiny_models, families) -> Iterator[ServerThread]:
    qwen, llava = str(tiny_models["qwen2_vl"]), str(tiny_models["llava"])
    models = [
        {"name": "qwen", "path": qwen, "defaults": {"max_tokens": 1}},
        {"name": "qwen-small", "path": qwen, "defaults": {"max_tokens": 1}, "capabilities": {"max_image_pixels": 50_000}},
        {"name": "qwen-shared", "path": qwen, "defaults": {"max_tokens": 1}, "capabilities": {"max_request_image_pixels": 500_000}},
        {"name": "llava", "path": llava, "defaults": {"max_tokens": 1}},
    ]
    config = router_config(models, media={"max_pixels_per_request": 3_000_000})
    with ServerThread(create_app(config, families)) as running:
        yield running


def ask(server: ServerThread, model: str, *parts: dict | str) -> httpx.Response:
    body = {"model": model, "messages": [user(*parts, "Describe.")]}
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120)


def test_a_request_over_the_pixel_budget_is_a_413_and_the_model_keeps_serving(budget_server):
    frames = {"type": "video", "video": [data_url(gray_png(1000, 1000))] * 4}
    refused = ask(budget_server, "qwen", frames)
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "request_pixels_too_large"
    assert ask(budget_server, "qwen", image_part(data_url(png_bytes()))).status_code == 200


def test_images_reach_the_model_within_its_pixels(budget_server):
    def image_tokens(model: str, width: int, height: int) -> int:
        answer = ask(budget_server, model, image_part(data_url(png_bytes(width, height))))
        assert answer.status_code == 200, answer.text
        return answer.json()["usage"]["prompt_tokens"] - ask(budget_server, model).json()["usage"]["prompt_tokens"]

    assert image_tokens("qwen-small", 800, 800) <= 50_000 // 784 + 2  # 816 tokens at the processor's own size
    assert image_tokens("qwen", 1200, 1200) <= IMAGE_TOKENS + 2


def test_many_images_reach_the_model_within_the_request_pixels(budget_server):
    """16 images of 1 MP took the tiny Qwen2-VL worker to 16.9 GB: a request's images are scaled down together."""
    text = ask(budget_server, "qwen-shared").json()["usage"]["prompt_tokens"]
    answer = ask(budget_server, "qwen-shared", *[image_part(data_url(png_bytes(430, 430)))] * 16)
    assert answer.status_code == 200, answer.text
    image_tokens = answer.json()["usage"]["prompt_tokens"] - text - 16 * 2  # each image's vision start and end
    assert image_tokens <= 1.15 * 500_000 / 784  # 3136 tokens without the request's limit


def test_the_worker_sees_a_bounded_set_of_image_shapes(budget_server):
    """30 image sizes within the budget reach the worker as 3 patch grids, not 6 (each new grid keeps memory in the worker)."""
    sizes = [(400 + 3 * i, 300 + 2 * i) for i in range(30)]
    tokens = set()
    for width, height in sizes:
        answer = ask(budget_server, "qwen", image_part(data_url(png_bytes(width, height))))
        assert answer.status_code == 200, answer.text
        tokens.add(answer.json()["usage"]["prompt_tokens"])
    assert len(tokens) <= len({Qwen2VLFamily.capabilities.image_size(w, h) for w, h in sizes}) == 3


def test_llava_refuses_extreme_aspect_ratios_and_keeps_serving(budget_server):
    """A 20000x1 image took the LLaVA worker 220 MB (800000x1 took 10 GB); past 200:1 it is refused."""
    refused = ask(budget_server, "llava", image_part(data_url(png_bytes(20000, 1))))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "capability_max_aspect_ratio"
    assert ask(budget_server, "llava", image_part(data_url(png_bytes(300, 200)))).status_code == 200
