#!/usr/bin/env python3
"""Benchmark vlm-router's continuous batching against the original one-request-at-a-time service.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/serve_bench.py --model DIR [--out results.json]
    python bench/serve_bench.py --model DIR --quick          # a short smoke run

`DIR` is an exported OpenVINO Qwen2-VL folder. A random-weight model with Qwen2-VL-2B-Instruct's
shapes (same layers, widths, vocabulary and vision tower, int8 weights), so the same cost per token
as the real model, is built offline with::

    vlm-router make-tiny --family qwen2_vl --preset 2b --weight-format int8 --out bench/models/qwen2-vl-2b-shape-int8

and a tiny one, for checking this script in seconds, with
`vlm-router make-tiny --family qwen2_vl --out /tmp/bench-tiny`. Run the real benchmark on an
otherwise idle machine: server, clients and baseline all share its CPUs.

What it measures
----------------
1. **Server** (`engine = server`). A temporary models.yaml serves `DIR` as the model `bench` with the
   scheduler settings given on the command line (`--max-num-seqs`, `--max-num-batched-tokens`,
   `--cache-size-gb`, `--prefix-caching`), no request deadline and a long waiting queue.
   `python -m vlm_router serve` runs it as a subprocess on a free loopback port. After /health answers,
   one request (not measured) loads and warms up the model.

   Then, for each concurrency C of `--concurrency` and each kind (`image`, `text`), C clients run at
   once, each sending `--requests-per-client` streaming chat completions one after another
   (`stream_options.include_usage`, temperature 0, `max_tokens`, and `ignore_eos` so that every
   request produces exactly `max_tokens` tokens). An `image` request carries one 224x224 PNG (a
   gradient with noise, different for every request, so no cache can help) as a data URL plus a short
   question; a `text` request is a short question alone. Meanwhile a probe GETs /health every 50 ms:
   its latency shows whether the router's event loop stays responsive under load.

2. **Baseline** (`engine = baseline`, skipped with `--skip-baseline`). After the server has stopped,
   so that it does not compete for the CPUs, this process loads one `openvino_genai.VLMPipeline(DIR,
   "CPU")`, as the original service did, and answers the same requests (same images, same prompts
   written by the `qwen2_vl` family, same generation config) one at a time, with a streamer
   callback timing the first token. One warm-up request is not measured.

   The original service served C concurrent users one request at a time. The baseline replays
   exactly that: the C*R requests of a workload run back to back in the order a first-come,
   first-served one-at-a-time server would take them (every client's first request, then every
   client's second, ...), and each request's timings are measured from the moment its client would
   have sent it. The C first requests are all sent at time 0, so the k-th of them waits for the k-1
   before it and its TTFT includes that wait; a client's next request is sent the instant its
   previous answer ended (as the server's clients do), so it waits for the other clients' requests
   queued before it. This is the closed loop the server's clients run, with the baseline's real
   service times; nothing is estimated. The baseline has no HTTP, JSON, base64 or inter-process
   hop (it does decode the PNG), which favours it slightly.

Metrics, per workload: wall time (first request sent to last answer), requests/s, output tokens/s
(sum of completion tokens / wall time), TTFT (sent to first non-empty text) p50 and p99, TPOT
((last text - first text) / (completion tokens - 1)) p50, end-to-end latency p50, and /health latency
p99 and max with its sample count (server only; a probe waits for the previous answer, so a stalled
event loop shows as a high max and fewer samples). The report is a Markdown table plus the output
tokens/s speedup of the server over the baseline for each (kind, clients); `--out` also writes every
raw timing, the machine and the settings as JSON.

Both engines time *text*, as a client sees it: both turn tokens into text with openvino-genai's
`TextStreamer`, which holds a token back until it decodes to stable text, so "first text" can come a
token or so after the first token, and the server may send the text of several tokens in one event.
TPOT is therefore an average over the stream, not a per-token measurement. The usage chunk's (and the
baseline's) prompt token counts are kept in the JSON: equal counts show both engines got the same prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
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
    data_url,
    exit_on_sigterm,
    machine,
    make_png,
    markdown_table,
    percentile,
    print_machine,
    run_clients,
    serving,
    time_per_token,
    user_message,
    warm_up,
)

KINDS = ("image", "text")
IMAGE_SIZE = 224
HEALTH_PERIOD_S = 0.05
HEALTH_TIMEOUT_S = 30.0  # a /health probe slower than this counts as a failure
QUICK = {"concurrency": "1,2", "requests_per_client": 1, "max_tokens": 8}
SHORT_TEXT = "Answer briefly."


# --- Requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSpec:
    """One benchmark request; the server's payload and the baseline's prompt both come from here."""

    kind: str  # "image" or "text"
    seed: int  # unique per request: picks the image and the wording
    png: bytes | None = None

    @classmethod
    def make(cls, kind: str, seed: int) -> RequestSpec:
        return cls(kind, seed, make_png(seed, IMAGE_SIZE) if kind == "image" else None)

    @property
    def text(self) -> str:
        if self.kind == "image":
            return f"Picture {self.seed}: describe what you see, colours and patterns. {SHORT_TEXT}"
        return f"Question {self.seed}: what makes a lighthouse keeper's day difficult? {SHORT_TEXT}"

    def payload(self, max_tokens: int) -> bytes:
        """The JSON body of a streaming chat completion."""
        image = None if self.png is None else data_url(self.png, "image/png")
        return chat_body([user_message(self.text, image)], max_tokens, ignore_eos=True)

    def messages(self) -> list[Any]:
        """The same request as the server sees it once parsed: image first, then the text."""
        from vlm_router.conversation import Image, Message, Part, Text

        parts: list[Part] = [Image(0), Text(self.text)] if self.png is not None else [Text(self.text)]
        return [Message("user", parts)]


@dataclass
class Workload:
    """C clients of one kind; `clients[c]` is the list of requests client c sends, in order."""

    kind: str
    clients: list[list[RequestSpec]]

    @property
    def concurrency(self) -> int:
        return len(self.clients)

    @property
    def requests_per_client(self) -> int:
        return len(self.clients[0])

    def arrival_order(self) -> Iterator[tuple[int, int, RequestSpec]]:
        """(client, k, request) in the order a first-come, first-served server takes them: round by round."""
        for k in range(self.requests_per_client):
            for c, requests in enumerate(self.clients):
                yield c, k, requests[k]


def plan_workloads(concurrency: list[int], requests_per_client: int) -> list[Workload]:
    """Every (concurrency, kind) workload, each request with a seed of its own."""
    seeds = iter(range(1, 1_000_000))
    return [
        Workload(kind, [[RequestSpec.make(kind, next(seeds)) for _ in range(requests_per_client)] for _ in range(clients)])
        for clients in concurrency
        for kind in KINDS
    ]


# --- Results -------------------------------------------------------------------------------------


@dataclass
class RequestResult:
    """Timings of one request, in seconds from the start of its workload."""

    client: int
    k: int  # the client's k-th request
    sent: float
    end: float
    first_text: float | None = None
    last_text: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_text is None else self.first_text - self.sent

    @property
    def e2e(self) -> float:
        return self.end - self.sent

    @property
    def tpot(self) -> float | None:
        return time_per_token(self.first_text, self.last_text, self.completion_tokens)

    @classmethod
    def from_stream(cls, client: int, k: int, stream: StreamResult) -> RequestResult:
        """The server's answer to a client's k-th request."""
        return cls(client, k, stream.sent, stream.end, stream.first_chunk, stream.last_chunk,
                   stream.completion_tokens, stream.prompt_tokens, stream.error)  # fmt: skip


@dataclass
class HealthSamples:
    """/health latencies while a workload ran."""

    latencies_s: list[float]
    failures: int = 0  # answers other than 200, and connection errors


@dataclass
class WorkloadResult:
    engine: str  # "server" or "baseline"
    kind: str
    clients: int
    requests_per_client: int
    wall_s: float
    requests: list[RequestResult]
    health: HealthSamples | None = None  # None for the baseline: there is no server

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.requests if r.error is None]
        tokens = sum(r.completion_tokens for r in ok)
        health = self.health.latencies_s if self.health is not None else []
        probed = self.health is not None
        return {
            "engine": self.engine,
            "kind": self.kind,
            "clients": self.clients,
            "requests": len(ok),
            "errors": len(self.requests) - len(ok),
            "wall_s": self.wall_s,
            "req_per_s": len(ok) / self.wall_s,
            "out_tok_per_s": tokens / self.wall_s,
            "prompt_tokens_mean": float(np.mean([r.prompt_tokens for r in ok])) if ok else None,
            "completion_tokens_min": min((r.completion_tokens for r in ok), default=None),
            "ttft_p50_ms": _ms(percentile([r.ttft for r in ok], 50)),
            "ttft_p99_ms": _ms(percentile([r.ttft for r in ok], 99)),
            "tpot_p50_ms": _ms(percentile([r.tpot for r in ok], 50)),
            "e2e_p50_ms": _ms(percentile([r.e2e for r in ok], 50)),
            "health_p99_ms": _ms(percentile(health, 99)) if probed else None,
            "health_max_ms": _ms(max(health, default=None)) if probed else None,
            "health_samples": len(health) if probed else None,
            "health_failures": self.health.failures if self.health is not None else None,
        }

    def as_json(self) -> dict[str, Any]:
        requests = [{**asdict(r), "ttft": r.ttft, "tpot": r.tpot, "e2e": r.e2e} for r in self.requests]
        return {"summary": self.summary(), "requests": requests, "health": None if self.health is None else asdict(self.health)}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# --- The server ----------------------------------------------------------------------------------


async def probe_health(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> HealthSamples:
    """GET /health every `HEALTH_PERIOD_S` until `stop`, timing each answer."""
    samples = HealthSamples([])
    started = time.perf_counter()
    tick = 0
    while not stop.is_set():
        begin = time.perf_counter()
        try:
            async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)) as response:
                await response.read()
                samples.latencies_s.append(time.perf_counter() - begin)
                samples.failures += response.status != 200
        except (aiohttp.ClientError, TimeoutError):
            samples.failures += 1
        tick += 1
        delay = started + tick * HEALTH_PERIOD_S - time.perf_counter()
        if delay < 0:  # a slow answer: start the next period now rather than catch up in a burst
            started, tick = time.perf_counter(), 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(delay, 0))
    return samples


async def run_on_server(server: ServerProcess, warmup: RequestSpec, workloads: list[Workload], max_tokens: int) -> dict[str, Any]:
    """Start-up, warm-up, then every workload against the running server."""
    no_timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(timeout=no_timeout, connector=aiohttp.TCPConnector(limit=0)) as session,
        aiohttp.ClientSession(timeout=no_timeout) as health_session,
    ):
        startup_s, warmup_s = await warm_up(server, session, warmup.payload(max_tokens))

        results: list[WorkloadResult] = []
        for workload in workloads:
            await asyncio.sleep(1)  # let the previous workload's stragglers settle
            stop = asyncio.Event()
            probe = asyncio.create_task(probe_health(health_session, server.url, stop))
            bodies = [[spec.payload(max_tokens) for spec in requests] for requests in workload.clients]
            t0 = time.perf_counter()
            per_client = await run_clients(session, server.url, bodies, t0)
            wall = time.perf_counter() - t0
            stop.set()
            health = await probe
            server.check_alive()
            requests = [RequestResult.from_stream(c, k, r) for c, rs in enumerate(per_client) for k, r in enumerate(rs)]
            result = WorkloadResult("server", workload.kind, workload.concurrency, workload.requests_per_client, wall, requests, health)
            _progress(result)
            results.append(result)
    return {"startup_s": startup_s, "warmup_s": warmup_s, "results": results}


# --- The baseline --------------------------------------------------------------------------------


class Baseline:
    """The original service's engine: one `VLMPipeline` answering one request at a time, in this process."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        import openvino_genai

        from vlm_router.default_plugins.qwen2_vl import Qwen2VLFamily

        started = time.perf_counter()
        self.pipe = openvino_genai.VLMPipeline(str(model_dir), "CPU")
        self.load_s = time.perf_counter() - started
        self.family = Qwen2VLFamily()
        self.max_tokens = max_tokens

    def generate(self, spec: RequestSpec, t0: float, client: int, k: int, sent: float) -> RequestResult:
        """Answer `spec` now; its timings count from `sent` (seconds after `t0`), when its client sent it."""
        import openvino
        import openvino_genai

        from vlm_router.generation import SamplingParams, configure
        from vlm_router.media.images import decode_image

        result = RequestResult(client, k, sent=sent, end=sent)

        def on_text(text: str) -> openvino_genai.StreamingStatus:
            if text:
                now = time.perf_counter() - t0
                if result.first_text is None:
                    result.first_text = now
                result.last_text = now
            return openvino_genai.StreamingStatus.RUNNING

        # The server's own steps: decode the image, let the family write the prompt, apply the request.
        images = [] if spec.png is None else [openvino.Tensor(np.ascontiguousarray(decode_image(spec.png, IMAGE_SIZE**2)[None]))]
        prompt = self.family.build_prompt(spec.messages())
        config = configure(self.pipe.get_generation_config(), SamplingParams(self.max_tokens, temperature=0, ignore_eos=True))
        try:
            output = self.pipe.generate(prompt, images=images, generation_config=config, streamer=on_text)
            result.completion_tokens = output.perf_metrics.get_num_generated_tokens()
            result.prompt_tokens = output.perf_metrics.get_num_input_tokens()
        except Exception as exc:  # recorded like a failed server request
            result.error = f"{type(exc).__name__}: {exc}"
        result.end = time.perf_counter() - t0
        return result

    def run(self, workload: Workload) -> WorkloadResult:
        """The workload's closed loop against a one-at-a-time, first-come first-served server (see the module doc)."""
        next_send = [0.0] * workload.concurrency  # when each client sends its next request
        results: list[RequestResult] = []
        t0 = time.perf_counter()
        for client, k, spec in workload.arrival_order():
            result = self.generate(spec, t0, client, k, sent=next_send[client])
            next_send[client] = result.end
            results.append(result)
        wall = time.perf_counter() - t0
        return WorkloadResult("baseline", workload.kind, workload.concurrency, workload.requests_per_client, wall, results)


