#!/usr/bin/env python3
"""Prefix caching and KV-cache size: what `enable_prefix_caching` and `cache_size_gb` change for a model.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/cache_bench.py --model DIR [--configs prefix=0,cache=0 prefix=1,cache=2 ...] [--out results.json]
    python bench/cache_bench.py --model DIR --with-image-load        # also 8 concurrent clients with images
    python bench/cache_bench.py --model DIR --quick                  # a short smoke run

`DIR` is an exported OpenVINO Qwen2-VL folder (see `bench/serve_bench.py` for building the 2B-shape
one, and a tiny one to check this script with). Run it on an otherwise idle machine: server and clients
share its CPUs.

What it measures
----------------
Each configuration of `--configs` (default: the four combinations of `prefix=0|1` and `cache=0|2`;
`prefix` is `scheduler.enable_prefix_caching`, `cache` is `scheduler.cache_size_gb`, 0 letting the KV
cache grow as needed) gets a server of its own: a temporary models.yaml serves `DIR` as the model
`bench` with that scheduler (the rest at its defaults), no request deadline and a long waiting queue.
After /health answers, one image request (not measured) loads and warms up the model. Then, one after
another (all requests streaming, temperature 0, with `stream_options.include_usage`):

a. **Multi-turn image chat**, 3 conversations, each with its own 448x448 PNG (a gradient with noise;
   the same images in every configuration). Turn 1: a user message with the image and a question,
   `max_tokens` 32, no `ignore_eos`. Turn 2: turn 1's messages, the assistant's answer to it, and a new
   question, same settings. With prefix caching, turn 2 can reuse the KV cache of turn 1's prompt (image
   tokens included) instead of computing it again. Reported: TTFT of each turn and their ratio, turn 2 /
   turn 1, per conversation and its median; both answers' text is kept.
b. **Single client**: 3 text requests one after another (a short question, 64 tokens with `ignore_eos`),
   then 3 image requests (a 448x448 PNG each, 64 tokens): TTFT and TPOT medians of each kind.
c. **8 concurrent clients**, 2 text requests each, one after another, 64 tokens with `ignore_eos`: wall
   time (first request sent to last answer), output tokens/s (completion tokens / wall time), TTFT p50
   and p99. `--with-image-load` adds the same with a 448x448 PNG in every request.
d. **Worker memory**: the model's worker process (its pid from `GET /v1/models/bench`), resident set
   size (VmRSS of /proc/PID/status) right after the warm-up and after the runs, and its peak (VmHWM).

In (b) and (c) every request's prompt differs from the others' (a number in the question, an image of
its own), so the only prefix a cache can share is the chat template's. In (a) the conversations ask the
same questions about different images of the same size: their prompts differ only in the image, so a
cache that matched prompts by token ids alone would give one conversation another's image, and the answer
check below would show it. Qwen2-VL keeps an earlier turn's image in the prompt, so turn 2 encodes it
again whatever the cache; prefix caching can only spare the language model's prefill of turn 1's prompt.

Definitions: TTFT is from sending a request to its first content chunk; TPOT is (last content chunk -
first) / (completion tokens - 1), an average over the stream, since a chunk can carry several tokens'
text. The report is a Markdown table per configuration, one comparing them, and a check: greedy
decoding should give the same answers in (a) whatever the cache settings; the script lists every
answer that differs from the first configuration's. `--out` writes every request's timings and text,
the settings and the machine as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
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
    make_png,
    markdown_table,
    percentile,
    print_machine,
    run_clients,
    serving,
    stream_chat,
    user_message,
    warm_up,
    worker_memory,
)

DEFAULT_CONFIGS = ("prefix=0,cache=0", "prefix=1,cache=0", "prefix=0,cache=2", "prefix=1,cache=2")
CONFIG_PATTERN = re.compile(r"^prefix=([01]),cache=(\d+)$")
IMAGE_SIZE = 448
QUESTIONS = ("What is in this picture? Describe it in one sentence.", "Which colour covers most of it?")


@dataclass(frozen=True)
class Settings:
    conversations: int = 3
    chat_max_tokens: int = 32
    single_requests: int = 3  # of each kind
    max_tokens: int = 64
    clients: int = 8
    requests_per_client: int = 2
    with_image_load: bool = False


QUICK = Settings(conversations=2, single_requests=2, max_tokens=8, clients=2, requests_per_client=1)


def parse_config(text: str) -> dict[str, Any]:
    """`prefix=1,cache=2` as the model's scheduler settings."""
    match = CONFIG_PATTERN.match(text.replace(" ", ""))
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not like prefix=0,cache=2 (prefix 0 or 1, cache in whole GB)")
    return {"enable_prefix_caching": match[1] == "1", "cache_size_gb": int(match[2])}


