"""The daemon as a long-running process: memory given back after big work, and the pace of its
systemd watchdog pings."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os


def give_back_memory() -> None:
    """Return to the system what reading the policies left free (a large fleet's parse garbage):
    glibc keeps freed memory for the process otherwise, and the daemon runs for months."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def watchdog_interval() -> float:
    """Seconds between watchdog pings: a quarter of systemd's WatchdogSec (WATCHDOG_USEC), at most one."""
    try:
        watchdog = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6
    except ValueError:
        watchdog = 0.0
    return min(watchdog / 4, 1.0) if watchdog > 0 else 1.0
