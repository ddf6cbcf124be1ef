"""Bounds on decoded pixels: per request (`PixelBudget`) and for all decoding at once (`DecodeGate`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import MediaError


class PixelBudget:
    """The pixels all images and frames of one request may decode to together (`media.max_pixels_per_request`).

    Sizes are counted from the headers before anything is decoded. Once over the limit it stays
    over, so no later item of the request starts decoding. Used from the event loop only.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, pixels: int) -> None:
        """Count `pixels` more; a 413 naming `messages` once the total passes the limit."""
        self.used += pixels
        if self.used > self.limit:
            message = f"the request's images and frames are over the limit of {self.limit} pixels together"
            raise MediaError(message, status=413, code="request_pixels_too_large", param="messages")


class DecodeGate:
    """Decoding in progress holds at most `capacity` source pixels at once, over all requests.

    An image larger than `capacity` waits until it can decode alone. Waiters are served in order,
    so a large image is not starved by a stream of small ones.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._held = 0
        self._queue: list[object] = []
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Hold `pixels` (at most the capacity) while the block runs."""
        weight = min(pixels, self.capacity)
        ticket = object()
        self._queue.append(ticket)
        async with self._changed:
            try:
                await self._changed.wait_for(lambda: self._queue[0] is ticket and self._held + weight <= self.capacity)
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()
            self._held += weight
        try:
            yield
        finally:
            async with self._changed:
                self._held -= weight
                self._changed.notify_all()
