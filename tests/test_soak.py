"""A soak test: hostile and normal requests mixed, for a bounded time, against `vlm-router serve` in a process of its own.

Every answer must be a success or a 4xx with an OpenAI error body (503 only as the documented "busy"); no
worker may restart; the router's and each worker's resident memory stay under the bounds below, sampled
from /proc all along; and afterwards both models still answer.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from PIL import Image

from .conftest import CLI, data_url, free_port, png_bytes, user, wait_healthy

#: How long the hostile traffic runs, and how many clients send it at once.
SECONDS = float(os.environ.get("VLM_SOAK_SECONDS", 60))
CLIENTS = 4
#: Resident memory bounds, MB (SECURITY.md has the figures measured). The worker's is set by the largest
#: request that passes: Qwen2-VL's 4 MP of images per request, encoded in one pass whose patch mask alone
#: is 1.7 GB (measured peak 2.3 GB).
ROUTER_RSS_MB = 1024
WORKER_RSS_MB = 3072
ERROR_KEYS = {"message", "type", "param", "code"}


def _png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 0).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


#: A 6000x6666 greyscale PNG of 39 KB, and an 800000x1 one of 2.4 KB: small bodies, huge pictures.
HUGE = data_url(_png(6000, 6666))
THIN = data_url(_png(800_000, 1))
SMALL = data_url(png_bytes(64, 48))
MEGA = data_url(png_bytes(1000, 1000))


@dataclass
class Kind:
    """One kind of request: its body (or raw bytes) and the statuses it may get."""

    name: str
    body: Callable[[], dict[str, Any] | bytes]
    statuses: frozenset[int]
    model: str = "qwen"


def chat(model: str, *parts: Any, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [user(*parts)], "max_tokens": 4, "temperature": 0, **fields}


OK, BAD = frozenset({200}), frozenset({400, 413})
KINDS = [
    Kind("text", lambda: chat("qwen", "Hello."), OK),
    Kind("image", lambda: chat("qwen", {"type": "image_url", "image_url": {"url": SMALL}}, "Describe."), OK),
    Kind("llava image", lambda: chat("llava", {"type": "image_url", "image_url": {"url": SMALL}}, "Describe."), OK),
    Kind("stream", lambda: chat("qwen", "Hello.", stream=True), OK),
    Kind("invalid json", lambda: b'{"model": "qwen", "messages": [', frozenset({400})),
    Kind("unknown model", lambda: chat("nope", "Hello."), frozenset({404})),
    Kind("huge frames", lambda: chat("qwen", {"type": "video", "video": [HUGE] * 64}, "What happens?"), BAD),
    Kind("many images", lambda: chat("qwen", *[{"type": "image_url", "image_url": {"url": MEGA}}] * 16, "Describe."), OK),
    Kind("huge images", lambda: chat("qwen", *[{"type": "image_url", "image_url": {"url": HUGE}}] * 8, "Describe."), BAD),
    Kind("thin image", lambda: chat("llava", {"type": "image_url", "image_url": {"url": THIN}}, "Describe."), BAD),
    Kind(
        "schema",
        lambda: chat("qwen", "Hello.", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"anyOf": []}}}),
        frozenset({400}),
    ),
    Kind("split tag", lambda: chat("qwen", "<ov_genai_image_", "0>"), frozenset({400})),
    Kind("nat64", lambda: chat("qwen", {"type": "image_url", "image_url": {"url": "http://[64:ff9b::127.0.0.1]:9/a.png"}}), frozenset({400})),
]


@dataclass
class Soak:
    url: str
    pid: int
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    router_mb: float = 0.0
    worker_mb: float = 0.0

    async def send(self, session: aiohttp.ClientSession, kind: Kind) -> None:
        body = kind.body()
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with session.post(self.url + "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"}) as response:
            raw = await response.read()
        self.statuses[kind.name, response.status] += 1
        error = error_of(raw) if response.status >= 400 else {}
        if response.status not in kind.statuses and not busy(response.status, error):
            self.failures.append(f"{kind.name}: {response.status} {raw[:300]!r}")
        elif response.status >= 400 and set(error) != ERROR_KEYS:
            self.failures.append(f"{kind.name}: {response.status} without an OpenAI error body: {raw[:300]!r}")

    async def client(self, seed: int, deadline: float) -> None:
        pick = random.Random(seed)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            while time.monotonic() < deadline:
                await self.send(session, pick.choice(KINDS))

    async def watch(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.router_mb = max(self.router_mb, rss_mb(self.pid))
            self.worker_mb = max([self.worker_mb, *(rss_mb(child) for child in children(self.pid))])
            await asyncio.sleep(0.2)

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(self.watch(deadline), *(self.client(seed, deadline) for seed in range(CLIENTS)))


def error_of(raw: bytes) -> dict[str, Any]:
    """The `error` object of an answer's body; {} for a body that is not an OpenAI error."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def busy(status: int, error: dict[str, Any]) -> bool:
    """The documented "busy" answers any request may get: a full queue (429), or no room to load a model (503)."""
    if status == 429:
        return error.get("code") == "model_overloaded"
    return status == 503 and error.get("code") == "model_unavailable" and "busy" in str(error.get("message"))


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # exited meanwhile
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)


def children(pid: int) -> list[int]:
    """The processes `pid` started (its workers, and the resource tracker of multiprocessing)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.fixture
def serving(tmp_path, tiny_models) -> Iterator[tuple[str, subprocess.Popen]]:
    # no recycling of a grown worker either: any new worker process is a failure here
    models = [{"name": name, "path": str(tiny_models[t]), "recycle_growth_gb": None} for name, t in (("qwen", "qwen2_vl"), ("llava", "llava"))]
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": models, "media": {"allowed_hosts": ["127.0.0.1"]}}))
    port = free_port()
    process = subprocess.Popen([*CLI, "serve", "--config", str(tmp_path / "models.yaml"), "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_soak(serving):
    url, process = serving
    soak = Soak(url, process.pid)
    asyncio.run(soak.run(5))  # both models loaded, then their workers are the ones that must survive
    workers = set(children(process.pid))
    assert len(workers) >= 2, f"both models' workers run: {workers}"
    soak = Soak(url, process.pid)
    asyncio.run(soak.run(SECONDS))
    summary = f"{sum(soak.statuses.values())} requests; {dict(soak.statuses)}; router {soak.router_mb:.0f} MB, worker {soak.worker_mb:.0f} MB"
    assert not soak.failures, "\n".join([summary, *soak.failures[:20]])
    assert set(children(process.pid)) == workers, "no worker restarted"
    assert soak.router_mb < ROUTER_RSS_MB and soak.worker_mb < WORKER_RSS_MB, summary
    assert all(soak.statuses[kind.name, 200] for kind in KINDS if kind.statuses == OK), summary
    print(summary)
