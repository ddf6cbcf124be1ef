"""Turning a Hugging Face checkpoint (`source:`) into an OpenVINO model folder with optimum-intel."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
from collections import deque
from pathlib import Path

from .config import WeightFormat
from .progress import Progress

log = logging.getLogger(__name__)

#: A file every exported VLM folder has; its presence marks a finished conversion.
MARKER = "openvino_language_model.xml"
#: How much of optimum-cli's output is read at once, and the longest line kept whole.
CHUNK = 65536


class ConversionError(Exception):
    """The export failed; the message carries the tail of optimum-cli's output."""


def is_openvino_folder(path: Path) -> bool:
    return (path / MARKER).is_file()


def folder_name(name: str) -> str:
    """`name` as one folder name: runs of other characters than letters, digits, `.`, `_` and `-` as `--`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/")).strip("-.") or "model"


def cache_folder(cache_dir: Path, source: str, weight_format: WeightFormat) -> Path:
    """`<cache_dir>/<source with '/' as '--'>/<format>`, e.g. `ov-model/Qwen--Qwen2-VL-2B-Instruct/int8`."""
    return cache_dir / folder_name(source) / weight_format.value


def compiled_folder(cache_dir: Path, model: str) -> Path:
    """Where OpenVINO keeps a model's compiled blobs (`CACHE_DIR`): `<cache_dir>/compiled/<model>`."""
    return cache_dir / "compiled" / folder_name(model)


def export_command(source: str, out_dir: Path, weight_format: WeightFormat, trust_remote_code: bool, own_code: bool = False) -> list[str]:
    """optimum-cli's export; with `own_code` (a checkpoint whose modeling code is this project's) without its version caps."""
    if own_code:
        exporter = [sys.executable, "-m", "vlm_router.uncapped_export"]
    else:
        optimum_cli = shutil.which("optimum-cli", path=str(Path(sys.executable).parent)) or shutil.which("optimum-cli")
        if optimum_cli is None:
            raise ConversionError("optimum-cli is not installed: install the converter with `pip install 'vlm-router[convert]'`")
        exporter = [optimum_cli]
    command = [*exporter, "export", "openvino", "--model", source, "--task", "image-text-to-text"]
    command += ["--weight-format", weight_format.value, str(out_dir)]
    if trust_remote_code:
        command.insert(-1, "--trust-remote-code")
    return command


def partial_folder(out_dir: Path) -> Path:
    """Where `out_dir` is filled until it is complete: `<out_dir>.partial`."""
    return out_dir.with_name(out_dir.name + ".partial")


async def read_output(stream: asyncio.StreamReader, progress: Progress, keep: int = 40) -> list[str]:
    """Read a process's output to its end in chunks, split at `\n` and at `\r` (a progress bar redraws its line
    with `\r`, so far more than a line's worth can come without `\n`), giving each line to `progress`; return the
    last `keep` non-blank lines, a bar's as its last state. A line longer than `CHUNK` bytes is cut."""
    tail: deque[str] = deque(maxlen=keep)
    pending, bar = b"", ""
    while chunk := await stream.read(CHUNK):
        *segments, pending = re.split(rb"(?<=[\r\n])", pending + chunk)
        if len(pending) > CHUNK:
            segments, pending = [*segments, pending + b"\n"], b""
        for segment in segments:
            text = segment[:-1].decode(errors="replace")
            if segment.endswith(b"\r"):
                if text:
                    bar = text
                    progress.output(text, redraw=True)
                continue
            line, bar = text or bar, ""  # `\r\n` ends the bar's line with its last state
            progress.output(line, redraw=False)
            if line.strip():
                tail.append(line)
    last = pending.decode(errors="replace") or bar
    if last.strip():
        progress.output(last, redraw=False)
        tail.append(last)
    return list(tail)


def _finish(out_dir: Path, returncode: int, tail: list[str]) -> Path:
    partial = partial_folder(out_dir)
    if returncode != 0 or not is_openvino_folder(partial):
        shutil.rmtree(partial, ignore_errors=True)
        log.error("optimum-cli export failed:\n%s", "\n".join(tail))
        raise ConversionError(f"optimum-cli export failed: {tail[-1].strip() if tail else f'exit status {returncode}'}")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return out_dir


async def convert(
    source: str,
    out_dir: Path,
    weight_format: WeightFormat,
    trust_remote_code: bool,
    progress: Progress | None = None,
    own_code: bool = False,
) -> Path:
    """Export `source` into `out_dir` unless already there; partial output never survives a failure.

    optimum-cli's output goes line by line to `progress` when given (its `detail`, and its stream if it has one).
    """
    if is_openvino_folder(out_dir):
        return out_dir
    progress = progress or Progress(source)
    partial = partial_folder(out_dir)
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *export_command(source, partial, weight_format, trust_remote_code, own_code),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    progress.begin("converting")
    try:
        tail = await read_output(process.stdout, progress)
    finally:
        progress.finish()
    await process.wait()
    return _finish(out_dir, process.returncode or 0, tail)


def convert_sync(
    source: str,
    out_dir: Path,
    weight_format: WeightFormat,
    trust_remote_code: bool,
    progress: Progress | None = None,
    own_code: bool = False,
) -> Path:
    """`convert` for command-line use."""
    return asyncio.run(convert(source, out_dir, weight_format, trust_remote_code, progress, own_code))
