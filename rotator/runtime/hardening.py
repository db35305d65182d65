"""What rotator does to its own process at start, so other processes of the same user cannot
read its environment or memory (where admin credentials live) and its files are its own."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def harden() -> None:
    """umask 077 for every file rotator makes; on Linux, not dumpable: no core dumps, and
    /proc/<pid>/environ, mem and ptrace closed to other processes of the same uid."""
    os.umask(0o077)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def dumpable() -> int | None:
    """This process's dumpable flag (Linux), or None where it cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
