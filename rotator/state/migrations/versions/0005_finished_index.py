"""An index on rotations.finished_at: each daemon tick asks for the rotations that ended since the
last one (the agenda re-plans only those secrets), which must not scan a fleet's history.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rotations_finished_at", "rotations", ["finished_at"])


def downgrade() -> None:
    raise NotImplementedError("rotator's schema is only upgraded; restore a backup to go back")
