"""LLaVA-NeXT-Video 7B (Vicuna): `USER: <image>\\n<video>\\n... ASSISTANT:` prompts, a turn's media before its text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from vlm_router import Capabilities, Family, VideoSupport, hookimpl

from .llava import IMAGE_TAG, LlavaFamily

VIDEO_TAG = "<video>"


class LlavaNextVideoFamily(LlavaFamily):
    """LLaVA-1.5's prompt with a `<video>` line per video after a turn's images; native video."""

    name = "llava_next_video"
    model_types = ("llava_next_video",)
    architectures = ("LlavaNextVideoForConditionalGeneration",)
    # Trained on 32 frames a clip; openvino-genai takes any count, 144 tokens a frame (24x24 patches pooled 2x2).
    # Images take LLaVA-NeXT's tiles, and openvino-genai fails as for llava_next on an image whose unpadded
    # features keep no row or column: past 24:1 for a wide image up to 336 px wide (48:1 up to 672 px, 72:1 beyond).
    capabilities = Capabilities(images=True, max_images=None, video=VideoSupport.NATIVE, max_frames=32, max_aspect_ratio=24)
    description = "LLaVA-NeXT-Video 7B (USER:/ASSISTANT: turns, <image> per image then <video> per video before the turn's text)"
    history_images = "kept: images and videos of earlier user turns stay at the start of their turn and are encoded again"
    reserved_tags = (IMAGE_TAG, VIDEO_TAG)
    video_tag = VIDEO_TAG

    def for_model(self, config: Mapping[str, Any]) -> LlavaNextVideoFamily:
        """The Vicuna-based 7B checkpoints; the Mistral-based 7B-32K was trained on another prompt."""
        text_model = config.get("text_config", {}).get("model_type")
        if text_model != "llama":
            raise ValueError(f"the llava_next_video family writes the Vicuna USER:/ASSISTANT: prompt; this checkpoint's text model is {text_model!r}")
        return self


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(LlavaNextVideoFamily())
