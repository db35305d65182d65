"""The audit trail: an append-only chain of events, each row hashed over its content and the
hash of the row before (state/chain.py), so a rewritten row is found by `rotator audit verify`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    select,
    text,
)

from rotator.state.chain import GENESIS, hash_of
from rotator.state.clock import utcnow
from rotator.state.leases import Fence, Leases
from rotator.state.schema import AuditEvent, Rotation

_AUDIT = cast(Table, AuditEvent.__table__)
_NEWEST_HASH = select(_AUDIT.c.hash).order_by(_AUDIT.c.id.desc()).limit(1)
_AUDIT_INSERT = _AUDIT.insert()
_AUDIT_LOCK = 7_406_118_002
"""PostgreSQL advisory lock taken by every transaction that appends to the audit chain."""
_AUDIT_LOCKED = text("SELECT pg_advisory_xact_lock(:key)")


class Audit(Leases):
    """The audit chain: rows appended under its lock, each hashed over the one before, and
    checked against the fence of the secret they tell of."""

    def audit(
        self,
        rotation: Rotation | None,
        *,
        secret: str,
        actor: str,
        event: str,
        detail: dict[str, Any] | None = None,
        fence: Fence | None = None,
    ) -> None:
        """An audit event on its own (an adoption, what reconcile found), under `fence` when given."""
        with self._tx() as conn:
            self._append(
                conn,
                AuditEvent(
                    rotation_id=rotation.id if rotation else None,
                    secret=secret,
                    at=self.clock(),
                    actor=actor,
                    event=event,
                    detail=detail or {},
                ),
                fence=fence,
            )

    def _append(self, conn: Connection, *rows: AuditEvent, fence: Fence | None = None) -> None:
        """Add `rows`, in order, to the audit chain: each hashed over its content and the hash of
        the row before it, the first over the newest row's. With `fence`, the lease it names
        is checked once the chain's lock is held. The caller commits right after.

        Appends are serialised (PostgreSQL: an advisory lock held to commit; SQLite: BEGIN
        IMMEDIATE), so the row read as newest is still the newest when these commit. The lock is
        taken last in a transaction and held for a few statements; a holder whose connection
        stalls keeps it only until the server ends its idle transaction (state/bounds.py), and
        a waiter gives up after lock_timeout, both well within a lease.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(_AUDIT_LOCKED, {"key": _AUDIT_LOCK})
        self._check_fence(conn, fence)
        table = _AUDIT
        prev = conn.execute(_NEWEST_HASH).scalar() or GENESIS
        values = []
        for row in rows:
            row.claimed_by = self.claimed_by
            row.prev_hash = prev
            row.hash = prev = hash_of(prev, row)
            values.append({column.key: getattr(row, column.key) for column in table.columns if column.key != "id"})
        conn.execute(_AUDIT_INSERT, values)

    def verify_audit(self) -> tuple[int, AuditEvent | None]:
        """Walk the chain: (rows checked, the first row whose hash or link does not match, or None)."""
        prev, checked = GENESIS, 0
        with self.session() as s:
            for row in s.scalars(select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)):
                expected = hash_of(prev, row)
                if row.prev_hash != prev or row.hash != expected:
                    return checked, row
                prev, checked = expected, checked + 1
        return checked, None

    def events(self, *, secret: str | None = None, rotation_id: str | None = None) -> Sequence[AuditEvent]:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if secret is not None:
            query = query.where(AuditEvent.secret == secret)
        if rotation_id is not None:
            query = query.where(AuditEvent.rotation_id == rotation_id)
        with self.session() as s:
            return s.scalars(query).all()


def event_of(
    rotation: Rotation,
    actor: str,
    event: str,
    from_state: str | None,
    to_state: str | None,
    detail: dict[str, Any],
    *,
    at: datetime | None = None,
) -> AuditEvent:
    return AuditEvent(
        rotation_id=rotation.id,
        secret=rotation.secret,
        at=at or utcnow(),
        actor=actor,
        event=event,
        from_state=from_state,
        to_state=to_state,
        detail=detail,
    )
