"""A tiny InternVL2-4B checkpoint carrying its modeling code, with the phi3-chat conversation as its chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlm_router.tiny import TinyModel, auto_map, save_checkpoint, seeded

from ..internvl import LEGACY_SYSTEM
from .llava import llama_tokenizer
from .phi3_v import tiny_phi3_text

#: InternVL2-4B's added tokens (Phi-3's, then InternVL's), after the LLaMA tokenizer's own three.
SPECIAL_TOKENS = (
    "<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>",
    "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
)  # fmt: skip

# InternVL's phi3-chat conversation (what chat() writes) as a chat template: the system message or the
# default one, then MPT-style turns with `<image>\n` written in the user's text.
CHAT_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% else %}{% set system = '" + LEGACY_SYSTEM + "' %}{% endif %}<|system|>\n{{ system }}<|end|>"
    "{% for message in messages if message['role'] != 'system' %}"
    "{{ '<|user|>\n' if message['role'] == 'user' else '<|assistant|>\n' }}{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

#: InternVL2-4B's config.json but for its language model, with a 2-layer, 32-wide InternViT.
TINY_CONFIG: dict[str, Any] = {
    "vision_config": {
        "architectures": ["InternVisionModel"], "hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 2, "image_size": 448, "patch_size": 14, "qkv_bias": True, "qk_normalization": False,
        "use_flash_attn": True, "hidden_act": "gelu", "norm_type": "layer_norm", "layer_norm_eps": 1e-6,
    },
    "template": "phi3-chat", "select_layer": -1, "ps_version": "v2", "downsample_ratio": 0.5, "force_image_size": 448,
    "dynamic_image_size": True, "use_thumbnail": True, "min_dynamic_patch": 1, "max_dynamic_patch": 12,
}  # fmt: skip


def build(out_dir: Path, preset: str) -> None:
    """InternVL2-4B's layout and image geometry (448-pixel tiles, 256 tokens each) at a few MB.

    The checkpoint carries `plugins/tiny/remote_code/internvl_chat.py` as its modeling code.
    """
    import transformers

    from .remote_code import internvl_chat

    tokenizer, ids = llama_tokenizer(
        SPECIAL_TOKENS, eos_token="<|endoftext|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    llm_config = {
        **tiny_phi3_text(), "model_type": "phi3", "architectures": ["Phi3ForCausalLM"],
        "bos_token_id": ids["<s>"], "eos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"],
    }  # fmt: skip
    classes = {"AutoConfig": "InternVLChatConfig", "AutoModel": "InternVLChatModel", "AutoModelForCausalLM": "InternVLChatModel"}
    config = internvl_chat.InternVLChatConfig(
        **TINY_CONFIG, llm_config=llm_config, auto_map=auto_map(internvl_chat, **classes)
    )
    with seeded():
        model = internvl_chat.InternVLChatModel(config).eval()
    # chat() stops at the template's separator `<|end|>`; Phi-3's own end of text stops too
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=ids["<s>"], eos_token_id=[ids["<|endoftext|>"], ids["<|end|>"]], pad_token_id=ids["<|endoftext|>"]
    )
    save_checkpoint(model, tokenizer, out_dir, code=internvl_chat)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 448}, crop_size=448, resample=3, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
    ).save_pretrained(out_dir)  # its tile size and normalization; InternVL cuts the tiles itself (`dynamic_preprocess`)


TINY_MODELS = (TinyModel("internvl_chat", ("tiny",), build),)
