"""Initial schema: accounts, API keys, enrollment codes, devices, telemetry, heat windows.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "role IN ('operator', 'owner', 'submitter')", name=op.f("ck_accounts_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.Column("revoked_ts", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_api_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"], unique=False)
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("has_room", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("enrolled_ts", sa.Double(), nullable=False),
        sa.Column("last_seen_ts", sa.Double(), nullable=True),
        sa.Column("revoked_ts", sa.Double(), nullable=True),
        sa.CheckConstraint("kind IN ('asic', 'gpu', 'cpu', 'rack')", name=op.f("ck_devices_kind")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name=op.f("fk_devices_owner_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_last_seen_ts"), "devices", ["last_seen_ts"], unique=False)
    op.create_index(op.f("ix_devices_owner_id"), "devices", ["owner_id"], unique=False)
    op.create_table(
        "enrollment_codes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_ts", sa.Double(), nullable=False),
        sa.Column("expires_ts", sa.Double(), nullable=False),
        sa.Column("used_ts", sa.Double(), nullable=True),
        sa.Column("device_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_enrollment_codes_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["accounts.id"], name=op.f("fk_enrollment_codes_owner_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_codes")),
    )
    op.create_index(
        op.f("ix_enrollment_codes_owner_id"), "enrollment_codes", ["owner_id"], unique=False
    )
    op.create_table(
        "heat_windows",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("start_ts", sa.Double(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("heat_power_w", sa.Double(), nullable=False),
        sa.Column("received_ts", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_heat_windows_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "start_ts", name=op.f("pk_heat_windows")),
    )
    op.create_table(
        "telemetry",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("sample_ts", sa.Double(), nullable=False),
        sa.Column("received_ts", sa.Double(), nullable=False),
        sa.Column("room_temp_c", sa.Double(), nullable=True),
        sa.Column("setpoint_c", sa.Double(), nullable=True),
        sa.Column("power_w", sa.Double(), nullable=False),
        sa.Column("device_temp_c", sa.Double(), nullable=True),
        sa.Column("workload", sa.String(length=8), nullable=False),
        sa.Column("hashrate_ths", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "workload IN ('idle', 'mining', 'task', 'boost')", name=op.f("ck_telemetry_workload")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_telemetry_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "sample_ts", name=op.f("pk_telemetry")),
    )
    op.create_table(
        "telemetry_hourly",
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("hour_start_ts", sa.Double(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("mean_power_w", sa.Double(), nullable=False),
        sa.Column("max_power_w", sa.Double(), nullable=False),
        sa.Column("room_temp_count", sa.Integer(), nullable=False),
        sa.Column("mean_room_temp_c", sa.Double(), nullable=True),
        sa.Column("min_room_temp_c", sa.Double(), nullable=True),
        sa.Column("max_room_temp_c", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_telemetry_hourly_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("device_id", "hour_start_ts", name=op.f("pk_telemetry_hourly")),
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("telemetry_hourly")
    op.drop_table("telemetry")
    op.drop_table("heat_windows")
    op.drop_index(op.f("ix_enrollment_codes_owner_id"), table_name="enrollment_codes")
    op.drop_table("enrollment_codes")
    op.drop_index(op.f("ix_devices_owner_id"), table_name="devices")
    op.drop_index(op.f("ix_devices_last_seen_ts"), table_name="devices")
    op.drop_table("devices")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("accounts")
