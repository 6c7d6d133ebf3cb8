"""What each device's agent understands, and why its hardware claim is unproven.

``devices`` gains ``agent_features``: the features (``heatgrid.protocol.features``) its agent
declared in its latest heartbeat while hardware challenges are on (NULL: none heard yet), and
``claim_unproven_reason``: why the coordinator holds back the hardware challenge the device
owes (its agent does not declare a feature the challenge needs), shown to its owner and the
operator; NULL when nothing is held back.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("devices", sa.Column("agent_features", sa.JSON(), nullable=True))
    op.add_column("devices", sa.Column("claim_unproven_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("claim_unproven_reason")
        batch.drop_column("agent_features")
