#!/usr/bin/env python3
"""Would several worker processes for one model serve mixed text and image load better than one?

Usage (from the repository root, with the virtual environment's Python)::

    python bench/replicas_probe.py --model DIR [--out results.json]

`DIR` is an exported OpenVINO Qwen2-VL folder (the 2B-shape bench model: see `bench/serve_bench.py`).
It starts vlm-router's own worker processes (`vlm_router.worker.process.main`, as the router does,
without HTTP) in two layouts, one after the other:

- **one**: one worker with OpenVINO's default threads (all cores) takes everything.
- **replicas**: two workers, each with `INFERENCE_NUM_THREADS` = cores / 2; the text streams go to the
  first, the image requests to the second. This is the best case for replicas: a router that sends each
  image to the replica with no image in progress.

In each, 4 text requests stream (temperature 0, `ignore_eos`, 400 tokens). Once all have produced 20
text deltas, one image request (448x448, 8 tokens) is sent; 3 s after it ends, 4 more at once. Reported:

- **text gap p50**: the median time between two text deltas of a stream over the whole run (the pace
  of decoding, as the streams see it);
- **stall**: the longest gap of any text stream while the single image, then the burst, is in progress
  (from sending to the last image's first token);
- **image TTFT**: the single image's, and the burst's slowest;
- **RSS**: the workers' resident memory at the end, together.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vlm_router.config import SchedulerSettings
from vlm_router.conversation import Image, Message, Text
from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily
from vlm_router.generation import SamplingParams
from vlm_router.worker.process import main as worker_main
from vlm_router.worker.protocol import Failed, Finished, Generate, GeneratedText, Ready, WorkerSpec

SPAWN = multiprocessing.get_context("spawn")
FAMILY = Qwen2VLFamily()
TEXT_PROMPT = FAMILY.build_prompt([Message("user", [Text("Tell me a long story about a lighthouse.")])])
IMAGE_PROMPT = FAMILY.build_prompt([Message("user", [Image(0), Text("Describe this picture.")])])


class Worker:
    """One worker process and the arrival time of each request's text deltas and its end."""

    def __init__(self, model: Path, threads: int | None) -> None:
        ov_config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        spec = WorkerSpec("bench", str(model), "CPU", FAMILY, ov_config, SchedulerSettings().scheduler_config())
        self._conn, child = SPAWN.Pipe()
        self._beats = SPAWN.Value("L", 0)  # kept alive: the child opens it after start() returns
        self.process = SPAWN.Process(target=worker_main, args=(child, spec, self._beats, 1.0), daemon=True)
        self.process.start()
        child.close()  # the worker's end: once it exits, reading gives EOF
        ready = self._conn.recv()
        assert isinstance(ready, Ready), ready
        self.deltas: dict[int, list[float]] = {}
        self.ended: dict[int, float] = {}
        self._send_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, message: Generate) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                return
            now = time.perf_counter()
            if isinstance(message, GeneratedText):
                self.deltas.setdefault(message.id, []).append(now)
            elif isinstance(message, (Finished, Failed)):
                assert isinstance(message, Finished), message
                self.ended[message.id] = now

    def rss_gb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
        return 0.0

    def stop(self) -> None:
        self._conn.send(None)
        self.process.join(30)


def wait_for(condition: Any, timeout: float = 600) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the workers stopped answering")
        time.sleep(0.01)


def longest_gap(worker: Worker, ids: range, start: float, end: float) -> float:
    """The longest gap between two deltas of one of `ids` that overlaps [start, end]."""
    gaps = [b - a for i in ids for a, b in zip(worker.deltas[i], worker.deltas[i][1:]) if b > start and a < end]
    return max(gaps, default=0.0)


def run(model: Path, layout: str) -> dict[str, Any]:
    cores = os.cpu_count() or 2
    text_worker = Worker(model, None if layout == "one" else max(1, cores // 2))
    image_worker = text_worker if layout == "one" else Worker(model, max(1, cores // 2))
    texts = range(4)
    for i in texts:
        text_worker.send(Generate(i, TEXT_PROMPT, [], [], SamplingParams(max_tokens=400, temperature=0, ignore_eos=True)))
    wait_for(lambda: all(len(text_worker.deltas.get(i, ())) >= 20 for i in texts))
    image = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)
    rng = np.random.default_rng(0)
    windows = {}
    for name, ids in (("single", range(10, 11)), ("burst", range(20, 24))):
        sent = time.perf_counter()
        for i in ids:
            image_worker.send(Generate(i, IMAGE_PROMPT, [rng.integers(0, 256, (448, 448, 3), dtype=np.uint8)], [], image))
        wait_for(lambda: all(i in image_worker.ended for i in ids))  # noqa: B023 (called before the loop moves on)
        first = max(image_worker.deltas[i][0] for i in ids)
        windows[name] = {"stall_s": longest_gap(text_worker, texts, sent, first), "image_ttft_s": first - sent}
        time.sleep(3)
    all_gaps = [b - a for i in texts for a, b in zip(text_worker.deltas[i], text_worker.deltas[i][1:])]
    workers = [text_worker] if layout == "one" else [text_worker, image_worker]
    result = {"layout": layout, "text_gap_p50_s": statistics.median(all_gaps), **windows, "rss_gb": sum(w.rss_gb() for w in workers)}
    for worker in workers:
        worker.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = [run(args.model, layout) for layout in ("one", "replicas")]
    print("| layout | text gap p50 s | stall, one image s | image TTFT s | stall, 4 images s | slowest image TTFT s | workers' RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['layout']} | {r['text_gap_p50_s']:.3f} | {r['single']['stall_s']:.2f} | {r['single']['image_ttft_s']:.2f} "
            f"| {r['burst']['stall_s']:.2f} | {r['burst']['image_ttft_s']:.2f} | {r['rss_gb']:.2f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
