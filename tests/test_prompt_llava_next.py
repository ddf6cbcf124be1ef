"""LLaVA-NeXT prompts beyond the published-template cases: text the template drops, and which checkpoints it serves."""

import pytest

from vlm_router.default_plugins.llava_next import LlavaNextFamily
from vlm_router.testing import conversation, text


def test_string_content_reads_as_one_text_part():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert LlavaNextFamily().build_prompt(conversation(messages)) == "<<SYS>>\nBe brief.\n<</SYS>>\n\n[INST] Hi [/INST]"


def test_every_text_part_of_a_system_turn_is_kept():
    """The template reads only a system turn's first part; nothing a client sends is dropped here."""
    messages = [{"role": "system", "content": [text("Be brief."), text(" Use French.")]}, {"role": "user", "content": "Hi"}]
    assert LlavaNextFamily().build_prompt(conversation(messages)) == "<<SYS>>\nBe brief. Use French.\n<</SYS>>\n\n[INST] Hi [/INST]"


def test_only_mistral_checkpoints_are_served():
    family = LlavaNextFamily()
    assert family.for_model({"model_type": "llava_next", "text_config": {"model_type": "mistral"}}) is family
    with pytest.raises(ValueError, match="text model is 'llama'"):
        family.for_model({"model_type": "llava_next", "text_config": {"model_type": "llama"}})