# --- Requests ------------------------------------------------------------------------------------


def image_url(seed: int) -> str:
    return data_url(make_png(seed, IMAGE_SIZE), "image/png")


def question_body(seed: int, max_tokens: int, image: bool) -> bytes:
    """A request of (b) and (c): a numbered question, with an image of its own if `image`."""
    text = f"Question {seed}: what makes a lighthouse keeper's day difficult? Answer briefly."
    return chat_body([user_message(text, image_url(seed) if image else None)], max_tokens, ignore_eos=True)


@dataclass
class Conversation:
    """One multi-turn chat of (a): both turns' results."""

    seed: int
    turns: list[StreamResult]

    @property
    def ttft_ratio(self) -> float | None:
        first, second = (turn.ttft for turn in self.turns)
        return None if first is None or second is None else second / first


async def converse(session: aiohttp.ClientSession, url: str, seed: int, max_tokens: int) -> Conversation:
    """Turn 1: an image and a question; turn 2: the same messages, turn 1's answer and a new question."""
    messages = [user_message(QUESTIONS[0], image_url(seed))]
    t0 = time.perf_counter()
    first = await stream_chat(session, url, chat_body(messages, max_tokens, ignore_eos=False), t0)
    if first.error is not None:
        return Conversation(seed, [first, StreamResult(first.end, first.end, error="turn 1 failed")])
    messages += [{"role": "assistant", "content": first.text}, user_message(QUESTIONS[1])]
    second = await stream_chat(session, url, chat_body(messages, max_tokens, ignore_eos=False), t0)
    return Conversation(seed, [first, second])


# --- Runs ----------------------------------------------------------------------------------------


def summarize(name: str, requests: list[StreamResult], wall_s: float | None = None) -> dict[str, Any]:
    """One table row: counts, TTFT p50/p99, TPOT p50 and, for a timed workload, its wall time and output tokens/s."""
    ok = [r for r in requests if r.error is None]
    tpot = percentile([r.tpot for r in ok], 50)
    return {
        "workload": name,
        "requests": len(ok),
        "errors": len(requests) - len(ok),
        "ttft_p50_s": percentile([r.ttft for r in ok], 50),
        "ttft_p99_s": percentile([r.ttft for r in ok], 99),
        "tpot_p50_ms": None if tpot is None else tpot * 1000,
        "wall_s": wall_s,
        "out_tok_per_s": None if wall_s is None else sum(r.completion_tokens for r in ok) / wall_s,
    }


async def one_client(session: aiohttp.ClientSession, url: str, bodies: list[bytes]) -> list[StreamResult]:
    """(b): one client sending `bodies` one after another."""
    return (await run_clients(session, url, [bodies], time.perf_counter()))[0]


async def concurrent(
    session: aiohttp.ClientSession, url: str, settings: Settings, image: bool, first_seed: int
) -> tuple[float, list[StreamResult]]:
    """(c): `clients` closed-loop clients at once; (wall time, every request)."""
    per_client = settings.requests_per_client
    bodies = [
        [question_body(first_seed + c * per_client + k, settings.max_tokens, image) for k in range(per_client)] for c in range(settings.clients)
    ]
    t0 = time.perf_counter()
    results = await run_clients(session, url, bodies, t0)
    return time.perf_counter() - t0, [r for requests in results for r in requests]


