"""Qwen2-VL prompts: what the template does with a developer message, and the tags client text may not use."""

from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.default_plugins.tiny.qwen2_vl import CHAT_TEMPLATE
from vlm_router.testing import conversation, render


def test_developer_role_is_a_system_prompt():
    prompt = Qwen2VLFamily().build_prompt(conversation([{"role": "developer", "content": "Rules."}, {"role": "user", "content": "Hi"}]))
    assert prompt == render(CHAT_TEMPLATE, [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Hi"}])
    assert "You are a helpful assistant." not in prompt


def test_reserved_tags_are_found_in_client_text():
    family = Qwen2VLFamily()
    assert family.reserved_tag_in("look <|image_pad|> here") == "<|image_pad|>"
    assert family.reserved_tag_in("<ov_genai_image_3>") == "<ov_genai_image_3>"
    assert family.reserved_tag_in("an ordinary <b>tag</b>") is None
