"""Webhook notifications: rotation started, completed, failed, held at the gate, operator action
needed, upcoming rotation. Delivery runs in a background thread with retries (tenacity), so it never
blocks a rotation; a payload never carries a key (it passes the log redactor too), and a target's
URL — Slack webhook URLs are secrets — is never logged, only its host.
"""

from __future__ import annotations

import queue
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import Retrying, stop_after_attempt, wait_exponential

from rotator import log
from rotator.config import NotificationTarget

_log = log.get(__name__)

EVENTS = {
    "rotation.started": "started",
    "rotation.completed": "completed",
    "rotation.failed": "failed",
    "rotation.held": "held",
    "operator.action_needed": "operator_action",
    "rotation.upcoming": "upcoming",
}


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


class Notifier:
    def __init__(self, targets: list[NotificationTarget], *, attempts: int = 4) -> None:
        self.targets = targets
        self.attempts = attempts
        self._queue: queue.Queue[tuple[NotificationTarget, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failures = 0
        """Notifications given up on (after every retry), for /metrics."""

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Queue `event` for every target that wants it; returns at once."""
        kind = EVENTS.get(event)
        if kind is None or not self.targets:
            return
        body = {k: log.redact(v) if isinstance(v, str) else v for k, v in {"event": kind, **payload}.items()}
        for target in self.targets:
            if kind in target.events:
                self._start()
                self._queue.put((target, body))

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rotator-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            target, body = item
            try:
                self._deliver(target, body)
            except Exception as exc:  # one bad delivery must not silence every later alert
                self.failures += 1
                host = urlsplit(target.url).hostname
                _log.warning("notification.failed", host=host, kind=body.get("event"), error=type(exc).__name__)
            finally:
                self._queue.task_done()

    def _deliver(self, target: NotificationTarget, body: dict[str, Any]) -> None:
        message = {"text": _text(body["event"], body)} if target.format == "slack" else body
        for attempt in Retrying(
            stop=stop_after_attempt(self.attempts), reraise=True, wait=wait_exponential(multiplier=0.5, max=10)
        ):
            with attempt:
                httpx.post(target.url, json=message, timeout=5).raise_for_status()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for queued notifications, e.g. before a command exits."""
        if self._thread is None:
            return
        done = threading.Event()

        def drain() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=drain, daemon=True).start()
        done.wait(timeout)
