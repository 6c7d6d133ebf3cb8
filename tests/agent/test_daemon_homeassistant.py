"""The daemon with Home Assistant: discovery, setpoint and mode commands, a broker that goes away.

The daemon runs in-process with a simulated clock; the heater is a resistive element behind an
emulated Tasmota plug on a real mosquitto broker, driven through the real adapter, and it heats
an emulated room. Home Assistant's side is a real MQTT client on a real broker, publishing on
the command topics as Home Assistant does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.agent.coordinator_app import SimClock
from tests.mqtt_broker import running_broker
from tests.ports import free_port

from heatgrid.agent.config import AgentConfig, parse_config
from heatgrid.agent.daemon import AgentDaemon, manual_setpoint_until_ts
from heatgrid.agent.devices.base import HeatDevice
from heatgrid.agent.homeassistant import HaTopics, HomeAssistantBridge, discovery_messages
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.open_devices import open_devices, open_home_assistant
from heatgrid.agent.state_store import StateStore
from heatgrid.cli.main import main
from heatgrid.core.control import Mode, WeeklySchedule, setpoint_at
from heatgrid.core.thermal import Room1R1C
from heatgrid.emulators.plug import TasmotaPlugEmulator
from heatgrid.emulators.room import OutdoorSeries, RoomEmulator

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday
TICK_S = 120.0
WAIT_S = 20.0  # longest wait for a message or a reconnection (never reached when all is well)
TOPICS = HaTopics.for_node("living_room")  # node id made from [heater] name

CONFIG = """
[heater]
name = "living room"

[sensor]
topic = "unused: the room is read in-process"

[homeassistant]
enabled = true

[thermostat]
setpoint_c = 21.0
min_on_s = 300.0
min_off_s = 300.0
tick_s = 120.0
kp_w_per_k = 4000.0   # a 0.5 K proportional band
ki_w_per_k_s = 2.0

[room]
ua_w_per_k = 100.0
time_constant_h = 2.0

[[devices]]
type = "mqtt_plug"
name = "heater"
plug = "heater"
rated_power_w = 2000.0
min_cycle_s = 120.0
"""
# Monday 00:00 21 °C, Thursday 02:30 19 °C, Friday 00:00 21 °C (UTC).
SCHEDULE = "schedule = [[0, 0, 21.0], [3, 150, 19.0], [4, 0, 21.0]]\n"
HOLD_END_TS = T0_TS + 150 * 60.0


# ---------------------------------------------------------------------- the hold's end


@st.composite
def _schedules(draw: st.DrawFn) -> WeeklySchedule:
    times = draw(
        st.lists(
            st.tuples(st.integers(0, 6), st.integers(0, 1439)), min_size=1, max_size=6, unique=True
        )
    )
    offset_h = draw(st.integers(-56, 56)) / 4.0  # real offsets are whole quarters of an hour
    points = tuple((day, minute, 15.0 + index) for index, (day, minute) in enumerate(times))
    return WeeklySchedule(points, offset_h)


@given(schedule=_schedules(), now_ts=st.integers(0, 4_000_000_000))
def test_a_held_setpoint_ends_at_the_next_change_point(
    schedule: WeeklySchedule, now_ts: int
) -> None:
    until_ts = manual_setpoint_until_ts(schedule, float(now_ts))
    assert now_ts < until_ts <= now_ts + 7 * 86_400.0
    assert until_ts == pytest.approx(round(until_ts), abs=1e-6)
    local = datetime.fromtimestamp(round(until_ts) + schedule.utc_offset_h * 3600.0, UTC)
    points = {(day, minute): value for day, minute, value in schedule.change_points}
    assert local.second == 0
    assert (local.weekday(), local.hour * 60 + local.minute) in points
    # Setpoints differ per point, so nothing changed between now and then (core agrees).
    assert setpoint_at(schedule, until_ts - 0.5) == setpoint_at(schedule, float(now_ts))
    assert (
        setpoint_at(schedule, until_ts) == points[(local.weekday(), local.hour * 60 + local.minute)]
    )


def test_without_a_schedule_a_held_setpoint_holds() -> None:
    assert manual_setpoint_until_ts(None, T0_TS) == math.inf


# ---------------------------------------------------------------------- helpers


class _HomeAssistant:
    """Home Assistant's MQTT side: a real client keeping the last message of each topic."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: dict[str, tuple[str, bool]] = {}
        """Topic → (payload, retained flag) of the last message."""

    async def collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload
            text = payload.decode() if isinstance(payload, bytes) else str(payload)
            self.seen[message.topic.value] = (text, bool(message.retain))

    async def wait_for(self, topic: str, payload: str | None = None) -> str:
        async with asyncio.timeout(WAIT_S):
            while topic not in self.seen or payload not in {None, self.seen[topic][0]}:
                await asyncio.sleep(0.01)
        return self.seen[topic][0]

    async def command(self, topic: str, payload: str) -> None:
        await self.client.publish(topic, payload, qos=1)


