"""Races against PostgreSQL's locks: work run in a thread, and whether a session waits on a lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy
from sqlalchemy import text


def waiting(engine: sqlalchemy.Engine, kind: str) -> bool:
    """Whether some session waits for a lock of kind `kind` (pg_locks' locktype: 'advisory',
    'tuple', 'transactionid')."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = :k"), {"k": kind}
            ).scalar()
        )


def in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """`work()` started in a thread; its outcome, once it ends: {"value": ...} or {"error": ...},
    and "at", the monotonic time it ended."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as exc:  # the outcome is what the test looks at
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome
