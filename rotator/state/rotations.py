"""Reading rotations: one by id (or an id's beginning), those in flight, a secret's history, and
the fleet-wide answers planning and /metrics need in one query each."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    String,
    Table,
    bindparam,
    func,
    select,
    type_coerce,
)

from rotator.errors import RotationError
from rotator.lifecycle import TERMINAL, State
from rotator.state.connection import Database, aware
from rotator.state.schema import IN_FLIGHT, AuditEvent, Rotation

_ROTATIONS = cast(Table, Rotation.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
_ROTATION_BY_ID = select(_ROTATIONS).where(_ROTATIONS.c.id == bindparam("id"))
_MADE_BY_ROTATOR = (
    select(_ROTATIONS.c.id)
    .where(
        _ROTATIONS.c.secret == bindparam("secret"),
        _ROTATIONS.c.state == State.COMPLETED.value,
        _ROTATIONS.c.new_key_id == bindparam("key_id"),
        _ROTATIONS.c.new_fingerprint == bindparam("fingerprint"),
    )
    .limit(1)
)
_ADOPTIONS = select(_AUDIT.c.actor, _AUDIT.c.detail).where(
    _AUDIT.c.secret == bindparam("secret"), _AUDIT.c.event == bindparam("event")
)


def read_rotation(conn: Connection, rotation_id: str) -> Rotation | None:
    """The rotation row as a (detached) Rotation, read without the ORM."""
    row = conn.execute(_ROTATION_BY_ID, {"id": rotation_id}).first()
    return None if row is None else Rotation(**row._mapping)


class Rotations(Database):
    """What the commands, the daemon's planning and /metrics ask of the rotations table."""

    def get(self, rotation_id: str) -> Rotation:
        rotation = self.find(rotation_id)
        if rotation is None:
            raise RotationError(f"no rotation with id {rotation_id!r}")
        return rotation

    def find(self, rotation_id: str) -> Rotation | None:
        with self._tx() as conn:
            return read_rotation(conn, rotation_id)

    def ids_starting(self, prefix: str, limit: int = 3) -> list[str]:
        """Rotation ids that begin with `prefix` (the short ids commands print), at most `limit`."""
        if not re.fullmatch(r"[0-9a-fA-F-]{1,36}", prefix):
            return []
        with self._tx() as conn:
            found = conn.execute(select(_ROTATIONS.c.id).where(_ROTATIONS.c.id.startswith(prefix.lower())).limit(limit))
            return [row.id for row in found]

    def rotations(self, ids: Sequence[str]) -> Sequence[Rotation]:
        """The rotations with these ids, in one query."""
        with self.session() as s:
            return s.scalars(select(Rotation).where(Rotation.id.in_(ids))).all() if ids else []

    def active_for(self, secret: str) -> Rotation | None:
        with self.session() as s:
            return s.scalars(select(Rotation).where(Rotation.secret == secret, Rotation.state.not_in(TERMINAL))).first()

    def active(self) -> Sequence[Rotation]:
        with self.session() as s:
            return s.scalars(select(Rotation).where(IN_FLIGHT).order_by(Rotation.created_at)).all()

    def rotations_of(self, secret: str) -> Sequence[Rotation]:
        with self.session() as s:
            return s.scalars(select(Rotation).where(Rotation.secret == secret).order_by(Rotation.created_at)).all()

    def counts(self) -> list[tuple[str, str, int]]:
        """(provider instance, state, number of rotations) over the whole table."""
        with self.session() as s:
            rows = s.execute(
                select(Rotation.provider, Rotation.state, func.count()).group_by(Rotation.provider, Rotation.state)
            ).all()
        return [(str(p), str(st), int(n)) for p, st, n in rows]

    def attention(self) -> tuple[dict[str, int], datetime | None]:
        """Held rotations per provider instance, and since when the longest-waiting person's action waits."""
        with self.session() as s:
            held = s.execute(
                select(Rotation.provider, func.count())
                .where(Rotation.state.not_in(TERMINAL), Rotation.held_reason.is_not(None))
                .group_by(Rotation.provider)
            ).all()
            oldest = s.scalar(
                select(func.min(Rotation.waiting_since)).where(
                    Rotation.state.in_((State.AWAITING_NEW_KEY, State.AWAITING_REVOCATION))
                )
            )
        return {str(p): int(n) for p, n in held}, oldest

    def rotations_with_fingerprint(self, fingerprint: str) -> Sequence[Rotation]:
        """Rotations that made or replaced the key with this fingerprint (a leaked key's trail)."""
        with self.session() as s:
            return s.scalars(
                select(Rotation).where(
                    (Rotation.old_fingerprint == fingerprint) | (Rotation.new_fingerprint == fingerprint)
                )
            ).all()

    def secrets_with_fingerprints(self) -> set[str]:
        """Secrets for which some key's fingerprint is on record."""
        with self.session() as s:
            return set(
                s.scalars(
                    select(Rotation.secret)
                    .where(Rotation.old_fingerprint.is_not(None) | Rotation.new_fingerprint.is_not(None))
                    .distinct()
                )
            )

    def failures_since_success(self, secret: str) -> tuple[int, datetime | None]:
        """How many rotations of `secret` failed in a row since its last completed one, and when the last ended."""
        with self.session() as s:
            recent = s.scalars(
                select(Rotation).where(Rotation.secret == secret).order_by(Rotation.created_at.desc()).limit(20)
            ).all()
        failed = 0
        for rotation in recent:
            if rotation.state != State.FAILED:
                break
            failed += 1
        return failed, (recent[0].finished_at if failed else None)

    def last_completed_at(self) -> dict[str, datetime]:
        """When each secret's last rotation completed, in one query (a tick plans the whole fleet)."""
        # the raw column, parsed by datetime.fromisoformat: SQLAlchemy's SQLite date parsing took
        # 15 µs a row, most of a 100,000-secret daemon's first tick
        table = _ROTATIONS.c
        with self.session() as s:
            newest: Any = func.max(table.finished_at)
            if s.get_bind().dialect.name == "sqlite":
                newest = type_coerce(newest, String)
            # Core, not the ORM's row loading (a quarter of the time at 100,000 rows)
            rows = (
                s.connection()
                .execute(
                    select(table.secret, newest)
                    .where(table.state == State.COMPLETED, table.finished_at.is_not(None))
                    .group_by(table.secret)
                )
                .all()
            )
        return {str(secret): aware(finished) for secret, finished in rows if finished is not None}

    def finished_since(self, since: datetime) -> dict[str, datetime]:
        """Secrets whose rotations ended (completed or failed) after `since`, with the newest end."""
        with self.session() as s:
            # no GROUP BY: SQLite would walk the secret index instead of the finished_at range
            rows = s.execute(select(Rotation.secret, Rotation.finished_at).where(Rotation.finished_at > since)).all()
        newest: dict[str, datetime] = {}
        for secret, finished in rows:
            if finished is not None and (secret not in newest or finished > newest[secret]):
                newest[str(secret)] = finished
        return newest

    def key_on_record(self, secret: str, key_id: str, fingerprint: str, *, adopted: str) -> str | None:
        """How rotator knows `key_id` is the key with `fingerprint` of `secret`, if it does: a
        completed rotation of the secret created it, or someone adopted it (`adopted` events)."""
        with self._tx() as conn:
            made = conn.execute(
                _MADE_BY_ROTATOR, {"secret": secret, "key_id": key_id, "fingerprint": fingerprint}
            ).scalar()
            if made is not None:
                return f"recorded: created by rotation {made}"
            for who, detail in conn.execute(_ADOPTIONS, {"secret": secret, "event": adopted}):
                if detail.get("key_id") == key_id and detail.get("fingerprint") == fingerprint:
                    return f"adopted by {who}"
        return None

    def completed_since(self, secret: str, since: datetime | None) -> bool:
        """Whether a rotation of `secret` completed after `since` (ever, for None)."""
        query = select(Rotation.id).where(Rotation.secret == secret, Rotation.state == State.COMPLETED)
        if since is not None:
            query = query.where(Rotation.finished_at > since)
        with self.session() as s:
            return s.scalars(query.limit(1)).first() is not None

    def last_completed(self, secret: str) -> Rotation | None:
        with self.session() as s:
            return s.scalars(
                select(Rotation)
                .where(Rotation.secret == secret, Rotation.state == State.COMPLETED)
                .order_by(Rotation.finished_at.desc())
            ).first()
