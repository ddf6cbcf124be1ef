"""The serving image, built and run where a Docker engine answers: health, readiness, an image chat, the
non-root user, the health status, no torch and its size.

Without an engine these tests skip, saying so. The first build takes minutes (its layers are cached
after); docs/docker.md says how to run them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from .conftest import ROOT, data_url, free_port, image_part, png_bytes, user

pytestmark = pytest.mark.container

IMAGE = "vlm-router:test-serve"
MAX_IMAGE_BYTES = 1.5e9


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def _engine_missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command"
    info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    return None if info.returncode == 0 else f"no Docker engine answers: {info.stderr.strip()[:200]}"


@pytest.fixture(scope="module")
def image() -> str:
    """The serving image (`--target serve`), built from this checkout."""
    if reason := _engine_missing():
        pytest.skip(reason)
    built = docker("build", "-f", str(ROOT / "docker" / "Dockerfile"), "--target", "serve", "-t", IMAGE, str(ROOT), timeout=3600, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


@pytest.fixture(scope="module")
def container(image) -> Iterator[tuple[str, str]]:
    """The image running with its own command, published on a loopback port; its name and URL."""
    name, port = f"vlm-router-test-{uuid.uuid4().hex[:8]}", free_port()
    # The image's health check, run every 2 s instead of every 30 s.
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9764", "--health-interval", "2s", image)
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        docker("rm", "-f", name, check=False)


def _wait(url: str, path: str, seconds: float = 120) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = httpx.get(url + path, timeout=5)
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def test_the_container_serves_an_image_chat_as_a_user_that_is_not_root(container):
    name, url = container
    assert _wait(url, "/health").json() == {"status": "ok"}
    assert _wait(url, "/ready").status_code == 200
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    answer = client.chat.completions.create(model="demo", messages=[user(image_part(data_url(png_bytes())), "What is it?")], max_tokens=8)
    text = client.chat.completions.create(model="demo", messages=[user("What is it?")], max_tokens=8)
    assert answer.choices[0].message.content and answer.usage.prompt_tokens > text.usage.prompt_tokens, "the image reached the model"
    assert docker("exec", name, "id", "-u").stdout.strip() == "1000"
    assert docker("exec", name, "sh", "-c", "ls /app").stdout.split() == ["models", "models.yaml", "ov-model"], "no sources in /app"
    deadline = time.monotonic() + 60
    while (status := docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()) != "healthy":
        assert time.monotonic() < deadline, f"health status {status}"
        time.sleep(1)


def test_the_serving_image_has_no_torch_and_stays_small(image):
    probe = docker("run", "--rm", image, "python", "-c", "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('openvino_genai') is not None)")
    assert probe.stdout.split() == ["None", "True"]
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size < MAX_IMAGE_BYTES, f"{size / 1e9:.2f} GB"
