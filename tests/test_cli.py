"""The `vlm-router` command: serve as users run it, plugins, devices, convert, make-tiny and config errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import openai
import pytest
import yaml

from vlm_router.api.app import create_app

from .conftest import CLI, ServerThread, data_url, free_port, image_part, png_bytes, router_config, user, wait_healthy


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)

def test_plugins_lists_families_with_capabilities():
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    assert "qwen2_vl" in result.stdout
    assert "model types: qwen2_vl, qwen2_5_vl" in result.stdout
    assert "video: native" in result.stdout
    assert "batching: continuous" in result.stdout
    assert "make-tiny --family qwen2_vl: presets tiny, 2b" in result.stdout
    listed = dict(_sections(result.stdout))
    assert {"qwen2_vl", "qwen3_vl", "phi3_v", "internvl_chat", "minicpmv", "llava", "llava_next", "llava_next_video", "gemma3"} <= set(listed)
    assert "images: yes, any number of; video: frames, up to 8 frames" in listed["phi3_v"]
    for name in ("internvl_chat", "minicpmv"):
        assert "images: yes, up to 1; video: none" in listed[name]
    for name in ("llava", "llava_next", "llava_next_video", "gemma3", "qwen3_vl", "phi3_v", "internvl_chat", "minicpmv"):
        assert f"make-tiny --family {name}: presets tiny" in listed[name]  # every built-in family builds one


def _sections(listing: str) -> list[tuple[str, str]]:
    """`vlm-router plugins` output split into (family, its lines)."""
    blocks = re.split(r"\n(?=\S)", listing.strip())
    return [(block.split()[0], block) for block in blocks]


def test_wrong_config_stops_start_up_naming_entry_and_field(tmp_path):
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  - name: a\n    path: m\n    device: TPU\n")
    result = run("serve", "--config", str(config))
    assert result.returncode == 2
    assert "models[0] ('a').device" in result.stderr


def test_make_tiny_refuses_unknown_family(tmp_path):
    result = run("make-tiny", "--family", "nope", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "buildable: gemma3, internvl_chat, llava, llava_next, llava_next_video, minicpmv, phi3_v, qwen2_5_vl, qwen2_vl, qwen3_vl" in result.stderr
    result = run("make-tiny", "--family", "qwen2_5_vl", "--preset", "2b", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "'qwen2_5_vl' has no preset '2b'; presets: tiny" in result.stderr


def test_serve_answers_the_openai_client_with_images(tmp_path, tiny_models):
    """The issue's 'done when': `vlm-router serve` on a port, the openai client, images, original env vars."""
    shutil.copytree(tiny_models["qwen2_vl"], tmp_path / "models" / "demo")
    (tmp_path / "models.yaml").write_text(
        yaml.safe_dump({"server": {"default_model": "demo"}, "models": [{"name": "demo", "path": "models/demo"}]})
    )
    port = free_port()
    env = {**os.environ, "VLM_SERVICE_PORT": str(port), "VLM_CONFIG": str(tmp_path / "models.yaml")}
    process = subprocess.Popen([*CLI, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
        answer = client.chat.completions.create(
            model="demo",
            messages=[user(image_part(data_url(png_bytes())), image_part(data_url(png_bytes(color=(0, 90, 0)))), "Compare.")],
            max_tokens=8,
            extra_body={"ignore_eos": True},
        )
        text_only = client.chat.completions.create(model="demo", messages=[user("Compare.")], max_tokens=1)
        assert answer.choices[0].message.content
        assert answer.usage.completion_tokens == 8 and answer.choices[0].finish_reason == "length"
        assert answer.usage.prompt_tokens > text_only.usage.prompt_tokens, "the two images are in the prompt"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"on http://127.0.0.1:{port}" in output


def test_sigterm_lets_in_flight_requests_finish_then_exits_0(tmp_path, tiny_models):
    (tmp_path / "models.yaml").write_text(
        yaml.safe_dump({"server": {"shutdown_grace_s": 60}, "models": [{"name": "m", "path": str(tiny_models["qwen2_vl"])}]})
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*CLI, "serve", "--config", str(tmp_path / "models.yaml"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(url)
        body = {"model": "m", "messages": [user("Go on.")], "stream": True, "max_tokens": 3000, "temperature": 0}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.ConnectError):
                httpx.get(url + "/health")  # no new connections once draining
            rest = [line for line in lines if line.startswith("data: ")]
        assert rest[-1] == "data: [DONE]"
        assert json.loads(rest[-2][6:])["choices"][0]["finish_reason"] == "length", "the stream ran to its end"
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        output = process.communicate()[0]
    assert "Traceback" not in output


def test_convert_exports_a_checkpoint_into_a_folder_that_serves(tmp_path, tiny_models, families):
    out = tmp_path / "converted"
    result = run("convert", str(tiny_models["qwen2_vl_hf"]), "--weight-format", "fp16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out) and result.stderr.strip(), "optimum-cli's progress goes to stderr"
    assert (out / "openvino_language_model.xml").is_file() and not out.with_name("converted.partial").exists()
    config = router_config([{"name": "m", "path": str(out)}])
    with ServerThread(create_app(config, families)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=3).choices[0].message.content


@pytest.mark.convert
def test_convert_failure_leaves_no_partial_folder(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    result = run("convert", str(tmp_path / "broken"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "optimum-cli export failed" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
