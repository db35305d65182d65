"""The state database as the engine writes it: rotations created and changed, one transaction
per change with everything that comes with it, and the progress of each step.

Each method is one short transaction: nothing holds a connection while a rotation waits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from rotator.errors import ActiveRotationExists, StateBusy
from rotator.lifecycle import State
from rotator.state.audit import event_of
from rotator.state.connection import for_dialect
from rotator.state.leases import Fence
from rotator.state.outbox import Outbox
from rotator.state.rotations import Rotations, read_rotation
from rotator.state.schema import AuditEvent, LeftoverKey, Rotation, StepProgress

_ROTATIONS = cast(Table, Rotation.__table__)
_STEPS = cast(Table, StepProgress.__table__)
# the statements of every write, built once: SQLAlchemy makes a statement's cache key (a walk of
# it) each time a new one is executed, and a rotation writes a dozen times
_ROTATION_INSERT = _ROTATIONS.insert()
_ROTATION_SET = _ROTATIONS.update().where(_ROTATIONS.c.id == bindparam("of_rotation"))
"""Given the rotation's new column values as parameters."""
_LEFTOVER_INSERT = cast(Table, LeftoverKey.__table__).insert()


def _steps_finished(insert: Any) -> Any:
    statement = insert(_STEPS)
    return statement.on_conflict_do_update(
        index_elements=[_STEPS.c.rotation_id, _STEPS.c.step],
        set_={"finished_at": statement.excluded.finished_at, "next_attempt_at": None},
    )


# a retried step's row exists (its attempts counted): it is marked finished; any other is added so
_STEPS_FINISHED = {"postgresql": _steps_finished(postgresql.insert), "sqlite": _steps_finished(sqlite.insert)}


def _step_attempted(insert: Any) -> Any:
    statement = insert(_STEPS)
    return statement.on_conflict_do_update(
        index_elements=[_STEPS.c.rotation_id, _STEPS.c.step],
        set_={
            "attempts": _STEPS.c.attempts + 1,
            "last_error": statement.excluded.last_error,
            "next_attempt_at": statement.excluded.next_attempt_at,
        },
    )


# a step's first failed try adds its row (started then); a later one counts on it
_STEP_ATTEMPTED = {"postgresql": _step_attempted(postgresql.insert), "sqlite": _step_attempted(sqlite.insert)}


@dataclass
class Change:
    """One recorded change of a rotation: fields, and the audit event, notifications and key left
    alive that come with it. The engine records several and writes them in one transaction."""

    fields: dict[str, Any]
    from_state: str
    at: datetime
    event: str | None = None
    detail: dict[str, Any] | None = None
    outbox: Sequence[dict[str, Any]] = ()
    leftover: dict[str, Any] | None = None
    moves: bool = True
    """False for an audit event that records no state change (from/to states left empty)."""
    attempt: Attempt | None = None
    """A failed try of a step, counted in its progress (the retry policy reads the count)."""


@dataclass(frozen=True)
class Attempt:
    step: str
    error: str
    next_attempt_at: datetime | None
    """When the step is tried again; None when it was given up."""


