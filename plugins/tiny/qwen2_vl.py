"""Tiny Qwen2-VL and Qwen2.5-VL checkpoints (and Qwen2-VL-2B's shape, for benchmarks), with the published chat template."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlm_router.tiny import TINY_VOCAB, TinyModel, save_checkpoint, seeded, train_tokenizer

SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_pad|>",
)  # fmt: skip

# The chat template published with Qwen2-VL-2B-Instruct and Qwen2.5-VL-7B-Instruct.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer(special_tokens: Sequence[str], vocab_size: int) -> tuple[Any, dict[str, int]]:
    """A Qwen tokenizer trained offline (no BOS; `<|im_end|>` ends a turn), and its special tokens' ids."""
    import transformers

    tokenizer = transformers.Qwen2TokenizerFast(
        tokenizer_object=train_tokenizer(special_tokens, vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )
    vocab = tokenizer.get_vocab()
    return tokenizer, {token: vocab[token] for token in special_tokens}


def token_ids(ids: dict[str, int]) -> dict[str, int]:
    """The special tokens a Qwen-VL config names, from a `qwen_tokenizer`'s ids."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def build(model_type: str, out_dir: Path, preset: str) -> None:
    """A `qwen2_vl` or `qwen2_5_vl` checkpoint of `preset`'s shape."""
    import transformers
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import (
        Qwen2VLVideoProcessor,
    )

    text, vision = _shapes()[model_type, preset]
    tokenizer, ids = qwen_tokenizer(SPECIAL_TOKENS, int(text["vocab_size"]))  # type: ignore[call-overload]
    prefix = "Qwen2VL" if model_type == "qwen2_vl" else "Qwen2_5_VL"
    config = getattr(transformers, f"{prefix}Config")(
        text_config=text,
        vision_config=vision,
        vocab_size=text["vocab_size"],
        hidden_size=text["hidden_size"],
        **token_ids(ids),
    )
    with seeded():
        model = getattr(transformers, f"{prefix}ForConditionalGeneration")(config).eval()
    processor = getattr(transformers, f"{prefix}Processor")(
        image_processor=transformers.Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )
    save_checkpoint(model, processor, out_dir)


def _shapes() -> dict[tuple[str, str], tuple[dict[str, object], dict[str, object]]]:
    """(text, vision) configs by (model_type, preset); `2b` is Qwen2-VL-2B-Instruct's shape."""
    tiny_text = {
        "vocab_size": TINY_VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "tie_word_embeddings": False,
    }  # fmt: skip  (head_dim 16: the mrope sections add up to 8)
    tiny_vision = {"depth": 2, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    return {
        ("qwen2_vl", "tiny"): (tiny_text, {**tiny_vision, "embed_dim": 32, "hidden_size": 64, "mlp_ratio": 2}),
        ("qwen2_5_vl", "tiny"): (
            tiny_text,
            {**tiny_vision, "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64, "fullatt_block_indexes": [1], "window_size": 56},
        ),
        ("qwen2_vl", "2b"): (
            {
                "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
                "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "tie_word_embeddings": True,
            },  # fmt: skip
            {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4, "patch_size": 14,
             "spatial_merge_size": 2, "temporal_patch_size": 2},  # fmt: skip
        ),
    }


TINY_MODELS = (
    TinyModel("qwen2_vl", ("tiny", "2b"), functools.partial(build, "qwen2_vl")),
    TinyModel("qwen2_5_vl", ("tiny",), functools.partial(build, "qwen2_5_vl")),
)
