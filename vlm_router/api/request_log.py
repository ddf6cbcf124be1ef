"""One log line per request, under a request id the client may choose (`X-Request-ID`), echoed back.

The line has the method, path, status, model, tokens and timings; never prompt text, media or keys.
Observers added with `observe_requests` (the metrics) see every finished request too.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aiohttp import web

from .errors import Handler

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"^[\w.:@/+=-]{1,128}$")  # a client's id is kept only when it is this plain
log = logging.getLogger("vlm_router.requests")


@dataclass
class RequestRecord:
    """What the log line says of a request; the chat endpoint fills in the model's part."""

    request_id: str
    started: float
    model: str | None = None
    stream: bool | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    vision_encoding_s: float | None = None


#: Called with each request, its record, its status and its duration in seconds, once it has ended.
Observer = Callable[[web.Request, RequestRecord, int, float], None]

_RECORD = web.RequestKey("request_record", RequestRecord)
_OBSERVERS = web.AppKey("request_observers", list[Observer])


def observe_requests(app: web.Application, observer: Observer) -> None:
    """Have `observer` called for every request `app` answers."""
    app.setdefault(_OBSERVERS, []).append(observer)


def record_of(request: web.Request) -> RequestRecord:
    return request[_RECORD]


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id, answer with it, and log the request when it ends."""
    given = request.headers.get(HEADER, "")
    record = RequestRecord(given if _ACCEPTED.match(given) else uuid.uuid4().hex, time.monotonic())
    request[_RECORD] = record
    status = 499  # the client left before an answer
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        duration = time.monotonic() - record.started
        fields = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(record).items() if v is not None and k != "started"}
        fields.update(method=request.method, path=request.path, status=status, duration_s=round(duration, 4))
        text = " ".join(f"{k}={v}" for k, v in fields.items() if k != "request_id")
        log.info("%s %s", record.request_id, text, extra={"fields": fields})
        for observer in request.app.get(_OBSERVERS, ()):
            observer(request, record, status, duration)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every answer, streams included, carries the request's id."""
    if _RECORD in request:
        response.headers[HEADER] = request[_RECORD].request_id
