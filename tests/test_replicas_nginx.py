"""Three vlm-router replicas behind nginx, run from the configuration docs/deployment.md shows
(`docker/nginx/vlm-router.conf`), sharing one read-only model folder: spreading, a replica killed,
a rolling restart, and streaming through the proxy.

Without nginx these tests skip, unless `VLM_NGINX_TESTS=required` (as `.ci/run` sets) makes that a failure.
`-k "nginx or replica"` selects them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from .conftest import ROOT, data_url, metric_sum
from .replicas import Nginx, Replica, nginx_binary

pytestmark = pytest.mark.nginx

MODEL = "m"
REPLICAS = 3


@dataclass
class Cluster:
    replicas: list[Replica]
    nginx: Nginx

    def served(self, requests: int) -> Counter[str]:
        """How many of the first `requests` each replica answered, as nginx logged them (the last replica tried)."""
        return Counter(entry["upstreams"][-1] for entry in self.nginx.wait_logged(requests)[:requests])


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def shared_model(tiny_qwen, tmp_path_factory) -> Iterator[Path]:
    """One copy of the tiny Qwen2-VL that every replica serves, read-only; unchanged at the end."""
    if nginx_binary() is None:
        reason = "nginx missing: apt-get install nginx"
        if os.environ.get("VLM_NGINX_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("shared") / "qwen2_vl"
    shutil.copytree(tiny_qwen, folder)
    for path in [*folder.rglob("*"), folder]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _snapshot(folder)
    yield folder
    assert _snapshot(folder) == before, "a replica wrote into the shared model folder"


@pytest.fixture
def cluster(shared_model, tmp_path) -> Iterator[Cluster]:
    models = [{"name": MODEL, "path": str(shared_model), "load": "eager", "defaults": {"max_tokens": 8, "temperature": 0}}]
    replicas = [Replica(tmp_path / f"replica-{i}", models).start() for i in range(REPLICAS)]
    try:
        for replica in replicas:
            replica.wait_ready()
        nginx = Nginx(tmp_path / "nginx", replicas).start()
        try:
            yield Cluster(replicas, nginx)
        finally:
            nginx.stop()
    finally:
        for replica in replicas:
            replica.kill()


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def ask(cluster: Cluster, index: int) -> int:
    """One short chat completion through nginx; its status."""
    return httpx.post(cluster.nginx.url + "/v1/chat/completions", json=chat(f"Hello {index}"), timeout=120).status_code


def encode_png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


class Stream(threading.Thread):
    """A streaming request through nginx on a thread: `started` once its first text arrived; `outcome` at the end
    ("done": it ended with [DONE]; "cut": the connection ended first)."""

    def __init__(self, cluster: Cluster, index: int, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.body = chat(f"Story {index}", stream=True, max_tokens=max_tokens, ignore_eos=True)
        self.url = cluster.nginx.url + "/v1/chat/completions"
        self.started = threading.Event()
        self.outcome = ""

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=120) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith('data: {"') and '"content":"' in line:
                        self.started.set()
                    if line == "data: [DONE]":
                        self.outcome = "done"
                        return
        except httpx.TransportError:
            pass
        self.outcome = "cut"


def test_requests_spread_across_the_replicas_behind_nginx(cluster):
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: ask(cluster, i), range(17)))
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    image = {"type": "image_url", "image_url": {"url": data_url(encode_png(noise))}}
    body = {"model": MODEL, "messages": [{"role": "user", "content": [image, {"type": "text", "text": "What is it?"}]}]}
    assert len(json.dumps(body)) > 100_000, "a body nginx keeps in a file, not in memory"
    statuses.append(httpx.post(cluster.nginx.url + "/v1/chat/completions", json=body, timeout=120).status_code)
    assert statuses == [200] * 18
    served = cluster.served(18)
    assert set(served) == {replica.address for replica in cluster.replicas}
    assert min(served.values()) >= 3, served
    for replica in cluster.replicas:  # nginx's account and the replicas' own agree
        assert metric_sum(replica.url, "vlm_router_requests_total", model=MODEL, status="200") == served[replica.address]


def test_killing_a_replica_fails_only_its_requests_in_flight(cluster):
    streams = [Stream(cluster, i, max_tokens=4000) for i in range(6)]
    for stream in streams:
        stream.start()
    for stream in streams:
        assert stream.started.wait(60), "every stream produced text"
    in_flight = {replica.address: replica.in_flight() for replica in cluster.replicas}
    victim = max(cluster.replicas, key=lambda replica: in_flight[replica.address])
    assert in_flight[victim.address] >= 1, in_flight
    victim.kill()
    for stream in streams:
        stream.join(120)
    outcomes = Counter(stream.outcome for stream in streams)
    assert outcomes == Counter({"cut": in_flight[victim.address], "done": 6 - in_flight[victim.address]})

    assert len(cluster.nginx.wait_logged(6)) == 6
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(lambda i: ask(cluster, i), range(9))) == [200] * 9
    later = cluster.nginx.wait_logged(15)[6:]
    assert len(later) == 9 and all(entry["upstreams"][-1] != victim.address for entry in later)

    for replica in cluster.replicas:
        replica.kill()
    with pytest.raises(openai.APIStatusError) as caught:  # what a client shows when no replica is left
        openai.OpenAI(base_url=cluster.nginx.url + "/v1", api_key="unused", max_retries=0).chat.completions.create(**chat("Anyone?"))
    assert caught.value.status_code == 502 and caught.value.body["code"] == "no_replica_available"


def test_a_rolling_restart_behind_nginx_loses_no_request(cluster):
    stop = threading.Event()
    results: list[str] = []

    def client(index: int) -> None:
        count = 0
        while not stop.is_set():
            stream = index % 2 == 1  # half the clients stream: their requests run through a replica's shutdown
            body = chat(f"Client {index} request {count}", stream=stream, max_tokens=32)
            try:
                response = httpx.post(cluster.nginx.url + "/v1/chat/completions", json=body, timeout=120)
                ok = response.status_code == 200 and (not stream or response.text.endswith("data: [DONE]\n\n"))
                results.append("ok" if ok else f"{response.status_code} {response.text[:200]}")
            except httpx.TransportError as exc:
                results.append(repr(exc))
            count += 1

    clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for thread in clients:
        thread.start()
    restarted = []
    for replica in cluster.replicas:  # one at a time, each back and ready before the next goes
        time.sleep(1)
        assert replica.terminate() == 0, replica.log()[-2000:]
        replica.start().wait_ready()
        restarted.append(len(cluster.nginx.access()))
    time.sleep(1)
    stop.set()
    for thread in clients:
        thread.join(120)
    failures = [result for result in results if result != "ok"]
    assert failures == [] and len(results) >= 20, (failures, len(results))
    logged = cluster.nginx.wait_logged(len(results))
    for replica, since in zip(cluster.replicas, restarted):
        assert any(entry["upstreams"][-1] == replica.address for entry in logged[since:]), "each replica serves again once restarted"


def test_streaming_through_nginx_is_not_buffered(cluster):
    """The first text reaches the client while the replica still generates: the client leaves on reading it,
    and the replica sees it leave (499) before its answer ends. Were the answer held back to its end, it would
    have ended (200) first."""
    body = chat("Go on.", stream=True, max_tokens=4000, ignore_eos=True)
    with httpx.stream("POST", cluster.nginx.url + "/v1/chat/completions", json=body, timeout=120) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in response.iter_lines() if '"content":"' in line and '"content":""' not in line)
    assert first.startswith("data: {")

    def streams(**status: str) -> float:
        return sum(metric_sum(replica.url, "vlm_router_requests_total", model=MODEL, stream="true", **status) for replica in cluster.replicas)

    for _ in range(600):  # until the replica has counted it
        if streams():
            break
        time.sleep(0.05)
    assert streams(status="499") == 1 and streams(status="200") == 0


def test_the_documented_nginx_configuration_is_the_tested_one():
    documented = (ROOT / "docs" / "deployment.md").read_text()
    template = (ROOT / "docker" / "nginx" / "vlm-router.conf").read_text()
    assert f"```nginx\n{template}```" in documented, "docs/deployment.md shows docker/nginx/vlm-router.conf verbatim"
