"""How many prompt tokens one image adds under each published processor, written from its rules.

Each function answers for one image of `width` x `height` pixels: the prompt tokens a request with that
image has, minus those of the same request without it (the image's tag and the newline after it
replaced by what the published processor expands them to).
"""

from __future__ import annotations


def internvl_chat(width: int, height: int) -> int:
    raise NotImplementedError


def phi3_v(width: int, height: int) -> int:
    raise NotImplementedError


def minicpmv(width: int, height: int) -> int:
    raise NotImplementedError


BY_MODEL_TYPE = {"internvl_chat": internvl_chat, "phi3_v": phi3_v, "minicpmv": minicpmv}
