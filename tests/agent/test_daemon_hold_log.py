"""The log says in words how long a setpoint set by hand holds (never "until inf")."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.state_store import StateStore

T0_TS = 1_768_435_200.0  # Thursday 2026-01-15 00:00 UTC

_CONFIG = """
[sensor]
topic = "t/room"

[thermostat]
setpoint_c = 21.0
{schedule}

[[devices]]
type = "mqtt_plug"
name = "heater"
plug = "heater"
rated_power_w = 1000.0
"""


async def _hold(tmp_path: Path, schedule: str) -> None:
    config = parse_config(_CONFIG.format(schedule=schedule), environ={})
    with StateStore(tmp_path / "agent.sqlite3") as store:
        daemon = AgentDaemon(
            config, devices=[], room=lambda: None, store=store, client=None, clock=lambda: T0_TS
        )
        await daemon.hold_setpoint(19.5)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("", "held by hand until another setpoint is set (no schedule to return to)"),
        (
            "schedule = [[3, 360, 21.0], [3, 1320, 18.0]]",
            "held by hand until the schedule's next change, 2026-01-15 06:00 UTC",
        ),
    ],
)
def test_the_hold_is_logged_in_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, schedule: str, expected: str
) -> None:
    with caplog.at_level(logging.INFO, logger="heatgrid.agent.daemon"):
        asyncio.run(_hold(tmp_path, schedule))
    held = [
        record.getMessage() for record in caplog.records if "held by hand" in record.getMessage()
    ]
    assert held == [f"setpoint 19.5 °C {expected}"]
    assert "inf" not in held[0]
