"""OpenAI messages to the family-neutral conversation, collecting the media they reference."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..conversation import Image, Message, Part, Text, ToolCall, Video
from ..media.loader import MediaRef, VideoRef
from .errors import bad_request
from .schema import ChatCompletionRequest, ImageURLPart, RefusalPart, TextPart, VideoFramesPart, VideoURLPart

T = TypeVar("T")


@dataclass(frozen=True)
class Resolution:
    """What a client asked of one image's resolution: `image_url.detail`, and the part's `max_pixels`/`min_pixels`."""

    detail: str | None = None
    max_pixels: int | None = None
    min_pixels: int | None = None


@dataclass
class Conversation:
    """The messages, and the images and videos their `Image` and `Video` parts point at, in order.

    `resolutions` holds each image's `Resolution`, in the order of `images`.
    """

    messages: list[Message]
    images: list[MediaRef] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    videos: list[VideoRef] = field(default_factory=list)


def to_conversation(request: ChatCompletionRequest) -> Conversation:
    """The conversation (`developer` read as `system`) and its media in order of appearance.

    As in OpenAI's API, only user messages carry media: a chat template may have no place for it elsewhere.
    """
    conversation = Conversation([])
    for i, message in enumerate(request.messages):
        parts: list[Part] = []
        if isinstance(message.content, str):
            parts.append(Text(message.content))
        elif message.content is not None:
            for j, part in enumerate(message.content):
                param = f"messages.{i}.content.{j}"
                if isinstance(part, TextPart):
                    parts.append(Text(part.text))
                elif isinstance(part, RefusalPart):
                    if message.role != "assistant":
                        raise bad_request("refusal parts are only for assistant messages", param=param, code="invalid_value")
                    parts.append(Text(part.refusal))
                elif message.role != "user":
                    raise bad_request(f"{message.role} messages take text only; images and videos go in user messages", param=param, code="invalid_value")
                elif isinstance(part, ImageURLPart):
                    parts.append(Image(len(conversation.images)))
                    conversation.images.append(MediaRef(part.image_url.url, f"{param}.image_url.url"))
                    conversation.resolutions.append(_resolution(part, param))
                else:
                    parts.append(Video(len(conversation.videos)))
                    conversation.videos.append(_video_ref(part, param))
        role = "system" if message.role == "developer" else message.role
        calls = [ToolCall(call.id, call.function.name, call.function.arguments) for call in message.tool_calls or ()]
        conversation.messages.append(Message(role, parts, calls))
    return conversation


def _resolution(part: ImageURLPart, param: str) -> Resolution:
    if part.min_pixels is not None and part.max_pixels is not None and part.min_pixels > part.max_pixels:
        message = f"min_pixels ({part.min_pixels}) is over max_pixels ({part.max_pixels})"
        raise bad_request(message, param=f"{param}.min_pixels", code="invalid_value")
    return Resolution(part.image_url.detail, part.max_pixels, part.min_pixels)


def _video_ref(part: VideoFramesPart | VideoURLPart, param: str) -> VideoRef:
    if isinstance(part, VideoFramesPart):
        frames = tuple(MediaRef(url, f"{param}.video.{k}") for k, url in enumerate(part.video))
        return VideoRef(param, frames=frames, fps=part.fps, max_pixels=part.max_pixels, max_frames=part.max_frames)
    return VideoRef(param, url=part.video_url.url, fps=part.fps, max_pixels=part.max_pixels, max_frames=part.max_frames)


def videos_as_images(messages: list[Message], images: Sequence[T], videos: Sequence[Sequence[T]]) -> tuple[list[Message], list[T]]:
    """For families that take a video as a sequence of images: each `Video` part becomes its frames.

    The images come out in order of appearance, as the pipeline matches image tags to images.
    """
    ordered: list[T] = []
    rewritten = []
    for message in messages:
        parts: list[Part] = []
        for part in message.parts:
            if isinstance(part, Text):
                parts.append(part)
                continue
            media = [images[part.index]] if isinstance(part, Image) else list(videos[part.index])
            parts.extend(Image(len(ordered) + k) for k in range(len(media)))
            ordered.extend(media)
        rewritten.append(Message(message.role, parts, message.tool_calls))
    return rewritten, ordered


def texts_with_params(request: ChatCompletionRequest) -> Iterator[tuple[str, str]]:
    """Every text of the request with the `param` path that names it, then each message's texts joined.

    A prompt puts a message's text parts side by side (its media tags may go elsewhere), so markup
    split across two parts (`"<ov_genai_image_"`, `"0>"`) is whole there; the joined text shows it.
    """
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            yield message.content, f"messages.{i}.content"
            continue
        texts = [_text_of(part, f"messages.{i}.content.{j}") for j, part in enumerate(message.content or ()) if isinstance(part, TextPart | RefusalPart)]
        yield from texts
        if len(texts) > 1:
            yield "".join(text for text, _ in texts), f"messages.{i}.content"


def _text_of(part: TextPart | RefusalPart, param: str) -> tuple[str, str]:
    return (part.text, f"{param}.text") if isinstance(part, TextPart) else (part.refusal, f"{param}.refusal")
