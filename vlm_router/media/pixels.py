"""Bounds on decoded pixels: per request (`PixelBudget`) and for all decoding at once (`DecodeGate`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import Budget


class PixelBudget(Budget):
    """The pixels all images and frames of one request may decode to together (`media.max_pixels_per_request`).

    Sizes are counted from the headers before anything is decoded. Once over the limit it stays
    over, so no later item of the request starts decoding.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit, "images and frames", "pixels", "request_pixels_too_large")


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
