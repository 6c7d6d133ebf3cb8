"""Segment replay of training tasks (issue 17).

``tasks`` gains the replay a checked training task's round runs instead of a whole replica:
``replay_of_attempt`` (the original attempt whose segment is replayed), ``replay_start_seq``
(its checkpoint to resume from; None: the beginning), ``replay_end_seq`` (its checkpoint whose
fingerprint the replay must reach; None: its result's) and ``replay_stop_step`` (the step to
stop at; None: the end).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("tasks", sa.Column("replay_of_attempt", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("replay_start_seq", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("replay_end_seq", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("replay_stop_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("replay_stop_step")
        batch.drop_column("replay_end_seq")
        batch.drop_column("replay_start_seq")
        batch.drop_column("replay_of_attempt")
