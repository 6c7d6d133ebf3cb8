"""Jobs remember their submission's idempotency key; indexes for keyset pages.

``jobs.idempotency_key`` (unique per submitter) and ``jobs.request_sha256`` let a retried
``POST /v1/jobs`` find the job it created. ``(created_ts, id)`` indexes, for all jobs and per
submitter, and ``(enrolled_ts, id)`` indexes for devices serve the lists a page at a time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column("jobs", sa.Column("idempotency_key", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("request_sha256", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_jobs_submitter_idempotency",
        "jobs",
        ["submitter_id", "idempotency_key"],
        unique=True,
    )
    op.create_index("ix_jobs_created", "jobs", ["created_ts", "id"])
    op.create_index("ix_jobs_submitter_created", "jobs", ["submitter_id", "created_ts", "id"])
    op.create_index("ix_devices_enrolled", "devices", ["enrolled_ts", "id"])
    op.create_index("ix_devices_owner_enrolled", "devices", ["owner_id", "enrolled_ts", "id"])


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_devices_owner_enrolled", table_name="devices")
    op.drop_index("ix_devices_enrolled", table_name="devices")
    op.drop_index("ix_jobs_submitter_created", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("uq_jobs_submitter_idempotency", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("request_sha256")
        batch.drop_column("idempotency_key")