@contextlib.asynccontextmanager
async def _home_assistant(host: str, port: int) -> AsyncIterator[_HomeAssistant]:
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe("homeassistant/#", qos=1)
        await client.subscribe("heatgrid/living_room/#", qos=1)
        ha = _HomeAssistant(client)
        task = asyncio.create_task(ha.collect())
        try:
            yield ha
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def _wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():
            await asyncio.sleep(0.01)


class _Home:
    """The daemon, its plug and the room it heats, moved tick by tick on a simulated clock."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        devices: list[HeatDevice],
        plug: TasmotaPlugEmulator,
        store: StateStore,
        clock: SimClock,
        initial_temp_c: float,
    ) -> None:
        self.config, self.devices, self.plug, self.store, self.clock = (
            config,
            devices,
            plug,
            store,
            clock,
        )
        self.room = RoomEmulator(
            Room1R1C(ua_w_per_k=100.0, capacity_j_per_k=100.0 * 2.0 * 3600.0),
            OutdoorSeries([8.0], T0_TS),
            now_ts=T0_TS,
            initial_temp_c=initial_temp_c,
        )
        self.daemon = self.restarted()
        self.power_w = 0.0

    def room_reading(self) -> TemperatureReading:
        return TemperatureReading(
            room_temp_c=self.room.room_temp_c,
            reading_ts=self.room.now_ts,
            received_ts=self.room.now_ts,
        )

    def restarted(self) -> AgentDaemon:
        """A daemon as a restart would make it, from the same state file."""
        return AgentDaemon(
            self.config,
            devices=self.devices,
            room=self.room_reading,
            store=self.store,
            client=None,
            clock=self.clock,
        )

    async def run_until(self, end_ts: float) -> list[tuple[float, float]]:
        """Tick until ``end_ts``; return (room temperature [°C], plug power [W]) per tick."""
        trace = []
        while self.clock.now_ts < end_ts:
            self.clock.now_ts += TICK_S
            self.room.advance(self.clock.now_ts, self.power_w)
            await self.daemon.tick()
            self.power_w = self.plug.power_w
            trace.append((self.room.room_temp_c, self.power_w))
        return trace


@contextlib.asynccontextmanager
async def _home(
    tmp_path: Path,
    device_broker: tuple[str, int],
    extra: str,
    environ: dict[str, str],
    initial_temp_c: float,
) -> AsyncIterator[_Home]:
    host, port = device_broker
    environ = {
        "HEATGRID_AGENT__DEVICES__0__HOST": f'"{host}"',
        "HEATGRID_AGENT__DEVICES__0__PORT": str(port),
        "HEATGRID_AGENT__SENSOR__HOST": f'"{host}"',
        "HEATGRID_AGENT__SENSOR__PORT": str(port),
        **environ,
    }
    config = parse_config(
        CONFIG.replace("[thermostat]\n", "[thermostat]\n" + extra), environ=environ
    )
    clock = SimClock(T0_TS)
    async with TasmotaPlugEmulator(
        "heater", host=host, port=port, rated_power_w=2000.0, clock=clock
    ) as plug:
        devices = await open_devices(config, clock)
        bridge: HomeAssistantBridge | None = None
        try:
            with StateStore(tmp_path / "agent.sqlite3") as store:
                home = _Home(
                    config,
                    devices=devices,
                    plug=plug,
                    store=store,
                    clock=clock,
                    initial_temp_c=initial_temp_c,
                )
                bridge = await open_home_assistant(config, home.daemon, retry_s=0.2)
                assert bridge is not None
                assert home.daemon.home_assistant is bridge
                yield home
        finally:
            if bridge is not None:
                await bridge.aclose()
            for device in devices:
                await device.aclose()


# ---------------------------------------------------------------------- the scenarios


async def _commands_scenario(tmp_path: Path, broker: tuple[str, int]) -> None:
    host, port = broker
    async with _home(tmp_path, broker, SCHEDULE, {}, initial_temp_c=21.0) as home:
        daemon, plug = home.daemon, home.plug
        async with _home_assistant(host, port) as ha:
            await ha.wait_for(TOPICS.availability, "online")  # the last of the announcement
        # Home Assistant restarting later still finds every configuration, retained.
        async with _home_assistant(host, port) as ha:
            for topic, payload in discovery_messages(home.config.home_assistant_identity()):
                assert json.loads(await ha.wait_for(topic)) == payload
                assert ha.seen[topic][1], f"{topic} is not retained"
            climate = json.loads(ha.seen["homeassistant/climate/living_room/thermostat/config"][0])
            assert climate["modes"] == ["heat", "off"]
            assert climate["temperature_command_topic"] == TOPICS.setpoint_command

            await home.run_until(T0_TS + 600.0)
            assert daemon.last_result is not None
            assert daemon.last_result.command.setpoint_c == 21.0

            # A setpoint from Home Assistant: held, echoed, kept by a restart; the room follows.
            await ha.command(TOPICS.setpoint_command, "23")
            await ha.wait_for(TOPICS.setpoint_state, "23.0")
            assert daemon.held_setpoint_c == 23.0
            assert home.restarted().held_setpoint_c == 23.0
            energy_before_kwh = daemon.heat_energy_kwh
            trace = await home.run_until(T0_TS + 5400.0)
            assert daemon.last_result.command.setpoint_c == 23.0
            assert max(temp_c for temp_c, _ in trace) >= 22.7
            assert all(temp_c <= 23.0 + 0.3 + 0.5 for temp_c, _ in trace)
            # The heater's energy: each tick's power over the tick; the last tick's power is
            # counted at the next tick, the one before this stretch at its first.
            drawn_kwh = sum(power_w for _, power_w in trace[:-1]) * TICK_S / 3.6e6
            counted_kwh = daemon.heat_energy_kwh - energy_before_kwh
            assert drawn_kwh > 1.0
            assert abs(counted_kwh - drawn_kwh) <= 2000.0 * TICK_S / 3.6e6 + 1e-9
            assert home.restarted().heat_energy_kwh == daemon.heat_energy_kwh  # kept
            assert await daemon.publish_home_assistant()
            energy_kwh = float(await ha.wait_for(TOPICS.energy))
            assert energy_kwh == round(daemon.heat_energy_kwh, 3)
            assert TOPICS.accepted_work not in ha.seen, "no coordinator, no mining count"
            assert await ha.wait_for(TOPICS.mode_state) == "heat"
            await ha.wait_for(TOPICS.room_temp, f"{round(home.room.room_temp_c, 2)}")
            action = "heating" if daemon.last_result.command.heating else "idle"
            assert await ha.wait_for(TOPICS.action) == action
            assert float(await ha.wait_for(TOPICS.power)) in {0.0, 2000.0}
            assert await ha.wait_for(TOPICS.job) in {"heat only", "idle"}
            assert TOPICS.hashrate not in ha.seen, "no miner, no hash rate"
            assert TOPICS.earnings not in ha.seen, "earnings unknown, left out"

            # Off from Home Assistant while heating: the element is off at once and stays off.
            while plug.power_w != 2000.0:
                assert home.clock.now_ts < T0_TS + 7200.0, "the room never called for heat"
                await home.run_until(home.clock.now_ts + TICK_S)
            off_ts = home.clock.now_ts
            await ha.command(TOPICS.mode_command, "off")
            await ha.wait_for(TOPICS.mode_state, "off")
            assert daemon.mode == Mode.OFF
            assert plug.power_w == 0.0
            assert home.restarted().mode == Mode.OFF
            trace = await home.run_until(off_ts + 600.0)
            assert all(power_w == 0.0 for _, power_w in trace)
            assert await daemon.publish_home_assistant()
            await ha.wait_for(TOPICS.action, "off")

            # Heat resumes the schedule's mode; the hold ends at the next change point.
            await ha.command(TOPICS.mode_command, "heat")
            await ha.wait_for(TOPICS.mode_state, "heat")
            assert home.daemon.mode == Mode.AUTO  # (not narrowed by the assertion above)
            trace = await home.run_until(HOLD_END_TS - TICK_S)
            assert max(power_w for _, power_w in trace) == 2000.0
            assert daemon.last_result.command.setpoint_c == 23.0
            await home.run_until(HOLD_END_TS)
            assert daemon.last_result.command.setpoint_c == 19.0
            assert daemon.held_setpoint_c is None
            assert home.restarted().held_setpoint_c is None


def test_home_assistant_sees_the_heater_and_its_setpoint_and_mode_drive_it(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    asyncio.run(_commands_scenario(tmp_path, mosquitto_broker))


async def _broker_restart_scenario(tmp_path: Path, device_broker: tuple[str, int]) -> None:
    with contextlib.ExitStack() as first_broker:
        ha_host, ha_port = first_broker.enter_context(running_broker())
        environ = {
            "HEATGRID_AGENT__HOMEASSISTANT__HOST": f'"{ha_host}"',
            "HEATGRID_AGENT__HOMEASSISTANT__PORT": str(ha_port),
        }
        async with _home(tmp_path, device_broker, "", environ, initial_temp_c=19.0) as home:
            daemon = home.daemon
            bridge = daemon.home_assistant
            assert bridge is not None
            async with _home_assistant(ha_host, ha_port) as ha:
                await ha.wait_for(TOPICS.availability, "online")
                await home.run_until(T0_TS + 600.0)
                assert home.plug.power_w == 2000.0
                assert await daemon.publish_home_assistant()
                await ha.wait_for(TOPICS.action, "heating")

            first_broker.close()  # Home Assistant's broker goes away
            await _wait_until(lambda: not bridge.connected)
            assert not await daemon.publish_home_assistant()
            trace = await home.run_until(T0_TS + 5400.0)
            assert not await daemon.publish_home_assistant()
            # The heater went on controlling: it warmed the room, then held it in band.
            temps_c = [temp_c for temp_c, _ in trace]
            assert max(temps_c) >= 21.0 - 0.3
            assert all(temp_c <= 21.0 + 0.3 + 0.5 for temp_c in temps_c)
            assert any(power_w == 0.0 for _, power_w in trace[len(trace) // 2 :])

            with running_broker(ha_port):  # back, empty: the bridge announces itself again
                await _wait_until(lambda: bridge.connected)
                async with _home_assistant(ha_host, ha_port) as ha:
                    await ha.wait_for("homeassistant/climate/living_room/thermostat/config")
                    await ha.wait_for(TOPICS.availability, "online")
                    assert await daemon.publish_home_assistant()
                    await ha.wait_for(TOPICS.mode_state, "heat")
                    await ha.command(TOPICS.setpoint_command, "22")
                    await ha.wait_for(TOPICS.setpoint_state, "22.0")
                    assert daemon.held_setpoint_c == 22.0


def test_the_heater_keeps_control_while_home_assistants_broker_restarts(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    asyncio.run(_broker_restart_scenario(tmp_path, mosquitto_broker))


async def _absent_broker_scenario(tmp_path: Path, device_broker: tuple[str, int]) -> None:
    environ = {
        "HEATGRID_AGENT__HOMEASSISTANT__PORT": str(free_port()),
        "HEATGRID_AGENT__SENSOR__CONNECT_TIMEOUT_S": "0.5",
    }
    async with _home(tmp_path, device_broker, "", environ, initial_temp_c=19.0) as home:
        bridge = home.daemon.home_assistant
        assert bridge is not None
        assert not bridge.connected
        assert not await home.daemon.publish_home_assistant()
        await home.run_until(T0_TS + 600.0)
        assert home.plug.power_w == 2000.0  # a cold room is heated all the same
        assert not await home.daemon.publish_home_assistant()


def test_an_absent_home_assistant_broker_does_not_keep_the_heater_from_starting(
    tmp_path: Path, mosquitto_broker: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="heatgrid.agent.open_devices"):
        asyncio.run(_absent_broker_scenario(tmp_path, mosquitto_broker))
    assert any("homeassistant" in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------------- the real process


def _process_config(tmp_path: Path, host: str, port: int) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
[state]
path = "{tmp_path / "agent.sqlite3"}"

[heater]
name = "living room"

[sensor]
host = "{host}"
port = {port}
topic = "home/room/temperature"
key = "room_temp_c"

[homeassistant]
enabled = true

[thermostat]
setpoint_c = 21.0
min_on_s = 0.0
min_off_s = 0.0
tick_s = 0.2
telemetry_interval_s = 0.2

[[devices]]
type = "mqtt_plug"
name = "boost"
plug = "heater"
host = "{host}"
port = {port}
rated_power_w = 1000.0
min_cycle_s = 0.0
"""
    )
    return path


