"""Qwen3-VL: ChatML prompts, no default system prompt, vision start/pad/end tokens where each image or video is."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlm_router import hookimpl
from vlm_router.config import VideoSupport
from vlm_router.conversation import Message, ToolCall
from vlm_router.family import Capabilities, Family
from vlm_router.tool_calls import parse_tagged_calls

from .qwen2_vl import IMAGE_TOKENS, Qwen2VLFamily, qwen_tokenizer, render_part, token_ids

#: Qwen3-VL's special tokens, in the order of their ids (151643...) in the published tokenizer.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip

# The chat template published with Qwen/Qwen3-VL-2B-Instruct and Qwen/Qwen3-VL-8B-Instruct (chat_template.json).
CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {%- if messages[0].content is string %}\n"
    "            {{- messages[0].content }}\n"
    "        {%- else %}\n"
    "            {%- for content in messages[0].content %}\n"
    "                {%- if 'text' in content %}\n"
    "                    {{- content.text }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '\\n\\n' }}\n"
    "    {%- endif %}\n"
    '    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}\n'
    "    {%- for tool in tools %}\n"
    '        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n'
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' }}\n"
    "        {%- if messages[0].content is string %}\n"
    "            {{- messages[0].content }}\n"
    "        {%- else %}\n"
    "            {%- for content in messages[0].content %}\n"
    "                {%- if 'text' in content %}\n"
    "                    {{- content.text }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set image_count = namespace(value=0) %}\n"
    "{%- set video_count = namespace(value=0) %}\n"
    "{%- for message in messages %}\n"
    '    {%- if message.role == "user" %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' }}\n"
    "        {%- if message.content is string %}\n"
    "            {{- message.content }}\n"
    "        {%- else %}\n"
    "            {%- for content in message.content %}\n"
    "                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}\n"
    "                    {%- set image_count.value = image_count.value + 1 %}\n"
    "                    {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}\n"
    "                    <|vision_start|><|image_pad|><|vision_end|>\n"
    "                {%- elif content.type == 'video' or 'video' in content %}\n"
    "                    {%- set video_count.value = video_count.value + 1 %}\n"
    "                    {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}\n"
    "                    <|vision_start|><|video_pad|><|vision_end|>\n"
    "                {%- elif 'text' in content %}\n"
    "                    {{- content.text }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' }}\n"
    "        {%- if message.content is string %}\n"
    "            {{- message.content }}\n"
    "        {%- else %}\n"
    "            {%- for content_item in message.content %}\n"
    "                {%- if 'text' in content_item %}\n"
    "                    {{- content_item.text }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and message.content) or (not loop.first) %}\n"
    "                    {{- '\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    '                {{- \'<tool_call>\\n{"name": "\' }}\n'
    "                {{- tool_call.name }}\n"
    '                {{- \'", "arguments": \' }}\n'
    "                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n"
    "                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n"
    "                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {%- if message.content is string %}\n"
    "            {{- message.content }}\n"
    "        {%- else %}\n"
    "            {%- for content in message.content %}\n"
    "                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}\n"
    "                    {%- set image_count.value = image_count.value + 1 %}\n"
    "                    {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}\n"
    "                    <|vision_start|><|image_pad|><|vision_end|>\n"
    "                {%- elif content.type == 'video' or 'video' in content %}\n"
    "                    {%- set video_count.value = video_count.value + 1 %}\n"
    "                    {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}\n"
    "                    <|vision_start|><|video_pad|><|vision_end|>\n"
    "                {%- elif 'text' in content %}\n"
    "                    {{- content.text }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)


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

    def tiny_model_types(self) -> dict[str, tuple[str, ...]]:
        return {"qwen3_vl": ("tiny",)}

    def build_tiny(self, model_type: str, out_dir: Path, preset: str = "tiny") -> None:
        import transformers

        from vlm_router.tiny import TINY_VOCAB, save_checkpoint, seeded

        tokenizer, ids = qwen_tokenizer(SPECIAL_TOKENS, TINY_VOCAB)
        text = {
            "vocab_size": TINY_VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 4096,
            "rope_scaling": {"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True},
        }  # fmt: skip  (the mrope sections add up to head_dim / 2, as Qwen3-VL-2B's [24, 20, 20] do for 128)
        vision = {
            "depth": 3, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
            "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0, 1],
        }  # fmt: skip  (one deepstack feature per vision layer listed, added to as many text layers)
        config = transformers.Qwen3VLConfig(
            text_config=text,
            vision_config=vision,
            **token_ids(ids),
        )
        with seeded():
            model = transformers.Qwen3VLForConditionalGeneration(config).eval()
        # 4 to 256 tokens an image; with a `longest_edge` under 200 * 32 * 32, openvino-genai shrinks a wide image to no rows
        pixels = {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 256}
        processor = transformers.Qwen3VLProcessor(
            image_processor=transformers.Qwen2VLImageProcessorFast(
                size=pixels, patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3
            ),
            tokenizer=tokenizer,
            video_processor=transformers.Qwen3VLVideoProcessor(size=pixels),
            chat_template=CHAT_TEMPLATE,
        )
        save_checkpoint(model, processor, out_dir)


@hookimpl
def register_families(register: Callable[[Family], None]) -> None:
    register(Qwen3VLFamily())
