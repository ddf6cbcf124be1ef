"""Getting a chat request ready for its model: the family's rules, media decoded, the model loaded, the prompt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..config import MediaConfig, VideoSupport
from ..conversation import ToolCall
from ..family import Capabilities, CapabilityError, PixelRange
from ..forced_calls import call_schema, parse_forced_call
from ..media import MediaError
from ..media.images import Sizer
from ..media.loader import MediaLoader, RequestBudget
from ..registry import ModelHandle, ModelUnavailable
from ..worker.client import Worker
from .errors import APIError, bad_request
from .json_schema import SchemaError, check_schema
from .messages import Conversation, Resolution, texts_with_params, videos_as_images
from .schema import ChatCompletionRequest


def _check_request(handle: ModelHandle, request: ChatCompletionRequest, image_count: int, video_count: int) -> None:
    """The family's rules for this request; nothing to check while the family is not known yet."""
    family, caps = handle.family, handle.capabilities
    if family is None or caps is None:
        return
    try:
        caps.check(handle.name, image_count, video_count)
    except CapabilityError as exc:
        raise bad_request(str(exc), param="messages", code=f"capability_{exc.rule}") from None
    if not family.tools:
        _check_untemplated_tools(f"model '{handle.name}' (family '{family.name}') has no tool template", request)
    for text, param in texts_with_params(request):
        tag = family.reserved_tag_in(text)
        if tag is not None:
            raise bad_request(f"text may not contain the media placeholder '{tag}'", param=param, code="reserved_tag")


def _check_untemplated_tools(model: str, request: ChatCompletionRequest) -> None:
    """What a family without a tool template refuses: letting the model decide on a call, and calls in the history."""
    if request.offered_tools and not request.forced_tools:
        message = f"{model} to decide whether to call a function: set tool_choice to 'required', or to a function, to force a call"
        raise bad_request(message, param="tools" if request.tool_choice is None else "tool_choice", code="unsupported_parameter")
    if any(m.role == "tool" or m.tool_calls for m in request.messages):
        raise bad_request(f"{model} to read function calls and tool results in messages", param="messages", code="unsupported_parameter")


def _check_forced_call(request: ChatCompletionRequest) -> None:
    """Each tool a forced call may use: its parameters must compile to a grammar, as `response_format` schemas must."""
    forced = {tool["function"]["name"] for tool in request.forced_tools}
    for index, tool in enumerate(request.tools or ()):
        if tool.function.name in forced:
            try:
                check_schema(call_schema([tool.model_dump(exclude_none=True)]))
            except SchemaError as exc:
                param = f"tools.{index}.function.parameters"
                raise bad_request(f"tool '{tool.function.name}': {exc}", param=param, code="invalid_value") from None


def _check_counts(media: MediaConfig, images: int, videos: int) -> None:
    for kind, count, limit in (("images", images, media.max_images_per_request), ("videos", videos, media.max_videos_per_request)):
        if count > limit:
            raise bad_request(f"{count} {kind} in one request, over the limit of {limit}", param="messages", code=f"too_many_{kind}")


def _check_messages(media: MediaConfig, request: ChatCompletionRequest) -> None:
    count = len(request.messages)
    if count > media.max_messages:
        raise bad_request(f"{count} messages in one request, over the limit of {media.max_messages}", param="messages", code="too_many_messages")


def _check_shapes(handle: ModelHandle, caps: Capabilities, media: list[np.ndarray], params: list[str]) -> None:
    """Every image, and every video's frames, against the model's shape rules."""
    for array, param in zip(media, params):
        try:
            caps.check_image_shape(handle.name, array.shape[-2], array.shape[-3])
        except CapabilityError as exc:
            raise bad_request(str(exc), param=param, code=f"capability_{exc.rule}") from None


@dataclass
class Prepared:
    """A request ready for its model's worker."""

    worker: Worker
    prompt: str
    images: list[np.ndarray]
    videos: list[np.ndarray]
    #: Reads function calls from the answer, when the request offered tools or forced a call.
    parse_tool_calls: Callable[[str], tuple[str, list[ToolCall]]] | None = None


