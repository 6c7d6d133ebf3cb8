"""Jobs, tasks, attempts, checkpoints and the double-entry ledger; telemetry names its task.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("submitter_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("device_kinds", sa.JSON(), nullable=False),
        sa.Column("min_vram_gb", sa.Double(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("price_eur_per_kwh", sa.Double(), nullable=False),
        sa.Column("owner_share", sa.Double(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.Column("ended_ts", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'completed', 'failed', 'cancelled')", name=op.f("ck_jobs_state")
        ),
        sa.ForeignKeyConstraint(
            ["submitter_id"], ["accounts.id"], name=op.f("fk_jobs_submitter_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_submitter_id"), "jobs", ["submitter_id"], unique=False)
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("task_id", sa.String(length=32), nullable=True),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_ledger_transactions_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transactions")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_transactions_key")),
    )
    op.create_index(
        op.f("ix_ledger_transactions_job_id"), "ledger_transactions", ["job_id"], unique=False
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("submitter_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("runs_on_gpu", sa.Boolean(), nullable=False),
        sa.Column("runs_on_cpu", sa.Boolean(), nullable=False),
        sa.Column("min_vram_gb", sa.Double(), nullable=False),
        sa.Column("task_input", sa.JSON(), nullable=False),
        sa.Column("energy_j", sa.Double(), nullable=False),
        sa.Column("checkpoint_every_j", sa.Double(), nullable=False),
        sa.Column("progress_energy_j", sa.Double(), nullable=False),
        sa.Column("checkpoint_seq", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("queued_ts", sa.Double(), nullable=False),
        sa.Column("not_before_ts", sa.Double(), nullable=False),
        sa.Column("lease_device_id", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_ts", sa.Double(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("result_sha256", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ended_ts", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'leased', 'completed', 'dead', 'cancelled')",
            name=op.f("ck_tasks_state"),
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_tasks_job_id_jobs")),
        sa.ForeignKeyConstraint(
            ["lease_device_id"], ["devices.id"], name=op.f("fk_tasks_lease_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("job_id", "task_index", name=op.f("uq_tasks_job_id")),
    )
    op.create_index(op.f("ix_tasks_job_id"), "tasks", ["job_id"], unique=False)
    op.create_index("ix_tasks_lease", "tasks", ["state", "lease_expires_ts"], unique=False)
    op.create_index(op.f("ix_tasks_lease_device_id"), "tasks", ["lease_device_id"], unique=False)
    op.create_index("ix_tasks_queue", "tasks", ["state", "priority", "queued_ts"], unique=False)
    op.create_table(
        "checkpoints",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("progress_energy_j", sa.Double(), nullable=False),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_checkpoints_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_checkpoints_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("task_id", "seq", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=12), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_ledger_entries_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(op.f("ix_ledger_entries_account"), "ledger_entries", ["account"], unique=False)
    op.create_index(
        op.f("ix_ledger_entries_transaction_id"), "ledger_entries", ["transaction_id"], unique=False
    )
    op.create_table(
        "task_attempts",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("started_ts", sa.Double(), nullable=False),
        sa.Column("ended_ts", sa.Double(), nullable=True),
        sa.Column("start_progress_energy_j", sa.Double(), nullable=False),
        sa.Column("energy_j", sa.Double(), nullable=False),
        sa.Column("checkpointed_energy_j", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('running', 'completed', 'expired', 'failed', 'cancelled')",
            name=op.f("ck_task_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_task_attempts_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_attempts_task_id_tasks")
        ),
        sa.PrimaryKeyConstraint("task_id", "attempt", name=op.f("pk_task_attempts")),
    )
    op.create_index(
        op.f("ix_task_attempts_device_id"), "task_attempts", ["device_id"], unique=False
    )
    op.add_column("telemetry", sa.Column("task_id", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_telemetry_task_id"), "telemetry", ["task_id"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index(op.f("ix_telemetry_task_id"), table_name="telemetry")
    op.drop_column("telemetry", "task_id")
    op.drop_index(op.f("ix_task_attempts_device_id"), table_name="task_attempts")
    op.drop_table("task_attempts")
    op.drop_index(op.f("ix_ledger_entries_transaction_id"), table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_account"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("checkpoints")
    op.drop_index("ix_tasks_queue", table_name="tasks")
    op.drop_index(op.f("ix_tasks_lease_device_id"), table_name="tasks")
    op.drop_index("ix_tasks_lease", table_name="tasks")
    op.drop_index(op.f("ix_tasks_job_id"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_ledger_transactions_job_id"), table_name="ledger_transactions")
    op.drop_table("ledger_transactions")
    op.drop_index(op.f("ix_jobs_submitter_id"), table_name="jobs")
    op.drop_table("jobs")
