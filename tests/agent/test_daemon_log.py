"""The agent log speaks to people: a held setpoint's end in words, a clock mismatch named."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.state_store import StateStore
from heatgrid.core.control import Alarm

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


async def _stale_tick(tmp_path: Path, reading_ts: float, received_ts: float) -> Alarm:
    config = parse_config(_CONFIG.format(schedule=""), environ={})
    reading = TemperatureReading(room_temp_c=18.0, reading_ts=reading_ts, received_ts=received_ts)
    with StateStore(tmp_path / "agent.sqlite3") as store:
        daemon = AgentDaemon(
            config, devices=[], room=lambda: reading, store=store, client=None, clock=lambda: T0_TS
        )
        result = await daemon.tick()
    return result.command.alarm


def test_readings_stamped_on_another_clock_get_a_hint_to_share_the_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An emulated room a year in the past: the agent says how to run on its clock."""
    with caplog.at_level(logging.WARNING, logger="heatgrid.agent.daemon"):
        alarm = asyncio.run(_stale_tick(tmp_path, T0_TS - 365 * 86_400.0, T0_TS))
    assert alarm & Alarm.SENSOR_STALE
    text = " ".join(record.getMessage() for record in caplog.records)
    assert "31536000 s behind this agent's clock" in text
    assert "heatgrid agent --clock" in text


def test_a_sensor_that_went_quiet_gets_no_clock_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="heatgrid.agent.daemon"):
        alarm = asyncio.run(_stale_tick(tmp_path, T0_TS - 3600.0, T0_TS - 3600.0))
    assert alarm & Alarm.SENSOR_STALE
    assert "--clock" not in " ".join(record.getMessage() for record in caplog.records)
