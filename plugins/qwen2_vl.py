"""Qwen2-VL and Qwen2.5-VL: ChatML prompts with vision start/pad/end tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vlm_router import Capabilities, Family, Image, Message, Part, Video, VideoSupport, hookimpl

IMAGE_TAG = "<|vision_start|><|image_pad|><|vision_end|>"
VIDEO_TAG = "<|vision_start|><|video_pad|><|vision_end|>"
DEFAULT_SYSTEM = "You are a helpful assistant."
#: Visual tokens (merged 2x2 patches) an image has at most by default: the image budget, in tokens.
IMAGE_TOKENS = 320


def render_part(part: Part) -> str:
    """A part as Qwen prompts write it: its text, or the vision tags of an image or a video."""
    if isinstance(part, Image):
        return IMAGE_TAG
    if isinstance(part, Video):
        return VIDEO_TAG
    return part.text


class Qwen2VLFamily(Family):
    name = "qwen2_vl"
    model_types: tuple[str, ...] = ("qwen2_vl", "qwen2_5_vl")
    architectures: tuple[str, ...] = ("Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")
    # The vision encoder attends over all of an image's 14-pixel patches at once, its time growing faster than the
    # pixels, and holds the GIL meanwhile: on 2 cores at the 2B model's shape, 1.7 s for 256 tokens, 2.7 s for 400,
    # 5.5 s for 576 (docs/benchmarks.md). Images reach it within IMAGE_TOKENS tokens of 28x28 pixels, 64 with
    # `detail: low`, on a bounded set of 28-pixel grids (openvino keeps buffers for every patch grid it has seen).
    # openvino-genai encodes all images of a request in one pass with a mask over all their patches (4 bytes per
    # pair of patches: 16 images of 1 MP took the worker to 16.9 GB), so together they reach it within 4 images
    # of 1280 tokens.
    capabilities = Capabilities(
        images=True, max_images=None, video=VideoSupport.NATIVE, max_aspect_ratio=200, max_image_pixels=IMAGE_TOKENS * 28 * 28,
        low_detail_pixels=64 * 28 * 28, image_grid=28, max_request_image_pixels=4 * 1280 * 28 * 28,
    )  # fmt: skip
    description = "Qwen2-VL and Qwen2.5-VL (ChatML, <|vision_start|><|image_pad|><|vision_end|> per image)"
    history_images = "kept: images of earlier turns stay in the prompt at their place and are encoded again"
    reserved_tags = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

    #: The system prompt the template writes when the chat has none (Qwen3-VL's writes none).
    default_system: str | None = DEFAULT_SYSTEM

    def build_prompt(self, messages: Sequence[Message]) -> str:
        out: list[str] = []
        if self.default_system is not None and (not messages or messages[0].role != "system"):
            out.append(f"<|im_start|>system\n{self.default_system}<|im_end|>\n")
        for message in messages:
            out.append(f"<|im_start|>{message.role}\n")
            out.extend(render_part(part) for part in message.parts)
            out.append("<|im_end|>\n")
        out.append("<|im_start|>assistant\n")
        return "".join(out)

    def prepare_video(self, frames: np.ndarray) -> np.ndarray:
        """Qwen encodes frames in pairs (temporal patch 2): an odd count repeats the last frame."""
        return np.concatenate([frames, frames[-1:]]) if len(frames) % 2 else frames


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(Qwen2VLFamily())
