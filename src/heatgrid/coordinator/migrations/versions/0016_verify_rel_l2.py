"""Numeric tolerance of result verification.

``jobs`` gains ``verify_rel_l2``: the relative L2 distance within which the tensors behind two
results' fingerprints agree, when the job sets it (None: results agree by exact digest).

Revision ID: 0016
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("jobs", sa.Column("verify_rel_l2", sa.Double(), nullable=True))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("verify_rel_l2")
