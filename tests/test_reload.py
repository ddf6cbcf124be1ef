"""Reloading models.yaml while serving: models added, removed, changed and kept; requests in flight; refused files;
the admin endpoint's keys; SIGHUP on a real `vlm-router serve`."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml

from vlm_router.api.app import create_app
from vlm_router.config import load_config

from .conftest import CLI, Server, free_port, open_stream, wait_for, wait_healthy

ADMIN_KEY = "admin-key-0123456789"
API_KEY = "client-key-0123456789"
ADMIN = {"Authorization": "Bearer " + ADMIN_KEY}
RELOAD = "/v1/admin/reload"


def write(path: Path, models: list[dict[str, Any]], media: dict[str, Any] | None = None, **server: Any) -> None:
    """A models.yaml with the admin key and `server` settings."""
    path.write_text(yaml.safe_dump({"server": {"admin_keys": [ADMIN_KEY], **server}, "media": media or {}, "models": models}))


async def serve(aiohttp_server, families, path: Path, env: dict[str, str] | None = None) -> Server:
    """A server for the models.yaml at `path`, reloading from it as `vlm-router serve` does."""
    app = create_app(load_config(path, env or {}), families, lambda: load_config(path, env or {}))
    return Server(app, await aiohttp_server(app))


async def reload(http: aiohttp.ClientSession, server: Server, headers: dict[str, str] = ADMIN) -> tuple[int, dict]:
    async with http.post(server.url + RELOAD, headers=headers) as response:
        return response.status, await response.json()


async def pid(server: Server, model: str) -> int:
    """The pid of the worker serving `model`, after a request that loads it."""
    await server.ask(model)
    return (await server.models())[model]["pid"]


async def gone(*pids: int) -> bool:
    """Whether the processes `pids` have all ended."""
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


async def finish(response: aiohttp.ClientResponse) -> list[dict]:
    """The rest of an SSE stream, its chunks as JSON, after checking that it ends with [DONE]."""
    lines = [line.decode().strip() for line in (await asyncio.wait_for(response.read(), 120)).splitlines()]
    events = [line[6:] for line in lines if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(event) for event in events[:-1]]


async def test_reload_adds_removes_changes_and_keeps_models(aiohttp_server, families, tiny_qwen, tmp_path):
    config = tmp_path / "models.yaml"
    path = str(tiny_qwen)
    write(config, [{"name": "kept", "path": path}, {"name": "changed", "path": path}, {"name": "removed", "path": path}], default_model="kept")
    server = await serve(aiohttp_server, families, config)
    before = {name: await pid(server, name) for name in ("kept", "changed", "removed")}

    models = [
        {"name": "kept", "path": path},
        {"name": "changed", "path": path, "defaults": {"max_tokens": 3}},
        {"name": "added", "path": path, "aliases": ["new"]},
    ]
    write(config, models, default_model="added")
    async with aiohttp.ClientSession() as http:
        status, body = await reload(http, server)
        assert status == 200, body
        assert body == {"added": ["added"], "removed": ["removed"], "changed": ["changed"], "unchanged": ["kept"]}

        listed = await server.models()
        assert list(listed) == ["kept", "changed", "added"]
        assert listed["kept"]["pid"] == before["kept"], "an unchanged model keeps its worker"
        async with http.post(server.url + "/v1/chat/completions", json={"model": "removed", "messages": [{"role": "user", "content": "hi"}]}) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "model_not_found"
        no_model = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        async with http.post(server.url + "/v1/chat/completions", json=no_model) as response:
            assert response.status == 200 and (await response.json())["model"] == "added", "the new default model"

    answer = await server.ask("changed", max_tokens=None, extra_body={"ignore_eos": True})
    assert answer.usage.completion_tokens == 3, "the changed entry's defaults apply"
    assert (await server.models())["changed"]["pid"] not in (before["changed"], None)
    assert (await server.ask("new")).model == "added"
    await wait_for(lambda: gone(before["removed"], before["changed"]))
    assert len(server.registry.every_handle) == 3, "nothing left draining"


async def test_streams_in_flight_finish_on_their_workers_while_their_models_go(aiohttp_server, families, tiny_qwen, tmp_path):
    """A removed model's and a changed model's streams run to their end; the changed model's new requests wait for
    its new worker, which starts once the old one has finished its stream and stopped."""
    config = tmp_path / "models.yaml"
    models = [{"name": "changed", "path": str(tiny_qwen)}, {"name": "removed", "path": str(tiny_qwen)}]
    write(config, models)
    server = await serve(aiohttp_server, families, config)
    old = {name: await pid(server, name) for name in ("changed", "removed")}
    write(config, [{"name": "changed", "path": str(tiny_qwen), "defaults": {"max_tokens": 2}}])
    async with aiohttp.ClientSession() as http:
        streams = {name: await open_stream(http, server, name) for name in ("changed", "removed")}
        assert await reload(http, server) == (200, {"added": [], "removed": ["removed"], "changed": ["changed"], "unchanged": []})
        draining = {h.name: h.in_flight for h in server.registry.every_handle[1:]}
        assert draining == {"changed": 1, "removed": 1}, "the reload found both streams running"

        asked = asyncio.ensure_future(server.ask("changed", max_tokens=None, extra_body={"ignore_eos": True}))
        workers = asyncio.ensure_future(most_workers("changed", asked))
        for name, response in streams.items():
            chunks = await finish(response)
            assert chunks[-1]["choices"][0]["finish_reason"] == "length", f"the {name} model's stream ran to its end"
        answer = await asyncio.wait_for(asked, 120)
    assert answer.usage.completion_tokens == 2, "the new request ran with the new configuration"
    assert await workers == 1, "the new worker started only once the old one had stopped"
    assert (await server.models())["changed"]["pid"] != old["changed"]
    await wait_for(lambda: gone(old["changed"], old["removed"]))


async def most_workers(model: str, until: asyncio.Future) -> int:
    """The most worker processes of `model` that ran at once until `until` is done."""
    most = 0
    while not until.done():
        most = max(most, sum(child.name == f"vlm-worker-{model}" for child in multiprocessing.active_children()))
        await asyncio.sleep(0.01)
    return most


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("models: [", "not valid YAML"),
        (b"models: \xff\xfe", "not UTF-8 text"),
        ({"models": [{"name": "a", "path": "m", "device": "TPU"}]}, "models[0] ('a').device"),
        ({"models": [{"name": "a", "path": "m", "family": "not_a_family"}]}, "models[0] ('a').family: family 'not_a_family' is not installed"),
        ({"server": {"port": 1234}}, "server.port cannot change without a restart"),
        ({"server": {"api_keys": [API_KEY]}}, "server.api_keys cannot change without a restart"),
        ({"media": {"max_images_per_request": 2}}, "media.max_images_per_request cannot change without a restart"),
        ({"models": []}, "no models configured"),
    ],
)
async def test_a_bad_file_is_refused_whole(aiohttp_server, families, tiny_qwen, tmp_path, bad, message):
    config = tmp_path / "models.yaml"
    write(config, [{"name": "m", "path": str(tiny_qwen)}])
    server = await serve(aiohttp_server, families, config)
    loaded = await pid(server, "m")
    if isinstance(bad, bytes):
        config.write_bytes(f"server:\n  admin_keys: [{ADMIN_KEY}]\n".encode() + bad)
    elif isinstance(bad, str):
        config.write_text(f"server:\n  admin_keys: [{ADMIN_KEY}]\n{bad}")
    else:  # with the admin key, the model served now and one that alone would be added
        models = bad.get("models", [{"name": "m", "path": str(tiny_qwen)}, {"name": "new", "path": str(tiny_qwen)}])
        write(config, models, bad.get("media"), **bad.get("server", {}))
    async with aiohttp.ClientSession() as http:
        status, body = await reload(http, server)
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == ("invalid_request_error", "invalid_config", None)
    assert body["error"]["message"].startswith("the configuration was not reloaded: ") and message in body["error"]["message"]
    listed = await server.models()
    assert list(listed) == ["m"] and listed["m"]["pid"] == loaded, "the old configuration stays, its worker too"


async def test_admin_endpoint_needs_an_admin_key(aiohttp_server, families, tmp_path):
    config = tmp_path / "models.yaml"
    models = [{"name": "m", "path": str(tmp_path / "never-loaded")}]
    config.write_text(yaml.safe_dump({"server": {"api_keys": [API_KEY]}, "models": models}))
    closed = await serve(aiohttp_server, families, config)
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer " + API_KEY}):
            status, body = await reload(http, closed, headers)
            assert status == 403, "no admin keys: the endpoint is off, whatever the key"
            assert body["error"]["code"] == "admin_disabled"
            assert "server.admin_keys" in body["error"]["message"] and "VLM_ADMIN_KEYS" in body["error"]["message"]

    config.write_text(yaml.safe_dump({"server": {"api_keys": [API_KEY], "admin_keys": [ADMIN_KEY]}, "models": models}))
    env_key = "admin-env-key-9876543210"
    server = await serve(aiohttp_server, families, config, env={"VLM_ADMIN_KEYS": env_key})
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer " + API_KEY}, {"Authorization": "Bearer " + ADMIN_KEY + "x"}):
            status, body = await reload(http, server, headers)
            assert status == 401 and body["error"]["code"] == "invalid_api_key", headers
        for key in (ADMIN_KEY, env_key):
            assert await reload(http, server, {"Authorization": "Bearer " + key}) == (200, {"added": [], "removed": [], "changed": [], "unchanged": ["m"]})
        async with http.get(server.url + "/v1/models", headers=ADMIN) as response:
            assert response.status == 401, "an admin key is no API key"
        async with http.get(server.url + "/v1/admin/nowhere") as response:
            assert response.status == 401, "every admin path takes the admin key"


def test_sighup_reloads_a_running_server(tmp_path, tiny_qwen):
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"models": [{"name": "a", "path": str(tiny_qwen)}]}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        # --port over the file's (default) port: a reload must not take that for a change of server.port
        process = subprocess.Popen([*CLI, "serve", "--config", str(config), "--port", str(port)], stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url)
        ask = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(url + "/v1/chat/completions", json={**ask, "model": "a"}, timeout=120).status_code == 200
        worker = httpx.get(url + "/v1/models/a").json()["pid"]

        config.write_text(yaml.safe_dump({"models": [{"name": "a", "path": str(tiny_qwen)}, {"name": "b", "path": str(tiny_qwen)}]}))
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["a", "b"])
        assert httpx.post(url + "/v1/chat/completions", json={**ask, "model": "b"}, timeout=120).status_code == 200
        assert httpx.get(url + "/v1/models/a").json()["pid"] == worker

        config.write_text("models: [")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused, the configuration stays as it was" in log.read_text())
        assert "not valid YAML" in log.read_text()
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["a", "b"]
        assert process.poll() is None
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    assert "reloaded the configuration: added b; removed none; changed none; unchanged a" in log.read_text()
    assert "Traceback" not in log.read_text()


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)
