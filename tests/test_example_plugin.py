"""The example third-party plugin in examples/, installed from its own folder, serves a model."""

import subprocess
import sys

import openai
import pytest

from vlm_router.api.app import create_app

from .conftest import ServerThread, data_url, image_part, png_bytes, router_config, user

pytest.importorskip("vlm_router_brief", reason="needs the example plugin installed: pip install -e examples/vlm-router-brief")


def test_installed_example_registers_its_family(families):
    assert families.plugin_of["qwen2_vl_brief"] == "brief"
    listing = subprocess.run([sys.executable, "-m", "vlm_router", "plugins"], capture_output=True, text=True, check=True).stdout
    assert "qwen2_vl_brief  (plugin brief)" in listing
    assert "none (a model chooses it with family: qwen2_vl_brief)" in listing


def test_example_family_serves_a_model(families, tiny_models):
    config = router_config([{"name": "brief", "family": "qwen2_vl_brief", "path": str(tiny_models["qwen2_vl"])}])
    with ServerThread(create_app(config, families)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        image = image_part(data_url(png_bytes()))
        answer = client.chat.completions.create(model="brief", messages=[user(image, "What is this?")], max_tokens=4)
        assert answer.usage.completion_tokens == 4
        assert client.models.retrieve("brief").model_dump()["family"] == "qwen2_vl_brief"
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="brief", messages=[user(*[image] * 5)], max_tokens=4)
        assert caught.value.body["code"] == "capability_max_images"


def test_example_prompt_has_the_house_system_prompt(families):
    from vlm_router.api.messages import to_conversation
    from vlm_router.api.schema import parse_request

    request = parse_request({"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]})
    prompt = families.get("qwen2_vl_brief").build_prompt(to_conversation(request).messages)
    assert prompt == (
        "<|im_start|>system\nAnswer in one short sentence. Be kind.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
