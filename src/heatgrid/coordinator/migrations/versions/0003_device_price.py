"""Devices say what their electricity costs (racks and farms buy their own).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("devices", sa.Column("energy_price_eur_per_kwh", sa.Double(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("energy_price_eur_per_kwh")
