"""MiniCPM-V-2.6: ChatML turns, each image an `<image>./</image>` line where it appears."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Image, Message, Text
from vlm_router.family import Capabilities, Family

#: The model's `chat()` writes `(<image>./</image>)`; its processor replaces that whole string, brackets
#: included, with the image's slices. openvino-genai replaces `<image>./</image>` only, so the prompt
#: carries the tag without brackets to give the model the token sequence it was trained on.
IMAGE_TAG = "<image>./</image>"
DEFAULT_SYSTEM = "You are a helpful assistant."

# The chat template published with openbmb/MiniCPM-V-2_6 (tokenizer_config.json, Qwen2's).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def content(message: Message) -> str:
    """A turn as the model's `chat()` joins it: its images and texts in order, one per line."""
    return "\n".join(IMAGE_TAG if isinstance(part, Image) else part.text for part in message.parts if isinstance(part, Image | Text))


class MiniCPMVFamily(Family):
    name = "minicpmv"
    model_types = ("minicpmv",)
    architectures = ("MiniCPMV",)
    capabilities = Capabilities(images=True, max_images=1, video=VideoSupport.NONE)
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
