"""The coordinator's tables, as SQLAlchemy 2 ORM models.

Timestamps are POSIX seconds in UTC (``*_ts``, double precision). Secrets (API keys, device
tokens, enrollment codes) are never stored: only the SHA-256 of their random part, under an
identifier that is the token's visible prefix, so that a lookup is one indexed read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ROLES",
    "Account",
    "ApiKey",
    "Base",
    "Device",
    "EnrollmentCode",
    "HeatWindowSegmentRow",
    "TelemetryHourly",
    "TelemetrySampleRow",
]

ROLES = ("operator", "owner", "submitter")
"""Account roles: runs the coordinator, owns heaters, submits jobs."""

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_HASH_LENGTH = 64  # hex SHA-256
_ID_LENGTH = 32


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names on every database."""

    metadata = MetaData(naming_convention=_NAMING)


class Account(Base):
    """A person or organisation: an operator, a heater owner or a job submitter."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(f"role IN ({_quoted(ROLES)})", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_ts: Mapped[float] = mapped_column(Double)


class ApiKey(Base):
    """An account's API key: ``hgk_<id>_<secret>``; only the secret's SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_ts: Mapped[float] = mapped_column(Double)
    revoked_ts: Mapped[float | None] = mapped_column(Double)


class EnrollmentCode(Base):
    """A one-time code ``hge_<id>_<secret>`` that lets one heater join its owner's fleet."""

    __tablename__ = "enrollment_codes"

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    created_ts: Mapped[float] = mapped_column(Double)
    expires_ts: Mapped[float] = mapped_column(Double)
    used_ts: Mapped[float | None] = mapped_column(Double)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))


class Device(Base):
    """An enrolled heater; its token is ``hgd_<id>_<secret>``."""

    __tablename__ = "devices"
    __table_args__ = (CheckConstraint("kind IN ('asic', 'gpu', 'cpu', 'rack')", name="kind"),)

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON)
    has_room: Mapped[bool] = mapped_column(Boolean)
    token_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    enrolled_ts: Mapped[float] = mapped_column(Double)
    last_seen_ts: Mapped[float | None] = mapped_column(Double, index=True)
    revoked_ts: Mapped[float | None] = mapped_column(Double)


class TelemetrySampleRow(Base):
    """One telemetry sample; the key (device, sample_ts) stores a re-sent sample once."""

    __tablename__ = "telemetry"
    __table_args__ = (
        CheckConstraint("workload IN ('idle', 'mining', 'task', 'boost')", name="workload"),
    )

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    sample_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    received_ts: Mapped[float] = mapped_column(Double)
    room_temp_c: Mapped[float | None] = mapped_column(Double)
    setpoint_c: Mapped[float | None] = mapped_column(Double)
    power_w: Mapped[float] = mapped_column(Double)
    device_temp_c: Mapped[float | None] = mapped_column(Double)
    workload: Mapped[str] = mapped_column(String(8))
    hashrate_ths: Mapped[float | None] = mapped_column(Double)


class TelemetryHourly(Base):
    """Telemetry of one device over one UTC hour, kept after the raw samples are dropped."""

    __tablename__ = "telemetry_hourly"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    hour_start_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    sample_count: Mapped[int] = mapped_column(Integer)
    mean_power_w: Mapped[float] = mapped_column(Double)
    max_power_w: Mapped[float] = mapped_column(Double)
    room_temp_count: Mapped[int] = mapped_column(Integer)
    mean_room_temp_c: Mapped[float | None] = mapped_column(Double)
    min_room_temp_c: Mapped[float | None] = mapped_column(Double)
    max_room_temp_c: Mapped[float | None] = mapped_column(Double)


class HeatWindowSegmentRow(Base):
    """One segment of a device's latest heat window; a new heartbeat replaces them all."""

    __tablename__ = "heat_windows"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    start_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    duration_s: Mapped[float] = mapped_column(Double)
    heat_power_w: Mapped[float] = mapped_column(Double)
    received_ts: Mapped[float] = mapped_column(Double)
