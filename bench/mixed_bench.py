#!/usr/bin/env python3
"""Does one image freeze everybody else? How long text streams pause while image requests arrive.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/mixed_bench.py --model DIR [--max-image-pixels N] [--label NAME] [--out results.json]
    python bench/mixed_bench.py --model DIR --quick                          # a short smoke run
    python bench/mixed_bench.py --chart stalls.svg --inputs on.json off.json  # draw runs' results

`DIR` is an exported OpenVINO Qwen2-VL folder (see `bench/serve_bench.py` for building the 2B-shape
one, and a tiny one to check this script with). A typical comparison is two runs, one with the
family's image budget and one without it::

    python bench/mixed_bench.py --model DIR --label "budget on" --out on.json
    python bench/mixed_bench.py --model DIR --max-image-pixels 100000000 --label "budget off" --out off.json
    python bench/mixed_bench.py --chart stalls.svg --inputs on.json off.json

Run it on an otherwise idle machine: server and clients share its CPUs.

What it does
------------
A temporary models.yaml serves `DIR` as the model `bench` (default scheduler, no request deadline), with
`capabilities.max_image_pixels` set to `--max-image-pixels` when given (larger images are scaled down to
that many pixels before the model sees them; without it, the family's default applies). After /health
answers, one image request (not measured) loads and warms up the model.

**Text load.** 4 text clients stream for the whole run: each sends a streaming chat completion (a short
question, temperature 0, `ignore_eos`, `max_tokens` 512) and, the moment it ends, the next one, until
the run is over. The arrival of every content chunk is recorded.

**Phase "one at a time".** Once every text client has received its first chunk, image requests are sent
one after another: 448x448, 1344x1344 and 4032x3024 pixels. Each carries one JPEG (quality 90, a smooth
colour gradient plus noise, different for every request) as a data URL and a short question; it is a
streaming request with `stream_options.include_usage`, temperature 0, `max_tokens` 16 and `ignore_eos`
(so that every answer has a first token to time). Before each image, the script waits until every text
client is receiving chunks again, then 3 s of undisturbed streaming.

**Phase "burst".** 4 image requests of 448x448 sent at the same instant.

Metrics
-------
- **image TTFT**: from sending an image request to its first content chunk; **e2e**: to the end of its
  stream; **prompt tokens**: the usage chunk's, so they show how many tokens the image became.
- **pixels sent**: width x height of the image sent (the model may see it scaled down).
- **longest stall**: the longest gap between two consecutive content chunks of one text request, over
  all text clients, counting every gap that overlaps the window. The window of an image of the first
  phase runs from its sending to 1 s after its first token; the burst's, from its sending to the first
  token of its last image. Gaps are measured only within one request: the pause between a client's
  request ending and its next request's first chunk is that request's TTFT, reported apart as
  **text TTFT max**: the longest TTFT of the text requests waiting for their first chunk during the
  window (sent before its end, first chunk after its start).
- **text gap p50**: the median gap between consecutive content chunks over all text requests of the run,
  the undisturbed pace to compare stalls with.

A chunk is text, as a client sees it: the server may send several tokens' text in one event, so a gap
is at least a token's time. The report is a Markdown table (one row per image) and a line for the
burst; `--out` writes them with every text and image request's chunk arrival times, the settings and
the machine as JSON.

`--chart OUT.svg --inputs A.json B.json ...` starts no server: it reads results written by `--out` and
draws, per image size and for the burst, one bar per input (its `--label`): the longest stall, with a
dashed line at the 5 s target, and, in a second panel, the image TTFT (for the burst, its slowest image).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from harness import (
    BenchError,
    ServerProcess,
    StreamResult,
    cell,
    chat_body,
    client_session,
    data_url,
    exit_on_sigterm,
    machine,
    make_jpeg,
    markdown_table,
    percentile,
    print_machine,
    serving,
    stream_chat,
    user_message,
    warm_up,
)

TARGET_STALL_S = 5.0
POLL_S = 0.02
RESUME_TIMEOUT_S = 3600.0  # text streams not moving again this long after a window: the run is stuck
BUDGET_OFF = 100_000_000  # pixels: more than any image of the run


@dataclass(frozen=True)
class Settings:
    text_clients: int = 4
    text_max_tokens: int = 512
    image_sizes: tuple[tuple[int, int], ...] = ((448, 448), (1344, 1344), (4032, 3024))
    image_max_tokens: int = 16
    burst: int = 4
    burst_size: tuple[int, int] = (448, 448)
    pause_s: float = 3.0  # undisturbed streaming before each image and the burst
    stall_tail_s: float = 1.0  # an image's window ends this long after its first token
    jpeg_quality: int = 90


QUICK = replace(Settings(), text_max_tokens=64, pause_s=0.5)


# --- Requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRequest:
    width: int
    height: int
    body: bytes
    jpeg_bytes: int

    @classmethod
    def make(cls, seed: int, size: tuple[int, int], settings: Settings) -> ImageRequest:
        jpeg = make_jpeg(seed, *size, quality=settings.jpeg_quality)
        message = user_message(f"Picture {seed}: which colours do you see? Answer briefly.", data_url(jpeg, "image/jpeg"))
        return cls(*size, chat_body([message], settings.image_max_tokens, ignore_eos=True), len(jpeg))

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}"


def text_body(client: int, k: int, max_tokens: int) -> bytes:
    question = f"Story {client}.{k}: tell me about a lighthouse keeper's long night."
    return chat_body([user_message(question)], max_tokens, ignore_eos=True)


# --- Text load -----------------------------------------------------------------------------------


@dataclass
class Window:
    """What the text streams did between `start` and `end` (seconds from the run's t0)."""

    start: float
    end: float
    longest_stall_s: float | None
    stalled_client: int | None
    text_ttft_max_s: float | None


class TextLoad:
    """Text clients streaming one request after another, from construction until `stop`."""

    def __init__(self, session: aiohttp.ClientSession, url: str, t0: float, clients: int, max_tokens: int) -> None:
        self.streams: list[list[StreamResult]] = [[] for _ in range(clients)]
        self._session, self._url, self._t0, self._max_tokens = session, url, t0, max_tokens
        self._tasks = [asyncio.create_task(self._client(c)) for c in range(clients)]

    async def _client(self, client: int) -> None:
        k = 0
        while True:
            body = text_body(client, k, self._max_tokens)
            result = await stream_chat(self._session, self._url, body, self._t0, on_start=self.streams[client].append)
            if result.error is not None:
                raise BenchError(f"text client {client}, request {k}: {result.error}")
            k += 1

    async def streaming_after(self, since: float) -> None:
        """Wait until every client has received a content chunk later than `since`; raise if a client failed."""
        deadline = time.perf_counter() + RESUME_TIMEOUT_S
        while not all(self._latest_chunk(requests) > since for requests in self.streams):
            for task in self._tasks:
                if task.done():  # a client only ends by failing
                    task.result()
            if time.perf_counter() > deadline:
                raise BenchError(f"the text streams did not resume within {RESUME_TIMEOUT_S:g} s")
            await asyncio.sleep(POLL_S)

    @staticmethod
    def _latest_chunk(requests: list[StreamResult]) -> float:
        # A client's requests run one after another: its latest chunk is in its last request, or the one before if the last has none yet.
        return max((r.chunks[-1] for r in requests[-2:] if r.chunks), default=float("-inf"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def window(self, start: float, end: float) -> Window:
        """The longest gap within a text request overlapping [start, end], and the longest text TTFT pending in it."""
        gaps = [(b - a, c) for c, requests in enumerate(self.streams) for r in requests for a, b in r.gaps() if a < end and b > start]
        pending = [r.ttft for requests in self.streams for r in requests if r.first_chunk is not None and r.sent < end and r.first_chunk > start]
        stall, client = max(gaps, default=(None, None))
        return Window(start, end, stall, client, max(pending, default=None))

    def gap_p50(self) -> float | None:
        return percentile([b - a for requests in self.streams for r in requests for a, b in r.gaps()], 50)


# --- The run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Every image request of a run, each with a seed of its own."""

    warmup: ImageRequest
    one_by_one: list[ImageRequest]
    burst: list[ImageRequest]

    @classmethod
    def make(cls, settings: Settings) -> Plan:
        return cls(
            ImageRequest.make(0, settings.burst_size, settings),
            [ImageRequest.make(1 + i, size, settings) for i, size in enumerate(settings.image_sizes)],
            [ImageRequest.make(100 + i, settings.burst_size, settings) for i in range(settings.burst)],
        )


@dataclass(frozen=True)
class Phase:
    """What the measurements of a run share: its session, server, clock, text load and settings."""

    session: aiohttp.ClientSession
    url: str
    t0: float
    load: TextLoad
    settings: Settings

    async def send(self, image: ImageRequest) -> StreamResult:
        return await stream_chat(self.session, self.url, image.body, self.t0)


async def measure_one(phase: Phase, image: ImageRequest) -> dict[str, Any]:
    """Send one image after `pause_s` of undisturbed streaming; the text streams' window lasts until `stall_tail_s` after its first token."""
    await asyncio.sleep(phase.settings.pause_s)
    stream = await phase.send(image)
    first = stream.first_chunk if stream.first_chunk is not None else stream.end
    end = first + phase.settings.stall_tail_s
    await phase.load.streaming_after(end)
    window = phase.load.window(stream.sent, end)
    outcome = f"error: {stream.error}" if stream.error else f"TTFT {cell(stream.ttft, '{:.2f}')} s, {stream.prompt_tokens} prompt tokens"
    print(f"  {image.name}: {outcome}, e2e {stream.e2e:.2f} s; longest text stall {cell(window.longest_stall_s, '{:.2f}')} s", flush=True)
    return {**image_json(image, stream), "window": asdict(window)}


async def measure_burst(phase: Phase, images: list[ImageRequest]) -> dict[str, Any]:
    """Send `images` at once after `pause_s` of undisturbed streaming; the window lasts until the last one's first token."""
    await asyncio.sleep(phase.settings.pause_s)
    streams = await asyncio.gather(*(phase.send(image) for image in images))
    start = min(s.sent for s in streams)
    end = max(s.first_chunk if s.first_chunk is not None else s.end for s in streams)
    await phase.load.streaming_after(end)
    window = phase.load.window(start, end)
    print(f"  burst of {len(images)}: longest text stall {cell(window.longest_stall_s, '{:.2f}')} s", flush=True)
    requests = [image_json(image, stream) for image, stream in zip(images, streams)]
    return {"image": images[0].name, "count": len(images), "window": asdict(window), "requests": requests}


def image_json(image: ImageRequest, stream: StreamResult) -> dict[str, Any]:
    return {
        "image": image.name, "width": image.width, "height": image.height, "pixels": image.width * image.height,
        "jpeg_bytes": image.jpeg_bytes, "ttft_s": stream.ttft, "e2e_s": stream.e2e, **asdict(stream),
    }  # fmt: skip


async def run(server: ServerProcess, settings: Settings, plan: Plan) -> dict[str, Any]:
    async with client_session() as session:
        startup_s, warmup_s = await warm_up(server, session, plan.warmup.body)
        t0 = time.perf_counter()
        load = TextLoad(session, server.url, t0, settings.text_clients, settings.text_max_tokens)
        phase = Phase(session, server.url, t0, load, settings)
        try:
            await load.streaming_after(0.0)
            print(f"{settings.text_clients} text streams running; images one at a time")
            one_by_one = [await measure_one(phase, image) for image in plan.one_by_one]
            burst = await measure_burst(phase, plan.burst)
        finally:
            await load.stop()
        server.check_alive()
    text_streams = [[{k: v for k, v in asdict(r).items() if k != "text"} for r in requests] for requests in load.streams]
    return {"startup_s": startup_s, "warmup_s": warmup_s, "text_gap_p50_s": load.gap_p50(), "images": one_by_one, "burst": burst,
            "text_streams": text_streams}  # fmt: skip


# --- Report --------------------------------------------------------------------------------------


def results_table(report: dict[str, Any]) -> str:
    rows = [
        [report["label"], r["image"], f"{r['pixels']:,}", cell(r["prompt_tokens"] or None), cell(r["ttft_s"], "{:.2f}"),
         cell(r["e2e_s"], "{:.2f}"), cell(r["window"]["longest_stall_s"], "{:.2f}"), cell(r["window"]["text_ttft_max_s"], "{:.2f}")]
        for r in report["images"]
    ]  # fmt: skip
    headers = ["label", "image", "pixels sent", "prompt tokens", "image TTFT s", "e2e s", "longest stall s", "text TTFT max s"]
    return markdown_table(headers, rows)


def burst_line(report: dict[str, Any]) -> str:
    burst = report["burst"]
    ttfts = ", ".join(cell(r["ttft_s"], "{:.2f}") for r in burst["requests"])
    return (f"burst ({report['label']}): {burst['count']} x {burst['image']} at once: longest stall "
            f"{cell(burst['window']['longest_stall_s'], '{:.2f}')} s, text TTFT max {cell(burst['window']['text_ttft_max_s'], '{:.2f}')} s, "
            f"image TTFT s: {ttfts}")  # fmt: skip


def chart_values(report: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """Per bar group: (longest stall s, image TTFT s); the burst's TTFT is its slowest image's."""
    values = {r["image"]: (r["window"]["longest_stall_s"], r["ttft_s"]) for r in report["images"]}
    burst = report["burst"]
    ttfts = [r["ttft_s"] for r in burst["requests"] if r["ttft_s"] is not None]
    values[f"burst {burst['count']}x{burst['image']}"] = (burst["window"]["longest_stall_s"], max(ttfts, default=None))
    return values


def draw_chart(out: Path, inputs: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = [json.loads(path.read_text()) for path in inputs]
    per_input = [chart_values(report) for report in reports]
    groups = list(dict.fromkeys(group for values in per_input for group in values))
    x = np.arange(len(groups))
    width = 0.8 / len(reports)
    fig, (stall_ax, ttft_ax) = plt.subplots(2, 1, figsize=(max(7.0, 2.0 * len(groups)), 8), sharex=True)
    for i, (report, values) in enumerate(zip(reports, per_input)):
        offsets = x - 0.4 + width * (i + 0.5)
        for ax, which in ((stall_ax, 0), (ttft_ax, 1)):
            heights = [values.get(group, (None, None))[which] for group in groups]
            bars = ax.bar(offsets, [np.nan if h is None else h for h in heights], width, label=report["label"], color=f"C{i}")
            ax.bar_label(bars, labels=["" if h is None else f"{h:.2f}" for h in heights], fontsize=8)
    stall_ax.axhline(TARGET_STALL_S, linestyle="--", color="black", linewidth=1, label=f"target ({TARGET_STALL_S:g} s)")
    stall_ax.set_ylabel("longest text stall (s)")
    stall_ax.set_title("Text streams' longest pause while an image is admitted")
    stall_ax.legend()
    ttft_ax.set_ylabel("image TTFT (s; burst: slowest)")
    ttft_ax.set_xticks(x, groups)
    for ax in (stall_ax, ttft_ax):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, format="svg")
    plt.close(fig)


# --- Main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="exported OpenVINO Qwen2-VL folder (not with --chart)")
    parser.add_argument("--max-image-pixels", type=int, metavar="N",
                        help=f"capabilities.max_image_pixels of the model (default: the family's; {BUDGET_OFF} turns it off)")  # fmt: skip
    parser.add_argument("--label", help="this run's name in the table and the chart (default: from --max-image-pixels)")
    parser.add_argument("--out", type=Path, help="write every raw number, the machine and the settings here (JSON)")
    parser.add_argument("--quick", action="store_true", help="smoke run: text requests of 64 tokens, 0.5 s pauses")
    parser.add_argument("--chart", type=Path, metavar="OUT.svg", help="draw the results in --inputs to this SVG; runs no server")
    parser.add_argument("--inputs", type=Path, nargs="+", metavar="JSON", help="results written by --out, one bar each (with --chart)")
    args = parser.parse_args(argv)
    if args.chart is not None:
        if not args.inputs:
            parser.error("--chart needs --inputs")
        return args
    if args.inputs:
        parser.error("--inputs goes with --chart")
    if args.model is None or not (args.model / "openvino_language_model.xml").is_file():
        parser.error(f"--model must be an exported OpenVINO model folder (no openvino_language_model.xml in {args.model})")
    if args.max_image_pixels is not None and args.max_image_pixels < 784:
        parser.error("--max-image-pixels must be at least 784 (one 28x28 cell)")
    args.model = args.model.resolve()
    if args.label is None:
        args.label = "family default" if args.max_image_pixels is None else f"max_image_pixels={args.max_image_pixels}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chart is not None:
        draw_chart(args.chart, args.inputs)
        print(f"chart in {args.chart}")
        return 0
    exit_on_sigterm()
    settings = QUICK if args.quick else Settings()
    model_fields = {} if args.max_image_pixels is None else {"capabilities": {"max_image_pixels": args.max_image_pixels}}
    host = machine()
    print_machine(host)
    plan = Plan.make(settings)  # before the server starts: encoding a 12-megapixel JPEG takes seconds
    try:
        with serving(args.model, model_fields, "mixed-bench-") as server:
            print(f"server: {server.url}, {args.label}")
            result = asyncio.run(run(server, settings, plan))
    except BenchError as exc:
        print(f"mixed_bench: {exc}", file=sys.stderr)
        return 2

    report = {"label": args.label, "machine": host,
              "settings": {"model": str(args.model), "max_image_pixels": args.max_image_pixels, **asdict(settings)}, **result}  # fmt: skip
    print("\n" + results_table(report) + "\n\n" + burst_line(report))
    requests, gap = sum(map(len, result["text_streams"])), cell(result["text_gap_p50_s"], "{:.3f}")
    print(f"\ntext streams: {requests} requests, median gap between chunks {gap} s")
    failed = [r for r in [*result["images"], *result["burst"]["requests"]] if r["error"]]
    if failed:
        print(f"\nWARNING: {len(failed)} image requests failed, for instance: {failed[0]['error']}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
        print(f"\nraw results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
