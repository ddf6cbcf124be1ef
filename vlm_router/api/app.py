"""The aiohttp application: routes, shared services, start-up and shutdown."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..config import RouterConfig
from ..media.fetch import MediaFetcher
from ..media.loader import MediaLoader
from ..plugins import FamilyRegistry
from ..registry import ModelRegistry
from . import chat, devices
from .access import setup_access
from .body import body_middleware, defer_expect
from .chat import ChatService, chat_completions, find_model
from .connections import setup_connections
from .errors import error_middleware
from .metrics import setup_metrics
from .request_log import echo_request_id, request_log

SERVICE = web.AppKey("service", ChatService)
_BACKGROUND = web.AppKey("background", set)


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def list_models(request: web.Request) -> web.Response:
    registry = request.app[SERVICE].registry
    return web.json_response({"object": "list", "data": [h.describe() for h in registry.handles]})


async def get_model(request: web.Request) -> web.Response:
    return web.json_response(find_model(request.app[SERVICE].registry, request.match_info["model"]).describe())


async def _chat(request: web.Request) -> web.StreamResponse:
    return await chat_completions(request, request.app[SERVICE])


def create_app(config: RouterConfig, families: FamilyRegistry) -> web.Application:
    """The server for `config`, its models served by `families`."""
    # lingering_time=0: a body left unread (refused, or undecodable) closes the connection after the
    # answer instead of being drained, which for a broken gzip body would raise after the answer was sent
    app = web.Application(client_max_size=config.media.max_request_bytes, handler_args={"lingering_time": 0})
    setup_connections(app, config.server)  # outermost: a connection is busy until its answer is sent
    app.middlewares.extend([request_log, error_middleware])
    app.on_response_prepare.append(echo_request_id)
    setup_access(app, config.server)  # inside error_middleware: a 401 or 403 is an OpenAI error body
    app.middlewares.append(body_middleware(config.media.max_request_bytes, config.server.body_timeout_s))  # after the checks
    registry = ModelRegistry(config, families)
    fetcher = MediaFetcher(config.media)
    app[SERVICE] = ChatService(registry=registry, loader=MediaLoader(fetcher, config.media), media=config.media)
    app[_BACKGROUND] = set()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    devices.add_routes(app)
    setup_metrics(app, registry)
    app.router.add_post(chat.PATH, _chat, expect_handler=defer_expect)

    async def start(app: web.Application) -> None:
        await fetcher.start()
        task = asyncio.create_task(registry.load_eager())  # the server answers while eager models load
        app[_BACKGROUND].add(task)
        task.add_done_callback(app[_BACKGROUND].discard)

    async def stop(app: web.Application) -> None:
        for task in app[_BACKGROUND]:
            task.cancel()
        await fetcher.close()
        await registry.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
