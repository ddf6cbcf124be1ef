"""Client connections: how many may be open, and how long one may take to send a request.

At most `server.max_connections` connections are open (and never more than half the open-file limit,
so the files the server needs stay free). One more closes the connection that has been idle longest,
or is closed at once when every connection has a request in progress. A connection is idle from its
start, and again from each answer, until its next request's headers have arrived: aiohttp's keep-alive
timer closes it after `server.header_timeout_s`, so headers sent slowly, or none, cannot hold it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable

from aiohttp import web

from ..config import ServerConfig
from .errors import Handler

log = logging.getLogger(__name__)


def file_limit_cap(limit: int) -> int:
    """`limit`, lowered to half the process's open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return limit if soft == resource.RLIM_INFINITY else max(1, min(limit, soft // 2))


class _Connection(asyncio.Protocol):
    """One client connection: the HTTP protocol behind it starts only once the cap admits it."""

    def __init__(self, cap: ConnectionCap, factory: Callable[[], asyncio.Protocol]) -> None:
        self._cap = cap
        self._factory = factory
        self.protocol: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.busy = 0  # requests in progress

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self._cap.admit(self):
            transport.close()
            return
        self.protocol = self._factory()
        self.protocol.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cap.forget(self)
        if self.protocol is not None:
            self.protocol.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received() if self.protocol is not None else None

    def pause_writing(self) -> None:
        if self.protocol is not None:
            self.protocol.pause_writing()

    def resume_writing(self) -> None:
        if self.protocol is not None:
            self.protocol.resume_writing()


class ConnectionCap:
    """At most `limit` open connections; one more closes the longest idle, or itself when none is idle."""

    def __init__(self, limit: int) -> None:
        self.limit = file_limit_cap(limit)
        if self.limit < limit:
            log.warning("server.max_connections lowered from %d to %d, half the open-file limit", limit, self.limit)
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._idle: dict[_Connection, None] = {}  # in the order they became idle

    def protocols(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` that puts each connection of `factory`'s under the cap."""
        return lambda: _Connection(self, factory)

    def admit(self, connection: _Connection) -> bool:
        if len(self._open) >= self.limit:
            if not self._idle:
                log.warning("%d connections, all with a request in progress: a new one is closed", len(self._open))
                return False
            oldest = next(iter(self._idle))
            self.forget(oldest)
            assert oldest.transport is not None
            oldest.transport.close()
        assert connection.transport is not None
        self._open[connection.transport] = connection
        self._idle[connection] = None
        return True

    def forget(self, connection: _Connection) -> None:
        if connection.transport is not None:
            self._open.pop(connection.transport, None)
        self._idle.pop(connection, None)

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the request's connection busy until its answer has been sent (the request's task ends)."""
        connection = self._open.get(request.transport) if request.transport is not None else None
        if connection is not None:
            connection.busy += 1
            self._idle.pop(connection, None)
            task = asyncio.current_task()
            assert task is not None
            task.add_done_callback(lambda _: self._release(connection))
        return await handler(request)

    def _release(self, connection: _Connection) -> None:
        connection.busy -= 1
        if connection.busy == 0 and connection.transport in self._open:
            self._idle[connection] = None


_CAP = web.AppKey("connection_cap", ConnectionCap)


def setup_connections(app: web.Application, server: ServerConfig) -> None:
    """Put `app`'s connections under `server.max_connections`; call before any other middleware is added."""
    cap = ConnectionCap(server.max_connections)
    app[_CAP] = cap
    app.middlewares.append(cap.track)


class _CappedSite(web.BaseSite):
    """A TCP site whose connections go through its app's `ConnectionCap`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        assert isinstance(self._runner, web.AppRunner) and self._runner.server is not None
        factory = self._runner.app[_CAP].protocols(self._runner.server)
        self._server = await asyncio.get_running_loop().create_server(factory, self._host, self._port, backlog=self._backlog)


async def start_server(app: web.Application, server: ServerConfig, port: int | None = None) -> web.AppRunner:
    """Serve `app` on `server.host` and `port` (default `server.port`; 0: any free one) until the runner's cleanup.

    An `OSError` (the port in use, say) comes after the app is cleaned up again."""
    runner = web.AppRunner(
        app,
        access_log=None,  # vlm_router.requests logs each request, with its id, model, tokens and timings
        handler_cancellation=True,  # a client that leaves cancels its request, and so its generation
        keepalive_timeout=server.header_timeout_s,  # headers (or the next request) must arrive within this
        shutdown_timeout=server.shutdown_grace_s,  # on cleanup, in-flight requests may finish first
    )
    await runner.setup()
    try:
        await _CappedSite(runner, server.host, server.port if port is None else port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
