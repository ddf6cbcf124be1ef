"""How long a model takes to load: without OpenVINO's compiled-model cache, cold (filling it) and warm.

    python bench/load_bench.py --model bench/models/qwen2-vl-2b-shape-int8 [--repeat 2]

Each load builds the model's `ContinuousBatchingPipeline`, as a worker does; the cache is a fresh
temporary folder, as `server.compile_cache` would fill `<cache_dir>/compiled/<model>` the first time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def load_seconds(model: str, properties: dict[str, str]) -> float:
    import openvino_genai

    started = time.perf_counter()
    pipeline = openvino_genai.ContinuousBatchingPipeline(model, openvino_genai.SchedulerConfig(), "CPU", properties)
    elapsed = time.perf_counter() - started
    del pipeline
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="an OpenVINO model folder")
    parser.add_argument("--repeat", type=int, default=3, help="loads to time without the cache, and warm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compiled-") as cache:
        results = {
            "no_cache_s": [load_seconds(args.model, {}) for _ in range(args.repeat)],
            "cold_s": load_seconds(args.model, {"CACHE_DIR": cache}),
            "warm_s": [load_seconds(args.model, {"CACHE_DIR": cache}) for _ in range(args.repeat)],
        }
    print(json.dumps({k: [round(x, 2) for x in v] if isinstance(v, list) else round(v, 2) for k, v in results.items()}))


if __name__ == "__main__":
    main()
