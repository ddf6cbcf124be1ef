"""InternVL2 and InternVL2.5: the conversation template the checkpoint's config.json names, `<image>` per image."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlm_router import Capabilities, Family, Image, Message, Text, VideoSupport, hookimpl

IMAGE_TAG = "<image>"
#: The side of InternVL's square tiles, in pixels.
TILE = 448
LEGACY_SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
_SYSTEM_2_5 = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


@dataclass(frozen=True)
class Template:
    """One of the conversation templates in InternVL's `conversation.py`; all use the MPT separator style.

    The prompt is `system + sep`, then `role + message + sep` per turn, then the assistant role.
    """

    system: str
    default_system: str
    user: str
    assistant: str
    sep: str

    def render(self, system: str | None, turns: Sequence[tuple[str, str]]) -> str:
        out = [self.system.format(system_message=self.default_system if system is None else system), self.sep]
        for role, text in turns:
            out.append(f"{self.user if role == 'user' else self.assistant}{text}{self.sep}")
        out.append(self.assistant)
        return "".join(out)


_CHATML = {"system": "<|im_start|>system\n{system_message}", "user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n"}
#: By the `template` name in a checkpoint's config.json: InternVL2-1B is Hermes-2, 2B/8B/26B internlm2-chat,
#: 4B phi3-chat, the InternVL2.5 series internvl2_5.
TEMPLATES = {
    "Hermes-2": Template(**_CHATML, default_system=LEGACY_SYSTEM, sep="<|im_end|>"),
    "internlm2-chat": Template(**_CHATML, default_system=LEGACY_SYSTEM, sep="<|im_end|>"),
    "phi3-chat": Template("<|system|>\n{system_message}", LEGACY_SYSTEM, "<|user|>\n", "<|assistant|>\n", "<|end|>"),
    "internvl2_5": Template(**_CHATML, default_system=_SYSTEM_2_5, sep="<|im_end|>\n"),
}




def content(message: Message) -> str:
    """A turn as InternVL's `chat()` writes it: `<image>\\n` per image, then the texts, one per line."""
    tags = "".join(f"{IMAGE_TAG}\n" for part in message.parts if isinstance(part, Image))
    return tags + "\n".join(part.text for part in message.parts if isinstance(part, Text))


class InternVLFamily(Family):
    name = "internvl_chat"
    model_types = ("internvl_chat",)
    architectures = ("InternVLChatModel",)
    # openvino-genai cuts an image into 448-pixel tiles by its aspect ratio alone (a 64x48 image becomes 12 tiles
    # and a thumbnail), each encoded on its own, 256 tokens. Images reach it as a whole grid of tiles, so it keeps
    # that grid: 2 tiles and the thumbnail at most by default (about 5 s on 2 cores, estimated from the vision
    # tower's size against Qwen2-VL's, docs/benchmarks.md), one tile with `detail: low`.
    capabilities = Capabilities(
        images=True, max_images=1, video=VideoSupport.NONE, max_image_pixels=2 * TILE * TILE, low_detail_pixels=TILE * TILE,
        image_tile=TILE,
    )  # fmt: skip
    description = "InternVL2/2.5 (the conversation template config.json names, <image> per image before the text)"
    history_images = "kept: an image of an earlier turn keeps its <image> tag and is encoded again"
    reserved_tags = (IMAGE_TAG, "<img>", "</img>", "<IMG_CONTEXT>")

    def __init__(self, template: str = "phi3-chat") -> None:
        self.template = TEMPLATES[template]

    def for_model(self, config: Mapping[str, Any]) -> InternVLFamily:
        name = config.get("template")
        if name not in TEMPLATES:
            raise ValueError(f"InternVL conversation template {name!r} is not supported; supported: {', '.join(TEMPLATES)}")
        return InternVLFamily(name)

    def build_prompt(self, messages: Sequence[Message]) -> str:
        systems = [message.text for message in messages if message.role == "system"]
        turns = [(message.role, content(message)) for message in messages if message.role != "system"]
        return self.template.render("\n".join(systems) if systems else None, turns)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(InternVLFamily())
