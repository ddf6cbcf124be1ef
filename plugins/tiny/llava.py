"""A tiny LLaVA-1.5 checkpoint with the published chat template, and the LLaMA tokenizer other tiny models share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlm_router.tiny import TINY_VOCAB, TinyModel, save_checkpoint, seeded, train_tokenizer

from ..llava import IMAGE_TAG

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


def build(out_dir: Path, preset: str) -> None:
    """LLaVA-1.5's layout at a few MB, with 56-pixel images (16 tokens)."""
    import transformers

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


TINY_MODELS = (TinyModel("llava", ("tiny",), build),)
