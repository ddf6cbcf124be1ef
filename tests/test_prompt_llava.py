"""LLaVA-1.5 prompts beyond the published-template cases of test_prompt_templates."""

from vlm_router.default_plugins.llava import LlavaFamily
from vlm_router.testing import conversation


def test_string_content_reads_as_one_text_part():
    assert LlavaFamily().build_prompt(conversation([{"role": "user", "content": "Hello"}])) == "USER: Hello ASSISTANT:"
