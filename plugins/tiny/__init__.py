"""Tiny models of the built-in families, built offline for tests and benchmarks (`vlm-router make-tiny`).

Each module reproduces what its family's published checkpoints carry (layout, tokenizer, chat template,
processor settings) at a few MB of random weights; the families themselves are serving code only.
"""

from __future__ import annotations

from collections.abc import Callable

from vlm_router import TinyModel, hookimpl

from . import gemma3, internvl, llava, llava_next, llava_next_video, minicpmv, phi3_v, qwen2_vl, qwen3_vl


@hookimpl
def register_tiny_models(register: Callable[[TinyModel], None]) -> None:
    for module in (qwen2_vl, qwen3_vl, llava, llava_next, llava_next_video, gemma3, phi3_v, internvl, minicpmv):
        for model in module.TINY_MODELS:
            register(model)
