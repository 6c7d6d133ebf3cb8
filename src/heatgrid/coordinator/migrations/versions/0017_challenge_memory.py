"""The memory part of hardware challenges.

``device_challenges`` gains ``memory_bytes`` (the working set the device must hold),
``memory_root_hex`` (its commitment to the set's blocks) and ``blocks`` (the blocks drawn
after it).

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column(
        "device_challenges",
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column("device_challenges", sa.Column("memory_root_hex", sa.String(64), nullable=True))
    op.add_column("device_challenges", sa.Column("blocks", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("device_challenges") as batch:
        batch.drop_column("blocks")
        batch.drop_column("memory_root_hex")
        batch.drop_column("memory_bytes")
