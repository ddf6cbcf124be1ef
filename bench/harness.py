"""What the server benchmarks share: test images, request bodies, a timed streaming client, the server process, reports.

The scripts in this folder import it as `harness` (Python puts a script's own folder first on
`sys.path`). Nothing here measures anything by itself:

- **Images**: `make_png` and `make_jpeg` draw a colour gradient whose direction and colours depend on
  a seed, plus Gaussian noise, so that every request's image is different and not trivially
  compressible.
- **Requests**: `chat_body` writes a streaming chat completion for the model `bench` (temperature 0,
  `stream_options.include_usage`); `stream_chat` sends one and records, as seconds from the caller's
  `t0`, when it was sent, when each server-sent event carrying content arrived, and when the stream
  ended, with the text and the usage chunk's token counts; `run_clients` runs closed-loop clients.
- **Server**: `serving` writes a temporary models.yaml serving one model folder as `bench` (no request
  deadline, a long waiting queue, plus any per-model fields such as `scheduler` or `capabilities`),
  runs `python -m vlm_router serve` on a free loopback port in a process group of its own, and stops
  it (SIGTERM, then SIGKILL of the group) however the block ends. `warm_up` waits for /health and
  sends one unmeasured request; `worker_memory` reads the model's worker from /proc.
- **Reports**: `percentile`, `cell`, `markdown_table`, and `machine` (what the numbers were measured on).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from PIL import Image as PILImage

MODEL_NAME = "bench"
SERVER_START_TIMEOUT_S = 120.0
SERVER_STOP_TIMEOUT_S = 60.0
# Idle client connections are closed well before the server's `header_timeout_s` (15 s) would close them.
KEEPALIVE_S = 5.0


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# --- Images --------------------------------------------------------------------------------------


def gradient_pixels(seed: int, width: int, height: int) -> np.ndarray:
    """A deterministic `height` x `width` RGB array: a colour gradient whose direction and colours depend on `seed`, plus noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(width)[None, :] / (width - 1)
    y = np.arange(height)[:, None] / (height - 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x + np.sin(angle) * y  # in [-sqrt 2, sqrt 2]
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = ((ramp - ramp.min()) / (np.ptp(ramp) or 1))[..., None]
    pixels = t * (end - start)  # in place from here on: a 12-megapixel image needs no more than two float arrays
    pixels += start
    pixels += rng.normal(0, 12, (height, width, 3))
    return np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)


def _encode(pixels: np.ndarray, format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buffer, format=format, **options)
    return buffer.getvalue()


def make_png(seed: int, size: int) -> bytes:
    """A `size` x `size` PNG of `gradient_pixels`."""
    return _encode(gradient_pixels(seed, size, size), "PNG")


def make_jpeg(seed: int, width: int, height: int, quality: int = 90) -> bytes:
    """A `width` x `height` JPEG of `gradient_pixels`."""
    return _encode(gradient_pixels(seed, width, height), "JPEG", quality=quality)


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# --- Requests ------------------------------------------------------------------------------------


def user_message(text: str, image_url: str | None = None) -> dict[str, Any]:
    """A user message: the text alone, or one image first, then the text."""
    if image_url is None:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": text}]}


def chat_body(messages: list[dict[str, Any]], max_tokens: int, *, ignore_eos: bool) -> bytes:
    """The JSON body of a greedy, streaming chat completion of the model `bench`, ending with a usage chunk."""
    return json.dumps({
        "model": MODEL_NAME,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": ignore_eos,
        "stream": True,
        "stream_options": {"include_usage": True},
    }).encode()  # fmt: skip


def time_per_token(first: float | None, last: float | None, tokens: int) -> float | None:
    """(last text - first text) / (tokens - 1): the mean time per output token after the first."""
    if first is None or last is None or tokens < 2:
        return None
    return (last - first) / (tokens - 1)


