"""Phi-3.5-vision, InternVL2 and MiniCPM-V-2.6 prompts equal what each model's published template produces.

Their published chat templates take string content, so the prompts are checked against them for the
same messages written the way each model card writes them (string content with the model's image tags).
tests/test_remote_code_families_e2e.py serves each through openvino-genai.
"""

import numpy as np
import pytest

from vlm_router.api.messages import videos_as_images
from vlm_router.config import VideoSupport
from vlm_router.conversation import Image, Message, Text, Video
from vlm_router.default_plugins import internvl, minicpmv, phi3_v, tiny
from vlm_router.family import CapabilityError
from vlm_router.testing import IMG, conversation, render, text

from .conftest import user

CASES = {
    "text": [user(text("Hello"))],
    "single image": [user(IMG, text("What is this?"))],
    "several images": [user(text("Compare"), IMG, IMG)],
    "system": [{"role": "system", "content": "Be brief."}, user(IMG, text("Describe."))],
    "multi-turn": [user(IMG, text("What colour?")), {"role": "assistant", "content": "Red."}, user(text("And this one?"), IMG)],
    "two texts": [user(text("First line."), text("Second line."))],
}

#: The same messages as Phi-3.5-vision's model card writes them: `<|image_N|>\n` per image, then the question.
PHI3_V = {
    "text": ["Hello"],
    "single image": ["<|image_1|>\nWhat is this?"],
    "several images": ["<|image_1|>\n<|image_2|>\nCompare"],
    "system": ["Be brief.", "<|image_1|>\nDescribe."],
    "multi-turn": ["<|image_1|>\nWhat colour?", "Red.", "<|image_2|>\nAnd this one?"],
    "two texts": ["First line.\nSecond line."],
}

#: As MiniCPM-V's chat() writes them: the content list joined by lines, `(<image>./</image>)` per image.
MINICPMV = {
    "text": ["Hello"],
    "single image": ["(<image>./</image>)\nWhat is this?"],
    "several images": ["Compare\n(<image>./</image>)\n(<image>./</image>)"],
    "system": ["Be brief.", "(<image>./</image>)\nDescribe."],
    "multi-turn": ["(<image>./</image>)\nWhat colour?", "Red.", "And this one?\n(<image>./</image>)"],
    "two texts": ["First line.\nSecond line."],
}


def written(messages: list[dict], contents: list[str]) -> list[dict]:
    return [{"role": m["role"], "content": c} for m, c in zip(messages, contents, strict=True)]


@pytest.mark.parametrize("name", CASES)
def test_phi3_v_matches_published_template(name):
    expected = render(tiny.phi3_v.CHAT_TEMPLATE, written(CASES[name], PHI3_V[name]))
    assert phi3_v.Phi3VisionFamily().build_prompt(conversation(CASES[name])) == expected


def test_phi3_v_frames_are_numbered_images():
    """A video reaches Phi-3.5-vision as its frames, each an image numbered after the images before it."""
    messages = [Message("user", [Image(0), Video(0), Text("What happens?")])]
    rewritten, _ = videos_as_images(messages, [np.zeros((2, 2, 3))], [np.zeros((2, 2, 2, 3))])
    prompt = phi3_v.Phi3VisionFamily().build_prompt(rewritten)
    assert prompt == "<|user|>\n<|image_1|>\n<|image_2|>\n<|image_3|>\nWhat happens?<|end|>\n<|assistant|>\n"


@pytest.mark.parametrize("name", CASES)
def test_minicpmv_matches_published_template(name):
    """The published template over chat()'s content; the processor then replaces `(<image>./</image>)`, brackets
    included, as openvino-genai replaces `<image>./</image>`."""
    rendered = render(tiny.minicpmv.CHAT_TEMPLATE, written(CASES[name], MINICPMV[name]))
    expected = rendered.replace("(<image>./</image>)", "<image>./</image>")
    assert minicpmv.MiniCPMVFamily().build_prompt(conversation(CASES[name])) == expected


LEGACY = internvl.LEGACY_SYSTEM


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("phi3-chat", f"<|system|>\n{LEGACY}<|end|><|user|>\n<image>\nWhat is this?<|end|><|assistant|>\n"),
        ("internlm2-chat", f"<|im_start|>system\n{LEGACY}<|im_end|><|im_start|>user\n<image>\nWhat is this?<|im_end|><|im_start|>assistant\n"),
        ("Hermes-2", f"<|im_start|>system\n{LEGACY}<|im_end|><|im_start|>user\n<image>\nWhat is this?<|im_end|><|im_start|>assistant\n"),
        (
            "internvl2_5",
            f"<|im_start|>system\n{internvl._SYSTEM_2_5}<|im_end|>\n<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n",
        ),
    ],
)
def test_internvl_single_image_in_each_conversation_template(template, expected):
    """InternVL's chat() with one image: `<image>\\n` before the question, the template's default system message."""
    family = internvl.InternVLFamily().for_model({"model_type": "internvl_chat", "template": template})
    assert family.build_prompt(conversation([user(IMG, text("What is this?"))])) == expected


def test_internvl_system_and_multi_turn():
    """A system message replaces the default; history turns are written as chat() writes them (MPT style)."""
    messages = [
        {"role": "system", "content": "Be brief."},
        user(IMG, text("What colour?")),
        {"role": "assistant", "content": "Red."},
        user(text("Why?")),
    ]
    prompt = internvl.InternVLFamily().for_model({"template": "phi3-chat"}).build_prompt(conversation(messages))
    assert prompt == "<|system|>\nBe brief.<|end|><|user|>\n<image>\nWhat colour?<|end|><|assistant|>\nRed.<|end|><|user|>\nWhy?<|end|><|assistant|>\n"


def test_internvl_refuses_an_unknown_template():
    with pytest.raises(ValueError, match="'vicuna_v1.1' is not supported; supported: Hermes-2, internlm2-chat, phi3-chat, internvl2_5"):
        internvl.InternVLFamily().for_model({"template": "vicuna_v1.1"})


@pytest.mark.parametrize(
    ("family", "tag"),
    [
        (phi3_v.Phi3VisionFamily(), "<|image_12|>"),
        (internvl.InternVLFamily(), "<image>"),
        (internvl.InternVLFamily(), "<IMG_CONTEXT>"),
        (minicpmv.MiniCPMVFamily(), "<image>"),
        (minicpmv.MiniCPMVFamily(), "<slice>"),
    ],
)
def test_image_tags_in_client_text_are_reserved(family, tag):
    assert family.reserved_tag_in(f"please read {tag} literally") == tag
    assert family.reserved_tag_in("an ordinary <b>tag</b>") is None


@pytest.mark.parametrize(
    ("family", "images", "video"),
    [(phi3_v.Phi3VisionFamily(), None, VideoSupport.FRAMES), (internvl.InternVLFamily(), 1, VideoSupport.NONE), (minicpmv.MiniCPMVFamily(), 1, VideoSupport.NONE)],
)
def test_default_capabilities_follow_the_model_table(family, images, video):
    caps = family.capabilities
    assert (caps.images, caps.max_images, caps.video) == (True, images, video)
    if images == 1:
        with pytest.raises(CapabilityError, match="at most 1 image"):
            caps.check("m", image_count=2)
