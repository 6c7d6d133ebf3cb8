"""Attempts may end ``handed_back``: a heater gave its task back on purpose.

A handed-back attempt (the room is warm, the heater stops) is not a failure: it does not count
against the job's attempts. ``task_attempts.outcome``'s CHECK list gains the value.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BEFORE = ("running", "completed", "expired", "failed", "cancelled")
_AFTER = (*_BEFORE, "handed_back")


def _outcomes(values: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_constraint(op.f("ck_task_attempts_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_task_attempts_outcome"), _outcomes(_AFTER))


def downgrade() -> None:
    """Revert this migration (handed-back attempts are recorded as failed)."""
    op.execute("UPDATE task_attempts SET outcome = 'failed' WHERE outcome = 'handed_back'")
    with op.batch_alter_table("task_attempts") as batch:
        batch.drop_constraint(op.f("ck_task_attempts_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_task_attempts_outcome"), _outcomes(_BEFORE))
