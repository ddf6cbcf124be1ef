#!/usr/bin/env python3
"""Throughput of vlm-router replicas behind nginx: one replica, two, and two with the cores split.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/replicas_bench.py --model bench/models/qwen2-vl-2b-shape-int8 --tiny --out results.json
    python bench/replicas_bench.py --tiny --tiny-duration 5            # a check in seconds

`--model DIR` is an exported OpenVINO Qwen2-VL folder (the 2B-shape bench model: see
`bench/serve_bench.py`); `--tiny` adds the tiny Qwen2-VL the tests build (`--tiny DIR` names another
folder). nginx must be installed (`apt-get install nginx`).

What it measures
----------------
For each model and each layout, the replicas start (`python -m vlm_router serve`, one process each on a
loopback port, as `tests/replicas.py` runs them) with the model `bench` marked `load: eager`, and nginx
runs the documented configuration `docker/nginx/vlm-router.conf` (`least_conn`, keepalive, retries on
429 and 503) in front of them. Layouts:

- **1 replica**: one replica; OpenVINO picks its threads (all cores).
- **2 replicas**: two replicas, each with OpenVINO's default threads: two workers compete for all cores.
- **2 replicas, split**: two replicas whose model has `ov_config: {INFERENCE_NUM_THREADS: cores / 2}`.
- **2 replicas, split, unpinned**: the same plus `ENABLE_CPU_PINNING: false`. With pinning (OpenVINO's
  default on Linux), two workers whose threads do not fill the machine pinned them to the same cores
  (both to CPU 0 on 2 cores: CPU busy and `worker_thread_cpus` show it).

Once every replica answers `GET /ready`, one unmeasured request goes to each replica directly (its first
inference). Then `--clients` closed-loop clients send streaming chat completions through nginx for the
duration: each sends its next request as soon as its previous answer has ended, until the duration is up
(the requests in flight then finish and count). Every request is greedy, with `max_tokens` and `ignore_eos`,
so that each generates the same number of tokens; `text` is a short question alone, `image` adds a 448x448
PNG (a different one per request, drawn before the run).

Metrics, per (model, layout, kind):

- **wall s**: from the first request sent to the last answer's end;
- **requests**, **req/s**: requests answered in full, and that count / wall;
- **out tok/s**: the completion tokens of those requests (from each stream's usage chunk) / wall;
- **TTFT p50/p95**: sent to the first non-empty content event; **e2e p50/p95**: sent to the stream's end;
- **TPOT p50**: (last content event - first) / (completion tokens - 1): the time per token a stream sees;
- **split**: requests each replica answered, from nginx's access log (the upstream that sent the status);
  **retried**: requests nginx sent to more than one replica; **non-200**: requests nginx answered with
  another status; **errors**: requests that failed as the client saw them (a status other than 200, a
  broken stream, no usage chunk), after each of which that client waits 1 s;
- **CPU busy**: over the run, the share of all cores' time not idle (`/proc/stat`; everything on the
  machine counts, so run it on an otherwise idle one); **worker cores**: the CPU seconds each replica's
  model worker used (`/proc/<pid>/stat`, user + system) / wall, i.e. the cores it kept busy;
  **router cores**: the same for the replicas' HTTP processes together; **client cores**: the same for
  this script (the clients);
- **worker RSS GB**: each worker's resident memory after the run (and its peak in the JSON); the JSON
  also has each replica's HTTP process's resident memory (`router_rss_gb`) and the CPU sets each
  worker's threads may run on, read halfway through the run (`worker_thread_cpus`: pinned threads show
  single CPUs).

`--out` writes the machine, the settings, every summary and every request's timings as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

# The replica and nginx runners are shared with the tests: put the repository root on the path for `tests`.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
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
    stream_chat,
    user_message,
    worker_memory,
)

from tests.replicas import Nginx, Replica  # noqa: E402

CORES = len(os.sched_getaffinity(0))
HALF = max(1, CORES // 2)
#: layout: (replicas, the model's ov_config in each)
LAYOUTS: dict[str, tuple[int, dict[str, Any]]] = {
    "1 replica": (1, {}),
    "2 replicas": (2, {}),
    "2 replicas, split": (2, {"INFERENCE_NUM_THREADS": HALF}),
    "2 replicas, split, unpinned": (2, {"INFERENCE_NUM_THREADS": HALF, "ENABLE_CPU_PINNING": False}),
}
IMAGE_SIZE = 448
IMAGE_POOL = 32  # distinct images, drawn before the run
QUESTION = "Tell me a long story about a lighthouse."
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ModelRun:
    label: str
    path: Path
    duration_s: float
    max_tokens: int


def cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of `pid` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15 of the line


def _rss_gb(pid: int | None) -> float | None:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 2**20


def allowed_cpus(pid: int | None) -> list[str]:
    """The distinct CPU sets (`Cpus_allowed_list`) the threads of `pid` may run on: shows OpenVINO's thread pinning."""
    sets: set[str] = set()
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            sets.update(line.split(":", 1)[1].strip() for line in status.read_text().splitlines() if line.startswith("Cpus_allowed_list"))
        except OSError:
            continue  # a thread that ended meanwhile
    return sorted(sets)


