"""Drives rotations step by step under the secret's lease, for the CLI and the daemon.

The lease is held only while a step runs, renewed meanwhile, and every write is fenced by it; a
rotation that must wait releases it, so whoever comes first when the time comes (this process,
a daemon, another replica) goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from rotator import log
from rotator.engine.rotation import Engine
from rotator.engine.steps import Step
from rotator.errors import LeaseHeld, LeaseLost
from rotator.lifecycle import WITH_OPERATOR
from rotator.state.clock import utcnow
from rotator.state.db import StateDB
from rotator.state.identity import process_identity
from rotator.state.leases import Fence
from rotator.state.schema import Rotation

_log = log.get(__name__)
T = TypeVar("T")


class Runner:
    def __init__(
        self,
        *,
        db: StateDB,
        engine: Engine,
        lease_ttl: timedelta,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.db = db
        self.engine = engine
        self.lease_ttl = lease_ttl
        self.owner = process_identity()
        self.clock = clock
        self.sleep = sleep

    def run(
        self,
        rotation: Rotation | str,
        *,
        follow: bool,
        on_step: Callable[[Step], None] = lambda _: None,
        on_blocked: Callable[[str], None] = lambda _: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Rotation:
        """Advance a rotation until it ends, is held, or (without `follow`) has to wait.

        With `follow`, waits (sleeping, lease released) until each next attempt is due. The
        rotation is given by id, or as this process has just written it (no need to read it back).
        """
        if isinstance(rotation, str):
            rotation = self.db.get(rotation)
        rotation_id = rotation.id
        while True:
            if rotation.terminal or should_stop():
                return rotation
            delay = (rotation.next_attempt_at - self.clock()).total_seconds()
            if delay > 0:
                if not follow:
                    return rotation
                self.sleep(min(delay, 5.0))
                rotation = self.db.get(rotation_id)  # another process may have moved it meanwhile
                continue
            try:
                step = self._advance_while_due(rotation, on_step, should_stop)
            except LeaseHeld as exc:
                if not follow:
                    raise
                on_blocked(str(exc))
                self.sleep(1.0)
                rotation = self.db.get(rotation_id)
                continue
            if step.held or (step.waiting_until and step.rotation.state in WITH_OPERATOR):
                return step.rotation  # a person must act; following would only wait on them
            rotation = step.rotation  # as this process wrote it, under the lease it just let go

    def act(self, rotation: Rotation, action: Callable[[Rotation], Rotation]) -> Rotation:
        """Run a person's action (supply, release, abort) on the rotation as it is now, under the
        same lease, renewal and fencing as a step (see `_under_lease`); errors pass through."""

        def acted(fresh: Rotation) -> Rotation:
            done = action(fresh)
            self.engine.flush(done)
            return done

        return self._under_lease(rotation, acted)

    def advance_next(
        self,
        *,
        due_by: datetime,
        urgent: Collection[str] = (),
        limits: Mapping[str, int] | None = None,
        handled: set[str],
        on_step: Callable[[Step], None] = lambda _: None,
        on_begin: Callable[[Rotation], None] = lambda _: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Rotation | None:
        """Claim the most urgent rotation due by `due_by` that no one holds (StateDB.claim_due) and
        advance it like `run` without `follow`; None when nothing is left to claim.

        `handled` holds the ids this caller advanced (this tick) that are due still: they are passed
        over. The one claimed now is added before it is advanced and taken out once it no longer is
        due, so one that fails without moving is not claimed again and again.
        """
        claimed = self.db.claim_due(
            self.owner, self.lease_ttl, due_by=due_by, urgent=urgent, limits=limits, skip=handled
        )
        if claimed is None:
            return None
        generation, fresh = claimed
        handled.add(fresh.id)
        fence = Fence(fresh.secret, self.owner, generation)
        advanced = self._holding(fence, fresh, lambda r: self._steps(r, on_step, should_stop, on_begin)).rotation
        if advanced.terminal or advanced.next_attempt_at > due_by:
            handled.discard(advanced.id)
        return advanced

    def _advance_while_due(
        self, rotation: Rotation, on_step: Callable[[Step], None], should_stop: Callable[[], bool]
    ) -> Step:
        return self._under_lease(rotation, lambda fresh: self._steps(fresh, on_step, should_stop))

    def _steps(
        self,
        fresh: Rotation,
        on_step: Callable[[Step], None],
        should_stop: Callable[[], bool],
        on_begin: Callable[[Rotation], None] = lambda _: None,
    ) -> Step:
        """The steps that are due, one after another under one lease; what they recorded is
        written before each side effect and once at the end (Engine.record). `on_begin` is told
        as each step begins, `on_step` as it ends."""
        last = Step(fresh, "nothing due", waiting_until=fresh.next_attempt_at)
        while not fresh.terminal and fresh.next_attempt_at <= self.clock() and not should_stop():
            on_begin(fresh)
            state, started = fresh.state, time.monotonic()
            done = self.engine.advance(fresh, defer=True)
            last = replace(done, step=state, seconds=time.monotonic() - started)
            on_step(last)
            fresh = done.rotation
            if done.held or done.waiting_until is not None:
                break
        self.engine.flush(fresh)
        return last

    def _under_lease(self, rotation: Rotation, work: Callable[[Rotation], T]) -> T:
        """`work` on the rotation, re-read under the secret's lease, fenced and kept alive.

        Guarantees: the lease is taken (or LeaseHeld raised) before anything is read or done;
        it is renewed every third of its TTL while the work runs; every write of the rotation
        checks the lease's generation in the same transaction, so if the lease was lost (this
        process paused, partitioned, slow) the work stops with LeaseLost at its next write or
        side effect, and what it recorded and did not write is dropped; the lease is let go
        when the work returns, whatever happened.
        """
        generation, fresh = self.db.lease_and_read(rotation.id, rotation.secret, self.owner, self.lease_ttl)
        return self._holding(Fence(rotation.secret, self.owner, generation), fresh, work)

    def _holding(self, fence: Fence, fresh: Rotation, work: Callable[[Rotation], T]) -> T:
        """`work` on `fresh`, read under the lease `fence` names: renewed, fenced, let go at the end."""
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_alive, args=(fence, stop), daemon=True, name="lease-keeper")
        keeper.start()
        self.engine.fence = fence
        try:
            return work(fresh)  # read under the lease: another process may have moved it on meanwhile
        finally:
            self.engine.fence = None
            self.engine.forget(fresh.id)
            stop.set()
            keeper.join()
            self.db.release_lease(fence.secret, self.owner)

    def _keep_alive(self, fence: Fence, stop: threading.Event) -> None:
        interval = max(self.lease_ttl.total_seconds() / 3, 0.05)
        while not stop.wait(interval):
            try:
                self.db.renew_lease(fence, self.lease_ttl)
            except LeaseLost:
                return  # the fence refuses this process's next write; nothing more to do here
            except Exception as exc:  # a database blip: the next renewal (or the fence) decides
                _log.warning("lease.renew_failed", secret=fence.secret, error=type(exc).__name__)
