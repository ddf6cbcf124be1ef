"""InternVL2, Phi-3.5-vision and MiniCPM-V-2.6 end to end: tiny checkpoints with modeling code written here,
exported with optimum-intel and served by openvino-genai."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest

from vlm_router.api.app import create_app

from . import published_image_tokens
from .conftest import ServerThread, data_url, image_part, png_bytes, router_config, user

#: Served name of each family's tiny model.
MODELS = {"internvl_chat": "tiny-internvl2", "phi3_v": "tiny-phi3.5-vision", "minicpmv": "tiny-minicpm-v"}
#: Small, one tile, several tiles or slices, and wide.
SIZES = [(64, 48), (448, 448), (1344, 896), (1000, 300)]


@dataclass
class Served:
    model_type: str
    model: str
    client: openai.OpenAI

    def ask(self, *messages: dict, **kw) -> openai.types.chat.ChatCompletion:
        kw.setdefault("max_tokens", 4)
        kw.setdefault("temperature", 0)
        return self.client.chat.completions.create(model=self.model, messages=list(messages), **kw)


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, tiny_model, families) -> Iterator[Served]:
    model_type = request.param
    config = router_config([{"name": MODELS[model_type], "path": str(tiny_model(model_type))}])
    with ServerThread(create_app(config, families)) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        yield Served(model_type, MODELS[model_type], client)


def image(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> dict:
    return image_part(data_url(png_bytes(width, height, color)))


def test_text(served):
    answer = served.ask(user("Hello, who are you?"), max_tokens=8)
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_image_adds_the_published_processors_tokens(served, width, height):
    """The visual tokens the server counts for an image are those the published preprocessing makes."""
    text = served.ask(user("Describe."))
    with_image = served.ask(user(image(width, height), "Describe."))
    assert with_image.choices[0].message.content
    expected = published_image_tokens.BY_MODEL_TYPE[served.model_type](width, height)
    assert with_image.usage.prompt_tokens - text.usage.prompt_tokens == expected
