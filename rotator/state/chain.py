"""The audit trail's hash chain: each row's hash covers its content and the hash of the row before.

A row rewritten, removed or inserted out of order breaks the chain from that row on, so
`rotator audit verify` can name the first row that does not match — on SQLite too, where the
file's owner can drop any trigger. The content is hashed in a canonical JSON form, so the
same row hashes the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Protocol

GENESIS = "0" * 64


def canonical_time(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(
    prev_hash: str,
    *,
    rotation_id: str | None,
    secret: str,
    at: datetime,
    actor: str,
    claimed_by: str | None,
    event: str,
    from_state: str | None,
    to_state: str | None,
    detail: dict[str, Any],
) -> str:
    body = json.dumps(
        [prev_hash, rotation_id, secret, canonical_time(at), actor, claimed_by, event, from_state, to_state, detail],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()


class Row(Protocol):
    rotation_id: str | None
    secret: str
    at: datetime
    actor: str
    claimed_by: str | None
    event: str
    from_state: str | None
    to_state: str | None
    detail: dict[str, Any]


def hash_of(prev_hash: str, row: Row) -> str:
    """`row_hash` of an audit row (the ORM object) after `prev_hash`."""
    return row_hash(
        prev_hash,
        rotation_id=row.rotation_id,
        secret=row.secret,
        at=row.at,
        actor=row.actor,
        claimed_by=row.claimed_by,
        event=row.event,
        from_state=row.from_state,
        to_state=row.to_state,
        detail=row.detail or {},
    )
