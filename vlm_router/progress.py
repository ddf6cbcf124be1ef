"""How far a model's load has got (its download, conversion, then compiling): a value to read, shown as a bar on a
terminal or as lines."""

from __future__ import annotations

import time
from typing import Literal, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

#: What a load is doing: fetching the model's folder (`downloading` a published export, `converting` a checkpoint), then
#: `compiling` (its worker starting and compiling the model for the device).
Phase = Literal["downloading", "converting", "compiling"]


class Progress:
    """The progress of loading one model. `phase`, `fraction` and `detail` can be read at any time (the server's
    view of a loading model); with a `stream`, it is shown there too: as a bar when the stream is a terminal, else
    as a line every `interval_s` (`downloading Qwen/X: 45% (120.0/266.0 MB)`), fit for logs.
    """

    def __init__(self, name: str, stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.name = name
        self.phase: Phase | None = None
        #: Bytes downloaded so far, and in all when known.
        self.done = 0
        self.total: int | None = None
        #: The converter's latest output line, e.g. its own progress bar.
        self.detail = ""
        self._stream = stream
        self._terminal = stream is not None and stream.isatty()
        self._interval_s = interval_s
        self._shown_at = float("-inf")
        self._last_line = ""
        self._bar: tqdm | None = None

    @property
    def fraction(self) -> float | None:
        """How much of a download has arrived, 0 to 1; None while unknown (a conversion, or sizes not given)."""
        if self.phase != "downloading" or not self.total:
            return None
        return min(self.done / self.total, 1.0)

    def begin(self, phase: Phase, total: int | None = None, done: int = 0) -> None:
        """Enter `phase`; a download of `total` bytes, `done` of them already there (a resumed one)."""
        self.phase, self.total, self.done, self.detail = phase, total, done, ""
        if phase == "downloading" and self._terminal:
            desc = f"downloading {self.name}"
            self._bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=self._stream)

    def advance(self, done: int) -> None:
        """`done` bytes of the download have arrived."""
        self.done = max(self.done, done)
        if self._bar is not None:
            self._bar.update(self.done - self._bar.n)
        elif self._due():
            self._line(str(self))

    def output(self, line: str, redraw: bool) -> None:
        """A line of the converter's output; `redraw`: it ended with a carriage return (a progress bar's state), and
        the next line replaces it. Off a terminal, only one such line per `interval_s` is shown."""
        if line.strip():
            self.detail = line.strip()
        if self._terminal:
            self._write(line, end="\r" if redraw else "\n")
        elif not redraw or self._due():
            self._line(line)

    def finish(self) -> None:
        """The phase has ended (or failed): close the bar, or show the download's last state."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.phase == "downloading":
            self._line(str(self))

    def __str__(self) -> str:
        if self.phase != "downloading":
            return f"{self.phase or 'starting'} {self.name}" + (f": {self.detail}" if self.detail else "")
        size = _amount(self.done, self.total)
        return f"downloading {self.name}: " + (f"{self.fraction:.0%} ({size})" if self.fraction is not None else size)

    def _due(self) -> bool:
        """Whether a periodic line is due now (and, if so, it counts as shown)."""
        now = time.monotonic()
        if now - self._shown_at < self._interval_s:
            return False
        self._shown_at = now
        return True

    def _line(self, text: str) -> None:
        """Show `text` as a line of its own, unless it repeats the line shown last."""
        if text != self._last_line:
            self._last_line = text
            self._write(text)

    def _write(self, text: str, end: str = "\n") -> None:
        if self._stream is not None:
            self._stream.write(text + end)
            self._stream.flush()


def _amount(done: int, total: int | None) -> str:
    """`done` (of `total`) bytes in the unit of the larger: `120.0/266.0 MB`."""
    scale, unit = next(((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")) if max(done, total or 0) >= s), (1.0, "B"))
    return f"{done / scale:.1f}" + (f"/{total / scale:.1f}" if total else "") + f" {unit}"