def bodies(kind: str, max_tokens: int) -> list[bytes]:
    if kind == "text":
        return [chat_body([user_message(QUESTION)], max_tokens, ignore_eos=True)]
    return [chat_body([user_message(QUESTION, data_url(make_png(seed, IMAGE_SIZE), "image/png"))], max_tokens, ignore_eos=True) for seed in range(IMAGE_POOL)]


async def worker_pids(session: aiohttp.ClientSession, replicas: list[Replica]) -> list[int | None]:
    pids = []
    for replica in replicas:
        memory = await worker_memory(session, replica.url)
        pids.append(None if memory is None else memory["pid"])
    return pids


async def measure(replicas: list[Replica], nginx: Nginx, kind: str, run: ModelRun, clients: int) -> dict[str, Any]:
    pool = bodies(kind, run.max_tokens)
    async with client_session() as session:
        for replica in replicas:  # the first inference of each replica, not measured
            warm = await stream_chat(session, replica.url, pool[0], time.perf_counter())
            if warm.error is not None:
                raise RuntimeError(f"warm-up on {replica.address} failed: {warm.error}")
        workers = await worker_pids(session, replicas)
        routers = [r.process.pid if r.process else None for r in replicas]
        logged, logged_errors = len(nginx.access()), len(nginx.errors())
        results: list[StreamResult] = []
        sent = iter(range(10**9))

        async def client() -> None:
            while time.perf_counter() - t0 < run.duration_s:
                results.append(await stream_chat(session, nginx.url, pool[next(sent) % len(pool)], t0))
                if results[-1].error is not None:
                    await asyncio.sleep(1)  # as a client told Retry-After: 1 would; no busy loop of failures

        idle0, total0 = cpu_times()
        worker_cpu0, router_cpu0 = [process_cpu_s(p) for p in workers], sum(process_cpu_s(p) for p in routers)

        async def sample_pinning() -> list[list[str]]:
            await asyncio.sleep(run.duration_s / 2)  # mid-run: a pinned thread's mask is restored once it leaves inference
            return [allowed_cpus(p) for p in workers]

        client_cpu0, t0 = time.process_time(), time.perf_counter()
        pinning_task = asyncio.create_task(sample_pinning())
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
        idle1, total1 = cpu_times()
        worker_cores = [(process_cpu_s(p) - c) / wall for p, c in zip(workers, worker_cpu0, strict=True)]
        router_cores = (sum(process_cpu_s(p) for p in routers) - router_cpu0) / wall
        client_cores = (time.process_time() - client_cpu0) / wall
        memory = [await worker_memory(session, r.url) for r in replicas]
        pinning = await pinning_task
        router_rss = [_rss_gb(p) for p in routers]
    await asyncio.sleep(0.5)  # nginx writes a request's log line once it has sent the last byte
    entries = [e for e in nginx.access()[logged:] if e["path"] == "/v1/chat/completions"]
    index = {r.address: i for i, r in enumerate(replicas)}
    split = Counter(index.get(e["upstreams"][-1], -1) for e in entries)
    done = [r for r in results if r.error is None]
    tokens = sum(r.completion_tokens for r in done)
    return {
        "kind": kind,
        "wall_s": wall,
        "requests": len(done),
        "req_s": len(done) / wall,
        "out_tok_s": tokens / wall,
        "completion_tokens": sorted({r.completion_tokens for r in done}),
        "ttft_p50_s": percentile([r.ttft for r in done], 50),
        "ttft_p95_s": percentile([r.ttft for r in done], 95),
        "e2e_p50_s": percentile([r.e2e for r in done], 50),
        "e2e_p95_s": percentile([r.e2e for r in done], 95),
        "tpot_p50_s": percentile([r.tpot for r in done], 50),
        "split": [split.get(i, 0) for i in range(len(replicas))],
        "retried": sum(len(e["upstreams"]) > 1 for e in entries),
        "non_200": sum(e["status"] != 200 for e in entries),
        "client_errors": sum(r.error is not None for r in results),
        "errors": sorted({r.error for r in results if r.error})[:5],
        "nginx_errors": [line for line in nginx.errors()[logged_errors:].splitlines() if "[error]" in line][-5:],
        "cpu_busy": 1 - (idle1 - idle0) / max(1, total1 - total0),
        "worker_cores": worker_cores,
        "router_cores": router_cores,
        "client_cores": client_cores,
        "worker_thread_cpus": pinning,
        "router_rss_gb": router_rss,
        "worker_rss_gb": [m and m["rss_gb"] for m in memory],
        "worker_peak_rss_gb": [m and m["peak_rss_gb"] for m in memory],
        "timings": [{"sent": r.sent, "ttft": r.ttft, "e2e": r.e2e, "tokens": r.completion_tokens, "error": r.error} for r in results],
    }


