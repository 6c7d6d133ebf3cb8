"""The agent tells the coordinator its hardware in heartbeats: a changed configuration (a
bigger power limit, more workers) reaches the coordinator's device row (issue 13)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

from tests.agent.coordinator_app import ServedCoordinator, SimClock, migrated_database, running

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.enroll import enroll
from heatgrid.agent.state_store import StateStore

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _config(max_power_w: float, workers: int) -> str:
    return f"""
[heater]
name = "study"

[sensor]
topic = "home/study/temperature"

[[devices]]
type = "cpu"
idle_power_w = 20.0
max_power_w = {max_power_w}
worker_count = {workers}
"""


def _stored(database_url: str, device_id: str) -> tuple[str, dict[str, object]]:
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        kind, hardware = db.execute(
            "SELECT kind, hardware FROM devices WHERE id = ?", (device_id,)
        ).fetchone()
    return str(kind), dict(json.loads(hardware))


async def _scenario(tmp_path: Path) -> None:
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(database_url, tmp_path / "checkpoints", clock)
    before, after = parse_config(_config(1200.0, 2)), parse_config(_config(3000.0, 8))
    async with running(coordinator):
        with StateStore(tmp_path / "agent.sqlite3") as store:
            async with CoordinatorClient(coordinator.url, timeout_s=5.0) as client:
                identity = await enroll(before, store, client, code)
                assert _stored(database_url, identity.device_id)[1]["max_power_w"] == 1200.0
                # The owner edits the configuration and restarts the agent:
                daemon = AgentDaemon(
                    after, devices=[], room=lambda: None, store=store, client=client, clock=clock
                )
                await daemon.sync()
    kind, hardware = _stored(database_url, identity.device_id)
    assert kind == "cpu"
    assert (hardware["max_power_w"], hardware["cpu_cores"]) == (3000.0, 8)


def test_a_changed_configuration_reaches_the_coordinator(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))
