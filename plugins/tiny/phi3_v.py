"""A tiny Phi-3.5-vision checkpoint carrying its modeling code, and the tiny Phi-3 text config InternVL2's shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlm_router.tiny import TINY_VOCAB, TinyModel, auto_map, save_checkpoint, seeded

from .llava import llama_tokenizer

# The chat template published with microsoft/Phi-3.5-vision-instruct (tokenizer_config.json). It takes
# string content: the model card puts `<|image_N|>\n` for each image before the question.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n' -}}{% endif %}"
)
#: Phi-3.5-vision's added tokens, after the LLaMA tokenizer's own three.
SPECIAL_TOKENS = (
    "<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>", "<|image|>",
)  # fmt: skip


def build(out_dir: Path, preset: str) -> None:
    """Phi-3.5-vision-instruct's layout and image geometry (336-pixel crops, 144 tokens each) at a few MB.

    The checkpoint carries `plugins/tiny/remote_code/phi3_v.py` as its modeling code. Its CLIP tower is 2 layers
    deep but 1024 wide: openvino-genai merges the tower's 1024-wide features itself, and the separators it
    reads from config.json (`glb_GN`, `sub_GN`) are 4096 wide.
    """
    import transformers

    from .remote_code import phi3_v

    tokenizer, ids = llama_tokenizer(
        SPECIAL_TOKENS, eos_token="<|endoftext|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    config = phi3_v.Phi3VConfig(
        **tiny_phi3_text(),
        **_vision(out_dir.resolve()),
        auto_map=auto_map(phi3_v, AutoConfig="Phi3VConfig", AutoModelForCausalLM="Phi3VForCausalLM"),
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    with seeded():
        model = phi3_v.Phi3VForCausalLM(config).eval()
        # the published separators start at zero; random ones show whether the runtime places them
        embedding = model.model.vision_embed_tokens
        for separator in (embedding.glb_GN, embedding.sub_GN):
            separator.data.normal_(std=config.initializer_range)
    # the published generation config: stop at the end of a turn, the next turn or the end of text
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=ids["<s>"],
        eos_token_id=[ids["<|end|>"], ids["<|assistant|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    save_checkpoint(model, tokenizer, out_dir, code=phi3_v)
    processor = phi3_v.Phi3VImageProcessor(num_crops=4, auto_map=auto_map(phi3_v, AutoImageProcessor="Phi3VImageProcessor"))
    processor.save_pretrained(out_dir)  # Phi-3.5-vision-instruct's 4 crops


def tiny_phi3_text() -> dict[str, Any]:
    """The text fields of Phi-3-mini-128k (Phi-3.5-vision's and InternVL2-4B's language model), 2 layers 64 wide.

    LongRoPE as published: one factor per rotary pair (head_dim 16), the long ones past 4096 positions.
    """
    rope = {"type": "longrope", "short_factor": [1.0] * 8, "long_factor": [1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 32.0, 48.0]}
    return {
        "vocab_size": TINY_VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096, "rope_scaling": rope, "rope_theta": 10000.0,
        "sliding_window": 262144, "tie_word_embeddings": False,
    }  # fmt: skip


def _vision(checkpoint: Path) -> dict[str, Any]:
    """Phi-3.5-vision-instruct's image fields, with a 2-layer CLIP tower."""
    return {
        "embd_layer": {
            "embedding_cls": "image", "hd_transform_order": "sub_glb", "projection_cls": "mlp",
            "use_hd_transform": True, "with_learnable_separator": True,
        },
        # the exporter reads the tower's shape from `model_name`'s config: here this checkpoint's own `vision_config`
        "img_processor": {
            "image_dim_out": 1024, "model_name": str(checkpoint), "name": "clip_vision_model", "num_img_tokens": 144,
        },
        # openai/clip-vit-large-patch14-336's geometry and width, 2 layers deep; `crop_size` is the HD crop side
        "vision_config": {
            "hidden_size": 1024, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 16,
            "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu", "crop_size": 336,
        },
    }  # fmt: skip


TINY_MODELS = (TinyModel("phi3_v", ("tiny",), build),)
