"""Logging set-up: plain text lines, or one JSON object per line (`--log-format json`, `VLM_LOG_FORMAT=json`).

Every line is one line: control characters in a message (a client's URL path, say) are escaped, so no
request can write a line of its own. Warnings and errors are rate-limited per logging call, so a flood
of one failure (refused connections, say) cannot fill the disk.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: C0 and C1 controls, DEL, and the Unicode line and paragraph separators and bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Warnings and errors one logging call may write per window; the rest are counted and reported.
BURST = 10
WINDOW_S = 60.0


def escape(text: str) -> str:
    """`text` with its control characters written as `\\n`, `\\x1b`, `\\u2028`."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """The `TEXT` line, its message escaped; a traceback follows, each of its lines indented."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(stack_info)


def _indented(text: str) -> str:
    return "\n".join("    " + escape(line) for line in text.splitlines())


class JSONFormatter(logging.Formatter):
    """A record as one JSON object of ASCII: time, level, logger, message, and the record's `fields` if it has any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)  # ASCII: every control character and line separator escaped


@dataclass
class _Window:
    start: float
    lines: int = 0
    dropped: int = 0


class RateLimit(logging.Filter):
    """Lets through at most `burst` warnings or errors per logging call (file and line) per `window_s`.

    The first line of the next window says how many were dropped.
    """

    def __init__(self, burst: int = BURST, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self._windows: dict[tuple[str, int], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        window = self._windows.setdefault((record.pathname, record.lineno), _Window(record.created))
        if record.created - window.start >= self.window_s:
            if window.dropped:
                record.msg = f"{record.msg} ({window.dropped} more like this dropped in the last {record.created - window.start:.0f} s)"
            window.start, window.lines, window.dropped = record.created, 0, 0
        window.lines += 1
        if window.lines > self.burst:
            window.dropped += 1
            return False
        return True


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RateLimit())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
