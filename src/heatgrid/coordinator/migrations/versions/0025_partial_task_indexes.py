"""The claim and lease indexes of ``tasks`` hold only the rows their queries read (PostgreSQL).

A task changes state twice per attempt (leased, then ended), and an update that changes an
indexed column writes a new entry into every index of the table. ``ix_tasks_queue`` and
``ix_tasks_fifo`` (the claim's two orders) now hold only claimable tasks (``queued``,
``reported``), ``ix_tasks_lease`` (the sweeper's) only tasks holding a lease (``leased``,
``verifying``), and ``ix_tasks_lease_device_id`` only tasks with a lease holder: a lease is
written into the two lease indexes and not the claim indexes, an ending into none of the
four. The queries that use them name those states as literals, so that a prepared
statement's generic plan proves the predicate. SQLite keeps full indexes (its planner uses a
partial index only for a query with the same literal terms).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_CLAIMABLE = "state IN ('queued', 'reported')"
_HOLDING = "state IN ('leased', 'verifying')"


def _recreate(*, partial: bool) -> None:
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.drop_index("ix_tasks_fifo", table_name="tasks")
    op.drop_index("ix_tasks_lease", table_name="tasks")
    op.drop_index("ix_tasks_lease_device_id", table_name="tasks")

    def where(predicate: str) -> sa.TextClause | None:
        return sa.text(predicate) if partial else None

    op.create_index(
        "ix_tasks_queue",
        "tasks",
        ["state", sa.text("priority DESC"), "queued_ts", "id"],
        postgresql_where=where(_CLAIMABLE),
    )
    op.create_index(
        "ix_tasks_fifo", "tasks", ["state", "queued_ts", "id"], postgresql_where=where(_CLAIMABLE)
    )
    op.create_index(
        "ix_tasks_lease", "tasks", ["state", "lease_expires_ts"], postgresql_where=where(_HOLDING)
    )
    op.create_index(
        "ix_tasks_lease_device_id",
        "tasks",
        ["lease_device_id"],
        postgresql_where=where("lease_device_id IS NOT NULL"),
    )


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        _recreate(partial=True)


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        _recreate(partial=False)
