"""LLaVA-NeXT-Video prompts equal what the model's published chat template renders for the same messages."""

import pytest

from plugins.llava_next_video import CHAT_TEMPLATE, LlavaNextVideoFamily
from vlm_router.api.messages import to_conversation
from vlm_router.api.schema import parse_request

from .chat_templates import conversation, hf_messages, render

IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
VIDEO = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}, "fps": 1}
FRAMES = {"type": "video", "video": ["data:image/png;base64,AAAA", "data:image/png;base64,AAAA"]}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


CASES = {
    "text": [{"role": "user", "content": [text("Hello")]}],
    "single image": [{"role": "user", "content": [IMG, text("What is this?")]}],
    "several images, images first": [{"role": "user", "content": [text("Compare"), IMG, text("and"), IMG]}],
    "video": [{"role": "user", "content": [VIDEO, text("What happens?")]}],
    "frames and image, image first": [{"role": "user", "content": [FRAMES, text("Same scene?"), IMG]}],
    "system": [{"role": "system", "content": [text("Be brief.")]}, {"role": "user", "content": [VIDEO, text("Describe.")]}],
    "multi-turn": [
        {"role": "user", "content": [IMG, text("What colour?")]},
        {"role": "assistant", "content": [text("Red.")]},
        {"role": "user", "content": [text("And in this one?"), VIDEO]},
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_prompt_matches_published_template(name):
    messages = CASES[name]
    parsed = to_conversation(parse_request({"messages": messages}))
    prompt = LlavaNextVideoFamily().build_prompt(parsed.messages)
    assert prompt == render(CHAT_TEMPLATE, hf_messages(messages))
    assert prompt.count("<image>") == len(parsed.images)
    assert prompt.count("<video>") == len(parsed.videos)
    assert "<s>" not in prompt, "openvino-genai's tokenizer adds the BOS itself for this model"


def test_string_content_reads_as_one_text_part():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert LlavaNextVideoFamily().build_prompt(conversation(messages)) == "Be brief. USER: Hello ASSISTANT:"


def test_reserved_tags_are_found_in_client_text():
    family = LlavaNextVideoFamily()
    assert family.reserved_tag_in("look at <video> here") == "<video>"
    assert family.reserved_tag_in("and <image>") == "<image>"
    assert family.reserved_tag_in("<ov_genai_video_0>") == "<ov_genai_video_0>"
    assert family.reserved_tag_in("an ordinary <b>tag</b>") is None


def test_only_vicuna_checkpoints_are_served():
    family = LlavaNextVideoFamily()
    assert family.for_model({"text_config": {"model_type": "llama"}}) is family
    with pytest.raises(ValueError, match="text model is 'mistral'"):
        family.for_model({"text_config": {"model_type": "mistral"}})