class StateDB(Rotations, Outbox):
    """The state database: rotations and their step progress, written here, each change in one
    transaction with its audit event, notifications and leftover key, under the rotation's fence;
    reading (state/rotations.py), leases (leases.py), the audit chain (audit.py) and the outbox
    (outbox.py) are the concerns it is built from."""

    def create_rotation(
        self, *, secret: str, provider: str, policy: str, trigger: str, reason: str, actor: str
    ) -> Rotation:
        """Insert a rotation in `requested`; raise ActiveRotationExists if one is in flight.

        Nothing is fenced here, so a wait the bounds cut short (another process stuck holding
        the audit chain's lock until the server ends it) is tried again, twice."""
        for attempt in range(3):
            try:
                return self._create_rotation(
                    secret=secret, provider=provider, policy=policy, trigger=trigger, reason=reason, actor=actor
                )
            except StateBusy:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _create_rotation(
        self, *, secret: str, provider: str, policy: str, trigger: str, reason: str, actor: str
    ) -> Rotation:
        now = self.clock()
        values = {
            "id": str(uuid.uuid4()),
            "secret": secret,
            "provider": provider,
            "policy": policy,
            "state": State.REQUESTED,
            "trigger": trigger,
            "reason": reason,
            "started_by": actor,
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": now,
            "waiting_for": "",
        }
        rotation = Rotation(**values)
        try:
            with self._tx() as conn:
                conn.execute(_ROTATION_INSERT, values)
                self._append(
                    conn,
                    event_of(
                        rotation,
                        actor,
                        "requested",
                        None,
                        State.REQUESTED,
                        {"trigger": trigger, "reason": reason, "policy": policy},
                    ),
                )
        except IntegrityError:
            existing = self.active_for(secret)
            if existing is None:
                raise
            raise ActiveRotationExists(secret=secret, rotation_id=existing.id, state=existing.state) from None
        return rotation

    def update(
        self,
        rotation: Rotation,
        *,
        actor: str,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        outbox: Sequence[dict[str, Any]] = (),
        leftover: dict[str, Any] | None = None,
        fence: Fence | None = None,
        **fields: Any,
    ) -> Rotation:
        """Write fields (and a state change) of a rotation, its audit event, the notifications that
        tell of it (`outbox`) and a key it leaves alive (`leftover`), all in one transaction, under
        `fence` when given."""
        change = Change(
            fields, rotation.state, self.clock(), event=event, detail=detail, outbox=outbox, leftover=leftover
        )
        with self._tx() as conn:
            self._write(conn, rotation, [change], actor=actor, fence=fence)
            fresh = read_rotation(conn, rotation.id)
        assert fresh is not None
        return fresh

    def apply(self, rotation: Rotation, changes: Sequence[Change], *, actor: str, fence: Fence | None = None) -> None:
        """Write `changes` of a rotation, in order, in one transaction under the lease `fence`
        names (LeaseLost, writing nothing, when it is no longer held); nothing is read back."""
        with self._tx() as conn:
            self._write(conn, rotation, changes, actor=actor, fence=fence)

    def _write(
        self, conn: Connection, rotation: Rotation, changes: Sequence[Change], *, actor: str, fence: Fence | None
    ) -> None:
        """The changes, then the fence: checked last, after every lock the transaction takes (the
        audit chain's above all), by the database's clock, so a write that waited is judged when
        it is made; the commit follows at once."""
        now = self.clock()
        fields: dict[str, Any] = {}
        for change in changes:
            fields.update(change.fields)
        if fields:
            fields.setdefault("updated_at", now)
            conn.execute(_ROTATION_SET, {"of_rotation": rotation.id, **fields})
        events: list[AuditEvent] = []
        finished: dict[str, datetime] = {}
        for change in changes:
            self._add_outbox(conn, change.outbox, now)
            if change.attempt is not None:
                self._count_attempt(conn, rotation.id, change.attempt, now)
            if change.leftover is not None:
                conn.execute(
                    _LEFTOVER_INSERT,
                    {
                        "secret": rotation.secret,
                        "provider": rotation.provider,
                        "rotation_id": rotation.id,
                        "recorded_at": change.at,
                        **change.leftover,
                    },
                )
            to_state = change.fields.get("state")
            if change.event is not None:
                from_state = change.from_state if change.moves else None
                events.append(
                    event_of(rotation, actor, change.event, from_state, to_state, change.detail or {}, at=change.at)
                )
            if to_state is not None and to_state != change.from_state:
                finished[change.from_state] = change.at
        if finished:
            self._finish_steps(conn, rotation.id, finished)
        if events:
            self._append(conn, *events, fence=fence)
        else:
            self._check_fence(conn, fence)

    # step progress ---------------------------------------------------------------------------

    def step(self, rotation_id: str, step: str) -> StepProgress | None:
        with self.session() as s:
            return s.get(StepProgress, (rotation_id, step))

    @staticmethod
    def _count_attempt(conn: Connection, rotation_id: str, attempt: Attempt, now: datetime) -> None:
        row = {
            "rotation_id": rotation_id,
            "step": attempt.step,
            "started_at": now,
            "attempts": 1,
            "last_error": attempt.error,
            "next_attempt_at": attempt.next_attempt_at,
        }
        conn.execute(for_dialect(conn, _STEP_ATTEMPTED), row)

    def steps(self, rotation_id: str) -> Sequence[StepProgress]:
        with self.session() as s:
            return s.scalars(
                select(StepProgress).where(StepProgress.rotation_id == rotation_id).order_by(StepProgress.started_at)
            ).all()

    @staticmethod
    def _finish_steps(conn: Connection, rotation_id: str, finished: dict[str, datetime]) -> None:
        """Mark steps finished (step → when): rows of retried steps exist, the others are added."""
        conn.execute(
            for_dialect(conn, _STEPS_FINISHED),
            [
                {"rotation_id": rotation_id, "step": step, "started_at": at, "attempts": 1, "finished_at": at}
                for step, at in finished.items()
            ],
        )
