"""Result verification: held results, verdicts, reputations, the new task states.

``jobs`` gains ``verify_quorum`` (owners that must agree, when the job sets it);
``task_attempts`` gains ``result``, ``result_sha256`` and ``verdict`` (a verified attempt's
result and what became of its held credit); ``tasks`` gains ``quorum`` (owners that must agree
on its result) and may be ``reported``, ``verifying`` or ``verified``; ``device_reputations``
holds each device's run of agreeing results per job kind.

Revision ID: 0013
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_STATES = "'queued', 'leased', 'completed', 'dead', 'cancelled'"
_NEW_STATES = _OLD_STATES + ", 'reported', 'verifying', 'verified'"


def _queue_index() -> None:
    """Recreate the claim query's index: SQLite's batch copy drops its ``DESC``."""
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.create_index(
        "ix_tasks_queue", "tasks", ["state", sa.text("priority DESC"), "queued_ts", "id"]
    )


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("jobs", sa.Column("verify_quorum", sa.Integer(), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("quorum", sa.Integer(), nullable=True))
        batch.drop_constraint(op.f("ck_tasks_state"), type_="check")
        batch.create_check_constraint(op.f("ck_tasks_state"), f"state IN ({_NEW_STATES})")
    _queue_index()
    with op.batch_alter_table("task_attempts") as batch:
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("result_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("verdict", sa.String(length=12), nullable=True))
        batch.create_check_constraint(
            op.f("ck_task_attempts_verdict"), "verdict IN ('held', 'verified', 'caught', 'void')"
        )
    op.create_table(
        "device_reputations",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("job_kind", sa.String(length=64), nullable=False),
        sa.Column("consecutive_verified", sa.Integer(), nullable=False),
        sa.Column("updated_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_device_reputations_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("device_id", "job_kind", name="pk_device_reputations"),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("device_reputations")
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_constraint(op.f("ck_task_attempts_verdict"), type_="check")
        batch.drop_column("verdict")
        batch.drop_column("result_sha256")
        batch.drop_column("result")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_constraint(op.f("ck_tasks_state"), type_="check")
        batch.create_check_constraint(op.f("ck_tasks_state"), f"state IN ({_OLD_STATES})")
        batch.drop_column("quorum")
    _queue_index()
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("verify_quorum")
