"""Indexes for a tick that costs what is due, not the fleet's history: rotations.finished_at (the
agenda asks which rotations ended since the last tick) and next_attempt_at of the rotations in
flight only (what claim_due searches; completed rotations kept for years stay out of it).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rotations_finished_at", "rotations", ["finished_at"])
    in_flight = sa.text("state NOT IN ('completed', 'failed')")
    op.create_index(
        "ix_rotations_in_flight",
        "rotations",
        ["next_attempt_at"],
        sqlite_where=in_flight,
        postgresql_where=in_flight,
    )


def downgrade() -> None:
    raise NotImplementedError("rotator's schema is only upgraded; restore a backup to go back")
