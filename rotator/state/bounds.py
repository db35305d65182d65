"""Every wait on PostgreSQL bounded below the lease TTL, so one stuck connection stops no one else.

A replica whose connection stalls (packets stop, nothing resets) while its transaction holds a
lock would otherwise hold it until TCP gives up — hours with default keepalives — and every
other replica's writes would queue behind it. The server ends such a transaction once it has
sat idle for a quarter of the TTL; a waiter gives up on a lock after a third (so it outlasts a
holder the server is about to end, and is told it could not go on before its own lease runs
out); no statement runs past half; and the client's TCP gives up on a dead path within a
quarter (keepalives while waiting for an answer, tcp_user_timeout while sending).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

DEFAULT_TTL = timedelta(minutes=2)
"""engine.lease_ttl's default, for a state database opened without one (a command's own)."""


def _ms(value: float) -> int:
    return max(int(value * 1000), 100)


def connect_args(lease_ttl: timedelta) -> dict[str, Any]:
    """libpq connection parameters and session settings for a lease TTL."""
    ttl = lease_ttl.total_seconds()
    settings = {
        "idle_in_transaction_session_timeout": _ms(ttl / 4),
        "lock_timeout": _ms(ttl / 3),
        "statement_timeout": _ms(ttl / 2),
    }
    return {
        "options": " ".join(f"-c {name}={value}" for name, value in settings.items()),
        "connect_timeout": max(int(ttl / 4), 2),
        "keepalives": 1,
        "keepalives_idle": max(int(ttl / 8), 1),
        "keepalives_interval": max(int(ttl / 16), 1),
        "keepalives_count": 3,
        "tcp_user_timeout": _ms(ttl / 4),
    }


CONTENTION = frozenset({"55P03", "57014", "25P03", "40P01"})
"""SQLSTATEs of a wait that was cut short (lock_timeout, statement_timeout, the server ending an
idle transaction, a deadlock): the database is there, someone held what this needed too long."""


def cut_short(exc: BaseException) -> bool:
    """Whether a driver error is one of the bounds above taking effect (not the database being away)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in CONTENTION
