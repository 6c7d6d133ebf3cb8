"""A secret rank per checkpoint, for keeping a random sample of old ones for segment replay.

``checkpoints`` gains ``replay_rank``: a uniform draw in [0, 1) made when the checkpoint is
recorded; besides a task's newest checkpoints, the older ones of lowest rank keep their blob
while the job's results are verified by segment replay (``Settings.replay_keep``). Rows
recorded before this revision have none and are pruned as before.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("checkpoints", sa.Column("replay_rank", sa.Double(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("replay_rank")
