"""The engine's unit of work: what the steps of one turn record, written in one transaction
under the lease's fence at the next side effect or at the end of the turn.

Every write of a rotation goes through here — a move, a field, an audit event, the notifications
and the key left alive that come with them, and a step's failed try (the error path) — so each
is checked against the same fence, passed explicitly: the lease the runner holds for the turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rotator import log
from rotator.engine.steps import Step
from rotator.runtime import failpoints
from rotator.state.db import Attempt, Change, StateDB
from rotator.state.leases import Fence
from rotator.state.schema import Rotation

_log = log.get(__name__)


class Journal:
    def __init__(self, *, db: StateDB, actor: str, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.actor = actor
        self.clock = clock
        self.fence: Fence | None = None
        """The lease every write is made under (set by the runner for its turn); None outside a lease."""
        self._pending: dict[str, tuple[Rotation, list[Change]]] = {}
        """Changes recorded and not yet written, per rotation; a journal serves one thread."""

    def record(
        self,
        rot: Rotation,
        *,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        outbox: Sequence[dict[str, Any]] = (),
        leftover: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Rotation:
        """Apply `fields` to `rot` now and keep them, with their audit event, for the next write.

        Writing waits for the next call that changes the world (`before_side_effect`) or the
        end of the runner's turn (`flush`): the moves between two such calls are one transaction,
        and what a crash loses is only what the step can redo (every step is idempotent).
        """
        change = Change(
            dict(fields), rot.state, self.clock(), event=event, detail=detail, outbox=outbox, leftover=leftover
        )
        return self._keep(rot, change)

    def audit(self, rot: Rotation, event: str, detail: dict[str, Any]) -> None:
        """An audit event of `rot` that changes none of its fields; written with the next write."""
        self._keep(rot, Change({}, rot.state, self.clock(), event=event, detail=detail, moves=False))

    def attempt(self, rot: Rotation, step: str, *, error: str, next_attempt_at: datetime | None) -> None:
        """A failed try of `step`, counted with the next write (and, when it is tried again, the
        rotation's next look at `next_attempt_at`)."""
        fields = {} if next_attempt_at is None else {"next_attempt_at": next_attempt_at}
        self._keep(
            rot, Change(fields, rot.state, self.clock(), attempt=Attempt(step, error, next_attempt_at), moves=False)
        )

    def _keep(self, rot: Rotation, change: Change) -> Rotation:
        """`change` applied to `rot` now (what the step goes on with) and kept for the next write."""
        for name, value in change.fields.items():
            setattr(rot, name, value)
        self._pending.setdefault(rot.id, (rot, []))[1].append(change)
        return rot

    def flush(self, rot: Rotation) -> bool:
        """Write what was recorded for `rot` in one fenced transaction; False when there was nothing.

        Raises LeaseLost (writing nothing) when the lease is no longer this process's.
        """
        recorded, changes = self._pending.pop(rot.id, (rot, []))
        if not changes:
            return False
        self.db.apply(recorded, changes, actor=self.actor, fence=self.fence)
        for change in changes:
            if change.event is not None and (state := change.fields.get("state")) is not None:
                # said once it is on record: a move whose write failed is redone, and said then
                detail = change.detail or {}
                _log.info(change.event, rotation_id=recorded.id, secret=recorded.secret, state=state, **detail)
        for change in changes:
            if (state := change.fields.get("state")) is not None:
                failpoints.hit(f"after:{state}")
        return True

    def before_side_effect(self, rot: Rotation) -> None:
        """Before a call that changes the world and cannot itself be fenced (create, stage,
        promote, revoke, a hook): what led to it is written, and the lease is proven ours with
        half its TTL to run — a write's own fence check counts only if its answer came in time."""
        self.flush(rot)
        self.db.check_fence(self.fence)

    def write(self, step: Step) -> Rotation:
        """Write what `step` recorded now (a person's action outside a runner's turn); its rotation."""
        self.flush(step.rotation)
        return step.rotation

    def forget(self, rotation_id: str) -> None:
        """Drop what was recorded and not written (the lease was lost: a stale writer writes nothing)."""
        self._pending.pop(rotation_id, None)
