"""The schema of rotator 0.1.0, the last release made with create_all.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rotations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("secret", sa.String(200), nullable=False, index=True),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("trigger", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False, index=True),
        sa.Column("waiting_for", sa.Text, nullable=False),
        sa.Column("waiting_since", TS),
        sa.Column("old_version", sa.String(100)),
        sa.Column("old_key_id", sa.String(200)),
        sa.Column("old_fingerprint", sa.String(40)),
        sa.Column("new_key_id", sa.String(200)),
        sa.Column("new_fingerprint", sa.String(40)),
        sa.Column("create_started_at", TS),
        sa.Column("staged_at", TS),
        sa.Column("promoted_at", TS),
        sa.Column("revoke_started_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("old_identity", sa.JSON),
        sa.Column("gate_state", sa.JSON),
        sa.Column("held_reason", sa.Text),
        sa.Column("held_since", TS),
        sa.Column("failed_reason", sa.Text),
    )
    op.create_index(
        "one_active_rotation_per_secret",
        "rotations",
        ["secret"],
        unique=True,
        sqlite_where=sa.text("state NOT IN ('completed', 'failed')"),
        postgresql_where=sa.text("state NOT IN ('completed', 'failed')"),
    )
    op.create_table(
        "step_progress",
        sa.Column("rotation_id", sa.String(36), sa.ForeignKey("rotations.id"), primary_key=True),
        sa.Column("step", sa.String(30), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rotation_id", sa.String(36), index=True),
        sa.Column("secret", sa.String(200), nullable=False, index=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("from_state", sa.String(30)),
        sa.Column("to_state", sa.String(30)),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("secret", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{what.lower()} BEFORE {what} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


def downgrade() -> None:
    raise NotImplementedError("the baseline is not downgraded")
