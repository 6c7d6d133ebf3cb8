"""Content-addressed job artifacts and who uploaded them; jobs name the artifact they run.

``artifacts`` holds one row per packed job (by the SHA-256 of its bytes), ``artifact_owners``
the accounts that uploaded those bytes (they may read the artifact and submit jobs on it);
``jobs.artifact_sha256`` names a job's artifact and ``jobs.input_urls`` the inputs it reads
where they are (fsspec URLs).

Revision ID: 0006
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_artifacts"),
    )
    op.create_table(
        "artifact_owners",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["artifacts.sha256"], name="fk_artifact_owners_sha256_artifacts"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_artifact_owners_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("sha256", "account_id", name="pk_artifact_owners"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("artifact_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("input_urls", sa.JSON(), nullable=True))
        batch.create_foreign_key(
            "fk_jobs_artifact_sha256_artifacts", "artifacts", ["artifact_sha256"], ["sha256"]
        )
        batch.create_index("ix_jobs_artifact_sha256", ["artifact_sha256"])


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_artifact_sha256")
        batch.drop_constraint("fk_jobs_artifact_sha256_artifacts", type_="foreignkey")
        batch.drop_column("input_urls")
        batch.drop_column("artifact_sha256")
    op.drop_table("artifact_owners")
    op.drop_table("artifacts")
