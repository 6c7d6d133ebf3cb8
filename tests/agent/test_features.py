"""The agent declares the features it understands in every heartbeat (issue 17).

A coordinator sends a meaning-changing field's value (a stepped hardware challenge) only to an
agent that declares its feature (:mod:`heatgrid.protocol.features`); this agent must declare
each one it implements, and the coordinator must store what it declared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

from tests.agent.coordinator_app import ServedCoordinator, SimClock, migrated_database, running

from heatgrid.agent.challenge import FEATURES
from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.enroll import enroll
from heatgrid.agent.state_store import StateStore
from heatgrid.protocol import features, v1

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z

_CONFIG = """
[heater]
name = "study"

[sensor]
topic = "home/study/temperature"

[[devices]]
type = "cpu"
idle_power_w = 20.0
max_power_w = 300.0
worker_count = 1
"""


class RecordingClient(CoordinatorClient):
    """The agent's client, keeping each heartbeat it sends."""

    sent: list[v1.Heartbeat]

    async def heartbeat(
        self, device_id: str, token: str, heartbeat: v1.Heartbeat
    ) -> v1.HeartbeatResponse:
        """Keep the heartbeat, then send it."""
        self.sent.append(heartbeat)
        return await super().heartbeat(device_id, token, heartbeat)


def test_this_agent_declares_every_meaning_changing_field_it_acts_on() -> None:
    """A meaning-changing field added to the protocol fails here until the agent declares it."""
    assert set(features.MEANING_CHANGING.values()) <= FEATURES


def _stored(database_url: str, device_id: str) -> tuple[object, list[str]]:
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        declared = db.execute(
            "SELECT agent_features FROM devices WHERE id = ?", (device_id,)
        ).fetchone()[0]
        states = [
            row[0]
            for row in db.execute(
                "SELECT state FROM device_challenges WHERE device_id = ?", (device_id,)
            )
        ]
    return json.loads(declared), states


async def _scenario(tmp_path: Path) -> None:
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(
        database_url,
        tmp_path / "checkpoints",
        clock,
        hardware_challenges=True,
        challenge_max_n=64,
        challenge_every_s=0.0,
    )
    config = parse_config(_CONFIG)
    async with running(coordinator):
        with StateStore(tmp_path / "agent.sqlite3") as store:
            async with RecordingClient(coordinator.url, timeout_s=5.0) as client:
                client.sent = []
                identity = await enroll(config, store, client, code)
                daemon = AgentDaemon(
                    config, devices=[], room=lambda: None, store=store, client=client, clock=clock
                )
                await daemon.sync()
    assert client.sent
    assert all(beat.features == sorted(FEATURES) for beat in client.sent)
    declared, states = _stored(database_url, identity.device_id)
    assert declared == sorted(FEATURES)
    assert states == ["passed"]  # the challenge its heartbeat brought was answered


def test_the_daemon_declares_its_features_and_the_coordinator_stores_them(
    tmp_path: Path,
) -> None:
    asyncio.run(_scenario(tmp_path))
