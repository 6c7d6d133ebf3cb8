"""Devices with mining passwords on a real database, and helpers for the proxy's tests."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from sqlalchemy import select

from heatgrid.coordinator.accounts import create_api_key, create_enrollment_code
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningReject, MiningShare
from heatgrid.coordinator.devices import enroll_device
from heatgrid.coordinator.mining_credentials import issue_password
from heatgrid.protocol import v1

__all__ = ["make_miners", "rejects_by_device", "shares_by_device", "until"]


def make_miners(database_url: str, count: int, owner: str = "alice") -> list[tuple[str, str]]:
    """Enroll ``count`` ASIC heaters of ``owner`` with mining passwords: (device_id, password)."""
    engine = make_engine(database_url)
    found: list[tuple[str, str]] = []
    now_ts = time.time()
    try:
        with make_session_factory(engine)() as session:
            create_api_key(session, name=owner, role="owner", scopes=None, now_ts=now_ts)
            for index in range(count):
                code = create_enrollment_code(
                    session, owner_name=owner, ttl_s=3600.0, actor=None, now_ts=now_ts
                )
                device, _ = enroll_device(
                    session,
                    v1.EnrollRequest(
                        protocol_version=1,
                        enrollment_code=code.token,
                        device_name=f"heater {index}",
                        device_kind="asic",
                        hardware=v1.Hardware(
                            model="S9", max_power_w=1400.0, min_power_w=400.0, hashrate_ths=14.0
                        ),
                        has_room=True,
                    ),
                    now_ts=now_ts,
                )
                found.append((device.id, issue_password(session, device, now_ts=now_ts).password))
    finally:
        engine.dispose()
    return found


def shares_by_device(database_url: str) -> tuple[dict[str, float], dict[str, int]]:
    """Accepted work [difficulty-1 shares] and share rows per device, from the database."""
    engine = make_engine(database_url)
    work: defaultdict[str, float] = defaultdict(float)
    rows: defaultdict[str, int] = defaultdict(int)
    try:
        with make_session_factory(engine)() as session:
            for device_id, difficulty in session.execute(
                select(MiningShare.device_id, MiningShare.difficulty)
            ):
                work[device_id] += difficulty
                rows[device_id] += 1
    finally:
        engine.dispose()
    return dict(work), dict(rows)


def rejects_by_device(database_url: str) -> dict[tuple[str, str], int]:
    """Rejected shares per (device, reason), summed over hours."""
    engine = make_engine(database_url)
    counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    try:
        with make_session_factory(engine)() as session:
            for row in session.scalars(select(MiningReject)):
                counts[row.device_id, row.reason] += row.count
    finally:
        engine.dispose()
    return dict(counts)


async def until(condition: Callable[[], bool], what: str, limit_s: float = 120.0) -> None:
    """Wait until ``condition()``; the limit only keeps a broken build from hanging."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), limit_s)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")
