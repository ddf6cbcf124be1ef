"""A tiny LLaVA-NeXT-Video (7B, Vicuna) checkpoint with the real model's image and frame geometry and the published chat template."""

from __future__ import annotations

from pathlib import Path

from vlm_router.tiny import TINY_VOCAB, TinyModel, save_checkpoint, seeded

from ..llava import IMAGE_TAG
from ..llava_next_video import VIDEO_TAG
from .llava import CONFIG_ARGS, PROCESSOR_ARGS, llama_tokenizer
from .llava_next import PINPOINTS

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


def build(out_dir: Path, preset: str) -> None:
    """LLaVA-NeXT-Video-7B's layout (336-pixel tiles and frames, frames pooled 2x2 into 144 tokens) at a few MB."""
    import transformers
    from transformers.models.llava_next_video.video_processing_llava_next_video import (
        LlavaNextVideoVideoProcessor,
    )

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


TINY_MODELS = (TinyModel("llava_next_video", ("tiny",), build),)
