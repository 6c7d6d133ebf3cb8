"""The seal of the memory round's reveal.

``device_challenges`` gains ``seal_hex`` (the digest of the blocks the device will show) and
``sealed_ts`` (when it came: the memory round's deadline is timed to it).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("device_challenges", sa.Column("sealed_ts", sa.Double(), nullable=True))
    op.add_column("device_challenges", sa.Column("seal_hex", sa.String(64), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("device_challenges") as batch:
        batch.drop_column("seal_hex")
        batch.drop_column("sealed_ts")
