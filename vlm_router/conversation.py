"""A chat as families see it: roles and an ordered mix of text, images and videos, media already resolved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Image:
    """The `index`-th image of the request (0-based, in message order)."""

    index: int


@dataclass(frozen=True)
class Video:
    """The `index`-th video of the request (0-based, in message order), passed natively."""

    index: int


Part = Text | Image | Video


@dataclass(frozen=True)
class ToolCall:
    """A function call an assistant turn made; `arguments` is JSON text."""

    id: str
    name: str
    arguments: str


@dataclass
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)
    #: An assistant turn's function calls; a `tool` turn's text is the result of one.
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The message's text parts joined, images left out."""
        return "".join(part.text for part in self.parts if isinstance(part, Text))
