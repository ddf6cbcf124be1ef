"""Every family through the server: the buildable ones answer, the rest refuse what their models cannot take."""

from collections.abc import Iterator

import openai
import pytest

from vlm_router.api.app import create_app

from .conftest import ServerThread, data_url, image_part, png_bytes, router_config, user

#: Served models of each family that can be built offline (see the session server in conftest).
BUILT = ["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava", "tiny-llava-next", "tiny-gemma3", "tiny-llava-next-video", "tiny-qwen3-vl"]
RED, BLUE = image_part(data_url(png_bytes(64, 48, (200, 30, 30)))), image_part(data_url(png_bytes(300, 200, (20, 40, 220))))
VIDEO = {"type": "video", "video": [data_url(png_bytes()), data_url(png_bytes())]}


@pytest.mark.parametrize("model", BUILT)
@pytest.mark.parametrize("images", [0, 1, 2], ids=["text", "one image", "two images"])
def test_family_answers_text_and_images(client, model, images):
    parts = [RED, BLUE][:images]
    answer = client.chat.completions.create(model=model, messages=[user(*parts, "Describe.")], max_tokens=6, temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage.completion_tokens > 0


@pytest.mark.parametrize("model", BUILT[2:])
def test_image_tokens_count_in_the_prompt(client, model):
    """An image adds its visual tokens to the prompt, so the image really reached the model."""
    text = client.chat.completions.create(model=model, messages=[user("Describe.")], max_tokens=1)
    image = client.chat.completions.create(model=model, messages=[user(RED, "Describe.")], max_tokens=1)
    assert image.usage.prompt_tokens > text.usage.prompt_tokens + 1


@pytest.mark.parametrize("model", ["tiny-llava-next-video", "tiny-qwen3-vl"])
def test_family_with_video_answers_it(client, model):
    """LLaVA-NeXT-Video takes the frames as one video, Qwen3-VL as images; either way they reach the model."""
    text = client.chat.completions.create(model=model, messages=[user("What happens?")], max_tokens=1)
    video = client.chat.completions.create(model=model, messages=[user(VIDEO, "What happens?")], max_tokens=4)
    assert video.choices[0].message.content
    assert video.usage.prompt_tokens > text.usage.prompt_tokens + 2


@pytest.mark.parametrize("model", ["tiny-llava", "tiny-llava-next", "tiny-gemma3"])
def test_family_without_video_refuses_it(client, model):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=[user(VIDEO, "What happens?")], max_tokens=4)
    assert caught.value.body["code"] == "capability_video"
    assert caught.value.body["param"] == "messages"


@pytest.fixture(scope="module")
def unbuilt(families, tmp_path_factory) -> Iterator[openai.OpenAI]:
    """Models of the families that need their own remote code, pointing at folders that are not there."""
    missing = tmp_path_factory.mktemp("remote-code") / "absent"
    config = router_config([{"name": name, "family": name, "path": str(missing)} for name in ("phi3_v", "internvl_chat", "minicpmv")])
    with ServerThread(create_app(config, families)) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize(
    ("model", "parts", "code"),
    [
        ("internvl_chat", [RED, BLUE], "capability_max_images"),
        ("internvl_chat", [VIDEO], "capability_video"),
        ("minicpmv", [RED, BLUE], "capability_max_images"),
        ("minicpmv", [VIDEO], "capability_video"),
    ],
)
def test_remote_code_family_refuses_what_its_model_cannot_take(unbuilt, model, parts, code):
    """The family's rules apply before the model loads (these models are not here: anything allowed would be a 503)."""
    with pytest.raises(openai.BadRequestError) as caught:
        unbuilt.chat.completions.create(model=model, messages=[user(*parts, "Describe.")], max_tokens=4)
    assert caught.value.body["code"] == code


@pytest.mark.parametrize(("model", "tag"), [("phi3_v", "<|image_1|>"), ("internvl_chat", "<image>"), ("minicpmv", "<image>./</image>")])
def test_remote_code_family_refuses_its_image_tag_in_text(unbuilt, model, tag):
    with pytest.raises(openai.BadRequestError) as caught:
        unbuilt.chat.completions.create(model=model, messages=[user(f"Explain {tag} please.")], max_tokens=4)
    assert caught.value.body["code"] == "reserved_tag"


@pytest.mark.parametrize("model", ["phi3_v", "internvl_chat", "minicpmv"])
def test_remote_code_family_within_its_rules_reaches_the_model(unbuilt, model):
    with pytest.raises(openai.APIStatusError) as caught:
        unbuilt.chat.completions.create(model=model, messages=[user(RED, "Describe.")], max_tokens=4)
    assert caught.value.status_code == 503
    assert "not an OpenVINO model folder" in caught.value.body["message"]


def test_llava_next_refuses_an_image_its_pipeline_cannot_take(client):
    """openvino-genai's LLaVA-NeXT preprocessing fails past 24:1 for small images; the family refuses them first."""
    wide = image_part(data_url(png_bytes(300, 10)))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-llava-next", messages=[user(wide, "Describe.")], max_tokens=4)
    assert caught.value.body["code"] == "capability_max_aspect_ratio"
    assert caught.value.body["param"] == "messages.0.content.0.image_url.url"
