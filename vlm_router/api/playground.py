"""`GET /`: the browser playground, a page of the package's static files that talks to the public API only.

The files are read once, when the app is made, and served with an ETag (`Cache-Control: no-cache`, so an
upgrade shows at the next load) and a Content-Security-Policy that lets the page run its own script and
style, show data and blob media, and connect to this server alone.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

from aiohttp import hdrs, web

from .errors import APIError
from .openapi import documented

PATH = "/"
PREFIX = "/ui/"  # the page's script, style and icon
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    hdrs.CACHE_CONTROL: "no-cache",
}


@dataclass(frozen=True)
class StaticFile:
    """One file of the page, in memory."""

    body: bytes
    content_type: str
    etag: str

    def response(self, request: web.Request) -> web.Response:
        """The file, or 304 when the browser's copy (`If-None-Match`) is this one."""
        headers = {**_HEADERS, hdrs.ETAG: self.etag}
        if self.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type=self.content_type, charset="utf-8", headers=headers)


def load_files() -> dict[str, StaticFile]:
    """The files of `vlm_router/playground/`, by name."""
    files: dict[str, StaticFile] = {}
    for entry in resources.files("vlm_router").joinpath("playground").iterdir():
        content_type, _ = mimetypes.guess_type(entry.name)
        if entry.is_file() and content_type is not None:
            body = entry.read_bytes()
            files[entry.name] = StaticFile(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return files


def add_routes(app: web.Application) -> None:
    """Serve the playground at `/` and its files under `/ui/`."""
    files = load_files()

    @documented(summary="The browser playground (HTML).")
    async def page(request: web.Request) -> web.Response:
        return files["index.html"].response(request)

    @documented(summary="A file of the browser playground.")
    async def static(request: web.Request) -> web.Response:
        found = files.get(request.match_info["name"])
        if found is None:
            raise APIError(404, f"{request.path} is not a file of the playground", code="unknown_route")
        return found.response(request)

    app.router.add_get(PATH, page)
    app.router.add_get(PREFIX + "{name}", static)
