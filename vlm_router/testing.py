"""Helpers for testing a family's prompts against its model's published chat template.

`render` renders a chat template as transformers' `apply_chat_template` does, `hf_messages` writes OpenAI
messages as Hugging Face templates read them, and `conversation` turns them into what a family's
`build_prompt` receives. `CASES` and `VIDEO_CASES` are chats worth checking. A family's test then reads::

    from vlm_router.testing import CASES, conversation, hf_messages, render

    for messages in CASES.values():
        assert MyFamily().build_prompt(conversation(messages)) == render(TEMPLATE, hf_messages(messages))

Needs jinja2 (`pip install 'vlm-router[testing]'`).
"""

from __future__ import annotations

import json
from typing import Any

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vlm_router.api.messages import to_conversation
from vlm_router.api.schema import parse_request
from vlm_router.conversation import Message


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """transformers' `tojson`: plain `json.dumps`, unlike jinja's (which sorts keys and escapes HTML)."""
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


def render(template: str, messages: list[dict[str, Any]], **context: Any) -> str:
    """`template` rendered for `messages` with the generation prompt, under transformers' jinja settings.

    `{% generation %}` (transformers' marker for training masks) renders its content as is.
    """
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = _raise
    env.filters["tojson"] = _tojson
    template = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **context)


def hf_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as Hugging Face writes them: `{"type": "image"}` per image, a whole video as
    `{"type": "video"}`, no content as `""`."""
    def part(p: dict[str, Any]) -> dict[str, Any]:
        if p["type"] == "image_url":
            return {"type": "image"}
        if p["type"] == "video_url":
            return {"type": "video", "video": p["video_url"]["url"]}
        return p

    def content(c: Any) -> Any:
        return [part(p) for p in c] if isinstance(c, list) else "" if c is None else c  # templates iterate None

    return [{**m, "content": content(m["content"])} for m in messages]


def conversation(messages: list[dict[str, Any]]) -> list[Message]:
    """OpenAI messages as a family sees them, through the request parser."""
    return to_conversation(parse_request({"messages": messages})).messages


IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
VIDEO = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}, "fps": 1}
FRAMES = {"type": "video", "video": ["data:image/png;base64,AAAA", "data:image/png;base64,AAAA"]}


def text(value: str) -> dict[str, str]:
    """An OpenAI text part."""
    return {"type": "text", "text": value}


#: The chats every family's prompt is checked on (list content, which every published template reads).
CASES = {
    "text": [{"role": "user", "content": [text("Hello")]}],
    "single image": [{"role": "user", "content": [IMG, text("What is this?")]}],
    "several images": [{"role": "user", "content": [text("Compare "), IMG, text(" and "), IMG]}],
    "system": [{"role": "system", "content": [text("Be brief.")]}, {"role": "user", "content": [IMG, text("Describe.")]}],
    "multi-turn": [
        {"role": "user", "content": [IMG, text("What colour?")]},
        {"role": "assistant", "content": [text("Red.")]},
        {"role": "user", "content": [text("And this one?"), IMG]},
    ],
}
#: And for families that take video natively.
VIDEO_CASES = {
    "video": [{"role": "user", "content": [VIDEO, text("What happens?")]}],
    "frames and image": [{"role": "user", "content": [FRAMES, IMG, text("Same scene?")]}],
    "multi-turn with video": [
        {"role": "system", "content": [text("You see "), text("videos.")]},
        {"role": "user", "content": [IMG, text("What colour?")]},
        {"role": "assistant", "content": [text("Red.")]},
        {"role": "user", "content": [text("And in this one?"), VIDEO]},
    ],
}
