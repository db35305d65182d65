"""Fencing: each lease carries a generation that grows with every acquisition.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("generation", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    raise NotImplementedError("rotator's schema is only upgraded; restore a backup to go back")
