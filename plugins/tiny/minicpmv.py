"""A tiny MiniCPM-V-2.6 checkpoint carrying its modeling code, with the published chat template."""

from __future__ import annotations

from pathlib import Path

from vlm_router.tiny import TINY_VOCAB, TinyModel, auto_map, save_checkpoint, seeded

from .qwen2_vl import qwen_tokenizer

#: Qwen2's special tokens, then those MiniCPM-V-2.6 adds.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "</image>", "<ref>", "</ref>", "<box>", "</box>",
    "<quad>", "</quad>", "<point>", "</point>", "<slice>", "</slice>", "<image_id>", "</image_id>", "<unk>",
)  # fmt: skip

# The chat template published with openbmb/MiniCPM-V-2_6 (tokenizer_config.json, Qwen2's).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build(out_dir: Path, preset: str) -> None:
    """MiniCPM-V-2.6's layout and image geometry (448-pixel slices, 64 queries each) at a few MB.

    The checkpoint carries `plugins/tiny/remote_code/minicpmv.py` as its modeling code.
    """

    from .remote_code import minicpmv

    tokenizer, ids = qwen_tokenizer(SPECIAL_TOKENS, TINY_VOCAB)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = minicpmv.MiniCPMVConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 980, "patch_size": 14},
        vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
        auto_map=auto_map(minicpmv, AutoConfig="MiniCPMVConfig", AutoModel="MiniCPMV", AutoModelForCausalLM="MiniCPMV"),
    )  # fmt: skip
    with seeded():
        model = minicpmv.MiniCPMV(config).eval()
    save_checkpoint(model, tokenizer, out_dir, code=minicpmv)
    # openvino-genai slices and normalizes images by preprocessor_config.json; optimum-cli copies it into the
    # export only if AutoImageProcessor loads it, hence its class and `auto_map`
    processor = minicpmv.MiniCPMVImageProcessor(auto_map=auto_map(minicpmv, AutoImageProcessor="MiniCPMVImageProcessor"))
    processor.save_pretrained(out_dir)


TINY_MODELS = (TinyModel("minicpmv", ("tiny",), build),)
