"""LLaVA-NeXT-Video 7B (Vicuna): `USER: <image>\\n<video>\\n... ASSISTANT:` prompts, a turn's media before its text."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.family import Capabilities, Family

from .llava import (
    CONFIG_ARGS,
    IMAGE_TAG,
    PROCESSOR_ARGS,
    LlavaFamily,
    llama_tokenizer,
)
from .llava_next import PINPOINTS

VIDEO_TAG = "<video>"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", VIDEO_TAG, IMAGE_TAG, "<pad>")

# The chat template published with llava-hf/LLaVA-NeXT-Video-7B-hf (chat_template.json, 838 bytes, since
# "Update chat_template.json to incorporate `generation` tag (#3)"). Its second "Render all images first"
# comment heads the video loop, as published.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all images first #}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}"
    "{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


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

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"llava_next_video": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        import transformers
        from transformers.models.llava_next_video.video_processing_llava_next_video import (
            LlavaNextVideoVideoProcessor,
        )

        from vlm_router.tiny import TINY_VOCAB, save_checkpoint, seeded

        tile, patch = 336, 14  # the real model's geometry, so a tiny model takes the same images and frames
        pinpoints = [list(pinpoint) for pinpoint in PINPOINTS]
        tokenizer, ids = llama_tokenizer(SPECIAL_TOKENS)
        text = transformers.LlamaConfig(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=8192,  # 32 frames are 4608 tokens
            bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"],
        )  # fmt: skip
        vision = transformers.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=tile, patch_size=patch
        )
        config = transformers.LlavaNextVideoConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=ids[IMAGE_TAG],
            video_token_index=ids[VIDEO_TAG],
            image_grid_pinpoints=pinpoints,
            **CONFIG_ARGS,
            spatial_pool_mode="average",
            spatial_pool_stride=2,
            image_seq_length=(tile // patch) ** 2,
            video_seq_length=(tile // patch // 2) ** 2,
            pad_token_id=ids["<pad>"],
        )
        with seeded():
            model = transformers.LlavaNextVideoForConditionalGeneration(config).eval()
        size, crop = {"shortest_edge": tile}, {"height": tile, "width": tile}
        processor = transformers.LlavaNextVideoProcessor(
            video_processor=LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
            image_processor=transformers.LlavaNextImageProcessor(size=size, crop_size=crop, image_grid_pinpoints=pinpoints),
            tokenizer=tokenizer,
            patch_size=patch,
            **PROCESSOR_ARGS,
            chat_template=CHAT_TEMPLATE,
        )
        save_checkpoint(model, processor, out_dir)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(LlavaNextVideoFamily())
