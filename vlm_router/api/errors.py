"""OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel

from .responses import ErrorInfo, ErrorResponse

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",  # as OpenAI's own 401 (code invalid_api_key)
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class APIError(Exception):
    """An error a client receives as an OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        #: The error's `type`; by default the status's.
        self.kind = kind or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> ErrorResponse:
        return ErrorResponse(error=ErrorInfo(message=self.message, type=self.kind, param=self.param, code=self.code))

    def response(self, body: BaseModel | None = None) -> web.Response:
        """The error as a JSON response: its OpenAI body, or `body` in another API's shape."""
        text = (body or self.body()).model_dump_json()
        return web.Response(text=text, status=self.status, headers=self.headers, content_type="application/json")


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: How a route whose API has an error shape of its own renders an APIError, by path; other paths send OpenAI's.
ErrorRenderer = Callable[[APIError], web.Response]
ERROR_RENDERERS = web.AppKey("error_renderers", dict[str, ErrorRenderer])


def _routes(app: web.Application) -> list[str]:
    """`METHOD /path` of every route (HEAD, which aiohttp adds to each GET, left out)."""
    return [f"{route.method} {route.resource.canonical}" for route in app.router.routes() if route.method != "HEAD" and route.resource is not None]


def route_error(request: web.Request, exc: web.HTTPException) -> APIError:
    """A path no route matches (404 `unknown_route`, listing the routes) or a method its path does not take (405)."""
    asked = f"{request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods - {"HEAD"})
        message = f"{asked}: this route takes {', '.join(allowed)}, not {request.method}"
        return APIError(405, message, code="method_not_allowed", headers={"Allow": ", ".join(allowed)})
    message = f"{asked} is not a route of this server; routes: {', '.join(_routes(request.app))}"
    return APIError(404, message, code="unknown_route", kind="invalid_request_error")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as an OpenAI error body (or its route's, see `ERROR_RENDERERS`); a client's mistake is never a 500."""
    render = request.app.get(ERROR_RENDERERS, {}).get(request.path, APIError.response)
    try:
        return await handler(request)
    except APIError as exc:
        response = render(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc is getattr(request.match_info, "http_exception", None):  # the router matched no route
            response = render(route_error(request, exc))
        else:
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            response = render(APIError(exc.status, message, code=exc.reason.lower().replace(" ", "_"), headers=headers))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = render(APIError(500, "internal server error", code="internal_error"))
    if not request.content.is_eof():
        response.force_close()  # the rest of the body is not read: the connection ends with this answer
    return response
