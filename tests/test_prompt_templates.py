"""Every buildable family's prompt equals what its model's published chat template renders for the same chats."""

import pytest

from vlm_router.default_plugins import gemma3, llava, llava_next, llava_next_video, qwen2_vl, qwen3_vl, tiny
from vlm_router.family import Family
from vlm_router.testing import CASES, VIDEO_CASES, conversation, hf_messages, render

#: family: (the family, its model's published template, the chats to check)
FAMILIES: dict[str, tuple[Family, str, dict[str, list[dict]]]] = {
    "qwen2_vl": (qwen2_vl.Qwen2VLFamily(), tiny.qwen2_vl.CHAT_TEMPLATE, {**CASES, **VIDEO_CASES}),
    "qwen3_vl": (qwen3_vl.Qwen3VLFamily(), tiny.qwen3_vl.CHAT_TEMPLATE, {**CASES, **VIDEO_CASES}),
    "llava": (llava.LlavaFamily(), tiny.llava.CHAT_TEMPLATE, CASES),
    "llava_next": (llava_next.LlavaNextFamily(), tiny.llava_next.CHAT_TEMPLATE, CASES),
    "llava_next_video": (llava_next_video.LlavaNextVideoFamily(), tiny.llava_next_video.CHAT_TEMPLATE, {**CASES, **VIDEO_CASES}),
    "gemma3": (gemma3.Gemma3Family(), tiny.gemma3.CHAT_TEMPLATE, CASES),
}


@pytest.mark.parametrize(("family", "case"), [(f, c) for f, (_, _, cases) in FAMILIES.items() for c in cases])
def test_prompt_matches_published_template(family, case):
    """A `<bos>` the template writes (Gemma 3's) is left out: openvino-genai's tokenizer adds it."""
    impl, template, cases = FAMILIES[family]
    expected = render(template, hf_messages(cases[case]), bos_token="<bos>").removeprefix("<bos>")
    assert impl.build_prompt(conversation(cases[case])) == expected