def run_baseline(model_dir: Path, warmup: RequestSpec, workloads: list[Workload], max_tokens: int) -> dict[str, Any]:
    print("baseline: loading VLMPipeline")
    baseline = Baseline(model_dir, max_tokens)
    started = time.perf_counter()
    warm = baseline.generate(warmup, started, 0, 0, 0.0)
    if warm.error is not None:
        raise BenchError(f"the baseline's warm-up request failed: {warm.error}")
    warmup_s = time.perf_counter() - started
    print(f"baseline loaded in {baseline.load_s:.1f} s, warm-up request {warmup_s:.1f} s")
    results = []
    for workload in workloads:
        result = baseline.run(workload)
        _progress(result)
        results.append(result)
    return {"load_s": baseline.load_s, "warmup_s": warmup_s, "results": results}


# --- Report --------------------------------------------------------------------------------------


def _progress(result: WorkloadResult) -> None:
    s = result.summary()
    errors = f", {s['errors']} errors" if s["errors"] else ""
    print(f"  {s['engine']:8} {s['kind']:5} clients={s['clients']:<3} {s['wall_s']:7.2f} s  {s['out_tok_per_s']:8.1f} tok/s{errors}", flush=True)


COLUMNS = [  # (header, summary key, format)
    ("engine", "engine", "{}"), ("kind", "kind", "{}"), ("clients", "clients", "{}"), ("requests", "requests", "{}"),
    ("errors", "errors", "{}"), ("wall s", "wall_s", "{:.2f}"), ("req/s", "req_per_s", "{:.2f}"),
    ("out tok/s", "out_tok_per_s", "{:.1f}"), ("TTFT p50 ms", "ttft_p50_ms", "{:.0f}"),
    ("TTFT p99 ms", "ttft_p99_ms", "{:.0f}"), ("TPOT p50 ms", "tpot_p50_ms", "{:.1f}"),
    ("e2e p50 ms", "e2e_p50_ms", "{:.0f}"), ("health p99 ms", "health_p99_ms", "{:.1f}"),
    ("health max ms", "health_max_ms", "{:.1f}"), ("health n", "health_samples", "{}"),
]  # fmt: skip