async def prepare(loader: MediaLoader, media: MediaConfig, handle: ModelHandle, request: ChatCompletionRequest, conversation: Conversation) -> Prepared:
    """Check the request and load its media, then the model: a request refused for its media loads no model.

    Only a model whose family is unknown until it is fetched (a hub `source:`), given a video, is loaded first: video
    sampling follows the family's defaults. A request that gives up waiting leaves the load going for the others.
    """
    _check_messages(media, request)
    _check_forced_call(request)
    _check_counts(media, len(conversation.images), len(conversation.videos))
    _check_request(handle, request, len(conversation.images), len(conversation.videos))
    try:
        if conversation.videos and handle.capabilities is None:
            await handle.worker()
            _check_request(handle, request, len(conversation.images), len(conversation.videos))
        budget = loader.budget()  # all media of the request together
        sizes = _decode_sizes(handle.capabilities, conversation.resolutions)
        images, videos = await asyncio.gather(loader.images(conversation.images, budget, sizes), _videos(loader, handle, conversation, budget))
        if handle.capabilities is not None:
            _check_media(media, handle, request, conversation, images, videos)
        worker = await handle.worker()
    except MediaError as exc:
        raise APIError(exc.status, exc.message, param=exc.param, code=exc.code) from None
    except ModelUnavailable as exc:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        raise APIError(503, str(exc), param="model", code="model_unavailable", headers=headers) from None
    family, caps = handle.family, handle.capabilities
    assert family is not None and caps is not None  # set by a successful load
    _check_media(media, handle, request, conversation, images, videos)  # again: the load may have found or refined the family
    messages = conversation.messages
    ranges = _pixel_ranges(caps, conversation.resolutions)
    if caps.video is VideoSupport.FRAMES:
        frames = [[(frame, caps.pixel_range()) for frame in video] for video in videos]
        messages, ordered = videos_as_images(messages, list(zip(images, ranges)), frames)
        images, ranges, videos = [image for image, _ in ordered], [pixels for _, pixels in ordered], []
    images = await loader.fit(images, caps.image_sizes([(image.shape[1], image.shape[0]) for image in images], ranges))  # bounded pixels and shapes
    videos = [family.prepare_video(video) for video in videos]
    if forced := request.forced_tools:
        return Prepared(worker, family.forced_tool_prompt(messages, forced), images, videos, parse_forced_call)
    tools = request.offered_tools
    prompt = family.build_tool_prompt(messages, tools) if family.tools else family.build_prompt(messages)
    return Prepared(worker, prompt, images, videos, family.parse_tool_calls if tools else None)


def _check_media(
    media: MediaConfig, handle: ModelHandle, request: ChatCompletionRequest, conversation: Conversation, images: list[np.ndarray], videos: list[np.ndarray]
) -> None:
    """The decoded media against the model's rules: counts (a video's frames count as images where the family takes
    video as frames) and every image's and frame's shape."""
    caps = handle.capabilities
    assert caps is not None
    _check_request(handle, request, len(images), len(videos))
    _check_shapes(handle, caps, images + videos, [r.param for r in conversation.images] + [r.param for r in conversation.videos])
    if caps.video is VideoSupport.FRAMES and videos:
        frame_count = len(images) + sum(len(video) for video in videos)
        _check_counts(media, frame_count, 0)
        _check_request(handle, request, frame_count, 0)


def _pixel_ranges(caps: Capabilities, resolutions: list[Resolution]) -> list[PixelRange]:
    """Each image's pixel range: the model's budget as the client's `detail`, `max_pixels` and `min_pixels` narrow it."""
    return [caps.pixel_range(r.detail, r.max_pixels, r.min_pixels) for r in resolutions]


def _decode_sizes(caps: Capabilities | None, resolutions: list[Resolution]) -> list[Sizer] | None:
    """The size to decode each image at, within its pixel range, once the model's capabilities are known."""
    if caps is None:
        return None
    return [partial(caps.scaled_size, pixels=pixels) for pixels in _pixel_ranges(caps, resolutions)]


async def _videos(loader: MediaLoader, handle: ModelHandle, conversation: Conversation, budget: RequestBudget) -> list[np.ndarray]:
    if not conversation.videos:
        return []
    caps = handle.capabilities
    assert caps is not None  # known before videos are loaded
    return await loader.videos(conversation.videos, caps.video_fps, caps.max_frames, budget)
