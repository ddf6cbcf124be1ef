"""Qwen3-VL: ChatML prompts, no default system prompt, vision start/pad/end tokens where each image or video is."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vlm_router import Capabilities, Family, Message, ToolCall, VideoSupport, hookimpl
from vlm_router.tool_calls import parse_tagged_calls

from .qwen2_vl import IMAGE_TOKENS, Qwen2VLFamily, render_part

TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


class Qwen3VLFamily(Qwen2VLFamily):
    """Qwen2-VL's prompt without its default system prompt; a video reaches the model as its frames.

    openvino-genai resamples a native Qwen3-VL video by the frame rate it is told, 24 fps when none is
    given, which leaves about 4 of the frames the router sampled; until the router passes each video's
    frame timing, frames as images keep all of them.
    """

    name = "qwen3_vl"
    model_types = ("qwen3_vl",)  # `qwen3_vl_moe` neither optimum-intel exports nor openvino-genai runs
    architectures = ("Qwen3VLForConditionalGeneration",)
    # As Qwen2-VL's, with 16-pixel patches merged 2x2: as many tokens of 32x32 pixels, on 32-pixel grids, and the
    # same number of patches for all images of a request together.
    capabilities = Capabilities(
        images=True, max_images=None, video=VideoSupport.FRAMES, max_frames=8, max_aspect_ratio=200,
        max_image_pixels=IMAGE_TOKENS * 32 * 32, low_detail_pixels=64 * 32 * 32, image_grid=32,
        max_request_image_pixels=4 * 1280 * 32 * 32,
    )  # fmt: skip
    description = "Qwen3-VL (ChatML without a default system prompt, <|vision_start|><|image_pad|><|vision_end|> per image)"
    default_system = None
    tools = True

    def build_prompt(self, messages: Sequence[Message]) -> str:
        return self.build_tool_prompt(messages, ())

    def build_tool_prompt(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]]) -> str:
        """As the template: with tools, a system turn lists them (after the client's system prompt) and says how to call.

        An assistant turn writes its calls as `<tool_call>` blocks after its text; consecutive `tool`
        turns are one user turn of `<tool_response>` blocks.
        """
        out: list[str] = []
        if tools:
            system = messages[0].text + "\n\n" if messages and messages[0].role == "system" else ""
            listed = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
            out.append(f"<|im_start|>system\n{system}{TOOLS_INTRO}{listed}{TOOLS_OUTRO}")
            messages = messages[1:] if system else messages
        for i, message in enumerate(messages):
            if message.role == "tool":
                out.append("<|im_start|>user" if i == 0 or messages[i - 1].role != "tool" else "")
                out.append(f"\n<tool_response>\n{message.text}\n</tool_response>")
                out.append("<|im_end|>\n" if i == len(messages) - 1 or messages[i + 1].role != "tool" else "")
                continue
            out.append(f"<|im_start|>{message.role}\n")
            out.extend(render_part(part) for part in message.parts)
            for k, call in enumerate(message.tool_calls):
                separator = "\n" if k or message.text else ""
                out.append(f'{separator}<tool_call>\n{{"name": "{call.name}", "arguments": {call.arguments}}}\n</tool_call>')
            out.append("<|im_end|>\n")
        out.append("<|im_start|>assistant\n")
        return "".join(out)

    def parse_tool_calls(self, text: str) -> tuple[str, list[ToolCall]]:
        return parse_tagged_calls(text)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(Qwen3VLFamily())
