"""A loopback stand-in for the Hugging Face Hub, speaking its file API as huggingface_hub 0.36 uses it.

`snapshot_download` (and `HfApi.model_info`) ask `GET /api/models/{repo}[/revision/{rev}][?blobs=True]` for the
commit (`sha`) and file list (`siblings`, with sizes when `blobs`); then, per file, `HEAD /{repo}/resolve/{rev}/{file}`
for `X-Repo-Commit`, `ETag` and `Content-Length`, and `GET` of the same path, with `Range: bytes=N-` to resume a
partial file. Errors carry the hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`,
`GatedRepo`), which is how huggingface_hub tells them apart.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<folder>.+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Repo:
    files: dict[str, bytes]
    #: A token a request must send (`Authorization: Bearer ...`) to download files, as for a gated repository.
    token: str | None = None
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1()
        for name in sorted(self.files):
            digest.update(name.encode() + hashlib.sha1(self.files[name]).digest())
        self.sha = digest.hexdigest()


class FakeHub:
    """The hub on 127.0.0.1: `add` repositories, `cut_once` a file, read `requests` to see what was asked."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        #: (method, path, Range header) of every request, in order.
        self.requests: list[tuple[str, str, str | None]] = []
        #: (repo, file) -> bytes sent before the connection is closed, on the next full GET of that file.
        self.cuts: dict[tuple[str, str], int] = {}
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, repo_id: str, files: dict[str, bytes], token: str | None = None) -> Repo:
        self.repos[repo_id] = Repo(files, token)
        return self.repos[repo_id]

    def add_folder(self, repo_id: str, folder: Path) -> Repo:
        """A repository holding every file under `folder`."""
        return self.add(repo_id, {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})

    def cut_once(self, repo_id: str, name: str, after: int) -> None:
        """The next full GET of `name` sends its headers and `after` bytes of its body, then closes the connection."""
        self.cuts[(repo_id, name)] = after

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        url = urlsplit(handler.path)
        path = unquote(url.path)
        self.requests.append((handler.command, path, handler.headers.get("Range")))
        if (match := _API.match(path)) and body:
            self._info(handler, match["repo"], match["rev"], "blobs" in parse_qs(url.query))
        elif (match := _TREE.match(path)) and body:
            self._tree(handler, match["repo"], match["rev"], match["folder"] or "")
        elif match := _RESOLVE.match(path):
            self._file(handler, match["repo"], match["rev"], match["file"], body)
        else:
            _error(handler, 404, "RepoNotFound", "Repository not found", body)

    def _repo(self, handler: http.server.BaseHTTPRequestHandler, repo_id: str, revision: str | None, body: bool) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            _error(handler, 404, "RepoNotFound", "Repository not found", body)
        elif revision not in (None, "main", repo.sha):
            _error(handler, 404, "RevisionNotFound", "Invalid rev id", body)
        else:
            return repo
        return None

    def _info(self, handler: http.server.BaseHTTPRequestHandler, repo_id: str, revision: str | None, blobs: bool) -> None:
        if (repo := self._repo(handler, repo_id, revision, True)) is None:
            return
        siblings = [{"rfilename": name, **({"size": len(data)} if blobs else {})} for name, data in sorted(repo.files.items())]
        info = {"id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False, "gated": "manual" if repo.token else False, "siblings": siblings}
        _send(handler, 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), True)

    def _tree(self, handler: http.server.BaseHTTPRequestHandler, repo_id: str, revision: str, folder: str) -> None:
        """The files under `folder`, recursively (how optimum-cli lists a checkpoint's files)."""
        if (repo := self._repo(handler, repo_id, revision, True)) is None:
            return
        prefix = f"{folder.rstrip('/')}/" if folder else ""
        entries = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()} for name, data in sorted(repo.files.items()) if name.startswith(prefix)]
        if prefix and not entries:
            _error(handler, 404, "EntryNotFound", f"{folder} does not exist on \"{revision}\"", True)
        else:
            _send(handler, 200, {"Content-Type": "application/json"}, json.dumps(entries).encode(), True)

    def _file(self, handler: http.server.BaseHTTPRequestHandler, repo_id: str, revision: str, name: str, body: bool) -> None:
        if (repo := self._repo(handler, repo_id, revision, body)) is None:
            return
        if repo.token is not None and handler.headers.get("Authorization") != f"Bearer {repo.token}":
            message = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it."
            _error(handler, 401, "GatedRepo", message, body)
            return
        if (data := repo.files.get(name)) is None:
            _error(handler, 404, "EntryNotFound", f"{name} does not exist on \"{revision}\"", body, {"X-Repo-Commit": repo.sha})
            return
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"', "Accept-Ranges": "bytes"}
        start = int(m[1]) if (m := _RANGE.match(handler.headers.get("Range") or "")) else 0
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        cut = self.cuts.pop((repo_id, name), None) if body and not start else None
        _send(handler, 206 if start else 200, headers, data[start:], body, cut)


def _send(
    handler: http.server.BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes, body: bool, cut: int | None = None
) -> None:
    """Answer `status` with `data` (its full length announced); with `cut`, only that many bytes of it, then close."""
    handler.send_response(status)
    for name, value in {**headers, "Content-Length": str(len(data))}.items():
        handler.send_header(name, value)
    handler.end_headers()
    if body:
        handler.wfile.write(data if cut is None else data[:cut])
    handler.close_connection = True


def _error(
    handler: http.server.BaseHTTPRequestHandler, status: int, code: str, message: str, body: bool, headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps({"error": message}).encode()
    _send(handler, status, {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json", **(headers or {})}, payload, body)
