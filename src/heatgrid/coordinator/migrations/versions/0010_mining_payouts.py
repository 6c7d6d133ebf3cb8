"""Mining payouts: per-device credits of each settlement, and payout batches.

``mining_settlement_credits`` keeps what each payout run credited per device (the owner's
ledger account holds the sum); ``payout_batches`` and ``payout_batch_items`` are the owner
payouts one wallet transaction pays, at most one batch pending at a time.

Revision ID: 0010
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "mining_settlement_credits",
        sa.Column("settlement_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("share_count", sa.BigInteger(), nullable=False),
        sa.Column("work_diff1", sa.Double(), nullable=False),
        sa.Column("credited_sat", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["mining_settlements.id"],
            name="fk_mining_settlement_credits_settlement_id_mining_settlements",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_mining_settlement_credits_device_id_devices"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name="fk_mining_settlement_credits_owner_id_accounts"
        ),
        sa.PrimaryKeyConstraint("settlement_id", "device_id", name="pk_mining_settlement_credits"),
    )
    op.create_index(
        "ix_mining_settlement_credits_device_id", "mining_settlement_credits", ["device_id"]
    )
    op.create_index(
        "ix_mining_settlement_credits_owner_id", "mining_settlement_credits", ["owner_id"]
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("min_sat", sa.BigInteger(), nullable=False),
        sa.Column("total_sat", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=True),
        sa.Column("paid_ts", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'paid', 'cancelled')", name="ck_payout_batches_state"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_payout_batches"),
    )
    op.create_index(
        "uq_payout_batches_pending",
        "payout_batches",
        ["state"],
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "payout_batch_items",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=100), nullable=False),
        sa.Column("amount_sat", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name="fk_payout_batch_items_batch_id_payout_batches",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name="fk_payout_batch_items_owner_id_accounts"
        ),
        sa.PrimaryKeyConstraint("batch_id", "owner_id", name="pk_payout_batch_items"),
    )
    op.create_index("ix_payout_batch_items_owner_id", "payout_batch_items", ["owner_id"])


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_payout_batch_items_owner_id", table_name="payout_batch_items")
    op.drop_table("payout_batch_items")
    op.drop_index("uq_payout_batches_pending", table_name="payout_batches")
    op.drop_table("payout_batches")
    op.drop_index("ix_mining_settlement_credits_owner_id", table_name="mining_settlement_credits")
    op.drop_index("ix_mining_settlement_credits_device_id", table_name="mining_settlement_credits")
    op.drop_table("mining_settlement_credits")
