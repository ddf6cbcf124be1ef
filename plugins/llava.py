"""LLaVA-1.5: `USER: <image>\\n... ASSISTANT:` prompts, every image of a turn before its text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Image, Message, Text, Video
from vlm_router.family import Capabilities, Family

IMAGE_TAG = "<image>"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", IMAGE_TAG, "<pad>")

# The chat template published with llava-hf/llava-1.5-7b-hf.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


#: How LLaVA models read the vision tower: its last-but-one layer, without the CLS token.
CONFIG_ARGS = {"vision_feature_layer": -2, "vision_feature_select_strategy": "default"}
PROCESSOR_ARGS = {"vision_feature_select_strategy": "default", "num_additional_image_tokens": 1}


def llama_tokenizer(
    special_tokens: Sequence[str], eos_token: str = "</s>", pad_token: str = "<pad>", chat_template: str | None = None
) -> tuple[Any, dict[str, int]]:
    """A LLaMA tokenizer trained offline (`<s>` added to every encoding), and its special tokens' ids."""
    import transformers

    from vlm_router.tiny import TINY_VOCAB, train_tokenizer

    tokenizer = transformers.LlamaTokenizerFast(
        tokenizer_object=train_tokenizer(special_tokens, TINY_VOCAB),
        bos_token="<s>",
        eos_token=eos_token,
        unk_token="<unk>",
        pad_token=pad_token,
        chat_template=chat_template,
    )
    vocab = tokenizer.get_vocab()
    return tokenizer, {token: vocab[token] for token in special_tokens}


class LlavaFamily(Family):
    name = "llava"
    model_types: tuple[str, ...] = ("llava",)
    architectures: tuple[str, ...] = ("LlavaForConditionalGeneration",)
    # openvino-genai scales an image's short side to 336 pixels before cropping its centre, so its memory grows
    # with the aspect ratio (about 11 KB per unit, measured: an 800000x1 image took 10 GB); at 200:1 that is 2 MB.
    # Images arrive within 16 tiles of 336x336: a short side of 336 or more, all the crop uses, up to 16:1.
    capabilities = Capabilities(
        images=True, max_images=None, video=VideoSupport.NONE, max_aspect_ratio=200, max_image_pixels=16 * 336 * 336
    )
    description = "LLaVA-1.5 (USER:/ASSISTANT: turns, <image> per image before the turn's text)"
    history_images = "kept: images of earlier turns stay at the start of their turn and are encoded again"
    reserved_tags: tuple[str, ...] = (IMAGE_TAG,)

    #: Written per video after a turn's images, for a family whose template has one (LLaVA-NeXT-Video).
    video_tag: str | None = None

    def build_prompt(self, messages: Sequence[Message]) -> str:
        out: list[str] = []
        for message in messages:
            if message.role != "system":
                out.append(f"{message.role.upper()}: ")
            out.extend(f"{IMAGE_TAG}\n" for part in message.parts if isinstance(part, Image))
            out.extend(f"{self.video_tag}\n" for part in message.parts if isinstance(part, Video) and self.video_tag)
            out.extend(f"{part.text} " for part in message.parts if isinstance(part, Text))
        out.append("ASSISTANT:")
        return "".join(out)

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"llava": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        import transformers

        from vlm_router.tiny import TINY_VOCAB, save_checkpoint, seeded

        tokenizer, ids = llama_tokenizer(SPECIAL_TOKENS)
        text = transformers.LlamaConfig(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096,
            bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"],
        )  # fmt: skip
        vision = transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14
        )
        config = transformers.LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=ids[IMAGE_TAG],
            **CONFIG_ARGS,
            image_seq_length=(56 // 14) ** 2,
            pad_token_id=ids["<pad>"],
        )
        with seeded():
            model = transformers.LlavaForConditionalGeneration(config).eval()
        processor = transformers.LlavaProcessor(
            image_processor=transformers.CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}),
            tokenizer=tokenizer,
            patch_size=14,
            **PROCESSOR_ARGS,
            chat_template=CHAT_TEMPLATE,
        )
        save_checkpoint(model, processor, out_dir)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(LlavaFamily())
