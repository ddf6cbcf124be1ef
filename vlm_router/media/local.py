"""Reading media from local files: only inside `media.local_dir`, and only when it is set."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from . import MediaError

_HOW = "set media.local_dir to a folder to allow the files inside it"


def local_path(url: str, local_dir: Path | None) -> Path:
    """The file a `file:` URL or a bare path names, with symlinks and `..` resolved, inside `local_dir`.

    A relative path is relative to `local_dir`. Nothing is read or checked for existence here,
    so a refusal says nothing about what exists outside `local_dir`.
    """
    if local_dir is None:
        raise MediaError(f"local files are refused: {_HOW}", code="media_url_refused")
    if url[:5].lower() == "file:":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise MediaError(f"a file URL may not name a host ('{parts.netloc}')", code="media_url_refused")
        raw = url2pathname(parts.path)
    else:
        raw = url
    base = local_dir.resolve()
    try:
        path = (base / raw).resolve()
    except (OSError, RuntimeError, ValueError):
        raise MediaError(f"'{_shown(raw)}' is not a usable path") from None
    if not path.is_relative_to(base):
        raise MediaError(f"'{_shown(raw)}' is outside media.local_dir", code="media_url_refused")
    return path


def read_local(url: str, local_dir: Path | None, max_bytes: int) -> bytes:
    """The bytes of the regular file `url` names inside `local_dir`, at most `max_bytes`. Blocking."""
    path = local_path(url, local_dir)
    try:
        # O_NOFOLLOW: a symlink swapped in after resolving is refused; O_NONBLOCK: a FIFO does not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MediaError(f"no such file: '{_shown(url)}'") from None
    except OSError as exc:
        raise MediaError(f"cannot open '{_shown(url)}': {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MediaError(f"'{_shown(url)}' is not a regular file")
        if info.st_size > max_bytes:
            raise _too_large(max_bytes)
        data = _read(fd, max_bytes + 1)
    except OSError as exc:
        raise MediaError(f"cannot read '{_shown(url)}': {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def _read(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from `fd`."""
    chunks: list[bytes] = []
    while limit > 0 and (chunk := os.read(fd, min(limit, 1 << 20))):
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int) -> MediaError:
    return MediaError(f"media is over the {max_bytes}-byte limit", status=413, code="media_too_large")


def _shown(path: str) -> str:
    """`path` as error messages quote it: at most 200 characters."""
    return path if len(path) <= 200 else path[:200] + "..."
