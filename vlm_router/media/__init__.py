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
