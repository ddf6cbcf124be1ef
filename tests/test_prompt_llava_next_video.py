"""LLaVA-NeXT-Video prompts beyond the published-template cases: string content, reserved tags, checkpoints."""

import pytest

from vlm_router.default_plugins.llava_next_video import LlavaNextVideoFamily
from vlm_router.testing import conversation


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
