"""Trust: a hash chain over the audit trail, TRUNCATE refused, the claimed (sudo) user, the old key's proof.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from rotator.state.chain import GENESIS, row_hash

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_audit = sa.table(
    "audit_events",
    sa.column("id", sa.Integer),
    sa.column("rotation_id", sa.String),
    sa.column("secret", sa.String),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String),
    sa.column("claimed_by", sa.String),
    sa.column("event", sa.String),
    sa.column("from_state", sa.String),
    sa.column("to_state", sa.String),
    sa.column("detail", sa.JSON),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite without the type's help
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.add_column("rotations", sa.Column("old_key_proof", sa.String(80)))
    op.add_column("audit_events", sa.Column("claimed_by", sa.String(200)))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64)))
    op.add_column("audit_events", sa.Column("hash", sa.String(64)))

    # chain the rows already there; the append-only triggers are lifted for this one pass
    if postgres:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
    prev = GENESIS
    rows = bind.execute(sa.select(_audit).order_by(_audit.c.id)).mappings().all()
    for row in rows:
        digest = row_hash(
            prev,
            rotation_id=row["rotation_id"],
            secret=row["secret"],
            at=_aware(row["at"]),
            actor=row["actor"],
            claimed_by=None,
            event=row["event"],
            from_state=row["from_state"],
            to_state=row["to_state"],
            detail=row["detail"] or {},
        )
        bind.execute(sa.update(_audit).where(_audit.c.id == row["id"]).values(prev_hash=prev, hash=digest))
        prev = digest
    if postgres:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )


def downgrade() -> None:
    raise NotImplementedError("rotator's schema is only upgraded; restore a backup to go back")
