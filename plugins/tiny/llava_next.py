"""A tiny LLaVA-NeXT (v1.6 Mistral) checkpoint with llava-v1.6's tiles and the published chat template."""

from __future__ import annotations

from pathlib import Path

from vlm_router.tiny import TINY_VOCAB, TinyModel, save_checkpoint, seeded

from ..llava import IMAGE_TAG
from .llava import CONFIG_ARGS, PROCESSOR_ARGS, SPECIAL_TOKENS, llama_tokenizer

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


def build(out_dir: Path, preset: str) -> None:
    """llava-v1.6-mistral's layout and image geometry (336-pixel tiles, 576 tokens each) at a few MB."""
    import transformers

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


TINY_MODELS = (TinyModel("llava_next", ("tiny",), build),)
