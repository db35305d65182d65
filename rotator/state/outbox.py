"""The notification outbox and the keys left alive: what a rotation owes people after it moved."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    func,
    select,
    update,
)

from rotator.errors import RotationError
from rotator.state.audit import Audit
from rotator.state.connection import rowcount
from rotator.state.schema import AuditEvent, LeftoverKey, OutboxEntry

_OUTBOX_INSERT = cast(Table, OutboxEntry.__table__).insert()


class Outbox(Audit):
    """Notifications waiting to be delivered (written with the change they tell of), and keys
    rotations left alive until someone revokes or acknowledges them (audited)."""

    @staticmethod
    def _add_outbox(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> None:
        if rows:
            conn.execute(
                _OUTBOX_INSERT, [{"created_at": now, "next_attempt_at": now, "attempts": 0, **r} for r in rows]
            )

    def enqueue(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._tx() as conn:
            self._add_outbox(conn, rows, self.clock())

    def claim_outbox(self, *, limit: int, lease: timedelta) -> list[OutboxEntry]:
        """Due entries, each claimed for `lease` (a conditional update), so two processes rarely send one twice."""
        now = self.clock()
        with self.session() as s:
            due = s.scalars(
                select(OutboxEntry)
                .where(
                    OutboxEntry.delivered_at.is_(None),
                    OutboxEntry.gave_up_at.is_(None),
                    OutboxEntry.next_attempt_at <= now,
                )
                .order_by(OutboxEntry.id)
                .limit(limit)
            ).all()
        claimed = []
        for entry in due:
            with self.session() as s:
                won = rowcount(
                    s.execute(
                        update(OutboxEntry)
                        .where(OutboxEntry.id == entry.id, OutboxEntry.next_attempt_at == entry.next_attempt_at)
                        .values(next_attempt_at=now + lease, attempts=OutboxEntry.attempts + 1)
                    )
                )
            if won:
                entry.attempts += 1
                claimed.append(entry)
        return claimed

    def outbox_result(self, entry_id: int, *, error: str | None, retry_at: datetime | None) -> None:
        """Record a delivery: sent (no error), to be retried at `retry_at`, or given up."""
        now = self.clock()
        values: dict[str, Any] = {"last_error": error}
        if error is None:
            values["delivered_at"] = now
        elif retry_at is None:
            values["gave_up_at"] = now
        else:
            values["next_attempt_at"] = retry_at
        with self.session() as s:
            s.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id).values(**values))

    def outbox_counts(self) -> tuple[int, int]:
        """(entries waiting to be delivered, entries given up on)."""
        with self.session() as s:
            pending = s.scalar(
                select(func.count()).where(OutboxEntry.delivered_at.is_(None), OutboxEntry.gave_up_at.is_(None))
            )
            given_up = s.scalar(select(func.count()).where(OutboxEntry.gave_up_at.is_not(None)))
        return int(pending or 0), int(given_up or 0)

    def leftovers(self, secret: str | None = None) -> Sequence[LeftoverKey]:
        """Keys rotations left alive that nobody has revoked or acknowledged yet."""
        query = select(LeftoverKey).where(LeftoverKey.resolved_at.is_(None)).order_by(LeftoverKey.id)
        if secret is not None:
            query = query.where(LeftoverKey.secret == secret)
        with self.session() as s:
            return s.scalars(query).all()

    def resolve_leftover(self, leftover_id: int, *, resolution: str, actor: str) -> None:
        with self.session() as s:
            row = s.get(LeftoverKey, leftover_id)
            if row is None or row.resolved_at is not None:
                raise RotationError(f"no open leftover key {leftover_id}")
            row.resolved_at = self.clock()
            row.resolution = resolution
            s.flush()
            self._append(
                s.connection(),
                AuditEvent(
                    rotation_id=row.rotation_id,
                    secret=row.secret,
                    at=self.clock(),
                    actor=actor,
                    event="leftover.resolved",
                    detail={"key_id": row.key_id, "fingerprint": row.fingerprint, "resolution": resolution},
                ),
            )
