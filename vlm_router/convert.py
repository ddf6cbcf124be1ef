"""Turning a Hugging Face checkpoint (`source:`) into an OpenVINO model folder with optimum-intel."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import TextIO

from .config import WeightFormat

log = logging.getLogger(__name__)

#: A file every exported VLM folder has; its presence marks a finished conversion.
MARKER = "openvino_language_model.xml"


class ConversionError(Exception):
    """The export failed; the message carries the tail of optimum-cli's output."""


def is_openvino_folder(path: Path) -> bool:
    return (path / MARKER).is_file()


def _safe(name: str) -> str:
    """`name` as one folder name: runs of other characters than letters, digits, `.`, `_` and `-` as `--`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/")).strip("-.") or "model"


def cache_folder(cache_dir: Path, source: str, weight_format: WeightFormat) -> Path:
    """`<cache_dir>/<source with '/' as '--'>/<format>`, e.g. `ov-model/Qwen--Qwen2-VL-2B-Instruct/int8`."""
    return cache_dir / _safe(source) / weight_format.value


def compiled_folder(cache_dir: Path, model: str) -> Path:
    """Where OpenVINO keeps a model's compiled blobs (`CACHE_DIR`): `<cache_dir>/compiled/<model>`."""
    return cache_dir / "compiled" / _safe(model)


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


def _partial(out_dir: Path) -> Path:
    return out_dir.with_name(out_dir.name + ".partial")


def _finish(out_dir: Path, returncode: int, output: bytes) -> Path:
    partial = _partial(out_dir)
    if returncode != 0 or not is_openvino_folder(partial):
        shutil.rmtree(partial, ignore_errors=True)
        lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
        log.error("optimum-cli export failed:\n%s", "\n".join(lines[-40:]))
        raise ConversionError(f"optimum-cli export failed: {lines[-1] if lines else f'exit status {returncode}'}")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return out_dir


async def convert(
    source: str,
    out_dir: Path,
    weight_format: WeightFormat,
    trust_remote_code: bool,
    progress: TextIO | None = None,
    own_code: bool = False,
) -> Path:
    """Export `source` into `out_dir` unless already there; partial output never survives a failure.

    optimum-cli's output goes line by line to `progress` when given (the `convert` command's progress).
    """
    if is_openvino_folder(out_dir):
        return out_dir
    partial = _partial(out_dir)
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *export_command(source, partial, weight_format, trust_remote_code, own_code),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = bytearray()
    while line := await process.stdout.readline():
        output += line
        if progress is not None:
            progress.write(line.decode(errors="replace"))
            progress.flush()
    await process.wait()
    return _finish(out_dir, process.returncode or 0, bytes(output))


def convert_sync(
    source: str,
    out_dir: Path,
    weight_format: WeightFormat,
    trust_remote_code: bool,
    progress: TextIO | None = None,
    own_code: bool = False,
) -> Path:
    """`convert` for command-line use."""
    return asyncio.run(convert(source, out_dir, weight_format, trust_remote_code, progress, own_code))
