"""The server's latency metrics against what a streaming client measures for the same requests.

    python bench/metrics_check.py --url http://127.0.0.1:9764 --model demo [--requests 4]

The server must be running and serve nothing else meanwhile. Half the requests carry a 448x448
image. Prints, per request, the client's time to first token, mean time between content chunks and
end-to-end time beside the server's log-line values, then the sums of the server's histograms
against the client's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families


def image_url() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (448, 448, 3), dtype=np.uint8)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def histogram_sums(url: str, model: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    return {
        s.name.removeprefix("vlm_router_"): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.endswith("_seconds_sum") and s.labels.get("model") == model
    }


def timed_stream(url: str, body: dict) -> dict[str, float]:
    """Client-side timings of one streamed request."""
    started = time.perf_counter()
    chunks = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {") and any(c["delta"].get("content") for c in json.loads(line[6:])["choices"]):
                chunks.append(time.perf_counter())
    return {
        "ttft_s": chunks[0] - started,
        "between_chunks_s": (chunks[-1] - chunks[0]) / max(1, len(chunks) - 1),
        "e2e_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:9764")
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    image = {"type": "image_url", "image_url": {"url": image_url()}}
    before = histogram_sums(args.url, args.model)
    client = []
    for i in range(args.requests):
        content = [{"type": "text", "text": "Describe."}, *([image] if i % 2 == 0 else [])]
        body = {
            "model": args.model, "messages": [{"role": "user", "content": content}], "stream": True,
            "max_tokens": args.max_tokens, "ignore_eos": True, "temperature": 0,
        }  # fmt: skip
        client.append(timed_stream(args.url, body))
        print(json.dumps({"image": i % 2 == 0, **{k: round(v, 4) for k, v in client[-1].items()}}))
    after = histogram_sums(args.url, args.model)
    server = {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
    totals = {name: round(sum(c[name] for c in client), 3) for name in ("ttft_s", "between_chunks_s", "e2e_s")}
    print(json.dumps({"server_sums": server, "client_sums": totals}, indent=1))


if __name__ == "__main__":
    main()
