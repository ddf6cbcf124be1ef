"""Shared fixtures: tiny models built offline once, a real server on a loopback port, media helpers."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import functools
import hashlib
import http.server
import importlib.util
import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import httpx
import numpy as np
import openai
import pytest
from aiohttp import web
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from vlm_router.api.app import SERVICE, create_app
from vlm_router.config import RouterConfig, parse_config
from vlm_router.plugins import load_families, load_tiny_models
from vlm_router.tiny import TinyModel, make_tiny

ROOT = Path(__file__).resolve().parent.parent
#: The `vlm-router` command, run by this interpreter.
CLI = [sys.executable, "-m", "vlm_router"]


def _models_dir(plugin: str) -> Path:
    """A cache of tiny models keyed by the code that builds them, so reruns skip the build."""
    sources = [ROOT / "vlm_router" / name for name in ("tiny.py", "convert.py", "uncapped_export.py")]
    sources += sorted((ROOT / "plugins" / "tiny").rglob("*.py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    return ROOT / "tests" / ".tiny-models" / f"{plugin}-{digest}"


#: Fixtures that build or serve a tiny model: a test that uses one, directly or through another fixture, is `e2e`.
_MODEL_FIXTURES = {"tiny_model", "tiny_models", "tiny_qwen"}


#: What a test marked `convert` needs: the conversion stack of the `convert` extra (optimum-cli comes with optimum-intel).
_CONVERT_MODULES = ("torch", "transformers", "optimum.intel")


def _missing_convert_module() -> str | None:
    """The first module of the `convert` extra that is not installed, or None (nothing is imported)."""
    for module in _CONVERT_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:  # its parent package is missing
            return module
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs a real pipeline `e2e`, so that `-m "not e2e"` is the fast lane; skip the
    tests marked `convert` where the `convert` extra is not installed."""
    missing = _missing_convert_module()
    for item in items:
        if _MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
        if missing and item.get_closest_marker("convert"):
            item.add_marker(pytest.mark.skip(reason=f"needs the convert extra ({missing} is not installed): pip install -e '.[convert,test]'"))


@pytest.fixture(scope="session")
def families():
    return load_families()


@pytest.fixture(scope="session")
def tiny_builders() -> dict[str, TinyModel]:
    return load_tiny_models()


def _build(builders: dict[str, TinyModel], model_type: str, out_dir: Path, **options: Any) -> Path:
    """`make_tiny` under a lock file, so that test runs side by side build each model once; a skip when a model
    is not cached and the `convert` extra that builds it is not installed."""
    if not out_dir.is_dir() and (missing := _missing_convert_module()):
        pytest.skip(f"building tiny models needs the convert extra ({missing} is not installed): pip install -e '.[convert,test]'")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return make_tiny(builders, model_type, out_dir, **options)


@pytest.fixture(scope="session")
def tiny_model(tiny_builders) -> Callable[[str], Path]:
    """The OpenVINO folder of a tiny `model_type` model, built on first use (cached by source hash)."""
    return functools.cache(lambda model_type: _build(tiny_builders, model_type, _models_dir(model_type) / model_type))


@pytest.fixture(scope="session")
def tiny_qwen(tiny_model) -> Path:
    """The tiny Qwen2-VL's folder, built before a test's event loop runs (`make_tiny` runs a loop of its own)."""
    return tiny_model("qwen2_vl")


@pytest.fixture(scope="session")
def tiny_models(tiny_builders) -> dict[str, Path]:
    """OpenVINO folders of a tiny model of every buildable type, and the Qwen2-VL Hugging Face checkpoint."""
    qwen = _models_dir("qwen2_vl")
    return {
        "qwen2_vl": _build(tiny_builders, "qwen2_vl", qwen / "qwen2_vl"),
        "qwen2_5_vl": _build(tiny_builders, "qwen2_5_vl", qwen / "qwen2_5_vl"),
        "qwen2_vl_hf": _build(tiny_builders, "qwen2_vl", qwen / "qwen2_vl_hf", hf_only=True),
        **{t: _build(tiny_builders, t, _models_dir(t) / t) for t in ("llava", "llava_next", "llava_next_video", "gemma3", "qwen3_vl")},
    }


def router_config(models: list[dict[str, Any]], **sections: Any) -> RouterConfig:
    """A validated config from plain data, media allowed from loopback unless given."""
    sections.setdefault("media", {"allowed_hosts": ["127.0.0.1"]})
    return parse_config({"models": models, **sections})


