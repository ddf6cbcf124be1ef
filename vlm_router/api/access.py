"""Who may call the API: the Host a request names, the web page it comes from, and optional bearer API keys.

A server bound to loopback answers only requests whose `Host` is a loopback name or address, so a
web page whose name was rebound to 127.0.0.1 cannot reach it (`server.allowed_host_names` widens
this). A request with an `Origin` (a browser's, from a web page) is refused unless
`server.cors_origins` allows that origin, so no page can drive the server, not even with a form or a
`text/plain` POST that needs no preflight. The one exception is the server's own origin (its
playground's), where the `Host` is one no rebound name can be: a loopback name, an IP address, or one
of `server.allowed_host_names`; and reading the playground's page and files, public as they are, is
never refused for its `Origin`. `server.api_keys` closes every endpoint but `GET /health`, `GET /ready`
and the playground's page to requests without `Authorization: Bearer <key>` (or `x-api-key: <key>`, as
Anthropic's clients send it). The admin endpoints (`/v1/admin/`) take one of `server.admin_keys`
instead, and answer 403 when there are none. CORS preflights are answered before the key checks, as
browsers send them without a key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from ..config import ServerConfig
from . import playground
from .errors import APIError, Handler

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/ready"})  # reachable with GET (and HEAD) without a key, as the playground is
ADMIN_PREFIX = "/v1/admin/"  # paths that take an admin key, never an API key
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = ("authorization", "content-type", "x-request-id")
ALLOW_HEADER_PREFIXES = ("openai-", "x-stainless-", "anthropic-")  # what the openai and anthropic JS clients send
API_KEY_HEADER = "x-api-key"  # the key as Anthropic's clients send it, allowed in preflights when asked for
EXPOSE_HEADERS = "Retry-After"  # 429 and 503 say when to come back
PREFLIGHT_MAX_AGE_S = 600
_TOKEN = re.compile(r"^[a-z0-9-]+$")


def _is_page(path: str) -> bool:
    """The playground's page or one of its files: public, and fetched with an `Origin` by some browsers."""
    return path == playground.PATH or path.startswith(playground.PREFIX)


def _is_read(request: web.Request) -> bool:
    return request.method in (hdrs.METH_GET, hdrs.METH_HEAD)


def _is_open(request: web.Request) -> bool:
    """A GET (or HEAD) of an open path that is a route of this server (else its 404 would list the routes)."""
    return _is_read(request) and (request.path in OPEN_PATHS or _is_page(request.path)) and getattr(request.match_info, "http_exception", None) is None


def _digest(key: str) -> bytes:
    """A fixed-length stand-in for a key, so comparing them reveals nothing about its length."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _key_check(keys: list[str], kind: str) -> Callable[[web.Request], None]:
    """A check that refuses (401) a request without one of `keys` as its bearer token (or x-api-key); `kind` names the keys in the log."""
    digests = [_digest(key) for key in keys]

    def check(request: web.Request) -> None:
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        token = (token.strip() if scheme.lower() == "bearer" else "") or request.headers.get(API_KEY_HEADER, "").strip()
        if not token:
            log.info("401 for %s %s from %s: no %s", request.method, request.path, request.remote, kind)
            raise _unauthorized(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an x-api-key header."
            )
        presented = _digest(token)
        matched = False
        for digest in digests:  # every key, so the time taken does not tell which one matched
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            log.info("401 for %s %s from %s: wrong %s", request.method, request.path, request.remote, kind)
            raise _unauthorized("Incorrect API key provided.")

    return check


def auth_middleware(keys: list[str]) -> Middleware:
    """A middleware that refuses requests without one of `keys` as their bearer token (401), but for the open and admin paths."""
    check = _key_check(keys, "API key")

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_open(request) and not request.path.startswith(ADMIN_PREFIX):
            check(request)
        return await handler(request)

    return authenticate


def admin_middleware(keys: list[str]) -> Middleware:
    """A middleware that lets requests to the admin paths through only with one of `keys` (401); without keys, never (403)."""
    check = _key_check(keys, "admin key")

    @web.middleware
    async def authenticate_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            if not keys:
                log.info("403 for %s %s from %s: no admin keys configured", request.method, request.path, request.remote)
                raise APIError(
                    403,
                    "the admin endpoints are disabled: set server.admin_keys in models.yaml (or VLM_ADMIN_KEYS) and restart "
                    "the server to enable them; SIGHUP reloads models.yaml without them",
                    code="admin_disabled",
                )
            check(request)
        return await handler(request)

    return authenticate_admin


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={hdrs.WWW_AUTHENTICATE: "Bearer"})


def is_loopback(host: str) -> bool:
    """`localhost`, a name under `.localhost` (RFC 6761), or a loopback address."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_and_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    """The host name and the port of `netloc` (`host[:port]`), the scheme's port when it has none."""
    parts = urlsplit("//" + netloc)
    return (parts.hostname or "").rstrip("."), parts.port or _DEFAULT_PORTS.get(scheme)


