"""The notification outbox beyond the first retry: each failed delivery waits twice as long as the
one before (1 s, 2 s, 4 s, … at most 300 s), is not sent again before then, and after the eighth
attempt it is given up (`gave_up_at`, counted apart) and never claimed again. Deliveries go to a
real port nothing listens on; the time between attempts is passed by moving the entry's due time
back in the database, never waited for. And what a receiver gets (configuration.md,
"Notifications"): a signature it can check, Slack text naming what happened, delivery by the
background sender, bounded passes, and a receiver that never answers costing one timed-out attempt."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from rotator.notify import ATTEMPTS, Notifier, backoff
from rotator.plugin.settings import CredentialSource
from rotator.runtime.background_http import serve_app
from rotator.settings.models import NotificationTarget
from rotator.state.clock import utcnow
from rotator.state.db import StateDB
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


@dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real webhook endpoint on loopback that keeps every request's headers and raw body."""

    async def hook(request: Request) -> Response:
        got.received.append((dict(request.headers), await request.body()))
        got.arrived.set()
        return Response(status_code=204)

    served = serve_app(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host="127.0.0.1", port=0, name="hook"
    )
    got = Receiver(url=f"{served.url}/hook")
    yield got
    served.stop()


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
    url = f"http://127.0.0.1:{closed_port}/hook"
    notifier = Notifier([NotificationTarget(url=url)], db=lambda: db)
    db.enqueue(notifier.rows("rotation.failed", {"secret": "app", "provider": "bw", "reason": "x"}))
    assert db.outbox_counts() == (1, 0)
    for attempt in range(1, ATTEMPTS + 1):
        before = utcnow()
        with capture_logs() as logs:
            assert notifier.deliver_due() == 0
        # a webhook URL may be the secret (Slack's): only its host is logged. This delivery's only:
        # the logs are the process's, where another test's notifier thread may still be failing
        assert [(e["event"], e["host"], e["error"]) for e in logs if e.get("kind") == "failed"] == [
            ("notification.failed", "127.0.0.1", "ConnectError")
        ]
        assert url not in repr(logs)
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


def test_a_signed_notification_carries_an_hmac_of_its_time_and_raw_body_the_receiver_can_check(
    db: StateDB, receiver: Receiver, tmp_path: Path
) -> None:
    key = tmp_path / "hook-key"
    key.write_text("receiver-shared-secret\n")
    target = NotificationTarget(url=receiver.url, signing_secret=CredentialSource(file=key))
    notifier = Notifier([target], db=lambda: db)
    db.enqueue(notifier.rows("rotation.completed", {"secret": "app", "provider": "bw"}))
    assert notifier.deliver_due() == 1
    [(headers, body)] = receiver.received
    signed = re.fullmatch(r"t=(\d+),sha256=([0-9a-f]{64})", headers["x-rotator-signature"])
    assert signed is not None, headers["x-rotator-signature"]
    expected = hmac.new(b"receiver-shared-secret", signed[1].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed[2], expected)
    payload = json.loads(body)
    assert payload["event"] == "completed" and headers["x-rotator-event-id"] == payload["event_id"]


def test_slack_messages_say_what_happened_to_which_secret_and_why(db: StateDB, receiver: Receiver) -> None:
    """A person reads these: the event in words, the secret and provider, then the reason or
    (for an operator action) the instructions."""
    notifier = Notifier([NotificationTarget(url=receiver.url, format="slack")], db=lambda: db)
    sent = [
        ("rotation.started", {"secret": "app", "provider": "bw", "reason": ""}),
        ("rotation.failed", {"secret": "app", "provider": "bw", "reason": "the new key was refused"}),
        ("rotation.held", {"secret": "app", "provider": "bw", "reason": "max_wait passed"}),
        (
            "operator.action_needed",
            {"secret": "app", "provider": "tb", "instructions": "revoke key 7 in the dashboard"},
        ),
    ]
    for event, payload in sent:
        db.enqueue(notifier.rows(event, payload))
    assert notifier.deliver_due() == len(sent)
    assert [json.loads(body) for _, body in receiver.received] == [
        {"text": "rotator started rotating `app` (bw)"},
        {"text": "rotator failed to rotate (rolled back) `app` (bw): the new key was refused"},
        {"text": "rotator is HELD rotating `app` (bw): max_wait passed"},
        {"text": "rotator needs a person for `app` (tb): revoke key 7 in the dashboard"},
    ]


