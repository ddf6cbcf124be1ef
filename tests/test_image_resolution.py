"""The image budget: each family's default, `detail`, a part's `max_pixels`/`min_pixels`, and their errors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import openai
import pytest

from vlm_router.api.app import create_app
from vlm_router.default_plugins.internvl import InternVLFamily
from vlm_router.default_plugins.minicpmv import MiniCPMVFamily
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.family import Capabilities, PixelRange

from . import published_image_tokens
from .conftest import ServerThread, data_url, png_bytes, router_config, user

QWEN = Qwen2VLFamily.capabilities
INTERNVL = InternVLFamily.capabilities
MINICPMV = MiniCPMVFamily.capabilities


def test_the_pixel_range_is_the_least_of_the_budget_detail_and_the_request():
    caps = Capabilities(max_image_pixels=100_000, low_detail_pixels=20_000, min_image_pixels=5_000)
    assert caps.pixel_range() == PixelRange(100_000, 5_000)
    assert caps.pixel_range("auto") == caps.pixel_range("high") == caps.pixel_range()
    assert caps.pixel_range("low") == PixelRange(20_000, 5_000)
    assert caps.pixel_range(max_pixels=50_000) == PixelRange(50_000, 5_000)
    assert caps.pixel_range(max_pixels=10**7) == PixelRange(100_000, 5_000)  # a request never raises the budget
    assert caps.pixel_range("low", max_pixels=10_000) == PixelRange(10_000, 5_000)
    assert caps.pixel_range(min_pixels=60_000) == PixelRange(100_000, 60_000)
    assert caps.pixel_range("low", min_pixels=60_000) == PixelRange(20_000, 20_000)  # the least wins
    assert Capabilities().pixel_range(max_pixels=1000) == PixelRange(1000, None)
    assert Capabilities().pixel_range(min_pixels=4096 * 4096) == PixelRange(None, None)  # no budget: never scaled up


def test_images_are_scaled_into_their_range_aspect_kept():
    caps = Capabilities(max_image_pixels=10_000)
    assert caps.image_size(400, 100) == (200, 50)
    assert caps.image_size(40, 10) == (40, 10)  # not scaled up without a minimum
    assert caps.image_size(40, 10, PixelRange(10_000, 1600)) == (80, 20)


def test_qwen_images_reach_the_worker_on_its_grid_within_the_budget():
    for width, height in ((4032, 3024), (3024, 4032), (1344, 1344), (640, 480), (1000, 300), (56, 56)):
        for pixels in (QWEN.pixel_range(), QWEN.pixel_range("low"), QWEN.pixel_range(max_pixels=100_000)):
            w, h = QWEN.image_size(width, height, pixels)
            assert w % 28 == 0 and h % 28 == 0 and w * h <= pixels.max, (width, height, pixels)
            assert abs(math.log(w / h) - math.log(width / height)) < 0.3  # the aspect ratio, within the grid's steps
    assert QWEN.image_size(4032, 3024) == (560, 392)  # 280 of the budget's 320 tokens
    assert QWEN.image_size(56, 56, QWEN.pixel_range(min_pixels=200_000)) == (448, 448)


def test_internvl_images_reach_the_worker_as_a_whole_grid_of_tiles():
    """openvino-genai tiles by aspect ratio alone (12 tiles and a thumbnail for 64x48): the router sends a tile grid."""
    assert INTERNVL.image_size(64, 48) == (448, 448)
    assert INTERNVL.image_size(4032, 3024) == (448, 448)  # 4:3 is closer to 1:1 than to 2:1
    assert INTERNVL.image_size(1000, 300) == (896, 448)
    assert INTERNVL.image_size(300, 1000) == (448, 896)
    assert INTERNVL.image_size(1000, 300, INTERNVL.pixel_range("low")) == (448, 448)


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_models, tiny_model, families) -> Iterator[openai.OpenAI]:
    qwen = str(tiny_models["qwen2_vl"])
    models = [
        {"name": "qwen", "path": qwen, "defaults": {"max_tokens": 1}},
        {"name": "qwen-wide", "path": qwen, "defaults": {"max_tokens": 1}, "capabilities": {"max_image_pixels": 1_003_520, "low_detail_pixels": 3136}},
        {"name": "internvl", "path": str(tiny_model("internvl_chat")), "defaults": {"max_tokens": 1}},
        {"name": "minicpmv", "path": str(tiny_model("minicpmv")), "defaults": {"max_tokens": 1}},
    ]
    with ServerThread(create_app(router_config(models), families)) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def image(width: int, height: int, detail: str | None = None, **pixels: int | str) -> dict:
    url = {"url": data_url(png_bytes(width, height))}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url, **pixels}


def prompt_tokens(client: openai.OpenAI, model: str, *parts: dict) -> int:
    return client.chat.completions.create(model=model, messages=[user(*parts, "Describe.")]).usage.prompt_tokens


def qwen_tokens(size: tuple[int, int]) -> int:
    """An image's prompt tokens in Qwen2-VL: one per 28x28 pixels, and its vision start and end."""
    return size[0] * size[1] // 784 + 2


