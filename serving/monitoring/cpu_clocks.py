"""Clocks the drift monitor keeps its CPU budget by, read from Linux's /proc (None on
other systems, where the monitor falls back to its own process time)."""

from __future__ import annotations

import os


def loop_times() -> tuple[float, float] | None:
    """Seconds the main thread (the event loop's) has run and has waited to run, from
    Linux's schedstat of the thread group leader; None elsewhere."""
    try:
        with open("/proc/self/schedstat") as f:
            ran, waited = f.read().split()[:2]
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return None


def machine_idle() -> float | None:
    """CPU seconds the whole machine has been idle (every CPU, from Linux's /proc/stat:
    idle and iowait); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