async def run_config(server: ServerProcess, settings: Settings) -> dict[str, Any]:
    """(a) to (d) against one running server."""
    async with client_session() as session:
        url = server.url
        startup_s, warmup_s = await warm_up(server, session, question_body(0, settings.max_tokens, image=True))
        memory_loaded = await worker_memory(session, url)
        conversations = [await converse(session, url, 100 + i, settings.chat_max_tokens) for i in range(settings.conversations)]
        print(f"  multi-turn chat: turn 2 / turn 1 TTFT {', '.join(cell(c.ttft_ratio, '{:.2f}') for c in conversations)}", flush=True)
        seeds = range(200, 200 + settings.single_requests)
        single_text = await one_client(session, url, [question_body(seed, settings.max_tokens, image=False) for seed in seeds])
        single_image = await one_client(session, url, [question_body(seed, settings.max_tokens, image=True) for seed in seeds])
        rows = {  # by a fixed key; each names itself for the table
            "chat turn 1": summarize("chat turn 1", [c.turns[0] for c in conversations]),
            "chat turn 2": summarize("chat turn 2", [c.turns[1] for c in conversations]),
            "single text": summarize("single text", single_text),
            "single image": summarize("single image", single_image),
        }
        for kind in ("text", "image") if settings.with_image_load else ("text",):
            wall, requests = await concurrent(session, url, settings, kind == "image", first_seed=1000 if kind == "text" else 2000)
            row = rows[f"concurrent {kind}"] = summarize(f"{settings.clients} clients x {settings.requests_per_client} {kind}", requests, wall)
            print(f"  {row['workload']}: {wall:.2f} s, {row['out_tok_per_s']:.1f} tok/s", flush=True)
        memory_after = await worker_memory(session, url)
        server.check_alive()
    return {
        "startup_s": startup_s, "warmup_s": warmup_s, "rows": rows,
        "ttft_ratio_median": percentile([c.ttft_ratio for c in conversations], 50),
        "memory_after_warmup": memory_loaded, "memory_after_runs": memory_after,
        "conversations": [{"seed": c.seed, "ttft_ratio": c.ttft_ratio, "turns": [asdict(t) for t in c.turns]} for c in conversations],
        "requests": {"single_text": [asdict(r) for r in single_text], "single_image": [asdict(r) for r in single_image]},
    }  # fmt: skip


# --- Report --------------------------------------------------------------------------------------


def config_name(scheduler: dict[str, Any]) -> str:
    return f"prefix={int(scheduler['enable_prefix_caching'])},cache={scheduler['cache_size_gb']}"


def config_table(result: dict[str, Any]) -> str:
    rows = [
        [r["workload"], str(r["requests"]), str(r["errors"]), cell(r["ttft_p50_s"], "{:.3f}"), cell(r["ttft_p99_s"], "{:.3f}"),
         cell(r["tpot_p50_ms"], "{:.1f}"), cell(r["wall_s"], "{:.2f}"), cell(r["out_tok_per_s"], "{:.1f}")]
        for r in result["rows"].values()
    ]  # fmt: skip
    headers = ["workload", "requests", "errors", "TTFT p50 s", "TTFT p99 s", "TPOT p50 ms", "wall s", "out tok/s"]
    return markdown_table(headers, rows)


def memory_line(result: dict[str, Any]) -> str:
    loaded, after = result["memory_after_warmup"], result["memory_after_runs"]
    if loaded is None or after is None:
        return "worker memory: unknown (no worker pid, or no /proc)"
    return (f"worker RSS: {loaded['rss_gb']:.2f} GB after the warm-up, {after['rss_gb']:.2f} GB after the runs, "
            f"peak {after['peak_rss_gb']:.2f} GB")  # fmt: skip


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    headers = ["config", "turn 2 / turn 1 TTFT", "single text TTFT p50 s", "single image TTFT p50 s", "concurrent text out tok/s",
               "concurrent text TTFT p99 s", "worker RSS GB", "peak RSS GB"]  # fmt: skip
    table = []
    for name, result in results.items():
        if "error" in result:
            table.append([name, "failed (see above)", *["-"] * (len(headers) - 2)])
            continue
        rows, load = result["rows"], result["rows"]["concurrent text"]
        after = result["memory_after_runs"] or {}
        table.append([
            name, cell(result["ttft_ratio_median"], "{:.2f}"), cell(rows["single text"]["ttft_p50_s"], "{:.3f}"),
            cell(rows["single image"]["ttft_p50_s"], "{:.3f}"), cell(load["out_tok_per_s"], "{:.1f}"), cell(load["ttft_p99_s"], "{:.3f}"),
            cell(after.get("rss_gb"), "{:.2f}"), cell(after.get("peak_rss_gb"), "{:.2f}"),
        ])  # fmt: skip
    return markdown_table(headers, table)


