"""Numeric tolerance of result verification, and what checkpoints say of their training.

``jobs`` gains ``verify_rel_l2``: the relative L2 distance within which the tensors behind two
results' fingerprints agree, when the job sets it (None: results agree by exact digest).
``checkpoints`` gains ``step`` and ``fingerprint``: the training step a checkpoint was saved
after and the fingerprint of its tensors, when the task gave them (for segment replay).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("jobs", sa.Column("verify_rel_l2", sa.Double(), nullable=True))
    op.add_column("checkpoints", sa.Column("step", sa.BigInteger(), nullable=True))
    op.add_column("checkpoints", sa.Column("fingerprint", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("step")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("verify_rel_l2")
