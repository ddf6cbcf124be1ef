"""Qwen3-VL prompts equal what the model's published chat template renders for the same messages."""

import numpy as np
import pytest

from plugins.qwen3_vl import CHAT_TEMPLATE, Qwen3VLFamily
from vlm_router.api.messages import to_conversation
from vlm_router.api.schema import parse_request

from .chat_templates import conversation, hf_messages, render

IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
VIDEO = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}, "fps": 1}
FRAMES = {"type": "video", "video": ["data:image/png;base64,AAAA", "data:image/png;base64,AAAA"]}


def render_template(messages: list[dict]) -> str:
    return render(CHAT_TEMPLATE, hf_messages(messages))


CASES = {
    "text": [{"role": "user", "content": "Hello"}],
    "single image": [{"role": "user", "content": [IMG, {"type": "text", "text": "What is this?"}]}],
    "several images": [
        {"role": "user", "content": [{"type": "text", "text": "Compare "}, IMG, {"type": "text", "text": " and "}, IMG]}
    ],
    "system": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [IMG, {"type": "text", "text": "Describe."}]},
    ],
    "video": [{"role": "user", "content": [VIDEO, {"type": "text", "text": "What happens?"}]}],
    "frames and image": [{"role": "user", "content": [FRAMES, IMG, {"type": "text", "text": "Same scene?"}]}],
    "multi-turn": [
        {"role": "system", "content": [{"type": "text", "text": "You see "}, {"type": "text", "text": "images."}]},
        {"role": "user", "content": [IMG, {"type": "text", "text": "What colour?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Red."}]},
        {"role": "user", "content": [{"type": "text", "text": "And this one?"}, IMG]},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": [VIDEO]},
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_prompt_matches_published_template(name):
    messages = CASES[name]
    parsed = to_conversation(parse_request({"messages": messages}))
    prompt = Qwen3VLFamily().build_prompt(parsed.messages)
    assert prompt == render_template(messages)
    assert prompt.count("<|image_pad|>") == len(parsed.images)
    assert prompt.count("<|video_pad|>") == len(parsed.videos)


def test_no_default_system_prompt():
    prompt = Qwen3VLFamily().build_prompt(conversation([{"role": "user", "content": "Hi"}]))
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_developer_role_is_a_system_prompt():
    prompt = Qwen3VLFamily().build_prompt(conversation([{"role": "developer", "content": "Rules."}, {"role": "user", "content": "Hi"}]))
    assert prompt == render_template([{"role": "system", "content": "Rules."}, {"role": "user", "content": "Hi"}])


def test_later_system_message_is_kept_where_the_template_drops_it():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello?"},
    ]
    prompt = Qwen3VLFamily().build_prompt(conversation(messages))
    kept = "<|im_start|>system\nAnswer in French.<|im_end|>\n"
    assert prompt.replace(kept, "") == render_template(messages)
    assert kept in prompt


def test_odd_frame_counts_repeat_the_last_frame():
    family = Qwen3VLFamily()
    frames = np.arange(3, dtype=np.uint8)[:, None, None, None] * np.ones((3, 2, 2, 3), np.uint8)
    assert len(family.prepare_video(frames[:1])) == 2  # openvino-genai refuses a one-frame video
    assert len(family.prepare_video(frames[:2])) == 2
    padded = family.prepare_video(frames)
    assert len(padded) == 4 and (padded[3] == frames[2]).all()


def test_reserved_tags_are_found_in_client_text():
    family = Qwen3VLFamily()
    assert family.reserved_tag_in("look <|video_pad|> here") == "<|video_pad|>"
    assert family.reserved_tag_in("<ov_genai_image_3>") == "<ov_genai_image_3>"
    assert family.reserved_tag_in("an ordinary <b>tag</b>") is None