def answer_differences(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (conversation, turn) whose answer in some configuration differs from the first configuration's."""
    answers = {
        name: {(c["seed"], turn): t["text"] for c in result["conversations"] for turn, t in enumerate(c["turns"], 1)}
        for name, result in results.items()
        if "error" not in result
    }
    if not answers:
        return []
    reference_name, reference = next(iter(answers.items()))
    return [
        {"conversation": seed, "turn": turn, "config": name, "answer": text,
         "reference_config": reference_name, "reference": reference.get((seed, turn))}
        for name, texts in answers.items()
        for (seed, turn), text in texts.items()
        if text != reference.get((seed, turn))
    ]  # fmt: skip


def print_check(results: dict[str, dict[str, Any]], differences: list[dict[str, Any]]) -> None:
    ran = [name for name, result in results.items() if "error" not in result]
    if len(ran) < 2:
        print(f"\nGreedy answers of the multi-turn chats: {len(ran)} configuration ran, nothing to compare.")
        return
    if not differences:
        print(f"\nGreedy answers of the multi-turn chats: identical across {', '.join(ran)}.")
        return
    print(f"\nGreedy answers of the multi-turn chats differ from {ran[0]}'s in {len(differences)} cases:")
    for d in differences:
        print(f"  conversation {d['conversation']} turn {d['turn']}, {d['config']}: {d['answer']!r}")
        print(f"      {d['reference_config']}: {d['reference']!r}")


# --- Main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="exported OpenVINO Qwen2-VL folder")
    parser.add_argument("--configs", nargs="+", type=parse_config, default=[parse_config(c) for c in DEFAULT_CONFIGS],
                        metavar="prefix=P,cache=GB",
                        help=f"scheduler configurations, each on a server of its own (default: {' '.join(DEFAULT_CONFIGS)})")  # fmt: skip
    parser.add_argument("--with-image-load", action="store_true", help="also run the concurrent clients with a 448x448 image per request")
    parser.add_argument("--out", type=Path, help="write every raw number and answer, the machine and the settings here (JSON)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 conversations; 2 single requests of each kind and 2 concurrent clients of 1 "
                             "request, all of 8 tokens")  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.model / "openvino_language_model.xml").is_file():
        parser.error(f"{args.model} is not an exported OpenVINO model folder (no openvino_language_model.xml)")
    names = [config_name(c) for c in args.configs]
    if len(set(names)) != len(names):
        parser.error("--configs names a configuration twice")
    args.model = args.model.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    settings = replace(QUICK if args.quick else Settings(), with_image_load=args.with_image_load)
    host = machine()
    print_machine(host)
    results: dict[str, dict[str, Any]] = {}
    for scheduler in args.configs:
        name = config_name(scheduler)
        print(f"\n{name}: scheduler {scheduler}")
        try:
            with serving(args.model, {"scheduler": scheduler}, "cache-bench-") as server:
                results[name] = {"scheduler": scheduler, **asyncio.run(run_config(server, settings))}
        except BenchError as exc:
            print(f"cache_bench: {name}: {exc}", file=sys.stderr)
            results[name] = {"scheduler": scheduler, "error": str(exc)}

    for name, result in results.items():
        if "error" not in result:
            print(f"\n### {name}\n\n{config_table(result)}\n\n{memory_line(result)}")
    print("\n### All configurations\n\n" + comparison_table(results))
    differences = answer_differences(results)
    print_check(results, differences)
    failed = [name for name, result in results.items() if "error" in result or any(r["errors"] for r in result["rows"].values())]
    if failed:
        print(f"\nWARNING: requests or servers failed in {', '.join(failed)}", file=sys.stderr)
    if args.out:
        report = {"machine": host, "settings": {"model": str(args.model), **asdict(settings)}, "configs": results,
                  "answers_identical": not differences, "answer_differences": differences}  # fmt: skip
        args.out.write_text(json.dumps(report, indent=2))
        print(f"\nraw results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
