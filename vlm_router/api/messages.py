"""OpenAI messages to the family-neutral conversation, collecting the media they reference."""

from __future__ import annotations

from collections.abc import Iterator

from ..conversation import Image, Message, Part, Text
from ..media.loader import MediaRef
from .schema import ChatCompletionRequest, ImageURLPart


def to_conversation(request: ChatCompletionRequest) -> tuple[list[Message], list[MediaRef]]:
    """The conversation (`developer` read as `system`) and its images in order of appearance."""
    messages: list[Message] = []
    images: list[MediaRef] = []
    for i, message in enumerate(request.messages):
        parts: list[Part] = []
        if isinstance(message.content, str):
            parts.append(Text(message.content))
        else:
            for j, part in enumerate(message.content):
                if isinstance(part, ImageURLPart):
                    parts.append(Image(len(images)))
                    images.append(MediaRef(part.image_url.url, f"messages.{i}.content.{j}.image_url.url"))
                else:
                    parts.append(Text(part.text))
        role = "system" if message.role == "developer" else message.role
        messages.append(Message(role, parts))
    return messages, images


def texts_with_params(request: ChatCompletionRequest) -> Iterator[tuple[str, str]]:
    """Every text of the request with the `param` path that names it."""
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            yield message.content, f"messages.{i}.content"
            continue
        for j, part in enumerate(message.content):
            if not isinstance(part, ImageURLPart):
                yield part.text, f"messages.{i}.content.{j}.text"
