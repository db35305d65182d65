"""advance(rotation): one idempotent step of one rotation, through its provider and store.

The steps themselves are in api_steps.py (and handoff.py where a person makes the key); the
engine runs the one of the rotation's state, keeps what it records until it is written, and
decides what an error means: a temporary one schedules a retry (the rotation becomes a row with
a time to look again); a permanent one rolls back before promotion, and holds after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr

from rotator import log
from rotator.engine import api_steps, handoff, retry
from rotator.engine.journal import Journal
from rotator.engine.steps import Step, Target, payload
from rotator.errors import LeaseHeld, RotatorError
from rotator.lifecycle import TERMINAL, State, check
from rotator.settings.models import EngineSettings
from rotator.state.clock import utcnow
from rotator.state.db import StateDB
from rotator.state.schema import Rotation

_log = log.get(__name__)


class Engine(Journal):
    """Runs the step of a rotation's state; what the step records goes through the journal."""

    def __init__(
        self,
        *,
        db: StateDB,
        resolve: Callable[[Rotation], Target],
        settings: EngineSettings,
        actor: str,
        clock: Callable[[], datetime] = utcnow,
        notices: Callable[[str, dict[str, Any]], list[dict[str, Any]]] = lambda event, payload: [],
    ) -> None:
        super().__init__(db=db, actor=actor, clock=clock)
        self.notices = notices
        """Outbox rows for an event (notify.Notifier.rows); written with the state change they tell of."""
        self.resolve = resolve
        self.settings = settings

    def advance(self, rotation: Rotation, *, defer: bool = False) -> Step:
        """Run the step the rotation is in; never raises for errors of the rotation itself.

        What the step recorded is written before it returns, unless `defer`: then the caller
        writes it (`flush`) after running further steps under the same lease, as the runner does.
        """
        state = rotation.state
        if state in TERMINAL:
            return Step(rotation, state.value)
        bound = _log.bind(rotation_id=rotation.id, secret=rotation.secret, provider=rotation.provider, step=state.value)
        try:
            target = self.resolve(rotation)
            step = api_steps.HANDLERS[state](self, rotation, target)
        except LeaseHeld:
            self.forget(rotation.id)
            raise  # this process lost the secret's lease: stop, write nothing more (fencing)
        except RotatorError as exc:
            bound.warning("step.error", error=str(exc), temporary=exc.temporary)
            step = self._on_error(rotation, state, exc)
        if not defer:
            self.flush(step.rotation)
        return step

    # the steps -------------------------------------------------------------------------------

    def supply(self, rotation: Rotation, key: SecretStr) -> Rotation:
        """An operator hands over a new key; raise KeyRejected (the rotation keeps waiting) on a failed check."""
        supplied = handoff.supply(self, rotation, self.resolve(rotation), key)
        self.flush(supplied)
        return supplied

    def complete_if_old_key_dead(self, rot: Rotation, t: Target) -> Step | None:
        return api_steps.complete_if_old_key_dead(self, rot, t)

    # bookkeeping

    def move(
        self,
        rot: Rotation,
        to: State,
        *,
        event: str,
        detail: dict[str, Any] | None = None,
        leftover: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Step:
        """Move `rot` to `to`: fields, audit event, notifications and a key left alive, in one transaction."""
        check(rot.state, to)
        values = {
            "state": to,
            "next_attempt_at": self.clock(),
            "waiting_for": "",
            "held_reason": None,
            "held_since": None,
            **fields,
        }
        values["waiting_since"] = self.clock() if values["waiting_for"] else None
        said = payload(rot, detail or {}, state=to.value, failed_reason=values.get("failed_reason"))
        rot = self.record(
            rot, event=event, detail=detail, outbox=self.notices(event, said), leftover=leftover, **values
        )
        return Step(rot, event)

    def wait(self, rot: Rotation, until: datetime, why: str) -> Step:
        if rot.waiting_for != why:
            self.audit(rot, "waiting", {"state": rot.state, "for": why})
        since = rot.waiting_since if rot.waiting_for == why and rot.waiting_since else self.clock()
        rot = self.record(rot, next_attempt_at=until, waiting_for=why, waiting_since=since)
        return Step(rot, why, waiting_until=until)

    def hold(self, rot: Rotation, reason: str, *, retry: timedelta | None = None) -> Step:
        now = self.clock()
        news = rot.held_reason != reason
        if news:
            _log.error("rotation.held", rotation_id=rot.id, secret=rot.secret, state=rot.state, reason=reason)
        until = now + (retry or self.settings.hold_interval)
        rot = self.record(
            rot,
            event="rotation.held" if news else None,
            detail={"state": rot.state, "reason": reason},
            outbox=self.notices("rotation.held", payload(rot, {"reason": reason})) if news else (),
            held_reason=reason,
            held_since=rot.held_since or now,
            next_attempt_at=until,
            waiting_for=f"held: {reason}",
        )
        return Step(rot, reason, waiting_until=until, held=True)

    def _on_error(self, rot: Rotation, state: State, exc: RotatorError) -> Step:
        """A step failed: try it again later (engine/retry.py), or give up as its state says."""
        self.flush(rot)  # what the step did before it failed (an intent, a created key) stands
        now = self.clock()
        progress = self.db.step(rot.id, state.value)
        until = retry.retry_at(
            exc,
            attempts=progress.attempts if progress else 0,
            failing_since=progress.started_at if progress else now,
            now=now,
            settings=self.settings,
        )
        self.attempt(rot, state.value, error=str(exc), next_attempt_at=until)
        if until is not None:
            return Step(rot, f"retrying {state.value}: {exc}", waiting_until=until)
        then = retry.giving_up(state)
        if then is retry.GiveUp.FAIL:
            # cleanup cannot finish (a permanent error, or temporary ones past the deadline): the old
            # key is still current, so the rotation rests as failed, and says what it left behind
            left = {"new_key_id": rot.new_key_id, "pending": rot.id} if rot.new_key_id or rot.staged_at else {}
            leftover = None
            if rot.new_key_id or rot.new_fingerprint:
                leftover = {
                    "key_id": rot.new_key_id,
                    "fingerprint": rot.new_fingerprint,
                    "why": f"the rollback could not revoke the new key: {exc}",
                }
            return self.move(
                rot,
                State.FAILED,
                event="rotation.failed",
                detail={"reason": rot.failed_reason, "cleanup_error": str(exc), **left},
                leftover=leftover,
                failed_reason=f"{rot.failed_reason}; rollback incomplete: {exc}",
                finished_at=now,
            )
        if then is retry.GiveUp.ROLL_BACK:
            return self.move(
                rot,
                State.ROLLING_BACK,
                event="step.failed",
                detail={"step": state.value, "error": str(exc)},
                failed_reason=str(exc),
            )
        return self.hold(rot, f"{state.value} failed: {exc}")
