"""What a replay restored, and which checkpoints no attempt needs any more.

``task_attempts`` gains ``start_mark``: the step and tensor fingerprint of the state a job
restored at the attempt's start, as the device reported it with its result; a segment replay's
start checkpoint is checked by it against the original's mark. ``tasks`` gains
``spent_checkpoint_seq``: the task's checkpoints up to this number serve no attempt any more
(its result was verified, refuted or voided), so the sweeper removes their blobs and rows.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("task_attempts", sa.Column("start_mark", sa.JSON(), nullable=True))
    op.add_column("tasks", sa.Column("spent_checkpoint_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("spent_checkpoint_seq")
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_column("start_mark")
