"""LLaVA-NeXT (v1.6, Mistral): `[INST] <image>\\n... [/INST]` prompts, every image of a turn before its text."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vlm_router import Capabilities, Family, Image, Message, Text, VideoSupport, hookimpl

from .llava import IMAGE_TAG


class LlavaNextFamily(Family):
    name = "llava_next"
    model_types = ("llava_next",)
    architectures = ("LlavaNextForConditionalGeneration",)
    # openvino-genai fails on an image whose features, unpadded, keep no row or column. With llava-v1.6's tiles
    # that is past 24:1 for a wide image up to 336 px wide (48:1 up to 672 px, 72:1 beyond), 48:1 or 72:1 tall.
    capabilities = Capabilities(images=True, max_images=None, video=VideoSupport.NONE, max_aspect_ratio=24)
    description = "LLaVA-NeXT / v1.6 Mistral ([INST] ... [/INST] turns, <image> per image before the turn's text)"
    history_images = "kept: images of earlier user turns stay at the start of their turn and are encoded again"
    reserved_tags = (IMAGE_TAG,)

    def for_model(self, config: Mapping[str, Any]) -> LlavaNextFamily:
        """Only the Mistral-based checkpoints: the Vicuna, Yi and Llama 3 ones were trained on other prompts."""
        text_model = config.get("text_config", {}).get("model_type")
        if text_model != "mistral":
            raise ValueError(f"the llava_next family writes the Mistral [INST] prompt; this checkpoint's text model is {text_model!r}")
        return self

    def build_prompt(self, messages: Sequence[Message]) -> str:
        """As the template, but a system or assistant turn keeps all its text parts, not only the first."""
        out: list[str] = []
        for message in messages:
            if message.role == "system":
                out.append(f"<<SYS>>\n{message.text}\n<</SYS>>\n\n")
            elif message.role == "user":
                out.append("[INST] ")
                out.extend(f"{IMAGE_TAG}\n" for part in message.parts if isinstance(part, Image))
                out.extend(part.text for part in message.parts if isinstance(part, Text))
                out.append(" [/INST]")
            else:
                out.append(f" {message.text}</s> ")
        return "".join(out)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(LlavaNextFamily())
