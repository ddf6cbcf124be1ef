"""Freed heap memory given back to the system (glibc's `malloc_trim`) shortly after large requests end.

glibc keeps freed memory in its arenas for reuse, one arena per thread that allocated: after a request
whose media were decoded on several threads, the router holds about 100 MB it no longer uses.
"""

from __future__ import annotations

import asyncio
import ctypes

_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # the C library the process runs on


def trim() -> None:
    """Return free heap memory to the system, where the C library can (glibc); else nothing."""
    if _TRIM is not None:
        _TRIM(0)


class HeapTrimmer:
    """Trims once, `delay` seconds after the last of a run of `soon()` calls, on a thread off the loop.

    The delay lets the request that asked finish and drop its media first.
    """

    def __init__(self, delay: float = 1.0) -> None:
        self._delay = delay
        self._timer: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(self._delay, self._run, loop)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        loop.run_in_executor(None, trim)
