"""Devices say what their electricity costs; task indexes that serve the claim query's order.

Racks and farms buy their own electricity (``devices.energy_price_eur_per_kwh``). The claim
query reads queued tasks by ``priority DESC, queued_ts, id`` (or ``queued_ts, id`` for fifo):
indexes in exactly that order let it stop after the first candidates instead of sorting every
queued task; ``(job_id, state)`` answers "is this job done?" without counting its tasks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("devices", sa.Column("energy_price_eur_per_kwh", sa.Double(), nullable=True))
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.drop_index("ix_tasks_job_id", table_name="tasks")
    op.create_index(
        "ix_tasks_queue", "tasks", ["state", sa.text("priority DESC"), "queued_ts", "id"]
    )
    op.create_index("ix_tasks_fifo", "tasks", ["state", "queued_ts", "id"])
    op.create_index("ix_tasks_job_state", "tasks", ["job_id", "state"])


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_tasks_job_state", table_name="tasks")
    op.drop_index("ix_tasks_fifo", table_name="tasks")
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.create_index("ix_tasks_queue", "tasks", ["state", "priority", "queued_ts"])
    op.create_index("ix_tasks_job_id", "tasks", ["job_id"])
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("energy_price_eur_per_kwh")
