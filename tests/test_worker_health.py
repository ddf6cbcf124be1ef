"""Worker health: stalls detected by heartbeat, memory given back after large requests, SIGTERM's hard deadline."""

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import httpx
import numpy as np
import openai
import pytest
import yaml
from PIL import Image

from vlm_router.api.app import create_app
from vlm_router.worker.procfs import rss_bytes

from .conftest import CLI, ENDLESS, Server, data_url, free_port, image_part, open_stream, router_config, user, wait_for, wait_healthy
from .test_workers import alive, read_events


def noise_png(side: int, seed: int = 0) -> bytes:
    """A PNG that decodes to `side` x `side` pixels of 8x8 blocks of noise (small to send, costly to encode)."""
    blocks = np.random.default_rng(seed).integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blocks.repeat(8, 0).repeat(8, 1)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def start(aiohttp_server, families, tiny_qwen):
    """Start a server whose models all use the tiny Qwen2-VL (the only model these tests build)."""

    async def starter(models: list[dict], **sections) -> Server:
        for model in models:
            model.setdefault("path", str(tiny_qwen))
        app = create_app(router_config(models, **sections), families)
        return Server(app, await aiohttp_server(app))

    return starter


def running(pid: int) -> bool:
    """`pid` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


async def _ready_with_new_pid(server, model: str, old_pid: int) -> bool:
    state = (await server.models())[model]
    return state["state"] == "ready" and state["pid"] not in (None, old_pid)


async def test_stalled_worker_fails_its_requests_fast_and_is_replaced(start):
    server = await start([{"name": "m", "request_timeout_s": 120}], server={"worker_stall_timeout_s": 2})
    async with aiohttp.ClientSession() as session:
        stream = await open_stream(session, server, "m")
        pending = asyncio.ensure_future(server.ask("m", max_tokens=ENDLESS))
        pid = (await server.models())["m"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            events = await asyncio.wait_for(read_events(stream), 30)
            with pytest.raises(openai.APIStatusError) as caught:
                await asyncio.wait_for(pending, 30)
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert time.monotonic() - started < 10, "detected within the stall timeout plus its checks, not the request's deadline"
    assert json.loads(events[-2])["error"]["code"] == "worker_failed"
    assert caught.value.status_code == 503 and "stopped responding" in caught.value.body["message"]
    await wait_for(lambda: _ready_with_new_pid(server, "m", pid), 60)  # replaced without waiting for a request
    assert (await server.models())["m"]["restarts"] == 1
    assert (await server.ask("m")).choices[0].message.content


async def test_a_long_encode_that_holds_the_gil_is_not_a_stall(start):
    # add_request encodes the images holding the GIL, so the heartbeat pauses; the CPU time it uses shows it alive
    timeout = 0.3
    server = await start([{"name": "m", "capabilities": {"max_image_pixels": 1_003_520}}], server={"worker_stall_timeout_s": timeout})
    images = [image_part(data_url(noise_png(1000, seed))) for seed in range(4)]  # 4 MP: Qwen2-VL's most per request
    started = time.monotonic()
    answer = await server.ask("m", *images, "Compare.", max_tokens=2)
    assert time.monotonic() - started > 2 * timeout, "the encode outlasted the stall timeout"
    assert answer.choices[0].message.content
    assert (await server.models())["m"]["restarts"] == 0


async def test_a_worker_grown_past_its_bound_is_replaced_once_idle(start):
    server = await start([{"name": "m", "recycle_growth_gb": 0.1, "capabilities": {"max_image_pixels": 1_500_000}}])  # 1200x1200 as it is
    await server.ask("m")
    pid = (await server.models())["m"]["pid"]
    grown = rss_bytes(pid)
    answer = await server.ask("m", image_part(data_url(noise_png(1200))), "Describe.", max_tokens=2)
    assert answer.choices[0].message.content
    await wait_for(lambda: _ready_with_new_pid(server, "m", pid), 60)
    state = (await server.models())["m"]
    assert state["restarts"] == 0 and not alive(pid)
    assert rss_bytes(state["pid"]) < grown + 100e6, "the new worker holds what a fresh one does"


async def test_a_worker_is_measured_once_warm_not_once_loaded(start):
    """The weights are mapped from disk and come in with the first requests: that is not growth to give back."""
    server = await start([{"name": "m", "recycle_growth_gb": 0.005}])
    pid = None
    for _ in range(3):
        await server.ask("m", image_part(data_url(noise_png(256))), "Describe.", max_tokens=2)
        await asyncio.sleep(0.5)
        state = (await server.models())["m"]
        assert pid in (None, state["pid"]), "replaced though it did not grow"
        pid = state["pid"]


async def test_a_worker_within_its_bound_is_kept(start):
    server = await start([{"name": "m"}])  # recycle_growth_gb: 2 by default
    await server.ask("m")
    pid = (await server.models())["m"]["pid"]
    await server.ask("m", image_part(data_url(noise_png(256))), "Describe.", max_tokens=2)
    await asyncio.sleep(0.5)
    assert (await server.models())["m"]["pid"] == pid


_CHURN = """
import asyncio, os
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from vlm_router.worker.heap import HeapTrimmer
from vlm_router.worker.procfs import rss_bytes

async def main():
    np.ones(20 * 2**20 // 8)  # freeing a 20 MB block raises glibc's mmap threshold, as decoding large images does
    with ThreadPoolExecutor(6) as threads:  # decoded on several threads, as the media loader does
        frames = list(threads.map(lambda _: np.ones((1000, 1000, 3), np.uint8), range(48)))
    del frames
    held = rss_bytes(os.getpid())
    HeapTrimmer(delay=0.05).soon()
    await asyncio.sleep(0.5)
    print(held - rss_bytes(os.getpid()))

asyncio.run(main())
"""


def test_heap_trimmer_gives_freed_memory_back():
    """Memory freed by several threads stays in glibc's arenas until trimmed (a fresh process, so nothing else is freed)."""
    released = int(subprocess.run([sys.executable, "-c", _CHURN], capture_output=True, text=True, check=True, timeout=60).stdout)
    assert released > 50e6, f"{released / 1e6:.0f} MB of 144 MB freed went back to the system"


def test_sigterm_ends_within_the_grace_even_with_a_stalled_worker(tmp_path, tiny_qwen):
    grace = 2
    server = {"shutdown_grace_s": grace, "worker_stall_timeout_s": None}  # no stall check to rescue it
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"server": server, "models": [{"name": "m", "path": str(tiny_qwen)}]}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*CLI, "serve", "--config", str(tmp_path / "models.yaml"), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = None
    try:
        wait_healthy(url)
        body = {"model": "m", "messages": [user("Go on.")], "stream": True, "max_tokens": ENDLESS, "temperature": 0}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            worker = httpx.get(url + "/v1/models/m").json()["pid"]
            os.kill(worker, signal.SIGSTOP)  # a worker that never finishes its step
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            with contextlib.suppress(httpx.RemoteProtocolError):  # the stream ends cut, or with an error event
                for _ in lines:
                    pass
            process.wait(timeout=30)
            took = time.monotonic() - started
        assert took < grace + 1, f"exited {took:.1f} s after SIGTERM with a grace of {grace} s"
        assert process.returncode == 0, "the orderly path finished before the last resort"
        assert not running(worker)
    finally:
        process.kill()
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)  # it holds the output pipe open
        output = process.communicate()[0]
    assert "Traceback" not in output