async def _process_scenario(tmp_path: Path, host: str, port: int) -> int:
    config = _process_config(tmp_path, host, port)
    async with (
        TasmotaPlugEmulator("heater", host=host, port=port, rated_power_w=1000.0) as plug,
        _home_assistant(host, port) as ha,
    ):
        payload = json.dumps({"room_temp_c": 18.0, "sample_ts": time.time()})
        await ha.client.publish("home/room/temperature", payload, qos=1, retain=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "heatgrid.cli.main", "agent", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The state is published by the running daemon, every telemetry interval.
            await ha.wait_for(TOPICS.action, "heating")
            await ha.wait_for(TOPICS.mode_state, "heat")
            await ha.wait_for(TOPICS.room_temp, "18.0")
            await ha.wait_for(TOPICS.setpoint_state, "21.0")
            await _wait_until(lambda: plug.power_w == 1000.0)
            await ha.command(TOPICS.mode_command, "off")
            await ha.wait_for(TOPICS.action, "off")
            await _wait_until(lambda: plug.power_w == 0.0)
            await ha.command(TOPICS.setpoint_command, "19.5")
            await ha.wait_for(TOPICS.setpoint_state, "19.5")
            await ha.command(TOPICS.mode_command, "heat")
            await ha.wait_for(TOPICS.action, "heating")
            await _wait_until(lambda: plug.power_w == 1000.0)
            await ha.command(TOPICS.mode_command, "off")
            await ha.wait_for(TOPICS.action, "off")
            os.kill(process.pid, signal.SIGTERM)
            status = await asyncio.to_thread(process.wait, WAIT_S)
            await ha.wait_for(TOPICS.availability, "offline")
            assert plug.power_w == 0.0
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
    return status


def test_the_agent_process_answers_home_assistant_and_keeps_its_choices(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    assert asyncio.run(_process_scenario(tmp_path, *mosquitto_broker)) == 0
    again = parse_config(_process_config(tmp_path, *mosquitto_broker).read_text(), environ={})
    with StateStore(again.state.path) as store:
        assert store.get("user_mode") == "OFF"
        assert store.get("setpoint_hold") == {"setpoint_c": 19.5, "until_ts": math.inf}


# ---------------------------------------------------------------------- bad configuration

MINIMAL = """
[sensor]
topic = "room/temp"

[[devices]]
type = "cpu"
idle_power_w = 10.0
max_power_w = 100.0

[homeassistant]
enabled = true
"""


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("port = 70000", "homeassistant.port"),
        ('node_id = "living room"', "homeassistant.node_id"),
        ('discovery_prefix = "homeassistant/#"', "homeassistant.discovery_prefix"),
        ("max_setpoint_c = 35.0", "homeassistant.max_setpoint_c"),
        ("min_setpoint_c = 30.0", "min_setpoint_c"),
        ('name = ""', "homeassistant.name"),
        ("broker = 1", "homeassistant.broker"),
    ],
)
def test_bad_home_assistant_settings_stop_the_agent_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, named: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL + line + "\n")
    status = main(["agent", "--config", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert named in err
    assert "Traceback" not in err
