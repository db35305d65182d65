"""Drives rotations step by step under the secret's lease, for the CLI and (later) the daemon.

The lease is held only while steps run back to back; a rotation that must wait releases it, so
whoever comes first when the time comes (this process, a daemon, another replica) goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from rotator.engine.rotation import Engine, Step
from rotator.errors import LeaseHeld
from rotator.state.db import StateDB, process_identity, utcnow
from rotator.state.schema import Rotation


class Runner:
    def __init__(
        self,
        *,
        db: StateDB,
        engine: Engine,
        lease_ttl: timedelta,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.engine = engine
        self.lease_ttl = lease_ttl
        self.owner = process_identity()
        self.clock = clock
        self.sleep = sleep

    def run(
        self,
        rotation_id: str,
        *,
        follow: bool,
        on_step: Callable[[Step], None] = lambda _: None,
        on_blocked: Callable[[str], None] = lambda _: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Rotation:
        """Advance a rotation until it ends, is held, or (without `follow`) has to wait.

        With `follow`, waits (sleeping, lease released) until each next attempt is due.
        """
        while True:
            rotation = self.db.get(rotation_id)
            if rotation.terminal or should_stop():
                return rotation
            delay = (rotation.next_attempt_at - self.clock()).total_seconds()
            if delay > 0:
                if not follow:
                    return rotation
                self.sleep(min(delay, 5.0))
                continue
            try:
                step = self._advance_while_due(rotation)
            except LeaseHeld as exc:
                if not follow:
                    raise
                on_blocked(str(exc))
                self.sleep(1.0)
                continue
            on_step(step)
            if step.held or (step.waiting_until and step.rotation.state.startswith("awaiting_")):
                return step.rotation  # a person must act; following would only wait on them

    def _advance_while_due(self, rotation: Rotation) -> Step:
        self.db.acquire_lease(rotation.secret, self.owner, self.lease_ttl)
        try:
            # re-read under the lease: another process may have moved it on meanwhile
            rotation = self.db.get(rotation.id)
            if rotation.terminal or rotation.next_attempt_at > self.clock():
                return Step(rotation, "nothing due", waiting_until=rotation.next_attempt_at)
            started = time.monotonic()
            step = self.engine.advance(rotation)
            return replace(step, step=rotation.state, seconds=time.monotonic() - started)
        finally:
            self.db.release_lease(rotation.secret, self.owner)
