"""Products per link of a hardware challenge's chain.

``device_challenges`` gains ``steps``: each link of the chain is ``steps`` products by the
seeded matrix, so that a big GPU's chain fills its target time without more rows to hash
(a many-core CPU hashes as fast as a GPU's host, and answered for an H200 when each link was
one product). Challenges issued before this revision were one product per link.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column(
        "device_challenges",
        sa.Column("steps", sa.Integer(), nullable=False, server_default="1"),
    )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("device_challenges") as batch:
        batch.drop_column("steps")
