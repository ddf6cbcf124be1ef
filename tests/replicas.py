"""vlm-router replicas as processes of their own, with nginx in front, run from the configuration that
docs/deployment.md shows (`docker/nginx/vlm-router.conf`): for the replica tests and `bench/replicas_bench.py`.

`Replica` runs `python -m vlm_router serve` on a loopback port in a process group of its own (so a kill
takes its model workers too); `Nginx` runs the documented configuration with the replicas' addresses and
its own port in place of the examples, and logs which replica answered each request.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docker" / "nginx" / "vlm-router.conf"
_EXAMPLE_SERVER = re.compile(r"^(?P<indent>[ \t]+)server 10\.0\.0\.\d+:9764(?P<rest>[^\n]*)\n", re.M)
_EXAMPLE_LISTEN = "listen 8080;"
#: One access-log line per request: the path, the status sent, and every replica tried with its status.
LOG_FORMAT = "$request_uri $status upstreams=$upstream_addr statuses=$upstream_status"
#: nginx's temporary folders, in the run's folder.
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str | None:
    """nginx on the PATH or in /usr/sbin (Debian's package puts it there), else None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def render(servers: list[str], port: int) -> str:
    """The documented configuration with `servers` (host:port) as the replicas and nginx on 127.0.0.1:`port`."""
    text = TEMPLATE.read_text()
    examples = list(_EXAMPLE_SERVER.finditer(text))
    if not examples or _EXAMPLE_LISTEN not in text:
        raise ValueError(f"{TEMPLATE} no longer has the example servers and `{_EXAMPLE_LISTEN}` this renders")
    indent, rest = examples[0]["indent"], examples[0]["rest"]
    lines = "".join(f"{indent}server {server}{rest}\n" for server in servers)
    text = text[: examples[0].start()] + lines + text[examples[-1].end() :]
    return text.replace(_EXAMPLE_LISTEN, f"listen 127.0.0.1:{port};")


@dataclass
class Replica:
    """One `vlm-router serve` process serving `models` (models.yaml entries) on a port of its own."""

    folder: Path
    models: list[dict[str, Any]]
    server: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Replica:
        """Start the process (again, after a stop, on the same port)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        server = {"port": self.port, "cache_dir": str(self.folder / "cache"), "shutdown_grace_s": 30, **self.server}
        (self.folder / "models.yaml").write_text(yaml.safe_dump({"server": server, "models": self.models}))
        log = (self.folder / "server.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VLM_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vlm_router", "serve", "--config", str(self.folder / "models.yaml")],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 180) -> None:
        """Until `GET /ready` answers 200: the eager models have loaded. A model that failed to load raises at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"replica on port {self.port} exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
                failed = [card for card in httpx.get(self.url + "/v1/models", timeout=5).json()["data"] if card["state"] == "failed"]
            except httpx.TransportError:
                failed = []
            if failed:
                raise RuntimeError(f"replica on port {self.port}: {failed[0]['id']} failed to load: {failed[0]['error']}")
            time.sleep(0.2)
        raise TimeoutError(f"replica on port {self.port} not ready after {timeout} s:\n{self.log()[-3000:]}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as an orchestrator stops a replica; its exit status once it has stopped."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL to the process group: the replica and its model workers end at once, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def in_flight(self) -> int:
        """Requests running or waiting on this replica, over its models."""
        return sum(card["running"] + card["waiting"] for card in httpx.get(self.url + "/v1/models", timeout=10).json()["data"])

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Nginx:
    """nginx running the documented configuration in front of `replicas`, in `folder`."""

    folder: Path
    replicas: list[Replica]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed: apt-get install nginx")
        self.folder.mkdir(parents=True, exist_ok=True)
        for temp in TEMP_FOLDERS:
            (self.folder / temp).mkdir(exist_ok=True)
        (self.folder / "vlm-router.conf").write_text(render([r.address for r in self.replicas], self.port))
        # Started as root, nginx runs its workers as nobody, who could not reach the request-body folder inside a
        # private temporary folder (any body over 16 KB, an image request, would fail): here they stay root.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.folder / "nginx.conf").write_text(
            f"daemon off;\n{user}worker_processes 1;\npid {self.folder}/nginx.pid;\nerror_log {self.folder}/error.log notice;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    log_format upstreams '{LOG_FORMAT}';\n"
            f"    access_log {self.folder}/access.log upstreams;\n"
            + "".join(f"    {temp}_temp_path {self.folder}/{temp};\n" for temp in TEMP_FOLDERS)
            + f"    include {self.folder}/vlm-router.conf;\n"
            "}\n"
        )
        self.process = subprocess.Popen(
            [binary, "-p", str(self.folder), "-e", str(self.folder / "error.log"), "-c", str(self.folder / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode() if self.process.stderr else ''}{self.errors()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("nginx did not listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: open requests finish
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def access(self) -> list[dict[str, Any]]:
        """The requests nginx has logged: path, status, the replicas tried and their statuses, in order."""
        path = self.folder / "access.log"
        entries = []
        for line in (path.read_text().splitlines() if path.exists() else []):
            uri, status, upstreams, statuses = line.split(" ", 3)
            entries.append(
                {
                    "path": uri,
                    "status": int(status),
                    "upstreams": re.split(r", | : ", upstreams.removeprefix("upstreams=")),
                    "statuses": re.split(r", | : ", statuses.removeprefix("statuses=")),
                }
            )
        return entries

    def wait_logged(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The access log once it has `count` requests (nginx writes a line as a request ends, which may be just
        after its client has read the answer)."""
        deadline = time.monotonic() + timeout
        while len(entries := self.access()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return entries

    def errors(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
