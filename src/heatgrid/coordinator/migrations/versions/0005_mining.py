"""Mining through the coordinator's Stratum proxy: credentials, shares, rejects, payouts.

``mining_credentials`` holds each device's Stratum password hash; ``mining_shares`` every
accepted share once (``share_key`` unique), ``mining_rejects`` rejected shares per device,
reason and hour; ``mining_settlements`` the payout runs that credit shares; and
``payout_addresses`` each owner's Bitcoin address.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "mining_credentials",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=64), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_mining_credentials_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("device_id", name="pk_mining_credentials"),
    )
    op.create_table(
        "mining_settlements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scheme", sa.String(length=12), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.Column("until_ts", sa.Double(), nullable=False),
        sa.Column("work_diff1", sa.Double(), nullable=False),
        sa.Column("gross_sat", sa.BigInteger(), nullable=False),
        sa.Column("fee_sat", sa.BigInteger(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.CheckConstraint("scheme IN ('fpps', 'pro_rata')", name="ck_mining_settlements_scheme"),
        sa.PrimaryKeyConstraint("id", name="pk_mining_settlements"),
    )
    op.create_table(
        "mining_shares",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("share_key", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("difficulty", sa.Double(), nullable=False),
        sa.Column("accepted_ts", sa.Double(), nullable=False),
        sa.Column("block_hash", sa.String(length=64), nullable=True),
        sa.Column("upstream_accepted", sa.Boolean(), nullable=True),
        sa.Column("settlement_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_mining_shares_device_id_devices"
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["mining_settlements.id"],
            name="fk_mining_shares_settlement_id_mining_settlements",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mining_shares"),
        sa.UniqueConstraint("share_key", name="uq_mining_shares_share_key"),
    )
    op.create_index(
        "ix_mining_shares_device_accepted", "mining_shares", ["device_id", "accepted_ts"]
    )
    op.create_index("ix_mining_shares_settlement_id", "mining_shares", ["settlement_id"])
    op.create_table(
        "mining_rejects",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("hour_start_ts", sa.Double(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_mining_rejects_device_id_devices"
        ),
        sa.PrimaryKeyConstraint("device_id", "reason", "hour_start_ts", name="pk_mining_rejects"),
    )
    op.create_table(
        "payout_addresses",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=100), nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("updated_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name="fk_payout_addresses_owner_id_accounts"
        ),
        sa.PrimaryKeyConstraint("owner_id", name="pk_payout_addresses"),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("payout_addresses")
    op.drop_table("mining_rejects")
    op.drop_index("ix_mining_shares_settlement_id", table_name="mining_shares")
    op.drop_index("ix_mining_shares_device_accepted", table_name="mining_shares")
    op.drop_table("mining_shares")
    op.drop_table("mining_settlements")
    op.drop_table("mining_credentials")
