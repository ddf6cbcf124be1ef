"""An example family plugin for vlm-router: Qwen2-VL models, prompted to answer briefly.

It claims no `model_type`, so it never takes a model by detection: a `models.yaml` entry chooses it
with `family: qwen2_vl_brief`. Its prompts are Qwen2-VL's ChatML with a house system prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlm_router import Capabilities, Family, Image, Message, Part, Video, VideoSupport, hookimpl

SYSTEM = "Answer in one short sentence."


def _render(part: Part) -> str:
    if isinstance(part, Image):
        return "<|vision_start|><|image_pad|><|vision_end|>"
    if isinstance(part, Video):
        return "<|vision_start|><|video_pad|><|vision_end|>"
    return part.text


class BriefQwen2VL(Family):
    name = "qwen2_vl_brief"
    model_types = ()  # chosen explicitly in models.yaml, never detected
    capabilities = Capabilities(images=True, max_images=4, video=VideoSupport.NONE, max_aspect_ratio=200)
    description = "Qwen2-VL with a brief-answer system prompt (example plugin)"
    history_images = "kept, as in qwen2_vl"
    reserved_tags = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

    def build_prompt(self, messages: Sequence[Message]) -> str:
        system = " ".join(m.text for m in messages if m.role == "system")
        out = [f"<|im_start|>system\n{SYSTEM}{' ' + system if system else ''}<|im_end|>\n"]
        for message in messages:
            if message.role != "system":
                out.append(f"<|im_start|>{message.role}\n{''.join(_render(p) for p in message.parts)}<|im_end|>\n")
        out.append("<|im_start|>assistant\n")
        return "".join(out)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(BriefQwen2VL())
