"""`GET /ready`: whether the server should get traffic: 200 once every `load: eager` model has loaded and while the
server is not shutting down, else 503 with the reasons."""

from __future__ import annotations

from aiohttp import web

from ..registry import ModelHandle, ModelRegistry, ModelState
from .openapi import documented


def _not_ready(handle: ModelHandle) -> str | None:
    """Why an eager model keeps the server from being ready, or None.

    One `not_loaded` before any load is about to start loading with the server (or the reload that added it); after
    one, it was unloaded since (`keep_alive_s`, `max_loaded_models`) and counts as ready: its next request loads it.
    """
    if handle.state is ModelState.LOADING or (handle.state is ModelState.NOT_LOADED and handle.load_count == 0):
        return f"model '{handle.name}' is loading"
    if handle.state is ModelState.FAILED:
        return f"model '{handle.name}' failed to load"
    return None


class Readiness:
    """The answer of `GET /ready` for the models of `registry`; `shutting_down` is the app's `on_shutdown` hook."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._draining = False

    def reasons(self) -> list[str]:
        """Why the server is not ready; empty when it is."""
        found = ["the server is shutting down"] if self._draining else []
        eager = (h for h in self._registry.handles if h.config.load == "eager")
        return found + [reason for h in eager if (reason := _not_ready(h)) is not None]

    @documented(summary="Readiness: 200 once the eager models have loaded, else 503 with the reasons.")
    async def answer(self, _: web.Request) -> web.Response:
        if reasons := self.reasons():
            return web.json_response({"status": "not_ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def shutting_down(self, _: web.Application) -> None:
        self._draining = True
