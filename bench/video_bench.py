#!/usr/bin/env python3
"""Benchmark video sampling: vlm-router's timestamp sampler against decoding every frame, then picking.

Usage (from the repository root, with the virtual environment's Python)::

    python bench/video_bench.py [--seconds 30,60,120] [--fps 1] [--max-pixels 360*420] [--out results.json]

For each length it writes a 1280x720, 25 fps H.264 video with PyAV (a moving pattern; x264's default
keyframe interval of 250 frames, or `--gop`), then measures each method in a fresh process, so that
peak memory (the process's maximum resident set) belongs to that method alone:

- `sampler`: `vlm_router.media.video.decode_video`, as the server runs it: frames chosen by
  timestamp, seeking when samples are far apart, only the sampled frames converted to RGB at the
  target size.
- `decode_all`: decode every frame to a full-size RGB array, keep them all, then pick the frame
  nearest each timestamp and resize it to `max_pixels` with Pillow, as a straightforward
  implementation (and the original service) does.

Both return the same number of frames at the same size; the script checks that.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

WIDTH, HEIGHT, RATE = 1280, 720, 25


def make_video(path: Path, seconds: int, gop: int | None) -> None:
    """A 1280x720 H.264 mp4 with a moving gradient and bar, so every frame differs."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        x = np.linspace(0, 255, WIDTH, dtype=np.float32)
        for i in range(seconds * RATE):
            frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
            frame[..., 0] = (x + 3 * i) % 256
            frame[..., 1] = (i * 2) % 256
            frame[..., 2] = 255 - frame[..., 0]
            bar = (i * 16) % WIDTH
            frame[:, bar : bar + 40] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def sampler(data: bytes, fps: float, max_pixels: int) -> np.ndarray:
    from vlm_router.media.video import Sampling, VideoLimits, decode_video

    return decode_video(data, Sampling(fps=fps, max_frames=10**6, max_pixels=max_pixels), VideoLimits(10**6, 10**9))


def decode_all(data: bytes, fps: float, max_pixels: int) -> np.ndarray:
    from vlm_router.media.video import Sampling, fit, timestamps

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(stream)]
    duration = decoded[-1][0] + 1 / RATE
    times = np.array([t for t, _ in decoded])
    size = fit(WIDTH, HEIGHT, max_pixels)
    picked = []
    for target in timestamps(duration, Sampling(fps=fps, max_frames=10**6, max_pixels=max_pixels)):
        index = int(np.searchsorted(times, target - 0.5 / RATE))
        picked.append(np.asarray(Image.fromarray(decoded[min(index, len(decoded) - 1)][1]).resize(size, Image.Resampling.BILINEAR)))
    return np.stack(picked)


METHODS = {"sampler": sampler, "decode_all": decode_all}


def measure(method: str, path: Path, fps: float, max_pixels: int) -> dict:
    """Run one method in this process (a fresh one) and report its time, memory and output."""
    data = path.read_bytes()
    started = time.perf_counter()
    frames = METHODS[method](data, fps, max_pixels)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "wall_s": round(wall, 3), "peak_rss_mb": round(peak_mb, 1), "frames": list(frames.shape)}


def run_child(method: str, path: Path, fps: float, max_pixels: int) -> dict:
    command = [sys.executable, __file__, "--child", method, str(path), "--fps", str(fps), "--max-pixels", str(max_pixels)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", default="30,60,120", help="video lengths to test (default 30,60,120)")
    parser.add_argument("--fps", type=float, default=1.0, help="frames sampled per second (default 1)")
    parser.add_argument("--max-pixels", default="360*420", help="pixels per sampled frame (default 360*420)")
    parser.add_argument("--gop", type=int, help="keyframe interval in frames (default: x264's, 250)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method and length; the best is kept (default 2)")
    parser.add_argument("--out", help="write the results here (JSON)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    max_pixels = math.prod(int(n) for n in str(args.max_pixels).split("*"))
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.fps, max_pixels)))
        return

    print(f"{platform.machine()}, {os.cpu_count()} CPUs, PyAV {av.__version__} (FFmpeg {av.library_versions['libavcodec']})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (int(s) for s in args.seconds.split(",")):
            path = Path(tmp) / f"video-{seconds}s.mp4"
            started = time.perf_counter()
            make_video(path, seconds, args.gop)
            print(f"{seconds} s video: {path.stat().st_size / 2**20:.1f} MiB, made in {time.perf_counter() - started:.1f} s", flush=True)
            results = {m: min((run_child(m, path, args.fps, max_pixels) for _ in range(args.repeat)), key=lambda r: r["wall_s"]) for m in METHODS}
            if results["sampler"]["frames"] != results["decode_all"]["frames"]:
                raise SystemExit(f"the methods disagree: {results}")
            for result in results.values():
                rows.append({"seconds": seconds, **result})
                print(f"  {result['method']:10} {result['wall_s']:7.2f} s {result['peak_rss_mb']:8.0f} MB  frames {result['frames']}", flush=True)

    print("\n| video | method | frames | wall s | peak RSS MB |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['seconds']} s | {row['method']} | {row['frames'][0]} | {row['wall_s']:.2f} | {row['peak_rss_mb']:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"fps": args.fps, "max_pixels": max_pixels, "gop": args.gop, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
