"""Webhook notifications, delivered at least once from an outbox in the state database.

An event is written to `notification_outbox` in the same transaction as the state change it
tells of (`Notifier.rows` builds the rows; the engine hands them to `StateDB.update`), so a
crash between the change and its delivery loses nothing: whichever rotator process looks next
(the daemon, or the next command) delivers it. Each payload carries an `event_id` (also the
`X-Rotator-Event-Id` header) so receivers can drop the duplicates that at-least-once brings.
With `signing_secret`, `X-Rotator-Signature: t=<unix time>,sha256=<hex>` is the HMAC-SHA256 of
`<t>.<body>`. Delivery is retried with backoff, `ATTEMPTS` times, then given up (counted in
/metrics). A payload never carries a key (it passes the log redactor too), and a target's URL —
Slack webhook URLs are secrets — is never logged or stored: the outbox names a target by a hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from rotator import log
from rotator.credentials import read_credential
from rotator.settings.models import NotificationTarget
from rotator.state.clock import utcnow

if TYPE_CHECKING:  # the database only once something is sent: not for `validate` or `--help`
    from rotator.state.db import StateDB
    from rotator.state.schema import OutboxEntry

_log = log.get(__name__)

EVENTS = {
    "rotation.started": "started",
    "rotation.completed": "completed",
    "rotation.failed": "failed",
    "rotation.held": "held",
    "operator.action_needed": "operator_action",
    "rotation.upcoming": "upcoming",
}
ATTEMPTS = 8
POLL = 0.5


def _text(kind: str, payload: dict[str, Any]) -> str:
    what = {
        "started": "started rotating",
        "completed": "rotated",
        "failed": "failed to rotate (rolled back)",
        "held": "is HELD rotating",
        "operator_action": "needs a person for",
        "upcoming": "will soon rotate",
    }[kind]
    detail = payload.get("reason") or payload.get("instructions") or ""
    return f"rotator {what} `{payload.get('secret')}` ({payload.get('provider')}){': ' + detail if detail else ''}"


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** max(attempts - 1, 0), 300))


class Notifier:
    def __init__(self, targets: list[NotificationTarget], db: Any = None) -> None:
        self.targets = {t.key(): t for t in targets}
        self._db = db
        """A callable giving the StateDB (opened lazily by the app)."""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.failures = 0
        """Delivery attempts that failed in this process, for /metrics."""

    def rows(self, event: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Outbox rows for `event`: one per target that wants it (none when nobody listens)."""
        kind = EVENTS.get(event)
        if kind is None:
            return []
        body = {k: log.redact(v) if isinstance(v, str) else v for k, v in {"event": kind, **payload}.items()}
        out = []
        for key, target in self.targets.items():
            if kind in target.events:
                event_id = str(uuid.uuid4())
                out.append(
                    {"event_id": event_id, "target": key, "kind": kind, "payload": {**body, "event_id": event_id}}
                )
        return out

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Queue an event that belongs to no state change (e.g. `upcoming`) in the outbox."""
        rows = self.rows(event, payload)
        if rows and self._db is not None:
            self._db().enqueue(rows)
            self.start()

    # delivery --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Deliver from the outbox in the background (idempotent)."""
        if not self.targets or self._db is None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rotator-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                self.deliver_due()
            except Exception as exc:  # the database may be away a while: the next pass tries again
                with contextlib.suppress(Exception):  # not even a broken log stream stops the sender
                    _log.warning("notification.pass_failed", error=type(exc).__name__)

    def deliver_due(self) -> int:
        """One pass: claim and send every due entry; return how many were sent."""
        if self._db is None or not self.targets:
            return 0
        db: StateDB = self._db()
        sent = 0
        for entry in db.claim_outbox(limit=50, lease=timedelta(seconds=60)):
            target = self.targets.get(entry.target)
            if target is None:
                db.outbox_result(entry.id, error="the target is no longer configured", retry_at=None)
                continue
            try:
                self._send(target, entry)
            except Exception as exc:  # one bad delivery must not silence every later alert
                self.failures += 1
                error = type(exc).__name__
                host = urlsplit(target.url).hostname
                retry_at = utcnow() + backoff(entry.attempts) if entry.attempts < ATTEMPTS else None
                db.outbox_result(entry.id, error=error, retry_at=retry_at)
                _log.warning("notification.failed", host=host, kind=entry.kind, error=error, gave_up=retry_at is None)
            else:
                db.outbox_result(entry.id, error=None, retry_at=None)
                sent += 1
        return sent

    def _send(self, target: NotificationTarget, entry: OutboxEntry) -> None:
        message = {"text": _text(entry.kind, entry.payload)} if target.format == "slack" else entry.payload
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Rotator-Event-Id": entry.event_id}
        if target.signing_secret is not None:
            key = read_credential(target.signing_secret, "notifications.signing_secret").get_secret_value()
            stamp = str(int(time.time()))
            digest = hmac.new(key.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            headers["X-Rotator-Signature"] = f"t={stamp},sha256={digest}"
        httpx.post(target.url, content=body, headers=headers, timeout=5).raise_for_status()

    def flush(self, timeout: float = 10.0) -> None:
        """Deliver what is due now (bounded), e.g. before a command exits; retries wait for a later run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.deliver_due() == 0:
                    return
            except Exception as exc:
                _log.warning("notification.flush_failed", error=type(exc).__name__)
                return

    def stop(self) -> None:
        self._stop.set()
