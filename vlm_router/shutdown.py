"""The hard deadline of a shutdown: in-flight requests get `server.shutdown_grace_s`, then the workers are
killed (their requests fail at once) and the process exits, whatever still runs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time

from .registry import ModelRegistry

log = logging.getLogger(__name__)

#: How long past the deadline an orderly exit may take before the process ends itself outright.
EXIT_MARGIN_S = 2.0


class ShutdownDeadline:
    """Started when a shutdown begins; from then on the process exits within `grace` + `EXIT_MARGIN_S` seconds."""

    def __init__(self, registry: ModelRegistry, grace: float) -> None:
        self._registry = registry
        self._grace = grace
        self._stopping: asyncio.Task[None] | None = None

    def start(self) -> None:
        asyncio.get_running_loop().call_later(self._grace, self._expire)
        threading.Thread(target=self._last_resort, name="shutdown-deadline", daemon=True).start()

    def _expire(self) -> None:
        log.warning("shutdown: the grace of %g s is over; stopping the workers and the requests still running", self._grace)
        self._stopping = asyncio.get_running_loop().create_task(self._registry.close(grace=0))

    def _last_resort(self) -> None:
        """Runs on a thread of its own, so that neither a blocked loop nor a thread still decoding holds the exit."""
        time.sleep(self._grace + EXIT_MARGIN_S)
        log.error("shutdown: still running %g s after the grace; killing the workers and exiting", EXIT_MARGIN_S)
        for pid in filter(None, (handle.worker_pid for handle in self._registry.every_handle)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        logging.shutdown()
        os._exit(1)
