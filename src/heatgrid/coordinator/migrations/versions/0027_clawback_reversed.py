"""Clawback reversed: the operator's release of a device gives its clawed-back pay back.

``task_attempts`` gains ``clawback_reversed_ts``: when the clawback of a result
(``clawed_back``) was reversed by the operator's release of its device, the owner's share
and the platform's fee given back (ledger kind ``result_clawback_reversed``); NULL: not
reversed. ``clawed_back`` stays true, so the history shows both, and a reversed result is
never taken back again.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("task_attempts", sa.Column("clawback_reversed_ts", sa.Double(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_column("clawback_reversed_ts")
