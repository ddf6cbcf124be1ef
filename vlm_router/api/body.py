"""A request's body: asked for only once the request passed its checks, and never waited on forever.

A `Content-Length` over `media.max_request_bytes` is a 413 before any of the body is read.
`Expect: 100-continue` is answered by `body_middleware`, after the Host, origin and key checks and
that size check, so a body that would be refused is never sent. A body that stops arriving for `server.body_timeout_s` (a
`Content-Length` longer than what comes, a huge chunk size) ends its read with a 408.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Middleware

from .errors import APIError, Handler

_DEFERRED = web.RequestKey("expect_deferred", bool)


async def defer_expect(request: web.Request) -> None:
    """A route's `expect_handler`: `body_middleware` answers `Expect` once the request has passed its checks."""
    request[_DEFERRED] = True


class _Stall:
    """Fails `content`'s read with a 408 when no byte of it arrives for `idle_s`."""

    def __init__(self, content: StreamReader, idle_s: float) -> None:
        self._content = content
        self._idle_s = idle_s
        self._seen = content.total_bytes
        self._timer = asyncio.get_running_loop().call_later(idle_s, self._check)

    def _check(self) -> None:
        if self._content.is_eof():
            return
        if self._content.total_bytes == self._seen:
            self._content.set_exception(APIError(408, f"no part of the request body arrived for {self._idle_s:g} s", code="body_timeout"))
            return
        self._seen = self._content.total_bytes
        self._timer = asyncio.get_running_loop().call_later(self._idle_s, self._check)

    def cancel(self) -> None:
        self._timer.cancel()


def body_middleware(max_bytes: int, idle_s: float) -> Middleware:
    """Answers `Expect` for routes that `defer_expect`, and times out a body that stalls for `idle_s`."""

    @web.middleware
    async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_bytes:
            raise APIError(413, f"the request body of {request.content_length} bytes is over the limit of {max_bytes}", code="request_entity_too_large")
        expect = request.headers.get(hdrs.EXPECT)
        if expect is not None and request.get(_DEFERRED):
            if expect.lower() != "100-continue":
                raise APIError(417, f"Expect: {expect!r} is not supported", code="expectation_failed")
            if request.version == HttpVersion11:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await request.writer.drain()
                request.writer.output_size = 0  # the answer's own size starts after this
        if request.content.is_eof():
            return await handler(request)
        stall = _Stall(request.content, idle_s)
        try:
            return await handler(request)
        finally:
            stall.cancel()

    return read_body
