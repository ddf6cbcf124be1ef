"""InternVL2, Phi-3.5-vision and MiniCPM-V-2.6 end to end: tiny checkpoints with modeling code written here,
exported with optimum-intel and served by openvino-genai."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import openai
import pytest

from vlm_router.api.app import create_app
from vlm_router.family import Capabilities

from . import published_image_tokens
from .conftest import ServerThread, data_url, image_part, png_bytes, router_config, user

#: Served name of each family's tiny model.
MODELS = {"internvl_chat": "tiny-internvl2", "phi3_v": "tiny-phi3.5-vision", "minicpmv": "tiny-minicpm-v"}
#: An image budget of 12 tiles of 448x448, so that the engine's tiling and slicing run in full (the families'
#: defaults are tested in test_image_resolution.py).
BUDGET = {"max_image_pixels": 12 * 448 * 448}
#: Small, one tile, several tiles or slices, and wide.
SIZES = [(64, 48), (448, 448), (1344, 896), (1000, 300)]
#: Where openvino-genai's count differs from the published processor's: how many tokens more, and why. The
#: tests pin its count, so a runtime that fixes it fails them and is noticed.
KNOWN_WRONG = {
    ("phi3_v", 1000, 300): (
        24,
        "openvino-genai 2026.4 swaps the rows and columns of Phi-3-vision's crop grid (phi3_vision/classes.cpp makes "
        "its ImageSize{height, width} from the HD image's width and height): a row of 3 crops is laid out as a "
        "column, with 36 row separators instead of 12",
    ),
}


@dataclass
class Served:
    model_type: str
    model: str
    client: openai.OpenAI
    #: The family's capabilities with `BUDGET`: the size each image reaches the engine at.
    caps: Capabilities

    def ask(self, *messages: dict, **kw) -> openai.types.chat.ChatCompletion:
        kw.setdefault("max_tokens", 4)
        kw.setdefault("temperature", 0)
        kw.setdefault("model", self.model)
        return self.client.chat.completions.create(messages=list(messages), **kw)


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, tiny_model, families) -> Iterator[Served]:
    """The family's tiny model served twice: on ContinuousBatchingPipeline, and as `<name>-vlm` on VLMPipeline."""
    model_type = request.param
    path = str(tiny_model(model_type))
    sequential = {"name": MODELS[model_type] + "-vlm", "path": path, "scheduler": {"continuous_batching": False}, "capabilities": BUDGET}
    config = router_config([{"name": MODELS[model_type], "path": path, "capabilities": BUDGET}, sequential])
    caps = replace(families.for_model_type(model_type).capabilities, **BUDGET)
    with ServerThread(create_app(config, families)) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        yield Served(model_type, MODELS[model_type], client, caps)


def image(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> dict:
    return image_part(data_url(png_bytes(width, height, color)))


def image_tokens(served: Served, width: int, height: int) -> int:
    """The tokens the published processor makes of the image at the size the router sends it at."""
    return published_image_tokens.BY_MODEL_TYPE[served.model_type](*served.caps.image_size(width, height))


def test_text(served):
    answer = served.ask(user("Hello, who are you?"), max_tokens=8)
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_image_adds_the_published_processors_tokens(served, width, height):
    """The visual tokens the server counts for an image are those the published preprocessing makes of it."""
    text = served.ask(user("Describe."))
    with_image = served.ask(user(image(width, height), "Describe."))
    assert with_image.choices[0].message.content
    extra, why = KNOWN_WRONG.get((served.model_type, width, height), (0, ""))
    assert with_image.usage.prompt_tokens - text.usage.prompt_tokens == image_tokens(served, width, height) + extra, why


def test_vlm_pipeline_answers_as_continuous_batching(served):
    messages = [user(image(1344, 896), "Describe.")]
    batched = served.ask(*messages, max_tokens=8)
    sequential = served.ask(*messages, max_tokens=8, model=served.model + "-vlm")
    assert sequential.choices[0].message.content == batched.choices[0].message.content
    assert sequential.usage.prompt_tokens == batched.usage.prompt_tokens


def test_extreme_aspect_ratio(served):
    """Phi-3.5-vision's HD transform leaves no pixel of an image past 1344:1, which it refuses by name; the others take it."""
    thin = user(image(1400, 1), "Describe.")
    if served.model_type != "phi3_v":
        assert served.ask(thin).choices[0].message.content
        return
    with pytest.raises(openai.BadRequestError) as caught:
        served.ask(thin)
    assert caught.value.body["code"] == "capability_max_aspect_ratio"
    assert served.ask(user(image(1300, 1), "Describe.")).choices[0].message.content


def test_two_images(served):
    """Phi-3.5-vision encodes every image of a request; InternVL2 and MiniCPM-V take one and name the rule."""
    two = user(image(64, 48), image(448, 448, (20, 40, 220)), "Compare.")
    if served.model_type != "phi3_v":
        with pytest.raises(openai.BadRequestError) as caught:
            served.ask(two)
        assert caught.value.body["code"] == "capability_max_images"
        assert "at most 1 image(s)" in caught.value.body["message"]
        return
    text = served.ask(user("Compare."))
    answer = served.ask(two)
    assert answer.choices[0].message.content
    assert answer.usage.prompt_tokens - text.usage.prompt_tokens == image_tokens(served, 64, 48) + image_tokens(served, 448, 448)


def test_video(served):
    """Phi-3.5-vision takes a video as its frames, each an image; the others refuse video."""
    frames = {"type": "video", "video": [data_url(png_bytes(64, 48, (10 * k, 0, 0))) for k in range(3)]}
    if served.model_type != "phi3_v":
        with pytest.raises(openai.BadRequestError) as caught:
            served.ask(user(frames, "What happens?"))
        assert caught.value.body["code"] == "capability_video"
        return
    text = served.ask(user("What happens?"))
    answer = served.ask(user(frames, "What happens?"))
    assert answer.choices[0].message.content
    assert answer.usage.prompt_tokens - text.usage.prompt_tokens == 3 * image_tokens(served, 64, 48)


def test_image_in_an_earlier_turn_is_encoded_again(served):
    def chat(*first: dict | str) -> list[dict]:
        return [user(*first), {"role": "assistant", "content": "A red square."}, user("What color is it?")]

    text = served.ask(*chat("Describe."))
    answer = served.ask(*chat(image(448, 448), "Describe."))
    assert answer.choices[0].message.content
    assert answer.usage.prompt_tokens - text.usage.prompt_tokens == image_tokens(served, 448, 448)


def test_streamed_equals_whole(served):
    messages = [user(image(1000, 300), "What is in the picture?")]
    whole = served.ask(*messages, max_tokens=8)
    chunks = list(served.client.chat.completions.create(
        model=served.model, messages=messages, max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_two_choices(served):
    answer = served.ask(user(image(448, 448), "Describe."), n=2, temperature=1, seed=7, max_tokens=6, extra_body={"ignore_eos": True})
    assert [c.index for c in answer.choices] == [0, 1]
    assert all(c.message.content and c.finish_reason == "length" for c in answer.choices)
    assert answer.usage.completion_tokens == 2 * 6