def results_table(summaries: list[dict[str, Any]]) -> str:
    rows = [[cell(s[key], fmt) for _, key, fmt in COLUMNS] for s in summaries]
    return markdown_table([header for header, _, _ in COLUMNS], rows)


def speedups(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server output tokens/s over the baseline's, for each (kind, clients) measured by both."""
    baseline = {(s["kind"], s["clients"]): s for s in summaries if s["engine"] == "baseline"}
    out = []
    for s in summaries:
        base = baseline.get((s["kind"], s["clients"]))
        if s["engine"] == "server" and base is not None and base["out_tok_per_s"]:
            out.append({
                "kind": s["kind"], "clients": s["clients"],
                "server_out_tok_per_s": s["out_tok_per_s"], "baseline_out_tok_per_s": base["out_tok_per_s"],
                "speedup": s["out_tok_per_s"] / base["out_tok_per_s"],
                "ttft_p50_ratio": _ratio(s["ttft_p50_ms"], base["ttft_p50_ms"]),
            })  # fmt: skip
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def speedup_table(rows: list[dict[str, Any]]) -> str:
    return markdown_table(
        ["kind", "clients", "server out tok/s", "baseline out tok/s", "speedup", "TTFT p50 server/baseline"],
        [[r["kind"], str(r["clients"]), f"{r['server_out_tok_per_s']:.1f}", f"{r['baseline_out_tok_per_s']:.1f}",
          f"{r['speedup']:.2f}x", "-" if r["ttft_p50_ratio"] is None else f"{r['ttft_p50_ratio']:.2f}"] for r in rows],
    )  # fmt: skip


# --- Main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="exported OpenVINO Qwen2-VL folder")
    parser.add_argument("--out", type=Path, help="write every raw number, the machine and the settings here (JSON)")
    parser.add_argument("--concurrency", default="1,4,8", help="comma-separated numbers of concurrent clients (default 1,4,8)")
    parser.add_argument("--requests-per-client", type=int, default=2, help="requests each client sends one after another (default 2)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens generated per request (default 64)")
    parser.add_argument("--max-num-seqs", type=int, default=8, help="scheduler: requests generating at once (default 8)")
    parser.add_argument("--max-num-batched-tokens", type=int, default=1024, help="scheduler: tokens per step (default 1024)")
    parser.add_argument("--cache-size-gb", type=int, default=0, help="scheduler: KV cache in whole GB; 0 grows as needed (default 0)")
    parser.add_argument("--prefix-caching", action="store_true", help="scheduler: enable prefix caching")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--skip-baseline", action="store_true", help="measure the server only")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: concurrency 1,2, 1 request per client, max_tokens 8 (explicit flags still win)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:  # parse again so that the quick values are only defaults
        parser.set_defaults(**QUICK)
        args = parser.parse_args(argv)
    try:
        args.concurrency_levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--concurrency must be comma-separated integers, not {args.concurrency!r}")
    if not args.concurrency_levels or min(args.concurrency_levels) < 1 or args.requests_per_client < 1 or args.max_tokens < 1:
        parser.error("--concurrency, --requests-per-client and --max-tokens must be at least 1")
    if not (args.model / "openvino_language_model.xml").is_file():
        parser.error(f"{args.model} is not an exported OpenVINO model folder (no openvino_language_model.xml)")
    args.model = args.model.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    scheduler = {
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "cache_size_gb": args.cache_size_gb,
        "enable_prefix_caching": args.prefix_caching,
    }
    host = machine()
    print_machine(host)
    workloads = plan_workloads(args.concurrency_levels, args.requests_per_client)
    warmup = RequestSpec.make("image", 0)

    try:
        with serving(args.model, {"scheduler": scheduler}, "serve-bench-", args.port) as server:
            print(f"server: {server.url}, scheduler {scheduler}")
            server_run = asyncio.run(run_on_server(server, warmup, workloads, args.max_tokens))
        baseline_run = None if args.skip_baseline else run_baseline(args.model, warmup, workloads, args.max_tokens)
    except BenchError as exc:
        print(f"serve_bench: {exc}", file=sys.stderr)
        return 2

    results: list[WorkloadResult] = server_run["results"] + (baseline_run["results"] if baseline_run else [])
    summaries = [r.summary() for r in results]
    print("\n" + results_table(summaries))
    gains = speedups(summaries)
    if gains:
        print("\nServer over baseline (output tokens/s):\n\n" + speedup_table(gains))
    short = [s for s in summaries if s["completion_tokens_min"] is not None and s["completion_tokens_min"] != args.max_tokens]
    failed = sum(s["errors"] for s in summaries)
    if short:
        print(f"\nWARNING: some requests produced fewer than {args.max_tokens} tokens (is ignore_eos honoured?)", file=sys.stderr)
    if failed:
        errors = sorted({r.error for w in results for r in w.requests if r.error})
        print(f"\nWARNING: {failed} requests failed, for instance: {errors[:3]}", file=sys.stderr)
    if any(s["health_failures"] for s in summaries):
        print("\nWARNING: some /health probes failed (see health_failures in the JSON output)", file=sys.stderr)

    if args.out:
        report = {
            "machine": host,
            "settings": {
                "model": str(args.model), "scheduler": scheduler, "concurrency": args.concurrency_levels,
                "requests_per_client": args.requests_per_client, "max_tokens": args.max_tokens,
                "image_size": IMAGE_SIZE, "kinds": list(KINDS), "health_period_s": HEALTH_PERIOD_S,
            },
            "server": {"startup_s": server_run["startup_s"], "warmup_s": server_run["warmup_s"]},
            "baseline": None if baseline_run is None else {"load_s": baseline_run["load_s"], "warmup_s": baseline_run["warmup_s"]},
            "summaries": summaries,
            "speedups": gains,
            "workloads": [r.as_json() for r in results],
        }  # fmt: skip
        args.out.write_text(json.dumps(report, indent=2))
        print(f"\nraw results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
