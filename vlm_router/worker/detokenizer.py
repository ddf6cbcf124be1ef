"""Generated token ids to text, piece by piece, as a stream needs it."""

from __future__ import annotations

from typing import Any


class Detokenizer:
    """Token ids to text as they come, holding back a character whose bytes have not all arrived yet.

    Decodes a short window of recent tokens rather than the whole sequence, and never fails on bytes
    that are not UTF-8 (they read as U+FFFD), where openvino-genai's TextStreamer would raise.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # the window starts here
        self._read = 0  # text of tokens up to here was sent

    def add(self, ids: list[int]) -> str:
        self._ids.extend(ids)
        before = self._tokenizer.decode(self._ids[self._prefix : self._read])
        text = self._tokenizer.decode(self._ids[self._prefix :])
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(before) :]

    def end(self) -> str:
        before = self._tokenizer.decode(self._ids[self._prefix : self._read])
        return self._tokenizer.decode(self._ids[self._prefix :])[len(before) :]
