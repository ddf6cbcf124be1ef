"""Getting media from a request: guarded fetching and decoding, never on the event loop."""

from __future__ import annotations


class MediaError(Exception):
    """A media item cannot be used; `status` is 400 (bad or refused) or 413 (too large)."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_media", param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param


class Budget:
    """How much of one thing (`unit`) all media of one request may take together; used from the event loop only."""

    def __init__(self, limit: int, what: str, unit: str, code: str) -> None:
        self.limit = limit
        self.used = 0
        self._what, self._unit, self._code = what, unit, code

    def take(self, count: int) -> None:
        """Count `count` more; a 413 naming `messages` once the total passes the limit."""
        self.used += count
        if self.used > self.limit:
            message = f"the request's {self._what} are over the limit of {self.limit} {self._unit} together"
            raise MediaError(message, status=413, code=self._code, param="messages")


class ByteBudget(Budget):
    """The bytes all media of one request may take together (`media.max_media_bytes_per_request`).

    Downloads count each chunk as it arrives, inline and local media count their bytes once read.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit, "media", "bytes", "request_media_too_large")
