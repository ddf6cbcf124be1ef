"""A chat as families see it: roles and an ordered mix of text, images and videos, media already resolved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

Role = Literal["system", "user", "assistant"]


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


Part = Union[Text, Image, Video]


@dataclass
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The message's text parts joined, images left out."""
        return "".join(part.text for part in self.parts if isinstance(part, Text))
