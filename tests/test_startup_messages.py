"""Messages that point to the fix: a busy port, no models.yaml, a missing model folder; log options after the
command; a request refused for its media loads no model."""

import json
import logging
import os
import socket
import subprocess
from pathlib import Path

import openai
import pytest

from vlm_router.api.app import SERVICE, create_app
from vlm_router.cli import parser

from .conftest import CLI, data_url, image_part, make_video, png_bytes, router_config, user


def serve(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`vlm-router ARGS` in `cwd`, with no VLM_* variables but `env`; for runs that stop by themselves."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VLM_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env={**clean, **env}, cwd=cwd)


def test_a_busy_port_is_one_line_naming_the_port_and_how_to_choose_another(tmp_path):
    (tmp_path / "models.yaml").write_text("models:\n  - name: m\n    path: absent\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("serve", "--log-format", "json", cwd=tmp_path, VLM_SERVICE_PORT=str(port))
    assert result.returncode == 2
    *logged, error = result.stderr.strip().splitlines()
    expected = f"vlm-router: port {port} is already in use on 127.0.0.1 (another vlm-router?): choose another with --port or VLM_SERVICE_PORT"
    assert error == expected
    assert [json.loads(line)["message"] for line in logged] == [f"serving m on http://127.0.0.1:{port} (playground: http://127.0.0.1:{port}/)"], "JSON logs: --log-format after serve"


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, False),  # loopback, the default
        ({"VLM_HOST": "0.0.0.0"}, True),
        ({"VLM_HOST": "0.0.0.0", "VLM_API_KEYS": "sk-0123456789"}, False),
        ({"VLM_HOST": "0.0.0.0", "VLM_HOST_BIND": "127.0.0.1"}, False),  # a container published on loopback
        ({"VLM_HOST_BIND": "0.0.0.0"}, True),
    ],
)
def test_a_server_open_beyond_this_machine_without_keys_warns(tmp_path, env, warned):
    (tmp_path / "models.yaml").write_text("models:\n  - name: m\n    path: absent\n")
    with socket.socket() as taken:  # the server logs its start, then finds the port taken and exits
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        result = serve("serve", cwd=tmp_path, VLM_SERVICE_PORT=str(taken.getsockname()[1]), **env)
    assert result.returncode == 2
    assert ("WARNING" in result.stderr and "no API keys, and reachable beyond this machine" in result.stderr) is warned, result.stderr


@pytest.mark.parametrize(
    ("argv", "level", "form"),
    [
        (["serve"], "INFO", "text"),
        (["serve", "--log-format", "json", "--log-level", "DEBUG"], "DEBUG", "json"),
        (["--log-format", "json", "--log-level", "WARNING", "list"], "WARNING", "json"),
        (["--log-format", "json", "ps", "--log-format", "text"], "INFO", "text"),  # after the command wins
    ],
)
def test_log_options_go_before_or_after_the_command(monkeypatch, argv, level, form):
    monkeypatch.delenv("VLM_LOG_LEVEL", raising=False)
    monkeypatch.delenv("VLM_LOG_FORMAT", raising=False)
    args = parser().parse_args(argv)
    assert (args.log_level, args.log_format) == (level, form)


def test_log_options_default_to_the_environment(monkeypatch):
    monkeypatch.setenv("VLM_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("VLM_LOG_FORMAT", "json")
    args = parser().parse_args(["serve", "--log-level", "DEBUG"])
    assert (args.log_level, args.log_format) == ("DEBUG", "json")


def test_no_models_yaml_names_the_folder_searched_and_the_ways_to_name_one(tmp_path):
    result = serve("serve", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"vlm-router: no models.yaml in {tmp_path}: name one with --config FILE or VLM_CONFIG=FILE, or serve one Hugging Face model with VLM_MODEL_NAME=<id>"
    )


async def start(aiohttp_server, families, models):
    app = create_app(router_config(models), families)
    server = await aiohttp_server(app)
    client = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0, timeout=60)
    return app, client


async def test_a_missing_model_folder_suggests_pull_and_make_tiny(aiohttp_server, families, tmp_path, caplog):
    missing = tmp_path / "models" / "absent"
    _, client = await start(aiohttp_server, families, [{"name": "m", "path": str(missing)}])
    with caplog.at_level(logging.ERROR, logger="vlm_router.registry"), pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="m", messages=[user("Hi")], max_tokens=2)
    reason = (
        f"{missing} is not an OpenVINO model folder (it does not exist): fetch a model into it with "
        f"`vlm-router pull <Hugging Face id> --out {missing}`, or build a tiny test model with `vlm-router make-tiny --family qwen2_vl --out {missing}`"
    )
    assert caught.value.status_code == 503
    assert caught.value.body["message"] == f"model 'm' failed to load: {reason}"
    assert f"model 'm' failed to load: {reason}" in caplog.messages


@pytest.mark.parametrize(
    ("model", "part", "code"),
    [
        ("m", image_part("data:image/png;base64,bm90IGFuIGltYWdl"), "invalid_media"),
        ("m", image_part(data_url(png_bytes(1000, 4))), "capability_max_aspect_ratio"),
        ("one-image", [image_part(data_url(png_bytes()))] * 2, "capability_max_images"),
        ("no-video", {"type": "video_url", "video_url": {"url": data_url(make_video(0.2), "video/mp4")}}, "capability_video"),
    ],
)
async def test_a_request_refused_for_its_media_loads_no_model(aiohttp_server, families, tmp_path, model, part, code):
    """The folder has the family's config.json but no model: a load would fail, so any load would show."""
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_vl"}')
    entries = [{"name": "m"}, {"name": "one-image", "capabilities": {"max_images": 1}}, {"name": "no-video", "capabilities": {"video": "none"}}]
    app, client = await start(aiohttp_server, families, [{**entry, "path": str(tmp_path)} for entry in entries])
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=model, messages=[user(*(part if isinstance(part, list) else [part]), "Describe.")], max_tokens=2)
    assert caught.value.body["code"] == code
    assert {m.id: m.model_dump()["state"] for m in (await client.models.list()).data}[model] == "not_loaded"
    assert app[SERVICE].registry.get(model).load_count == 0
