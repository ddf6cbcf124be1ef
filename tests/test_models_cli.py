"""`vlm-router list` and `vlm-router ps`: a running server's models as a table or JSON, models.yaml's when none answers."""

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from vlm_router.api.app import create_app

from .conftest import CLI, ServerThread, free_port, router_config

KEY = "secret-key-1"


def cli(*args: str, cwd: Path = Path(__file__).parent, **env: str) -> subprocess.CompletedProcess:
    """`vlm-router ARGS` with no VLM_* variables but `env`, run where no models.yaml is unless `cwd` has one."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VLM_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env={**clean, **env}, cwd=cwd)


def rows(table: str) -> list[list[str]]:
    """A printed table's lines split into cells (columns are three or more spaces apart), header first."""
    return [re.split(r"\s{3,}", line.strip()) for line in table.strip().splitlines()]


@pytest.fixture(scope="module")
def served(tiny_models, families):
    """A server with a loaded model, one not loaded and one that failed to load."""
    config = router_config(
        [
            {"name": "demo", "aliases": ["tiny", "small"], "path": str(tiny_models["qwen2_vl"])},
            {"name": "later", "path": str(tiny_models["qwen2_vl"]), "capabilities": {"max_images": 2, "video": "none"}},
            {"name": "broken", "path": "/nonexistent/model"},
        ],
        server={"api_keys": [KEY]},
    )
    with ServerThread(create_app(config, families)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=120)
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
        yield server


def test_list_shows_each_model_with_its_state_and_media(served):
    result = cli("list", "--url", served.url, VLM_API_KEY=KEY)
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [
        ["NAME", "ALIASES", "FAMILY", "DEVICE", "STATE", "IMAGES", "VIDEO"],
        ["demo", "tiny, small", "qwen2_vl", "CPU", "ready", "yes", "native"],
        ["later", "-", "qwen2_vl", "CPU", "not_loaded", "up to 2", "none"],
        ["broken", "-", "-", "CPU", "failed", "?", "?"],
    ]


def test_list_json_is_what_the_server_lists(served):
    result = cli("list", "--url", served.url, "--json", "--api-key", KEY)
    assert result.returncode == 0, result.stderr
    listed = httpx.get(served.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"]
    without_idle = [[{k: v for k, v in card.items() if k != "idle_s"} for card in cards] for cards in (json.loads(result.stdout), listed)]
    assert without_idle[0] == without_idle[1]
    assert [card["state"] for card in listed] == ["ready", "not_loaded", "failed"]


def test_ps_shows_the_loaded_models_with_their_worker(served):
    pid = next(card["pid"] for card in httpx.get(served.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()["data"] if card["id"] == "demo")
    result = cli("ps", "--url", served.url, VLM_API_KEY=KEY)
    assert result.returncode == 0, result.stderr
    header, *models = rows(result.stdout)
    assert header == ["NAME", "STATE", "DEVICE", "ENGINE", "MEMORY", "RUNNING", "WAITING", "PID", "IDLE"]
    assert len(models) == 1
    name, state, device, engine, memory, running, waiting, shown_pid, idle = models[0]
    assert (name, state, device, engine, running, waiting, shown_pid) == ("demo", "ready", "CPU", "continuous_batching", "0", "0", str(pid))
    assert re.fullmatch(r"\d+ MB", memory) and re.fullmatch(r"\d+ (s|min)", idle)
    as_json = cli("ps", "--url", served.url, "--json", VLM_API_KEY=KEY)
    assert [card["id"] for card in json.loads(as_json.stdout)] == ["demo"]


def test_the_address_and_key_come_from_the_config_and_environment_as_serve_finds_them(served, tmp_path):
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"server": {"api_keys": [KEY]}}))
    result = cli("ps", "--json", cwd=tmp_path, VLM_SERVICE_PORT=str(served.port))
    assert result.returncode == 0, result.stderr
    assert [card["id"] for card in json.loads(result.stdout)] == ["demo"]
    from_keys = cli("ps", "--json", "--url", served.url, VLM_API_KEYS=f"other-key-0,{KEY}")
    assert from_keys.returncode == 1 and "answered 401" in from_keys.stderr, "the first of VLM_API_KEYS is sent"


def test_a_wrong_key_is_one_line_naming_the_ways_to_pass_one(served):
    result = cli("list", "--url", served.url, "--api-key", "wrong-key-9")
    assert result.returncode == 1
    assert result.stderr.strip() == f"vlm-router: {served.url} answered 401 (Incorrect API key provided.): pass its key with --api-key or VLM_API_KEY"
    assert not result.stdout


@pytest.fixture
def offline(tmp_path) -> tuple[Path, int]:
    """A models.yaml on a port where no server listens: a model whose folder tells its family, and a hub source."""
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2_vl"}')
    port = free_port()
    config = {
        "server": {"port": port},
        "models": [{"name": "local", "aliases": ["q"], "path": "qwen", "device": "GPU"}, {"name": "hub", "source": "org/model"}],
    }
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "models.yaml", port


def test_list_without_a_server_shows_models_yaml_saying_so(offline):
    config, port = offline
    result = cli("list", "--config", str(config))
    assert result.returncode == 0, result.stderr
    note, *table = result.stdout.splitlines()
    assert note == f"no server answers at http://127.0.0.1:{port} (Connection refused): the models of {config}, none loaded"
    assert rows("\n".join(table)) == [
        ["NAME", "ALIASES", "FAMILY", "DEVICE", "STATE", "IMAGES", "VIDEO"],
        ["local", "q", "qwen2_vl", "GPU", "not_loaded", "yes", "native"],
        ["hub", "-", "-", "CPU", "not_loaded", "?", "?"],
    ]


def test_list_json_without_a_server_keeps_stdout_for_the_models(offline):
    config, port = offline
    result = cli("list", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    cards = json.loads(result.stdout)
    assert [(c["id"], c["family"], c["state"], c["loading"], c["pid"]) for c in cards] == [
        ("local", "qwen2_vl", "not_loaded", None, None),
        ("hub", None, "not_loaded", None, None),
    ]
    assert cards[0]["capabilities"]["video"] == "native" and cards[1]["capabilities"] is None
    assert f"no server answers at http://127.0.0.1:{port}" in result.stderr


def test_ps_without_a_server_is_an_error_naming_the_url(offline):
    config, port = offline
    result = cli("ps", "--config", str(config))
    assert result.returncode == 1 and not result.stdout
    assert result.stderr.strip() == (
        f"vlm-router: no server answers at http://127.0.0.1:{port} (Connection refused): start one with `vlm-router serve`, or name its URL with --url"
    )
