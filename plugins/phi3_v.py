"""Phi-3.5-vision: `<|user|>` turns, `<|image_N|>` tags numbered over the whole conversation, video as frames."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from vlm_router import Capabilities, Family, Image, Message, Text, VideoSupport, hookimpl

#: What openvino-genai (and the model's processor) read as an image placeholder.
_IMAGE_TAG = re.compile(r"<\|image_\d+\|>")


def content(message: Message) -> str:
    """A message as the model card writes it: `<|image_N|>\\n` per image, then the texts, one per line."""
    tags = "".join(f"<|image_{part.index + 1}|>\n" for part in message.parts if isinstance(part, Image))
    return tags + "\n".join(part.text for part in message.parts if isinstance(part, Text))


class Phi3VisionFamily(Family):
    name = "phi3_v"
    model_types = ("phi3_v",)
    architectures = ("Phi3VForCausalLM",)
    # A video becomes its frames, each an image; 8 frames keep the prompt within a few thousand tokens. The HD
    # transform scales the long side to 4 crops of 336 pixels (`num_crops` 4), so past 1344:1 the short side
    # would be 0 pixels, which openvino-genai's resize rejects.
    capabilities = Capabilities(
        images=True, max_images=None, video=VideoSupport.FRAMES, max_frames=8, video_fps=1.0, max_aspect_ratio=1344
    )
    description = "Phi-3.5-vision (<|user|>/<|assistant|> turns, <|image_N|> per image before the turn's text)"
    history_images = "kept: images of earlier turns keep their <|image_N|> tags and are encoded again"

    def reserved_tag_in(self, text: str) -> str | None:
        match = _IMAGE_TAG.search(text)
        return match.group(0) if match else super().reserved_tag_in(text)

    def build_prompt(self, messages: Sequence[Message]) -> str:
        out = [f"<|{message.role}|>\n{content(message)}<|end|>\n" for message in messages]
        if not messages or messages[-1].role != "assistant":
            out.append("<|assistant|>\n")
        return "".join(out)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(Phi3VisionFamily())
