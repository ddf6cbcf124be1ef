"""Getting a model's OpenVINO folder from its `source`: downloaded as published when its Hugging Face repository is
an OpenVINO export already, else converted with optimum-cli. Imports no torch: the download needs huggingface_hub only.

Where models land in `cache_dir`: `<source>/openvino` for a downloaded export, `<source>/<weight format>` for a
conversion (`convert.cache_folder`), with `/` in `source` as `--`. Either is filled as `<folder>.partial` and renamed
when complete; a download's partial folder is kept when it fails, so the next fetch resumes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, OfflineModeIsEnabled, RepositoryNotFoundError
from huggingface_hub.utils import disable_progress_bars

from .config import WeightFormat
from .convert import MARKER, ConversionError, cache_folder, convert, folder_name, is_openvino_folder, partial_folder
from .progress import Progress

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The folder, in place of a weight format, of a repository downloaded as its publisher exported it.
PUBLISHED = "openvino"
#: How often a download's progress is measured, in seconds.
POLL_S = 0.5


class FetchError(Exception):
    """The model could not be fetched; the message says why in one line."""


def download_folder(cache_dir: Path, source: str) -> Path:
    """`<cache_dir>/<source with '/' as '--'>/openvino`, e.g. `ov-model/OpenVINO--Qwen2.5-VL-3B-Instruct-int4-ov/openvino`."""
    return cache_dir / folder_name(source) / PUBLISHED


async def fetch(
    source: str,
    cache_dir: Path,
    weight_format: WeightFormat,
    trust_remote_code: bool,
    progress: Progress | None = None,
    out: Path | None = None,
) -> Path:
    """The OpenVINO folder of `source`, fetched into `cache_dir` (or `out`) unless it is there already.

    `source` is an OpenVINO folder (returned as it is), a local checkpoint (converted), or a Hugging Face repository id:
    a repository whose files include `openvino_language_model.xml` is downloaded as published (`weight_format` and
    `trust_remote_code` do not apply), any other is converted. `progress` follows the download or conversion.
    `HF_ENDPOINT`, `HF_TOKEN` and `HF_HUB_OFFLINE` work as in huggingface_hub. Raises `FetchError`.
    """
    progress = progress or Progress(source)
    local = Path(source)
    if local.exists() and is_openvino_folder(local):
        return local
    downloaded = out or download_folder(cache_dir, source)
    converted = out or cache_folder(cache_dir, source, weight_format)
    for folder in (downloaded, converted):
        if is_openvino_folder(folder):
            return folder
    if not local.exists():
        try:
            info = await _in_thread(lambda: HfApi().model_info(source, files_metadata=True))
        except (OSError, ValueError) as exc:
            raise _error(exc, source) from None
        files = {sibling.rfilename: sibling.size for sibling in info.siblings or ()}
        if MARKER in files:
            sizes = list(files.values())
            total = None if None in sizes else sum(s or 0 for s in sizes)
            return await _download(source, info.sha or "main", total, downloaded, progress)
    log.info("converting '%s' to %s in %s", source, weight_format.value, converted)
    try:
        return await convert(source, converted, weight_format, trust_remote_code, progress)
    except (ConversionError, OSError) as exc:
        raise FetchError(str(exc)) from None


def fetch_sync(
    source: str,
    cache_dir: Path,
    weight_format: WeightFormat,
    trust_remote_code: bool,
    progress: Progress | None = None,
    out: Path | None = None,
) -> Path:
    """`fetch` for command-line use."""
    return asyncio.run(fetch(source, cache_dir, weight_format, trust_remote_code, progress, out))


async def _download(source: str, revision: str, total: int | None, folder: Path, progress: Progress) -> Path:
    """Download repository `source` at `revision` into `folder` through its partial folder, resuming what is there."""
    partial = partial_folder(folder)
    log.info("downloading '%s' (an OpenVINO export: no weight format applies) into %s", source, folder)
    partial.mkdir(parents=True, exist_ok=True)
    disable_progress_bars()  # huggingface_hub's own bars, one per file: `progress` shows the whole download instead
    progress.begin("downloading", total, _arrived(partial))
    download = asyncio.ensure_future(_in_thread(lambda: snapshot_download(source, revision=revision, local_dir=partial)))
    try:
        while not download.done():
            await asyncio.wait({download}, timeout=POLL_S)
            progress.advance(_arrived(partial))
        download.result()
    except (OSError, ValueError) as exc:
        raise _error(exc, source, partial) from None
    finally:
        progress.finish()
    if not is_openvino_folder(partial):
        raise FetchError(f"{source} has no {MARKER} after its download")
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's resume records
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def _arrived(folder: Path) -> int:
    """Bytes of the repository's files in `folder`: the complete ones, and the parts of the others, which
    huggingface_hub keeps among its records as `.cache/huggingface/download/<file>.<etag>.incomplete`."""
    size = 0
    for root, _, names in os.walk(folder):
        records = Path(root).relative_to(folder).parts[:1] == (".cache",)
        for name in names:
            if not records or name.endswith(".incomplete"):
                with contextlib.suppress(FileNotFoundError):  # moved into place meanwhile
                    size += os.path.getsize(os.path.join(root, name))
    return size


async def _in_thread(call: Callable[[], T]) -> T:
    """`call()` on a daemon thread: unlike `asyncio.to_thread`, a wait given up (Ctrl-C, a server stopping) does not
    hold the process until a download ends."""
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if result.set_running_or_notify_cancel():
            try:
                result.set_result(call())
            except BaseException as exc:  # handed to the waiting task
                result.set_exception(exc)

    threading.Thread(target=run, name="vlm-router-fetch", daemon=True).start()
    return await asyncio.wrap_future(result)


def _error(exc: Exception, source: str, partial: Path | None = None) -> FetchError:
    """What went wrong talking to the hub, in one line; `partial`: the folder a download was filling."""
    endpoint = constants.ENDPOINT
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    if isinstance(exc, HFValidationError):
        return FetchError(f"'{source}' is neither a local folder nor a Hugging Face repository id (owner/name)")
    if isinstance(exc, OfflineModeIsEnabled):
        return FetchError(f"{source} is not downloaded yet, and HF_HUB_OFFLINE is set")
    if isinstance(exc, GatedRepoError):
        return FetchError(f"{source} is gated on {endpoint}: ask for access on its page, then set HF_TOKEN to a token of that account")
    if isinstance(exc, RepositoryNotFoundError):
        return FetchError(f"repository {source} not found on {endpoint}: check the id (a private repository also needs HF_TOKEN)")
    if response is not None and response.status_code in (401, 403):
        return FetchError(f"{endpoint} refused access to {source} ({response.status_code}): set HF_TOKEN to a token that may read it")
    if response is not None:
        return FetchError(f"{endpoint} answered {response.status_code} for {source}: {_reason(exc)}")
    if partial is not None:
        return FetchError(f"the download of {source} was interrupted ({_reason(exc)}): pulling again resumes it from {partial}")
    if isinstance(exc, (requests.RequestException, ConnectionError)):
        return FetchError(f"cannot reach the Hugging Face Hub at {endpoint} ({_reason(exc)}): check the network, proxy settings or HF_ENDPOINT")
    return FetchError(f"fetching {source} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The gist of `exc` in one line: an OS error's text (`Connection refused`) when it has one, else the first line
    of the innermost message it wraps."""
    if match := re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", f"{exc} {exc.__cause__ or ''}"):
        return match[1].strip()
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
