#!/usr/bin/env python3
"""What one image costs a Qwen2-VL model by its size: the measurement behind the family's image budget.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/encode_bench.py --model DIR [--sizes 224 448 ...] [--out results.json]

`DIR` is an exported OpenVINO Qwen2-VL folder, e.g. the 2B-shape bench model built with
`vlm-router make-tiny --family qwen2_vl --preset 2b --weight-format int8 --out bench/models/qwen2-vl-2b-shape-int8`.

For each square size S (pixels per side, a multiple of 28 so that the model sees it unchanged), one
`ContinuousBatchingPipeline` in this process, as a worker runs it, gets `--repeats` requests, one at a
time, each with one S x S image (random noise, a new one per request) and a short question, greedy,
one output token:

- **encode s**: how long `add_request` took. It encodes the image before it returns and holds the GIL
  meanwhile, so this is how long every other request of the model waits (fair admission lets one such
  wait fall between two steps of the running streams, never several back to back).
- **first step s**: the `step()` calls until the request's first token: the prefill of its prompt.
- **image tokens**: the prompt's tokens minus those of the same prompt without the image.

The first request of each size is reported apart from the median of the others: openvino compiles
shape-specific kernels the first time it sees a shape.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlm_router.conversation import Image, Message, Text  # noqa: E402
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily  # noqa: E402

DEFAULT_SIZES = (224, 336, 392, 448, 504, 560, 672)


def measure(pipeline: Any, prompt: str, size: int, seed: int) -> tuple[float, float, int]:
    """(encode s, first step s, prompt tokens) of one request with one `size`x`size` image."""
    import openvino
    import openvino_genai

    pixels = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    config = openvino_genai.GenerationConfig()
    config.max_new_tokens = 1
    started = time.perf_counter()
    handle = pipeline.add_request(seed, prompt, [openvino.Tensor(pixels)], [], config)
    encoded = time.perf_counter()
    while pipeline.has_non_finished_requests():
        pipeline.step()
    stepped = time.perf_counter()
    tokens = handle.get_perf_metrics().get_num_input_tokens()
    return encoded - started, stepped - encoded, tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="requests per size, the first one reported apart")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import openvino_genai

    pipeline = openvino_genai.ContinuousBatchingPipeline(str(args.model), openvino_genai.SchedulerConfig(), "CPU")
    family = Qwen2VLFamily()
    question = "What is in this picture?"
    prompt = family.build_prompt([Message("user", [Image(0), Text(question)])])
    text_tokens = pipeline.get_tokenizer().encode(family.build_prompt([Message("user", [Text(question)])])).input_ids.get_shape()[-1]
    rows = []
    print("| image | pixels | image tokens | encode s (first) | encode s | first step s |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        runs = [measure(pipeline, prompt, size, seed=size * 100 + k) for k in range(args.repeats)]
        rest = runs[1:] or runs
        row = {
            "size": size,
            "pixels": size * size,
            "image_tokens": runs[0][2] - text_tokens,
            "encode_first_s": runs[0][0],
            "encode_s": statistics.median(r[0] for r in rest),
            "first_step_s": statistics.median(r[1] for r in rest),
            "runs": runs,
        }
        rows.append(row)
        print(
            f"| {size}x{size} | {size * size} | {row['image_tokens']} | {row['encode_first_s']:.2f} | {row['encode_s']:.2f} | {row['first_step_s']:.2f} |",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps({"model": str(args.model), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