class ServerThread:
    """A real vlm-router server on 127.0.0.1, running its own event loop on a thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, handler_cancellation=True)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def server(tiny_models, families) -> Iterator[ServerThread]:
    """One server with the tiny models, shared by the end-to-end tests that do not change state."""
    config = router_config(
        [
            {"name": "tiny-qwen2-vl", "aliases": ["demo"], "path": str(tiny_models["qwen2_vl"]), "defaults": {"max_tokens": 16}},
            {"name": "tiny-qwen2.5-vl", "path": str(tiny_models["qwen2_5_vl"])},
            {"name": "tiny-llava", "path": str(tiny_models["llava"])},
            {"name": "tiny-llava-next", "path": str(tiny_models["llava_next"])},
            {"name": "tiny-gemma3", "path": str(tiny_models["gemma3"])},
            {"name": "tiny-llava-next-video", "path": str(tiny_models["llava_next_video"])},
            {"name": "tiny-qwen3-vl", "path": str(tiny_models["qwen3_vl"])},
            {"name": "no-video", "path": str(tiny_models["qwen2_vl"]), "capabilities": {"video": "none"}},
            {"name": "video-as-frames", "path": str(tiny_models["qwen2_vl"]), "capabilities": {"video": "frames"}},
        ],
        server={"default_model": "tiny-qwen2-vl"},
    )
    with ServerThread(create_app(config, families)) as running:
        yield running


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, fmt)
    return buffer.getvalue()


def make_video(seconds: float, fmt: str = "mp4", codec: str = "libx264", size: tuple[int, int] = (96, 64), fps: int = 25, gop: int | None = None) -> bytes:
    """A video whose frame i is a flat gray of level 2*i (mod 256), so a frame tells its own index."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        for i in range(int(seconds * fps)):
            frame = np.full((size[1], size[0], 3), (2 * i) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def user(*parts: dict[str, Any] | str) -> dict[str, Any]:
    content = [{"type": "text", "text": p} if isinstance(p, str) else p for p in parts]
    return {"role": "user", "content": content}


class MediaServer:
    """A loopback HTTP server with fixed files and redirects, for media URLs."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.redirects: dict[str, str] = {}
        files, redirects = self.files, self.redirects

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in redirects:
                    self.send_response(302)
                    self.send_header("Location", redirects[self.path])
                    self.end_headers()
                elif self.path in files:
                    body, media_type = files[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", media_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def media_server() -> Iterator[MediaServer]:
    running = MediaServer()
    yield running
    running.close()


#: Far more tokens than a test waits for: such a request runs until it is cancelled.
ENDLESS = 4000  # tokens: as long as the tiny models' context (4096) allows


class Server:
    """A server under test with an async openai client and a raw HTTP session."""

    def __init__(self, app, test_server) -> None:
        self.app = app
        self.url = str(test_server.make_url(""))
        self.client = openai.AsyncOpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=120)

    @property
    def registry(self):
        return self.app[SERVICE].registry

    async def models(self) -> dict[str, dict]:
        return {m.id: m.model_dump() for m in (await self.client.models.list()).data}

    async def ask(self, model: str, *parts, **kw):
        kw.setdefault("max_tokens", 8)
        kw.setdefault("temperature", 0)
        return await self.client.chat.completions.create(model=model, messages=[user(*parts or ("hi",))], **kw)


@pytest.fixture
async def start(aiohttp_server, families, tiny_models):
    """Start a server whose models all use the tiny Qwen2-VL unless they say otherwise."""

    async def starter(models: list[dict], **sections) -> Server:
        for model in models:
            model.setdefault("path", str(tiny_models["qwen2_vl"]))
        app = create_app(router_config(models, **sections), families)
        return Server(app, await aiohttp_server(app))  # test servers cancel handlers of clients that leave

    return starter


async def open_stream(session: aiohttp.ClientSession, server: Server, model: str, max_tokens: int = ENDLESS):
    """A streaming request that has produced its first text chunk."""
    body = {"model": model, "messages": [user("Go on.")], "stream": True, "max_tokens": max_tokens, "temperature": 0}
    response = await session.post(server.url + "/v1/chat/completions", json=body)
    assert response.status == 200
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 60)).decode()
        assert line, "the stream ended before its first text"  # at its end readline() returns b"" at once: no loop forever
        if line.startswith("data: {") and any(choice["delta"].get("content") for choice in json.loads(line[6:]).get("choices", ())):
            return response


async def wait_for(predicate, seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


#: Prometheus samples by name and labels.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metric_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, read by prometheus-client's parser."""
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> Samples:
    """The samples `GET /metrics` of the server at `url` answers with, in Prometheus text format."""
    response = httpx.get(url + "/metrics", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version="), response.text
    return metric_samples(response.text)


def metric_sum(url: str, name: str, **labels: str) -> float:
    """The sum of the server's samples `name` that have `labels` (whatever their other labels); 0 without any."""
    return sum(value for (found, have), value in scrape(url).items() if found == name and set(labels.items()) <= have)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not become healthy")
