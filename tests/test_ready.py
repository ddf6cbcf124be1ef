"""`GET /ready`: 503 with the reasons until the `load: eager` models have loaded, after a failed one, and once the
server shuts down; 200 otherwise. `/health` answers throughout."""

from __future__ import annotations

import aiohttp
import yaml

from vlm_router.api.app import create_app
from vlm_router.config import load_config

from .conftest import Server, wait_for

KEY = "client-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"


async def start(aiohttp_server, families, path, models: list[dict], **server) -> Server:
    """A server for `models`, written to the models.yaml at `path`, that reloads from it."""
    path.write_text(yaml.safe_dump({"server": server, "models": models}))
    app = create_app(load_config(path, {}), families, lambda: load_config(path, {}))
    return Server(app, await aiohttp_server(app))


async def get(server: Server, path: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(server.url + path) as response:
        return response.status, await response.json()


async def in_state(server: Server, model: str, state: str) -> bool:
    return server.registry.get(model).state.value == state


async def test_ready_once_the_eager_models_have_loaded(aiohttp_server, families, tiny_qwen, tmp_path):
    models = [{"name": "eager", "path": str(tiny_qwen), "load": "eager"}, {"name": "lazy", "path": str(tiny_qwen)}]
    server = await start(aiohttp_server, families, tmp_path / "models.yaml", models, api_keys=[KEY])
    # No key: probes carry none. The lazy model never counts.
    assert await get(server, "/ready") == (503, {"status": "not_ready", "reasons": ["model 'eager' is loading"]})
    assert await get(server, "/health") == (200, {"status": "ok"})
    await wait_for(lambda: in_state(server, "eager", "ready"))
    assert await get(server, "/ready") == (200, {"status": "ready"})
    assert server.registry.get("lazy").load_count == 0


async def test_not_ready_after_an_eager_model_failed(aiohttp_server, families, tiny_qwen, tmp_path):
    models = [{"name": "eager", "path": str(tmp_path / "missing"), "load": "eager"}, {"name": "fine", "path": str(tiny_qwen), "load": "eager"}]
    server = await start(aiohttp_server, families, tmp_path / "models.yaml", models)
    await wait_for(lambda: in_state(server, "fine", "ready"))
    assert await in_state(server, "eager", "failed")
    assert await get(server, "/ready") == (503, {"status": "not_ready", "reasons": ["model 'eager' failed to load"]})


async def test_an_eager_model_added_by_a_reload_makes_the_server_wait_for_it(aiohttp_server, families, tiny_qwen, tmp_path):
    config = tmp_path / "models.yaml"
    server = await start(aiohttp_server, families, config, [{"name": "lazy", "path": str(tiny_qwen)}], admin_keys=[ADMIN_KEY])
    assert await get(server, "/ready") == (200, {"status": "ready"})
    models = [{"name": "lazy", "path": str(tiny_qwen)}, {"name": "eager", "path": str(tiny_qwen), "load": "eager"}]
    config.write_text(yaml.safe_dump({"server": {"admin_keys": [ADMIN_KEY]}, "models": models}))
    async with aiohttp.ClientSession() as http:
        async with http.post(server.url + "/v1/admin/reload", headers={"Authorization": "Bearer " + ADMIN_KEY}) as response:
            assert response.status == 200
    assert await get(server, "/ready") == (503, {"status": "not_ready", "reasons": ["model 'eager' is loading"]})
    await wait_for(lambda: in_state(server, "eager", "ready"))
    assert await get(server, "/ready") == (200, {"status": "ready"})


async def test_not_ready_once_the_server_shuts_down(aiohttp_server, families, tiny_qwen, tmp_path):
    server = await start(aiohttp_server, families, tmp_path / "models.yaml", [{"name": "lazy", "path": str(tiny_qwen)}])
    assert await get(server, "/ready") == (200, {"status": "ready"})
    await server.app.shutdown()  # what a SIGTERM starts: the app's on_shutdown hooks
    assert await get(server, "/ready") == (503, {"status": "not_ready", "reasons": ["the server is shutting down"]})
    assert await get(server, "/health") == (200, {"status": "ok"}), "liveness is not readiness"
