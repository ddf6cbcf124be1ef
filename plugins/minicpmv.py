"""MiniCPM-V-2.6: ChatML turns, each image an `<image>./</image>` line where it appears."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Image, Message, Text
from vlm_router.family import Capabilities, Family

#: The model's `chat()` writes `(<image>./</image>)`; its processor replaces that whole string, brackets
#: included, with the image's slices. openvino-genai replaces `<image>./</image>` only, so the prompt
#: carries the tag without brackets to give the model the token sequence it was trained on.
IMAGE_TAG = "<image>./</image>"
#: The side of the square area MiniCPM-V encodes the whole image and each slice at (`scale_resolution`).
SLICE = 448
DEFAULT_SYSTEM = "You are a helpful assistant."
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


def content(message: Message) -> str:
    """A turn as the model's `chat()` joins it: its images and texts in order, one per line."""
    return "\n".join(IMAGE_TAG if isinstance(part, Image) else part.text for part in message.parts if isinstance(part, Image | Text))


class MiniCPMVFamily(Family):
    name = "minicpmv"
    model_types = ("minicpmv",)
    architectures = ("MiniCPMV",)
    # The image processor encodes the whole image at about 448x448 and, for a larger one, up to 9 slices of that
    # size more, one per 448x448 of area. Images reach it within one slice's area by default (about 2.5 s on 2
    # cores, estimated from the vision tower's size against Qwen2-VL's, docs/benchmarks.md): the whole image only.
    capabilities = Capabilities(
        images=True, max_images=1, video=VideoSupport.NONE, max_image_pixels=SLICE * SLICE, low_detail_pixels=SLICE * SLICE
    )
    description = "MiniCPM-V-2.6 (ChatML, <image>./</image> per image where it appears)"
    history_images = "kept: images of earlier turns stay at their place and are encoded again"
    reserved_tags = ("<image>", "</image>", "<slice>", "</slice>", "<image_id>", "</image_id>")

    def build_prompt(self, messages: Sequence[Message]) -> str:
        out: list[str] = []
        if not messages or messages[0].role != "system":
            out.append(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n")
        out.extend(f"<|im_start|>{message.role}\n{content(message)}<|im_end|>\n" for message in messages)
        out.append("<|im_start|>assistant\n")
        return "".join(out)

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"minicpmv": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        """MiniCPM-V-2.6's layout and image geometry (448-pixel slices, 64 queries each) at a few MB.

        The checkpoint carries `plugins/remote_code/minicpmv.py` as its modeling code.
        """
        from vlm_router.tiny import TINY_VOCAB, auto_map, save_checkpoint, seeded

        from .qwen2_vl import qwen_tokenizer
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


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(MiniCPMVFamily())
