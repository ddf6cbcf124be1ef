"""The compat suite's server: the tiny Qwen2-VL and Qwen3-VL (which has a tool template) on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vlm_router.api.app import create_app

from ..conftest import ServerThread, router_config


@pytest.fixture(scope="session")
def compat_server(tiny_models, families) -> Iterator[ServerThread]:
    """One server for every client library: `tiny-qwen2-vl` (the default model) and `tiny-qwen3-vl`."""
    config = router_config(
        [
            {"name": "tiny-qwen2-vl", "path": str(tiny_models["qwen2_vl"])},
            {"name": "tiny-qwen3-vl", "path": str(tiny_models["qwen3_vl"])},
        ],
        server={"default_model": "tiny-qwen2-vl"},
    )
    with ServerThread(create_app(config, families)) as running:
        yield running


@pytest.fixture(scope="session")
def base_url(compat_server: ServerThread) -> str:
    """The OpenAI-style base URL (`.../v1`) the libraries take."""
    return compat_server.url + "/v1"
