"""Clawback: a caught device's unchecked results that were paid can be taken back.

``task_attempts`` gains ``paid_unchecked_ts``: when a result that was never itself checked
had its held credit released to its owner by a later passed spot check of its device (NULL:
paid as checked, or not paid), the results :func:`heatgrid.core.trust.clawback_due` may take
back when the device is caught; and ``clawed_back``: whether what it was paid was taken back
from its owner and refunded to the submitter (``serve --clawback-window-s``, off by default).
Results released before this revision have no ``paid_unchecked_ts`` and are never taken back.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("task_attempts", sa.Column("paid_unchecked_ts", sa.Double(), nullable=True))
    op.add_column(
        "task_attempts",
        sa.Column("clawed_back", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_column("clawed_back")
        batch.drop_column("paid_unchecked_ts")