@dataclass
class StreamResult:
    """One streamed chat completion; times in seconds from the caller's `t0`."""

    sent: float
    end: float
    chunks: list[float] = field(default_factory=list)  # arrival of every event with non-empty content
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None

    @property
    def first_chunk(self) -> float | None:
        return self.chunks[0] if self.chunks else None

    @property
    def last_chunk(self) -> float | None:
        return self.chunks[-1] if self.chunks else None

    @property
    def ttft(self) -> float | None:
        return None if not self.chunks else self.chunks[0] - self.sent

    @property
    def e2e(self) -> float:
        return self.end - self.sent

    @property
    def tpot(self) -> float | None:
        return time_per_token(self.first_chunk, self.last_chunk, self.completion_tokens)

    def gaps(self) -> Iterator[tuple[float, float]]:
        """(earlier, later) arrival times of each two consecutive content chunks."""
        return pairwise(self.chunks)


async def stream_chat(
    session: aiohttp.ClientSession, url: str, body: bytes, t0: float, on_start: Callable[[StreamResult], None] | None = None
) -> StreamResult:
    """Send one streaming chat completion and time it from its server-sent events.

    `on_start` gets the result before the request is sent, to follow it while it streams; a
    cancelled request keeps what it received, with the error "cancelled", and re-raises.
    """
    sent = time.perf_counter() - t0
    result = StreamResult(sent=sent, end=sent)
    if on_start is not None:
        on_start(result)
    try:
        async with session.post(f"{url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}) as response:
            if response.status != 200:
                result.error = f"HTTP {response.status}: {(await response.text())[:300]}"
            else:
                await _read_events(response, t0, result)
                if result.error is None and not result.completion_tokens:
                    result.error = "the stream ended without a usage chunk"
    except (aiohttp.ClientError, ValueError) as exc:  # ValueError: an event that is not JSON
        result.error = f"{type(exc).__name__}: {exc}"
    except asyncio.CancelledError:
        result.error = "cancelled"
        raise
    finally:
        result.end = time.perf_counter() - t0
    return result


async def _read_events(response: aiohttp.ClientResponse, t0: float, result: StreamResult) -> None:
    async for raw in response.content:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        now = time.perf_counter() - t0
        event = json.loads(data)
        if "error" in event:
            result.error = f"stream error: {event['error'].get('message')}"
            continue
        if event.get("usage"):
            result.completion_tokens = event["usage"]["completion_tokens"]
            result.prompt_tokens = event["usage"]["prompt_tokens"]
        for choice in event.get("choices", []):
            content = choice.get("delta", {}).get("content")
            if content:
                result.chunks.append(now)
                result.text += content
            result.finish_reason = choice.get("finish_reason") or result.finish_reason


async def run_clients(session: aiohttp.ClientSession, url: str, clients: list[list[bytes]], t0: float) -> list[list[StreamResult]]:
    """Closed-loop clients, all at once: client c sends `clients[c]` one after another, each when the previous answer has ended."""

    async def client(bodies: list[bytes]) -> list[StreamResult]:
        return [await stream_chat(session, url, body, t0) for body in bodies]

    return list(await asyncio.gather(*(client(bodies) for bodies in clients)))


def client_session() -> aiohttp.ClientSession:
    """A session without time limits or a connection cap."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), connector=connector)


# --- The server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_config(model_dir: Path, port: int, model_fields: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's models.yaml: one model, no deadline, room for every client to wait; `model_fields` added to (or replacing) the model's."""
    model = {
        "name": MODEL_NAME,
        "path": str(model_dir),
        "family": "qwen2_vl",
        "request_timeout_s": None,
        "max_waiting": 100_000,
    }
    return {
        "server": {"host": "127.0.0.1", "port": port, "shutdown_grace_s": 5},
        "models": [model | model_fields],
    }


class ServerProcess:
    """`python -m vlm_router serve` in a process group of its own, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, model_dir: Path, model_fields: dict[str, Any], workdir: Path, port: int = 0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "models.yaml"
        self.log_path = workdir / "server.log"
        # JSON is YAML, so no YAML writer is needed.
        self.config_path.write_text(json.dumps(server_config(model_dir, self.port, model_fields), indent=2))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        # VLM_* variables (VLM_MODEL_NAME, VLM_DEVICE, ...) would change the configuration under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VLM_")}
        command = [sys.executable, "-m", "vlm_router", "serve", "--config", str(self.config_path), "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise BenchError(f"the server exited with code {self._process.returncode}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        """SIGTERM the server (it stops its workers), SIGKILL its whole process group if that takes too long."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"server did not stop within {SERVER_STOP_TIMEOUT_S:g} s: killing it", file=sys.stderr)
        # Whatever is left of the group (the server, a worker it did not reap) is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def serving(model_dir: Path, model_fields: dict[str, Any], prefix: str, port: int = 0) -> Iterator[ServerProcess]:
    """A running server in a temporary folder (its config and log); on an error, the log's last lines go to stderr."""
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir, ServerProcess(model_dir, model_fields, Path(workdir), port) as server:
        try:
            yield server
        except Exception:
            print(f"--- server log (last lines) ---\n{server.log_tail()}\n---", file=sys.stderr)
            raise


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that `finally` blocks and context managers stop the server."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


async def wait_healthy(server: ServerProcess, session: aiohttp.ClientSession) -> float:
    """Seconds until /health answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < SERVER_START_TIMEOUT_S:
        server.check_alive()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{server.url}/health", timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        await asyncio.sleep(0.2)
    raise BenchError(f"the server did not answer /health within {SERVER_START_TIMEOUT_S:g} s")


async def warm_up(server: ServerProcess, session: aiohttp.ClientSession, body: bytes) -> tuple[float, float]:
    """Wait for /health, then send `body` unmeasured (it loads the model): (seconds to healthy, seconds of the warm-up)."""
    startup_s = await wait_healthy(server, session)
    print(f"server healthy after {startup_s:.1f} s; loading the model and warming up")
    started = time.perf_counter()
    warm = await stream_chat(session, server.url, body, started)
    if warm.error is not None:
        raise BenchError(f"the warm-up request failed: {warm.error}")
    warmup_s = time.perf_counter() - started
    print(f"warm-up (model load + one request) took {warmup_s:.1f} s")
    return startup_s, warmup_s


async def worker_memory(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    """The `bench` model's worker process (its pid from GET /v1/models/bench): resident memory now and at its peak, in GB.

    None when the model has no worker running, the server does not answer, or /proc cannot tell.
    """
    pid = None
    with contextlib.suppress(aiohttp.ClientError, ValueError):  # ValueError: an answer that is not JSON
        async with session.get(f"{url}/v1/models/{MODEL_NAME}") as response:
            pid = (await response.json()).get("pid") if response.status == 200 else None
    if pid is None:
        return None
    rss_kb, peak_kb = _proc_field(f"/proc/{pid}/status", "VmRSS"), _proc_field(f"/proc/{pid}/status", "VmHWM")
    if rss_kb is None or peak_kb is None:
        return None
    return {"pid": pid, "rss_gb": int(rss_kb.split()[0]) / 2**20, "peak_rss_gb": int(peak_kb.split()[0]) / 2**20}


# --- Reports -------------------------------------------------------------------------------------


def percentile(values: Sequence[float | None], q: float) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.percentile(present, q)) if present else None


def cell(value: Any, fmt: str = "{}") -> str:
    """`value` formatted for a table, "-" when there is none."""
    return "-" if value is None else fmt.format(value)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file; None if absent or unreadable."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import openvino
    import openvino_genai

    mem = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gb": round(int(mem.split()[0]) / 2**20, 2) if mem else None,  # MemTotal is in kB
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "openvino": openvino.get_version(),
        "openvino_genai": openvino_genai.__version__,
    }


def print_machine(host: dict[str, Any]) -> None:
    print(f"{host['cpu_model']}, {host['cpus_usable']} CPUs, {host['mem_total_gb']} GB; load average {host['load_average_at_start']}")
