"""LLaVA-NeXT (v1.6, Mistral): `[INST] <image>\\n... [/INST]` prompts, every image of a turn before its text."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Image, Message, Text
from vlm_router.family import Capabilities, Family

from .llava import (
    CONFIG_ARGS,
    IMAGE_TAG,
    PROCESSOR_ARGS,
    SPECIAL_TOKENS,
    llama_tokenizer,
)

# The chat template published with llava-hf/llava-v1.6-mistral-7b-hf. It has no generation prompt:
# a prompt ends with the last user turn's ` [/INST]`.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] "
    "+ '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '</s> '}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

#: `image_grid_pinpoints` of llava-v1.6, (height, width) in 336 px tiles.
PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))


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

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"llava_next": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        import transformers

        from vlm_router.tiny import TINY_VOCAB, save_checkpoint, seeded

        tile, patch = 336, 14  # llava-v1.6's image geometry, so a tiny model takes the same images; 576 tokens a tile
        pinpoints = [list(pinpoint) for pinpoint in PINPOINTS]
        tokenizer, ids = llama_tokenizer(SPECIAL_TOKENS)
        text = transformers.MistralConfig(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=32768, sliding_window=None,
            bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"],
        )  # fmt: skip
        vision = transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=tile, patch_size=patch
        )
        config = transformers.LlavaNextConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=ids[IMAGE_TAG],
            image_grid_pinpoints=pinpoints,
            **CONFIG_ARGS,
            image_seq_length=(tile // patch) ** 2,
            pad_token_id=ids["<pad>"],
        )
        with seeded():
            model = transformers.LlavaNextForConditionalGeneration(config).eval()
        processor = transformers.LlavaNextProcessor(
            image_processor=transformers.LlavaNextImageProcessor(
                size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile}, image_grid_pinpoints=pinpoints
            ),
            tokenizer=tokenizer,
            patch_size=patch,
            **PROCESSOR_ARGS,
            chat_template=CHAT_TEMPLATE,
        )
        save_checkpoint(model, processor, out_dir)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(LlavaNextFamily())
