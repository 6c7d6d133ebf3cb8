"""The daemon in-process with a simulated clock: a failed sensor stops the heater on the next
tick, and a restart resumes the controller from the state file.

The heater is an emulated Tasmota plug on a real mosquitto broker, through the real adapter.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from tests.agent.coordinator_app import SimClock

from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.open_devices import open_devices
from heatgrid.agent.state_store import StateStore
from heatgrid.core.control import Alarm
from heatgrid.emulators.plug import TasmotaPlugEmulator

T0_TS = 1_767_225_600.0
CONFIG = """
[sensor]
topic = "unused: read in-process"

[thermostat]
setpoint_c = 21.0
min_on_s = 600.0
min_off_s = 600.0
tick_s = 10.0

[[devices]]
type = "mqtt_plug"
name = "heater"
plug = "heater"
rated_power_w = 1500.0
min_cycle_s = 600.0
"""


async def _scenario(tmp_path: Path, host: str, port: int) -> None:
    clock = SimClock(T0_TS)
    config = parse_config(
        CONFIG,
        environ={
            "HEATGRID_AGENT__DEVICES__0__HOST": f'"{host}"',
            "HEATGRID_AGENT__DEVICES__0__PORT": str(port),
        },
    )
    room_temp_c = 18.0

    def room() -> TemperatureReading:
        now_ts = clock()
        return TemperatureReading(room_temp_c=room_temp_c, reading_ts=now_ts, received_ts=now_ts)

    async with TasmotaPlugEmulator(
        "heater", host=host, port=port, rated_power_w=1500.0, clock=clock
    ) as plug:
        devices = await open_devices(config, clock)
        try:
            with StateStore(tmp_path / "agent.sqlite3") as store:
                daemon = AgentDaemon(
                    config, devices=devices, room=room, store=store, client=None, clock=clock
                )
                for _ in range(3):
                    clock.now_ts += 10.0
                    await daemon.tick()
                assert plug.power_w == 1500.0
                heating_state = daemon.state.thermostat

                # A restart resumes the controller; its devices are commanded again.
                again = AgentDaemon(
                    config, devices=devices, room=room, store=store, client=None, clock=clock
                )
                assert again.state.thermostat == heating_state
                clock.now_ts += 10.0
                await again.tick()
                assert plug.power_w == 1500.0

                # The sensor fails: off on this tick, despite min_on_s and min_cycle_s.
                room_temp_c = math.nan
                clock.now_ts += 10.0
                result = await again.tick()
                assert result.command.alarm & Alarm.SENSOR_NOT_FINITE
                assert plug.power_w == 0.0
                newest = store.pending(10)[-1]  # an alarm is reported at once
                assert newest.sample_ts == clock.now_ts
                assert newest.room_temp_c is None
        finally:
            for device in devices:
                await device.aclose()


def test_nan_sensor_stops_heating_on_the_next_tick_and_restart_resumes(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    asyncio.run(_scenario(tmp_path, *mosquitto_broker))