def host_check(server: ServerConfig) -> Middleware | None:
    """A middleware refusing (403) a `Host` header that `server` does not answer to; None when it answers to any.

    Loopback names and addresses always pass (a rebound name never arrives as one), and so do the
    `allowed_host_names` (`*`: any). Without those, a server bound elsewhere than loopback answers to any.
    """
    names = frozenset(name.lower().rstrip(".") for name in server.allowed_host_names)
    if "*" in names or (not names and not is_loopback(server.host)):
        return None

    def allows(host: str) -> bool:
        return host in names or is_loopback(host)

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(hdrs.HOST)
        if given is not None:  # a browser always sends one; HTTP/1.0 tools may not
            try:
                host, _ = _host_and_port(given, "http")
            except ValueError:
                host = ""
            if not allows(host):
                log.info("403 for %s %s from %s: Host %r not allowed", request.method, request.path, request.remote, given)
                raise APIError(403, f"the Host header {given!r} is not one this server answers to", code="host_not_allowed")
        return await handler(request)

    return check_host


class Cors:
    """CORS for `origins` (exact origins such as `https://app.example`, or `*` for any); none: no origin allowed but
    the server's own, when its `Host` is one of `host_names` (`*`: any), a loopback name or an IP address."""

    def __init__(self, origins: list[str], host_names: list[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in origins if o.strip() != "*")
        self.host_names = frozenset(name.lower().rstrip(".") for name in host_names)

    def allows(self, origin: str) -> bool:
        return self.any or origin.lower() in self.origins

    def _own(self, request: web.Request, origin: str) -> tuple[bool, bool]:
        """Whether `origin` is the server's own as the request's `Host` names it, and whether that name is trusted
        (no rebound name can be it)."""
        try:
            parts = urlsplit(origin.lower())
            ours = _host_and_port(parts.netloc, parts.scheme) == _host_and_port(request.headers.get(hdrs.HOST, "").lower(), parts.scheme)
        except ValueError:
            return False, False
        host = parts.hostname or ""
        return ours and bool(host), "*" in self.host_names or host.rstrip(".") in self.host_names or is_loopback(host) or _is_address(host)

    @web.middleware
    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuses (403) any request from an origin not allowed, and answers preflights (OPTIONS with Access-Control-Request-Method) from allowed ones (204)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or (_is_read(request) and _is_page(request.path)):
            return await handler(request)
        ours, trusted = self._own(request, origin)
        if ours and trusted:
            return await handler(request)  # the playground, or another page this server served
        if not self.allows(origin):
            log.info("403 for %s %s from %s: Origin %r not allowed", request.method, request.path, request.remote, origin)
            hint = "list its host name in server.allowed_host_names (or the origin in server.cors_origins)" if ours else "list it in server.cors_origins"
            raise APIError(403, f"requests from the origin {origin!r} are not allowed: {hint}", code="cors_origin_not_allowed")
        if request.method != hdrs.METH_OPTIONS or hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers:
            return await handler(request)
        requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
        names = dict.fromkeys([*ALLOW_HEADERS, *(n.strip().lower() for n in requested.split(","))])
        allowed = [n for n in names if n in (*ALLOW_HEADERS, API_KEY_HEADER) or (_TOKEN.match(n) and n.startswith(ALLOW_HEADER_PREFIXES))]
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: ALLOW_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(allowed),
                hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
            },
        )

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """`on_response_prepare`: every response, streamed or not, error or not, gets the CORS headers."""
        vary = response.headers.get(hdrs.VARY, "")
        if "origin" not in vary.lower():
            response.headers[hdrs.VARY] = f"{vary}, Origin" if vary else "Origin"
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not self.allows(origin):
            return
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*" if self.any else origin
        if request.method != hdrs.METH_OPTIONS:
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSE_HEADERS


def setup_access(app: web.Application, server: ServerConfig) -> None:
    """Add the Host check, the origin check with CORS, then the key check (if `server.api_keys`) and the admin key check to `app`.

    Call before the app starts and after `error_middleware` is in place, so the errors still leave as
    OpenAI error bodies.
    """
    check = host_check(server)
    if check is not None:
        app.middlewares.append(check)
    cors = Cors(server.cors_origins, server.allowed_host_names)
    app.middlewares.append(cors.check)
    if server.cors_origins:
        app.on_response_prepare.append(cors.add_headers)
    if server.api_keys:
        app.middlewares.append(auth_middleware(server.api_keys))
    app.middlewares.append(admin_middleware(server.admin_keys))
