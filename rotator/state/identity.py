"""Who holds a lease: a process identity that lets a replica tell a holder provably dead (same
boot, same PID namespace, no process with its pid and start time) from one merely out of sight."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def process_identity() -> str:
    """host:pid:nonce:boot:pidns:start — with the boot id, the PID namespace and the process's
    start time, a holder can be told dead exactly, never guessed: containers that share a host
    name but not a PID namespace see a foreign namespace and wait for the lease to expire."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}:{_boot_id()}:{_pid_namespace()}:{_start_time(pid)}"


def holder_is_dead(owner: str) -> bool:
    """True only when the holder is provably gone: same boot and PID namespace as this process,
    and no process with its pid and start time. Anything else waits for the lease to expire."""
    parts = owner.split(":")
    if len(parts) != 6 or not parts[1].isdigit():
        return False
    host, pid, _, boot, namespace, started = parts
    if host != socket.gethostname() or boot != _boot_id() or namespace != _pid_namespace() or "?" in (boot, namespace):
        return False
    return _start_time(int(pid)) != started
