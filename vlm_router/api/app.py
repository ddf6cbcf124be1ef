"""The aiohttp application: routes, shared services, start-up and shutdown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from aiohttp import web

from ..config import ConfigError, RouterConfig
from ..media.fetch import MediaFetcher
from ..media.loader import MediaLoader
from ..plugins import FamilyRegistry
from ..registry import ModelRegistry
from ..reload import Reloader
from . import anthropic_api, anthropic_schema, chat, completions, devices, models, openapi, playground, responses_api
from .access import ADMIN_PREFIX, setup_access
from .anthropic_schema import MessageResponse, MessagesRequest
from .body import body_middleware, defer_expect
from .chat import ChatService, chat_completions, find_model
from .connections import setup_connections
from .errors import ERROR_RENDERERS, APIError, ErrorRenderer, error_middleware
from .metrics import setup_metrics
from .openapi import documented
from .ready import Readiness
from .request_log import echo_request_id, request_log
from .responses import ChatCompletionResponse
from .schema import ChatCompletionRequest

SERVICE = web.AppKey("service", ChatService)
RELOADER = web.AppKey("reloader", Reloader)
RELOAD_PATH = ADMIN_PREFIX + "reload"


@documented(summary='Liveness: {"status": "ok"} while the process serves HTTP.')
async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@documented(response=models.ModelList, summary="Every configured model.")
async def list_models(request: web.Request) -> web.Response:
    return models.list_response(request.app[SERVICE].registry.handles)


@documented(response=models.ModelCard, summary="One model, by name or alias.")
async def get_model(request: web.Request) -> web.Response:
    return models.model_response(find_model(request.app[SERVICE].registry, request.match_info["model"]))


@documented(ChatCompletionRequest, ChatCompletionResponse, "A chat completion, or its server-sent chunks with stream: true.")
async def _chat(request: web.Request) -> web.StreamResponse:
    return await chat_completions(request, request.app[SERVICE])


@documented(completions.CompletionRequest, completions.CompletionResponse, "A text completion, or its server-sent chunks with stream: true.")
async def _completions(request: web.Request) -> web.StreamResponse:
    return await completions.completions(request, request.app[SERVICE])


@documented(
    MessagesRequest, MessageResponse, "Anthropic's Messages API: a message, or its server-sent events with stream: true.", error=anthropic_schema.AnthropicError
)
async def _messages(request: web.Request) -> web.StreamResponse:
    return await anthropic_api.messages(request, request.app[SERVICE])


@documented(responses_api.ResponsesRequest, responses_api.ResponseObject, "OpenAI's Responses API, stateless: a response, or its events with stream: true.")
async def _responses(request: web.Request) -> web.StreamResponse:
    return await responses_api.create_response(request, request.app[SERVICE])


@documented(summary="Read models.yaml again and apply it; needs an admin key.")
async def reload(request: web.Request) -> web.Response:
    """`POST /v1/admin/reload`: the model names added, removed, changed and unchanged, or a 400 naming what is wrong."""
    try:
        changes = request.app[RELOADER].reload()
    except ConfigError as exc:
        raise APIError(400, f"the configuration was not reloaded: {exc}", code="invalid_config") from None
    return web.json_response(asdict(changes))


def create_app(config: RouterConfig, families: FamilyRegistry, load: Callable[[], RouterConfig] | None = None) -> web.Application:
    """The server for `config`, its models served by `families`; `load` reads the configuration again for a reload
    (`RELOAD_PATH`, and SIGHUP in `vlm-router serve`), and without it the server has no reload endpoint."""
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
    app.router.add_get("/health", health)
    readiness = Readiness(registry)
    app.router.add_get("/ready", readiness.answer)
    app.on_shutdown.append(readiness.shutting_down)
    if load is not None:
        app[RELOADER] = Reloader(load, config, registry, families)
        app.router.add_post(RELOAD_PATH, reload)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    devices.add_routes(app)
    setup_metrics(app, registry)
    app.router.add_post(chat.PATH, _chat, expect_handler=defer_expect)
    app.router.add_post(completions.PATH, _completions, expect_handler=defer_expect)
    app.router.add_post(anthropic_api.PATH, _messages, expect_handler=defer_expect)
    app.router.add_post(responses_api.PATH, _responses, expect_handler=defer_expect)
    error_renderers: dict[str, ErrorRenderer] = {anthropic_api.PATH: anthropic_api.error_response}
    app[ERROR_RENDERERS] = error_renderers
    app.router.add_get(openapi.PATH, openapi.serve)
    if config.server.ui:
        playground.add_routes(app)

    async def start(app: web.Application) -> None:
        await fetcher.start()
        registry.start()

    async def stop(app: web.Application) -> None:
        await fetcher.close()
        await registry.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
