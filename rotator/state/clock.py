"""The one clock every duration that gates a key is measured on: the state database's.

Replicas on several hosts write a time (a promotion, a revocation, the next look) that another
replica compares with its own "now" later; with each host's wall clock, a host 30 s off made a
15 s soak last 0 s. So "now" is the database's clock: read from PostgreSQL now and then, and
carried forward in between by this process's monotonic clock, which a wall-clock step (NTP,
an operator, a skewed VM) does not move. The reading is taken halfway through the round trip
that fetched it, so it is off by at most half a round trip. On SQLite, one host's file, the
database's clock is that host's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

RESYNC = 30.0
"""Seconds after which the database's clock is read again (monotonic drift is parts per million)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseClock:
    """`now()` on the database's clock; `read` fetches that clock (one round trip)."""

    def __init__(self, read: Callable[[], datetime], *, resync: float = RESYNC) -> None:
        self._read = read
        self._resync = resync
        self._anchor: tuple[datetime, float, float] | None = None
        """(the database's time, the monotonic time it stood for, the round trip it took)."""
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The database's time now; raises the driver's error only if it was never read at all."""
        anchor = self._anchor
        if anchor is None or time.monotonic() - anchor[1] > self._resync:
            try:
                self.sync()
            except Exception:
                if self._anchor is None:
                    raise
                # unreachable for now: a reading of any age carried by the monotonic clock is still right
            anchor = self._anchor
            assert anchor is not None
        at, mono, _ = anchor
        return at + timedelta(seconds=time.monotonic() - mono)

    def sync(self) -> None:
        sent = time.monotonic()
        at = self._read()
        back = time.monotonic()
        with self._lock:
            self._anchor = (at.astimezone(UTC), (sent + back) / 2, back - sent)