def test_usage_counts_the_image_at_the_size_the_model_saw(server):
    text = prompt_tokens(server, "qwen")
    for width, height in ((1200, 900), (300, 200)):
        assert prompt_tokens(server, "qwen", image(width, height)) - text == qwen_tokens(QWEN.image_size(width, height))


def test_detail_low_is_the_familys_smallest_budget_and_high_is_the_models(server):
    text = prompt_tokens(server, "qwen")
    low = prompt_tokens(server, "qwen", image(1200, 900, "low")) - text
    high = prompt_tokens(server, "qwen", image(1200, 900, "high")) - text
    assert low == qwen_tokens(QWEN.image_size(1200, 900, QWEN.pixel_range("low"))) <= 66
    assert high == prompt_tokens(server, "qwen", image(1200, 900, "auto")) - text == qwen_tokens(QWEN.image_size(1200, 900))
    assert low < high


def test_models_yaml_sets_the_budget(server):
    wide = replace(QWEN, max_image_pixels=1_003_520, low_detail_pixels=3136)
    text = prompt_tokens(server, "qwen-wide")
    assert prompt_tokens(server, "qwen-wide", image(1200, 900)) - text == qwen_tokens(wide.image_size(1200, 900)) == 1122
    assert prompt_tokens(server, "qwen-wide", image(1200, 900, "low")) - text == qwen_tokens((56, 56))


def test_a_parts_max_and_min_pixels_narrow_the_budget(server):
    text = prompt_tokens(server, "qwen")
    assert prompt_tokens(server, "qwen", image(1200, 900, max_pixels=100_000)) - text == qwen_tokens(QWEN.image_size(1200, 900, PixelRange(100_000)))
    assert prompt_tokens(server, "qwen", image(1200, 900, max_pixels="280*280")) - text == qwen_tokens((280, 224))
    capped = prompt_tokens(server, "qwen", image(1200, 900, max_pixels=4_000_000)) - text  # never over the model's budget
    assert capped == prompt_tokens(server, "qwen", image(1200, 900)) - text
    assert prompt_tokens(server, "qwen", image(56, 56, min_pixels=50_176)) - text == qwen_tokens((224, 224))
    assert prompt_tokens(server, "qwen", image(56, 56)) - text == qwen_tokens((56, 56))


@pytest.mark.parametrize(
    ("part", "param", "says"),
    [
        (image(64, 48, max_pixels="a lot"), "messages.0.content.0.max_pixels", "max_pixels must be an integer"),
        (image(64, 48, min_pixels=10), "messages.0.content.0.min_pixels", "min_pixels must be between"),
        (image(64, 48, max_pixels=True), "messages.0.content.0.max_pixels", "max_pixels must be an integer"),
        (image(64, 48, max_pixels=50_000, min_pixels=60_000), "messages.0.content.0.min_pixels", "is over max_pixels"),
        (image(64, 48, detail="ultra"), "messages.0.content.0.image_url.detail", "'auto', 'low' or 'high'"),
    ],
    ids=["max-not-a-number", "min-too-small", "max-bool", "min-over-max", "unknown-detail"],
)
def test_bad_resolution_requests_are_400s_naming_the_param(server, part, param, says):
    with pytest.raises(openai.BadRequestError) as refused:
        prompt_tokens(server, "qwen", part)
    error = refused.value.body
    assert error["param"] == param and says in error["message"], error
    assert error["code"] == "invalid_value"
    assert prompt_tokens(server, "qwen", image(64, 48)) > 0  # and it keeps serving


@pytest.mark.parametrize(("width", "height"), [(64, 48), (4032, 3024), (1000, 300)])
def test_internvl_gets_the_tiles_the_budget_allows(server, width, height):
    """The engine tiles what it gets as the published processor would: 1 tile, or 2 and a thumbnail (not 12 and one)."""
    text = prompt_tokens(server, "internvl")
    sent = INTERNVL.image_size(width, height)
    assert prompt_tokens(server, "internvl", image(width, height)) - text == published_image_tokens.internvl_chat(*sent)
    assert published_image_tokens.internvl_chat(*sent) <= 3 * 256 + 3
    low = prompt_tokens(server, "internvl", image(width, height, "low")) - text
    assert low == published_image_tokens.internvl_chat(448, 448) == 256 + 3


def test_minicpmv_gets_the_whole_image_without_slices_by_default(server):
    text = prompt_tokens(server, "minicpmv")
    sent = MINICPMV.image_size(1600, 1200)
    assert sent[0] * sent[1] <= 448 * 448
    assert prompt_tokens(server, "minicpmv", image(1600, 1200)) - text == published_image_tokens.minicpmv(*sent) == published_image_tokens.minicpmv(448, 448)
