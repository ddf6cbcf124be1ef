"""Gemma 3: `<start_of_turn>user/model` turns, the system prompt folded into the first turn, `<start_of_image>` per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vlm_router import Capabilities, Family, Message, Part, Text, VideoSupport, hookimpl

IMAGE_TAG = "<start_of_image>"


def _render(part: Part, trim: bool = True) -> str:
    if isinstance(part, Text):
        return part.text.strip() if trim else part.text  # Jinja's `trim` is Python's `str.strip()`
    return IMAGE_TAG


class Gemma3Family(Family):
    name = "gemma3"
    model_types = ("gemma3",)  # `gemma3_text` (Gemma 3 1B) is a text-only model
    architectures = ("Gemma3ForConditionalGeneration",)
    capabilities = Capabilities(images=True, max_images=None, video=VideoSupport.NONE)
    description = "Gemma 3 (<start_of_turn>user/model turns, system folded into the first turn, <start_of_image> per image)"
    history_images = "kept: images of earlier turns stay in the prompt at their place and are encoded again"
    reserved_tags = (IMAGE_TAG, "<image_soft_token>", "<end_of_image>")

    def build_prompt(self, messages: Sequence[Message]) -> str:
        """The published template's rendering, without its leading `<bos>`.

        openvino-genai tokenizes a prompt with special tokens when `apply_chat_template` is off, and
        Gemma's tokenizer then adds `<bos>` itself: a `<bos>` here would be a second one.

        A leading system message, untrimmed, opens the first turn; the template keeps only the first of its
        parts, this keeps them all. Gemma has no system role: a later system message is a user turn.
        """
        prefix = ""
        if messages and messages[0].role == "system":
            prefix = "".join(_render(part, trim=False) for part in messages[0].parts) + "\n\n"
            messages = messages[1:]
        out: list[str] = []
        for message in messages:
            out.append(f"<start_of_turn>{'model' if message.role == 'assistant' else 'user'}\n{prefix}")
            out.extend(_render(part) for part in message.parts)
            out.append("<end_of_turn>\n")
            prefix = ""
        if prefix:  # a system message alone: the template would drop it
            out.append(f"<start_of_turn>user\n{prefix}<end_of_turn>\n")
        out.append("<start_of_turn>model\n")
        return "".join(out)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(Gemma3Family())
