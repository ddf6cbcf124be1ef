#!/usr/bin/env python3
"""Which pipeline options lower one client's latency? Time per token and to the first token, by option.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/options_probe.py --model DIR

`DIR` is an exported OpenVINO Qwen2-VL folder (the 2B-shape bench model: see `bench/serve_bench.py`).
In this process, one text request at a time (64 tokens, `ignore_eos`, the same prompt each time), 3
requests per setting, the first not counted:

- `VLMPipeline` (what the original service ran), first and again last, to show the machine's drift;
- `ContinuousBatchingPipeline` (what a worker runs) with the worker's default scheduler, then with one
  scheduler field or OpenVINO property changed at a time.

Reported: **TTFT**, the time to the first token (with prefix caching on, the repeated prompt is
cached), and **step**, the median time between two tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from vlm_router.config import SchedulerSettings
from vlm_router.conversation import Message, Text
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily

PROMPT = Qwen2VLFamily().build_prompt([Message("user", [Text("Tell me a long story about a lighthouse keeper.")])])
#: (label, scheduler fields changed from the worker's defaults, OpenVINO properties)
VARIANTS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    ("worker defaults", {}, {}),
    ("enable_prefix_caching: false", {"enable_prefix_caching": False}, {}),
    ("dynamic_split_fuse: false", {"dynamic_split_fuse": False}, {}),
    ("max_num_seqs: 1", {"max_num_seqs": 1}, {}),
    ("KV_CACHE_PRECISION: f16", {}, {"KV_CACHE_PRECISION": "f16"}),
    ("PERFORMANCE_HINT: LATENCY", {}, {"PERFORMANCE_HINT": "LATENCY"}),
)


def config() -> Any:
    import openvino_genai

    generation = openvino_genai.GenerationConfig()
    generation.max_new_tokens = 64
    generation.ignore_eos = True
    return generation


def summary(runs: list[list[float]], started: list[float]) -> tuple[float, float]:
    """(TTFT, median step) in ms, over the runs after the first; each run is its token times."""
    kept = list(zip(runs, started))[1:]
    ttft = statistics.mean(times[0] - t0 for times, t0 in kept)
    step = statistics.mean(statistics.median(b - a for a, b in zip(times[1:], times[2:])) for times, _ in kept)
    return ttft * 1000, step * 1000


def batching(model: Path, scheduler: dict[str, Any], properties: dict[str, Any]) -> tuple[float, float]:
    import openvino_genai

    settings = openvino_genai.SchedulerConfig()
    for name, value in {**SchedulerSettings().scheduler_config(), **scheduler}.items():
        setattr(settings, name, value)
    pipeline = openvino_genai.ContinuousBatchingPipeline(str(model), settings, "CPU", properties)
    runs, started = [], []
    for k in range(3):
        started.append(time.perf_counter())
        handle = pipeline.add_request(k, PROMPT, [], [], config())  # dropping the handle drops the request
        times = []
        while handle.get_status() == openvino_genai.GenerationStatus.RUNNING:
            pipeline.step()
            times.append(time.perf_counter())
        runs.append(times)
    return summary(runs, started)


def sequential(model: Path) -> tuple[float, float]:
    import openvino_genai

    pipeline = openvino_genai.VLMPipeline(str(model), "CPU")
    runs, started = [], []
    for _ in range(3):
        times: list[float] = []

        def on_text(_: str, times: list[float] = times) -> Any:
            times.append(time.perf_counter())
            return openvino_genai.StreamingStatus.RUNNING

        started.append(time.perf_counter())
        pipeline.generate(PROMPT, generation_config=config(), streamer=on_text)
        runs.append(times)
    return summary(runs, started)


def row(pipeline: str, option: str, timings: tuple[float, float]) -> str:
    return f"| {pipeline} | {option} | {timings[0]:.0f} | {timings[1]:.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args()
    print("| pipeline | option | TTFT ms | step ms |\n|---|---|---|---|")
    print(row("VLMPipeline", "", sequential(args.model)), flush=True)
    for label, scheduler, properties in VARIANTS:
        print(row("ContinuousBatchingPipeline", label, batching(args.model, scheduler, properties)), flush=True)
    print(row("VLMPipeline", "again", sequential(args.model)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
