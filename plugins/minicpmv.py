"""MiniCPM-V-2.6: ChatML turns, each image an `<image>./</image>` line where it appears."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlm_router import Capabilities, Family, Image, Message, Text, VideoSupport, hookimpl

#: The model's `chat()` writes `(<image>./</image>)`; its processor replaces that whole string, brackets
#: included, with the image's slices. openvino-genai replaces `<image>./</image>` only, so the prompt
#: carries the tag without brackets to give the model the token sequence it was trained on.
IMAGE_TAG = "<image>./</image>"
#: The side of the square area MiniCPM-V encodes the whole image and each slice at (`scale_resolution`).
SLICE = 448
DEFAULT_SYSTEM = "You are a helpful assistant."


def content(message: Message) -> str:
    """A turn as the model's `chat()` joins it: its images and texts in order, one per line."""
    return "\n".join(IMAGE_TAG if isinstance(part, Image) else part.text for part in message.parts if isinstance(part, Image | Text))


class MiniCPMVFamily(Family):
    name = "minicpmv"
    model_types = ("minicpmv",)
    architectures = ("MiniCPMV",)
    # The image processor encodes the whole image at about 448x448 and, for a larger one, up to 9 slices of that
    # size more, one per 448x448 of area. Images reach it within one slice's area by default (about 2.5 s on 2
    # cores, estimated from the vision tower's size against Qwen2-VL's, docs/benchmarks.md): the whole image only.
    capabilities = Capabilities(
        images=True, max_images=1, video=VideoSupport.NONE, max_image_pixels=SLICE * SLICE, low_detail_pixels=SLICE * SLICE
    )
    description = "MiniCPM-V-2.6 (ChatML, <image>./</image> per image where it appears)"
    history_images = "kept: images of earlier turns stay at their place and are encoded again"
    reserved_tags = ("<image>", "</image>", "<slice>", "</slice>", "<image_id>", "</image_id>")

    def build_prompt(self, messages: Sequence[Message]) -> str:
        out: list[str] = []
        if not messages or messages[0].role != "system":
            out.append(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n")
        out.extend(f"<|im_start|>{message.role}\n{content(message)}<|im_end|>\n" for message in messages)
        out.append("<|im_start|>assistant\n")
        return "".join(out)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(MiniCPMVFamily())
