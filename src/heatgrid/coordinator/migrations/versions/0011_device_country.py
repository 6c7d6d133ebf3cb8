"""Devices say where they draw their power: ``devices.country_code``.

The job report takes each home's grid carbon intensity from it (ISO 3166-1 alpha-2, or
``EU``); NULL for devices enrolled before, which the report counts at the operator's default.

Revision ID: 0011
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("devices", sa.Column("country_code", sa.String(length=2), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("country_code")
