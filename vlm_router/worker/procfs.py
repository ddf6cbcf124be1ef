"""What another process is doing, read from Linux's /proc: its CPU time and its resident memory."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_ticks(pid: int) -> int | None:
    """User plus system CPU time of all of `pid`'s threads, in clock ticks; None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)


def rss_bytes(pid: int) -> int | None:
    """`pid`'s resident memory; None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None
