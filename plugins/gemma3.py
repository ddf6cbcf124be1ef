"""Gemma 3: `<start_of_turn>user/model` turns, the system prompt folded into the first turn, `<start_of_image>` per image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Message, Part, Text
from vlm_router.family import Capabilities, Family

IMAGE_TAG = "<start_of_image>"
SPECIAL_TOKENS = (
    "<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
    IMAGE_TAG, "<end_of_image>", "<image_soft_token>",
)  # fmt: skip
#: The tiny model's image side, patch side and image tokens: 4x4 patches pooled 2x2 into 4 tokens,
#: as google/gemma-3-4b-it pools 896/14 = 64x64 patches 4x4 into 256.
IMAGE_SIZE, PATCH_SIZE, TOKENS_PER_IMAGE = 64, 16, 4

# The chat template published with google/gemma-3-4b-it (the same for every Gemma 3 `-it` model).
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)


def _render(part: Part, trim: bool = True) -> str:
    if isinstance(part, Text):
        return part.text.strip() if trim else part.text  # Jinja's `trim` is Python's `str.strip()`
    return IMAGE_TAG


class Gemma3Family(Family):
    name = "gemma3"
    model_types = ("gemma3",)  # `gemma3_text` (Gemma 3 1B) is a text-only model
    architectures = ("Gemma3ForConditionalGeneration",)
    capabilities = Capabilities(images=True, max_images=None, video=VideoSupport.NONE)
    description = "Gemma 3 (<start_of_turn>user/model turns, system folded into the first turn, <start_of_image> per image)"
    history_images = "kept: images of earlier turns stay in the prompt at their place and are encoded again"
    reserved_tags = (IMAGE_TAG, "<image_soft_token>", "<end_of_image>")

    def build_prompt(self, messages: Sequence[Message]) -> str:
        """The published template's rendering, without its leading `<bos>`.

        openvino-genai tokenizes a prompt with special tokens when `apply_chat_template` is off, and
        Gemma's tokenizer then adds `<bos>` itself: a `<bos>` here would be a second one.

        A leading system message, untrimmed, opens the first turn; the template keeps only the first of its
        parts, this keeps them all. Gemma has no system role: a later system message is a user turn.
        """
        prefix = ""
        if messages and messages[0].role == "system":
            prefix = "".join(_render(part, trim=False) for part in messages[0].parts) + "\n\n"
            messages = messages[1:]
        out: list[str] = []
        for message in messages:
            out.append(f"<start_of_turn>{'model' if message.role == 'assistant' else 'user'}\n{prefix}")
            out.extend(_render(part) for part in message.parts)
            out.append("<end_of_turn>\n")
            prefix = ""
        if prefix:  # a system message alone: the template would drop it
            out.append(f"<start_of_turn>user\n{prefix}<end_of_turn>\n")
        out.append("<start_of_turn>model\n")
        return "".join(out)

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"gemma3": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        import transformers

        from vlm_router.tiny import TINY_VOCAB, save_checkpoint, seeded, train_tokenizer

        tokenizer = transformers.GemmaTokenizerFast(
            tokenizer_object=train_tokenizer(SPECIAL_TOKENS, TINY_VOCAB),
            bos_token="<bos>",
            eos_token="<eos>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
            extra_special_tokens={"boi_token": IMAGE_TAG, "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
        )  # adds `<bos>` to every encoding, as Gemma's own tokenizer does
        vocab = tokenizer.get_vocab()
        ids = {token: vocab[token] for token in SPECIAL_TOKENS}
        text = transformers.Gemma3TextConfig(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16, max_position_embeddings=4096,
            sliding_window=512, layer_types=["sliding_attention", "full_attention"],
            rope_scaling={"rope_type": "linear", "factor": 8.0},
            bos_token_id=ids["<bos>"], eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]], pad_token_id=ids["<pad>"],
        )  # fmt: skip
        vision = transformers.SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, vision_use_head=False,
        )  # fmt: skip
        config = transformers.Gemma3Config(
            text_config=text,
            vision_config=vision,
            mm_tokens_per_image=TOKENS_PER_IMAGE,
            boi_token_index=ids[IMAGE_TAG],
            eoi_token_index=ids["<end_of_image>"],
            image_token_index=ids["<image_soft_token>"],
            bos_token_id=ids["<bos>"],
            eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
            pad_token_id=ids["<pad>"],
        )
        with seeded():
            model = transformers.Gemma3ForConditionalGeneration(config).eval()
            # transformers starts the projection at zero, which would make every image read as the same blank
            model.model.multi_modal_projector.mm_input_projection_weight.data.normal_(std=config.initializer_range)
        processor = transformers.Gemma3Processor(
            image_processor=transformers.Gemma3ImageProcessor(
                size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
            ),
            tokenizer=tokenizer,
            chat_template=CHAT_TEMPLATE,
            image_seq_length=TOKENS_PER_IMAGE,
        )
        save_checkpoint(model, processor, out_dir)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(Gemma3Family())
