"""LLaVA-1.5: `USER: <image>\\n... ASSISTANT:` prompts, every image of a turn before its text."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlm_router import Capabilities, Family, Image, Message, Text, Video, VideoSupport, hookimpl

IMAGE_TAG = "<image>"


class LlavaFamily(Family):
    name = "llava"
    model_types: tuple[str, ...] = ("llava",)
    architectures: tuple[str, ...] = ("LlavaForConditionalGeneration",)
    # openvino-genai scales an image's short side to 336 pixels before cropping its centre, so its memory grows
    # with the aspect ratio (about 11 KB per unit, measured: an 800000x1 image took 10 GB); at 200:1 that is 2 MB.
    # Images arrive within 16 tiles of 336x336: a short side of 336 or more, all the crop uses, up to 16:1.
    capabilities = Capabilities(
        images=True, max_images=None, video=VideoSupport.NONE, max_aspect_ratio=200, max_image_pixels=16 * 336 * 336
    )
    description = "LLaVA-1.5 (USER:/ASSISTANT: turns, <image> per image before the turn's text)"
    history_images = "kept: images of earlier turns stay at the start of their turn and are encoded again"
    reserved_tags: tuple[str, ...] = (IMAGE_TAG,)

    #: Written per video after a turn's images, for a family whose template has one (LLaVA-NeXT-Video).
    video_tag: str | None = None

    def build_prompt(self, messages: Sequence[Message]) -> str:
        out: list[str] = []
        for message in messages:
            if message.role != "system":
                out.append(f"{message.role.upper()}: ")
            out.extend(f"{IMAGE_TAG}\n" for part in message.parts if isinstance(part, Image))
            out.extend(f"{self.video_tag}\n" for part in message.parts if isinstance(part, Video) and self.video_tag)
            out.extend(f"{part.text} " for part in message.parts if isinstance(part, Text))
        out.append("ASSISTANT:")
        return "".join(out)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(LlavaFamily())