def run_layout(run: ModelRun, layout: str, kinds: list[str], clients: int) -> list[dict[str, Any]]:
    count, ov_config = LAYOUTS[layout]
    model: dict[str, Any] = {"name": "bench", "path": str(run.path), "family": "qwen2_vl", "load": "eager", "ov_config": ov_config}
    with tempfile.TemporaryDirectory(prefix="replicas-bench-") as tmp:
        replicas = [Replica(Path(tmp) / f"replica{i}", [model]) for i in range(count)]
        nginx = Nginx(Path(tmp) / "nginx", replicas)
        try:
            started = time.perf_counter()
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_ready(600)
            ready_s = time.perf_counter() - started
            nginx.start()
            results = []
            for kind in kinds:
                print(f"{run.label}, {layout}, {kind}: {clients} clients for {run.duration_s:g} s", flush=True)
                result = {"model": run.label, "layout": layout, "replicas": count, "ov_config": ov_config, "ready_s": ready_s}
                results.append(result | asyncio.run(measure(replicas, nginx, kind, run, clients)))
                print(summary_table(results[-1:]), flush=True)
            return results
        except Exception:
            for replica in replicas:
                print(f"--- {replica.address} log (last lines) ---\n{replica.log()[-2000:]}", file=sys.stderr)
            print(f"--- nginx errors ---\n{nginx.errors()[-2000:]}", file=sys.stderr)
            raise
        finally:
            nginx.stop()
            for replica in replicas:
                if replica.process is not None and replica.process.poll() is None:
                    replica.terminate()


def summary_table(results: list[dict[str, Any]]) -> str:
    headers = [
        "model", "layout", "kind", "requests", "req/s", "out tok/s", "TTFT p50 / p95 s", "e2e p50 / p95 s", "TPOT p50 ms",
        "split", "non-200 / errors", "CPU busy", "worker cores", "router / client cores", "worker RSS GB",
    ]  # fmt: skip
    rows = [
        [
            r["model"], r["layout"], r["kind"], str(r["requests"]), f"{r['req_s']:.2f}", f"{r['out_tok_s']:.1f}",
            f"{cell(r['ttft_p50_s'], '{:.2f}')} / {cell(r['ttft_p95_s'], '{:.2f}')}",
            f"{cell(r['e2e_p50_s'], '{:.2f}')} / {cell(r['e2e_p95_s'], '{:.2f}')}",
            cell(r["tpot_p50_s"] and r["tpot_p50_s"] * 1000, "{:.1f}"),
            " / ".join(map(str, r["split"])), f"{r['non_200']} / {r['client_errors']}", f"{r['cpu_busy']:.0%}",
            " + ".join(f"{c:.2f}" for c in r["worker_cores"]), f"{r['router_cores']:.2f} / {r['client_cores']:.2f}",
            " + ".join(cell(m, "{:.2f}") for m in r["worker_rss_gb"]),
        ]
        for r in results
    ]  # fmt: skip
    return markdown_table(headers, rows)


def tiny_model() -> Path:
    from tests.conftest import _models_dir

    folder = _models_dir("qwen2_vl") / "qwen2_vl"
    if not folder.is_dir():
        raise SystemExit(f"no tiny model in {folder}: run the tests once (pytest -m e2e), or give --tiny DIR")
    return folder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="an OpenVINO Qwen2-VL folder (the 2B-shape bench model)")
    parser.add_argument("--tiny", nargs="?", type=Path, const=True, help="also the tiny Qwen2-VL (the tests' build, or DIR)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per configuration, --model")
    parser.add_argument("--tiny-duration", type=float, default=20, help="seconds of load per configuration, tiny model")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per request, --model")
    parser.add_argument("--tiny-max-tokens", type=int, default=128, help="tokens per request, tiny model")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kinds", nargs="+", choices=("text", "image"), default=["text"])
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.model is None and args.tiny is None:
        parser.error("give --model DIR, --tiny, or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    runs = []
    if args.model is not None:
        runs.append(ModelRun(args.model.name, args.model.resolve(), args.duration, args.max_tokens))
    if args.tiny is not None:
        runs.append(ModelRun("tiny", tiny_model() if args.tiny is True else args.tiny.resolve(), args.tiny_duration, args.tiny_max_tokens))
    for run in runs:
        if not (run.path / "openvino_language_model.xml").is_file():
            raise SystemExit(f"{run.path} is not an exported OpenVINO Qwen2-VL folder")
    host = machine()
    print_machine(host)
    settings = {
        "runs": [{"label": r.label, "path": str(r.path), "duration_s": r.duration_s, "max_tokens": r.max_tokens} for r in runs],
        "clients": args.clients, "kinds": args.kinds, "image_size": IMAGE_SIZE, "cores": CORES,
        "layouts": {name: {"replicas": n, "ov_config": ov} for name, (n, ov) in LAYOUTS.items()},
        "nginx_config": "docker/nginx/vlm-router.conf",
    }  # fmt: skip
    results: list[dict[str, Any]] = []
    for run in runs:
        for layout in args.layouts:
            results += run_layout(run, layout, args.kinds, args.clients)
            if args.out:  # after every layout, so that an interrupted run keeps what it measured
                args.out.write_text(json.dumps({"machine": host, "settings": settings, "results": results}, indent=2))
    print("\n" + summary_table(results))
    if args.out:
        print(f"\nraw results in {args.out}")
    return 1 if any(r["non_200"] or r["client_errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
