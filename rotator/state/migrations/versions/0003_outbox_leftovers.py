"""Durable notifications (an outbox written with each state change) and keys left alive.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("delivered_at", TS),
        sa.Column("gave_up_at", TS),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_outbox_due", "notification_outbox", ["delivered_at", "gave_up_at", "next_attempt_at"])
    op.create_table(
        "leftover_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("secret", sa.String(200), nullable=False, index=True),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("rotation_id", sa.String(36)),
        sa.Column("key_id", sa.String(200)),
        sa.Column("fingerprint", sa.String(40)),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("resolution", sa.Text),
    )


def downgrade() -> None:
    raise NotImplementedError("rotator's schema is only upgraded; restore a backup to go back")
