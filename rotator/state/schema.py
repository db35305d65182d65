"""Tables. No column ever holds key material: keys are named by provider id and fingerprint.

The schema itself is made and changed only by migrations (`state/migrations`): a change here
without a migration beside it breaks every existing database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from rotator.lifecycle import TERMINAL, State


class UtcDateTime(TypeDecorator[datetime]):
    """SQLite drops time zones; every timestamp is stored and returned as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class StateColumn(TypeDecorator[State]):
    """A rotation's state as the text the column has always held, read back as a `State`."""

    impl = String(30)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else State(value).value  # an unknown state is refused, not stored

    def process_result_value(self, value: str | None, dialect: Any) -> State | None:
        return None if value is None else State(value)


class Base(DeclarativeBase):
    pass


IN_FLIGHT_SQL = "state NOT IN ('completed', 'failed')"
"""lifecycle.TERMINAL spelt out (a test holds them together): partial indexes are DDL, fixed by
their migrations, and SQLite uses a partial index only for a query that states its condition
in the same literal words, so the queries over rotations in flight use `IN_FLIGHT` too."""
IN_FLIGHT = text(IN_FLIGHT_SQL)


class Rotation(Base):
    __tablename__ = "rotations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    secret: Mapped[str] = mapped_column(String(200), index=True)
    provider: Mapped[str] = mapped_column(String(100))
    policy: Mapped[str] = mapped_column(String(100))
    state: Mapped[State] = mapped_column(StateColumn)
    trigger: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")
    started_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    waiting_for: Mapped[str] = mapped_column(Text, default="")
    waiting_since: Mapped[datetime | None] = mapped_column(UtcDateTime)

    old_version: Mapped[str | None] = mapped_column(String(100))
    old_key_id: Mapped[str | None] = mapped_column(String(200))
    old_fingerprint: Mapped[str | None] = mapped_column(String(40))
    new_key_id: Mapped[str | None] = mapped_column(String(200))
    new_fingerprint: Mapped[str | None] = mapped_column(String(40))
    create_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    staged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoke_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)

    old_identity: Mapped[dict[str, str] | None] = mapped_column(JSON)
    gate_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What the cutover gate learnt so far: consumers reloaded/confirmed, usage counters."""
    """What the old key belongs to (account id, team id, form ids): never key material."""
    held_reason: Mapped[str | None] = mapped_column(Text)
    held_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_reason: Mapped[str | None] = mapped_column(Text)
    old_key_proof: Mapped[str | None] = mapped_column(String(80))
    """How the old key was shown to be the key `old_key_id` names; nothing is revoked without it."""

    __table_args__ = (
        # one rotation in flight per secret, enforced by the database itself
        Index(
            "one_active_rotation_per_secret",
            "secret",
            unique=True,
            sqlite_where=IN_FLIGHT,
            postgresql_where=IN_FLIGHT,
        ),
        # what claim_due searches: rotations in flight by when to look again, not the history
        Index("ix_rotations_in_flight", "next_attempt_at", sqlite_where=IN_FLIGHT, postgresql_where=IN_FLIGHT),
    )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


class StepProgress(Base):
    """One row per (rotation, step): kopf-style progress, so retries and delays survive restarts."""

    __tablename__ = "step_progress"

    rotation_id: Mapped[str] = mapped_column(ForeignKey("rotations.id"), primary_key=True)
    step: Mapped[str] = mapped_column(String(30), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rotation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    secret: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(60))
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str | None] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    """Who the actor says they are beyond their uid (SUDO_USER): a claim, not a proof."""
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 over this row and `prev_hash` (state/chain.py)."""


class OutboxEntry(Base):
    """A notification to deliver, written in the same transaction as the state change it tells of."""

    __tablename__ = "notification_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    target: Mapped[str] = mapped_column(String(16))
    """Which notification target: a hash of its URL (the URL itself may be a secret)."""
    kind: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    gave_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class LeftoverKey(Base):
    """A key a rotation left alive (aborted at the gate, a rollback that could not finish): shown
    by `status`, reported by `reconcile` until it is revoked or a person acknowledges it."""

    __tablename__ = "leftover_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    secret: Mapped[str] = mapped_column(String(200), index=True)
    provider: Mapped[str] = mapped_column(String(100))
    rotation_id: Mapped[str | None] = mapped_column(String(36))
    key_id: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(40))
    why: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)


class Lease(Base):
    """Who may advance a secret right now; expires so a dead holder does not block forever."""

    __tablename__ = "leases"

    secret: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    """The fencing token: grows with each acquisition; every write of a rotation checks it."""


# The audit trail's append-only triggers (UPDATE, DELETE, and on PostgreSQL TRUNCATE) are made by
# the migrations (state/migrations), which own the whole schema; these classes only map it.
