"""A family builds its models' pipelines: the worker serves whatever `load_pipeline` returns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vlm_router import hookimpl
from vlm_router.api.app import create_app
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.plugins import load_families, plugin_manager

from .conftest import ServerThread, router_config, user


class OneAtATime(Qwen2VLFamily):
    """Qwen2-VL on `VLMPipeline` whatever the model's scheduler says: a family with its own pipeline."""

    name = "qwen2_vl_one_at_a_time"
    model_types = ()

    def load_pipeline(self, model_dir: str, device: str, properties: Any, scheduler: Any) -> Any:
        return super().load_pipeline(model_dir, device, properties, None)


class Plugin:
    @hookimpl
    def register_families(self, register):
        register(OneAtATime())


@pytest.fixture(scope="module")
def server(tiny_qwen) -> Iterator[ServerThread]:
    manager = plugin_manager()
    manager.register(Plugin(), name="one-at-a-time")
    models = [
        {"name": "own", "family": "qwen2_vl_one_at_a_time", "path": str(tiny_qwen), "defaults": {"max_tokens": 4}},
        {"name": "default", "path": str(tiny_qwen), "defaults": {"max_tokens": 4}},
    ]
    with ServerThread(create_app(router_config(models), load_families(manager))) as running:
        yield running


@pytest.mark.parametrize(("model", "engine"), [("own", "sequential"), ("default", "continuous_batching")])
def test_the_worker_serves_the_pipeline_the_family_built(server, model, engine):
    answer = httpx.post(server.url + "/v1/chat/completions", json={"model": model, "messages": [user("Hello.")]}, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 4
    assert httpx.get(f"{server.url}/v1/models/{model}").json()["engine"] == engine
