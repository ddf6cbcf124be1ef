"""InternVL2 and InternVL2.5: the conversation template the checkpoint's config.json names, `<image>` per image."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Image, Message, Text
from vlm_router.family import Capabilities, Family

IMAGE_TAG = "<image>"
#: The side of InternVL's square tiles, in pixels.
TILE = 448
_LEGACY_SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
_SYSTEM_2_5 = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
#: InternVL2-4B's added tokens (Phi-3's, then InternVL's), after the LLaMA tokenizer's own three.
SPECIAL_TOKENS = (
    "<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>",
    "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
)  # fmt: skip


@dataclass(frozen=True)
class Template:
    """One of the conversation templates in InternVL's `conversation.py`; all use the MPT separator style.

    The prompt is `system + sep`, then `role + message + sep` per turn, then the assistant role.
    """

    system: str
    default_system: str
    user: str
    assistant: str
    sep: str

    def render(self, system: str | None, turns: Sequence[tuple[str, str]]) -> str:
        out = [self.system.format(system_message=self.default_system if system is None else system), self.sep]
        for role, text in turns:
            out.append(f"{self.user if role == 'user' else self.assistant}{text}{self.sep}")
        out.append(self.assistant)
        return "".join(out)


_CHATML = {"system": "<|im_start|>system\n{system_message}", "user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n"}
#: By the `template` name in a checkpoint's config.json: InternVL2-1B is Hermes-2, 2B/8B/26B internlm2-chat,
#: 4B phi3-chat, the InternVL2.5 series internvl2_5.
TEMPLATES = {
    "Hermes-2": Template(**_CHATML, default_system=_LEGACY_SYSTEM, sep="<|im_end|>"),
    "internlm2-chat": Template(**_CHATML, default_system=_LEGACY_SYSTEM, sep="<|im_end|>"),
    "phi3-chat": Template("<|system|>\n{system_message}", _LEGACY_SYSTEM, "<|user|>\n", "<|assistant|>\n", "<|end|>"),
    "internvl2_5": Template(**_CHATML, default_system=_SYSTEM_2_5, sep="<|im_end|>\n"),
}


# InternVL's phi3-chat conversation (what chat() writes) as a chat template: the system message or the
# default one, then MPT-style turns with `<image>\n` written in the user's text.
CHAT_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% else %}{% set system = '" + _LEGACY_SYSTEM + "' %}{% endif %}<|system|>\n{{ system }}<|end|>"
    "{% for message in messages if message['role'] != 'system' %}"
    "{{ '<|user|>\n' if message['role'] == 'user' else '<|assistant|>\n' }}{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def content(message: Message) -> str:
    """A turn as InternVL's `chat()` writes it: `<image>\\n` per image, then the texts, one per line."""
    tags = "".join(f"{IMAGE_TAG}\n" for part in message.parts if isinstance(part, Image))
    return tags + "\n".join(part.text for part in message.parts if isinstance(part, Text))


class InternVLFamily(Family):
    name = "internvl_chat"
    model_types = ("internvl_chat",)
    architectures = ("InternVLChatModel",)
    # openvino-genai cuts an image into 448-pixel tiles by its aspect ratio alone (a 64x48 image becomes 12 tiles
    # and a thumbnail), each encoded on its own, 256 tokens. Images reach it as a whole grid of tiles, so it keeps
    # that grid: 2 tiles and the thumbnail at most by default (about 5 s on 2 cores, estimated from the vision
    # tower's size against Qwen2-VL's, docs/benchmarks.md), one tile with `detail: low`.
    capabilities = Capabilities(
        images=True, max_images=1, video=VideoSupport.NONE, max_image_pixels=2 * TILE * TILE, low_detail_pixels=TILE * TILE,
        image_tile=TILE,
    )  # fmt: skip
    description = "InternVL2/2.5 (the conversation template config.json names, <image> per image before the text)"
    history_images = "kept: an image of an earlier turn keeps its <image> tag and is encoded again"
    reserved_tags = (IMAGE_TAG, "<img>", "</img>", "<IMG_CONTEXT>")

    def __init__(self, template: str = "phi3-chat") -> None:
        self.template = TEMPLATES[template]

    def for_model(self, config: Mapping[str, Any]) -> InternVLFamily:
        name = config.get("template")
        if name not in TEMPLATES:
            raise ValueError(f"InternVL conversation template {name!r} is not supported; supported: {', '.join(TEMPLATES)}")
        return InternVLFamily(name)

    def build_prompt(self, messages: Sequence[Message]) -> str:
        systems = [message.text for message in messages if message.role == "system"]
        turns = [(message.role, content(message)) for message in messages if message.role != "system"]
        return self.template.render("\n".join(systems) if systems else None, turns)

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"internvl_chat": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        """InternVL2-4B's layout and image geometry (448-pixel tiles, 256 tokens each) at a few MB.

        The checkpoint carries `plugins/remote_code/internvl_chat.py` as its modeling code.
        """
        import transformers

        from vlm_router.tiny import auto_map, save_checkpoint, seeded

        from .llava import llama_tokenizer
        from .phi3_v import tiny_phi3_text
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


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(InternVLFamily())