def test_the_background_sender_delivers_after_a_pass_the_database_failed(tmp_path: Path, receiver: Receiver) -> None:
    """No command flushes here: the daemon's sender thread delivers on its own, and a pass that
    could not reach the database is logged and followed by another, not the end of delivery."""
    state = StateDB(f"sqlite:///{tmp_path}/state.db")
    passes = []

    def database() -> StateDB:
        passes.append(1)
        if len(passes) == 1:
            raise ConnectionError("the database is away")
        return state

    notifier = Notifier([NotificationTarget(url=receiver.url)], db=database)
    state.enqueue(notifier.rows("rotation.held", {"secret": "app", "provider": "bw", "reason": "gate"}))
    try:
        with capture_logs() as logs:
            notifier.start()
            assert receiver.arrived.wait(30), "the background sender delivered nothing"
    finally:
        notifier.stop()
        state.close()
    assert json.loads(receiver.received[0][1])["event"] == "held"
    assert {"event": "notification.pass_failed", "error": "ConnectionError", "log_level": "warning"} in logs


def test_a_pass_claims_at_most_fifty_entries_and_leaves_the_rest_unclaimed(db: StateDB, receiver: Receiver) -> None:
    """A pass is bounded: entries beyond it keep their due time and no attempt, for the next pass
    or another process, instead of being held under a claim while the pass works through them."""
    notifier = Notifier([NotificationTarget(url=receiver.url)], db=lambda: db)
    for n in range(60):
        db.enqueue(notifier.rows("rotation.completed", {"secret": f"app-{n}", "provider": "bw"}))
    assert notifier.deliver_due() == 50
    with db.session() as s:
        left = s.query(OutboxEntry).filter(OutboxEntry.delivered_at.is_(None)).all()
    assert len(left) == 10 and all(e.attempts == 0 for e in left)
    assert notifier.deliver_due() == 10 and len(receiver.received) == 60 and db.outbox_counts() == (0, 0)


def test_a_receiver_that_never_answers_costs_one_timed_out_attempt(db: StateDB) -> None:
    """One bad receiver must not silence every later alert: the attempt times out, is recorded
    and retried later, and the pass goes on."""
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        notifier = Notifier([NotificationTarget(url=url)], db=lambda: db)
        db.enqueue(notifier.rows("rotation.failed", {"secret": "app", "provider": "bw", "reason": "x"}))
        sender = threading.Thread(target=notifier.deliver_due, daemon=True)
        sender.start()
        sender.join(60)  # far beyond the attempt's own bound; only a delivery without one is still here
        assert not sender.is_alive(), "a delivery to a silent receiver never gave up"
    entry = _entry(db)
    assert entry.last_error == "ReadTimeout" and entry.attempts == 1 and entry.next_attempt_at is not None
    assert entry.gave_up_at is None and entry.delivered_at is None


def test_an_entry_is_due_at_its_next_attempt_time_not_only_after_it(db: StateDB, receiver: Receiver) -> None:
    """The backoff says when an entry may be sent again; at that moment it is due."""
    at = db.clock()
    db.clock = lambda: at  # type: ignore[method-assign]  # the database's clock, stopped at one moment
    notifier = Notifier([NotificationTarget(url=receiver.url)], db=lambda: db)
    db.enqueue(notifier.rows("rotation.completed", {"secret": "app", "provider": "bw"}))
    assert _entry(db).next_attempt_at == at
    assert [e.event_id for e in db.claim_outbox(limit=10, lease=timedelta(seconds=60))] == [_entry(db).event_id]
