"""Hardware challenges and quarantine.

``device_challenges`` holds each challenge handed to a device, its commitment and verdict;
``devices`` gains ``challenge_due_ts`` (a challenge is owed: enrolled, hardware changed, or a
random re-check), ``quarantined_ts`` and ``quarantine_reason`` (no more tasks until the
operator releases it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("devices", sa.Column("challenge_due_ts", sa.Double(), nullable=True))
    op.add_column("devices", sa.Column("quarantined_ts", sa.Double(), nullable=True))
    op.add_column("devices", sa.Column("quarantine_reason", sa.Text(), nullable=True))
    op.create_table(
        "device_challenges",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("links", sa.Integer(), nullable=False),
        sa.Column("deadline_s", sa.Double(), nullable=False),
        sa.Column("claimed_flops_per_s", sa.Double(), nullable=False),
        sa.Column("issued_ts", sa.Double(), nullable=False),
        sa.Column("committed_ts", sa.Double(), nullable=True),
        sa.Column("root_hex", sa.String(length=64), nullable=True),
        sa.Column("places", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("ended_ts", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "state IN ('issued', 'committed', 'passed', 'failed')",
            name="ck_device_challenges_state",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_device_challenges_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_device_challenges"),
    )
    op.create_index(
        "ix_device_challenges_device_issued", "device_challenges", ["device_id", "issued_ts"]
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_device_challenges_device_issued", table_name="device_challenges")
    op.drop_table("device_challenges")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("quarantine_reason")
        batch.drop_column("quarantined_ts")
        batch.drop_column("challenge_due_ts")
