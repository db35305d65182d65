"""The notification outbox beyond the first retry: each failed delivery waits twice as long as the
one before (1 s, 2 s, 4 s, … at most 300 s), is not sent again before then, and after the eighth
attempt it is given up (`gave_up_at`, counted apart) and never claimed again. Deliveries go to a
real port nothing listens on; the time between attempts is passed by moving the entry's due time
back in the database, never waited for."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from rotator.config import NotificationTarget
from rotator.notify import ATTEMPTS, Notifier, backoff
from rotator.state.db import StateDB, utcnow
from rotator.state.schema import OutboxEntry


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(f"sqlite:///{tmp_path}/state.db")
    yield state
    state.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on return: a connection there is refused


def _entry(db: StateDB) -> OutboxEntry:
    with db.session() as s:
        entries = s.query(OutboxEntry).all()
    assert len(entries) == 1
    return entries[0]


def _due_now(db: StateDB) -> None:
    with db.session() as s:
        s.execute(update(OutboxEntry).values(next_attempt_at=db.clock() - timedelta(seconds=1)))


def test_backoff_doubles_from_one_second_up_to_five_minutes() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff(0) == timedelta(seconds=1) and backoff(50) == timedelta(seconds=300)


def test_a_delivery_that_keeps_failing_backs_off_then_is_given_up(db: StateDB, closed_port: int) -> None:
    notifier = Notifier([NotificationTarget(url=f"http://127.0.0.1:{closed_port}/hook")], db=lambda: db)
    db.enqueue(notifier.rows("rotation.failed", {"secret": "app", "provider": "bw", "reason": "x"}))
    assert db.outbox_counts() == (1, 0)
    for attempt in range(1, ATTEMPTS + 1):
        before = utcnow()
        assert notifier.deliver_due() == 0
        entry = _entry(db)
        assert entry.attempts == attempt and entry.last_error == "ConnectError" and entry.delivered_at is None
        if attempt < ATTEMPTS:
            assert entry.gave_up_at is None and db.outbox_counts() == (1, 0)
            wait = entry.next_attempt_at - before
            assert backoff(attempt) <= wait <= backoff(attempt) + timedelta(seconds=30), (attempt, wait)
            assert notifier.deliver_due() == 0 and _entry(db).attempts == attempt  # not due yet: not sent
            _due_now(db)
    assert entry.gave_up_at is not None and notifier.failures == ATTEMPTS
    assert db.outbox_counts() == (0, 1)
    _due_now(db)
    assert notifier.deliver_due() == 0 and _entry(db).attempts == ATTEMPTS  # given up: never claimed again


def test_a_delivery_that_succeeds_after_failures_is_delivered_once(db: StateDB, closed_port: int) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from rotator.background_http import serve_app

    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    notifier = Notifier([NotificationTarget(url=f"http://127.0.0.1:{closed_port}/hook")], db=lambda: db)
    db.enqueue(notifier.rows("rotation.held", {"secret": "app", "provider": "bw", "reason": "gate"}))
    for _ in range(3):
        notifier.deliver_due()
        _due_now(db)
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    served = serve_app(app, host="127.0.0.1", port=closed_port, name="hook")
    try:
        assert notifier.deliver_due() == 1
        _due_now(db)
        assert notifier.deliver_due() == 0
    finally:
        served.stop()
    entry = _entry(db)
    assert entry.delivered_at is not None and entry.gave_up_at is None and entry.attempts == 4
    assert len(received) == 1 and db.outbox_counts() == (0, 0)
