"""The daemon against the real coordinator (uvicorn on loopback, SQLite), with an emulated room.

The heater is a resistive element behind an emulated Tasmota plug on a real mosquitto broker,
driven through the real MQTT plug adapter; the room is heated by the plug's power.

Simulated time drives everything: the coordinator's clock, the room and the agent are moved by
the test, tick by tick; nothing sleeps for simulated minutes. The coordinator is stopped for ten
simulated minutes: the room must stay in band, and once it is back every telemetry sample of
those minutes must be in its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sqlite3
from pathlib import Path

from tests.agent.coordinator_app import ServedCoordinator, SimClock, migrated_database, running

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.open_devices import open_devices
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.core.thermal import Room1R1C
from heatgrid.emulators.plug import TasmotaPlugEmulator
from heatgrid.emulators.room import OutdoorSeries, RoomEmulator
from heatgrid.protocol import v1

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TICK_S = 60.0
SETPOINT_C = 21.0
HOT_TOLERANCE_K = 0.3
COLD_TOLERANCE_K = 0.3

CONFIG = """
heat_only = true

[coordinator]
heartbeat_interval_s = 300.0
backoff_initial_s = 5.0
backoff_max_s = 60.0

[sensor]
topic = "unused: the room is read in-process"

[thermostat]
setpoint_c = 21.0
min_on_s = 300.0
min_off_s = 300.0
tick_s = 60.0
telemetry_interval_s = 60.0
kp_w_per_k = 4000.0   # a 0.5 K proportional band: settles within the test's first hour
ki_w_per_k_s = 2.0

[room]
ua_w_per_k = 100.0
time_constant_h = 4.0

[[devices]]
type = "mqtt_plug"
name = "heater"
plug = "heater"
rated_power_w = 2000.0
min_cycle_s = 120.0
"""


def _stored_samples(database_url: str, device_id: str) -> dict[float, float | None]:
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT sample_ts, room_temp_c FROM telemetry WHERE device_id = ? ORDER BY sample_ts",
            (device_id,),
        ).fetchall()
    return {float(ts): temp for ts, temp in rows}


async def _scenario(tmp_path: Path, broker: tuple[str, int]) -> None:
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(database_url, tmp_path / "checkpoints", clock)
    host, port = broker
    config = parse_config(
        CONFIG,
        environ={
            "HEATGRID_AGENT__DEVICES__0__HOST": f'"{host}"',
            "HEATGRID_AGENT__DEVICES__0__PORT": str(port),
        },
    )
    room = RoomEmulator(
        Room1R1C(ua_w_per_k=100.0, capacity_j_per_k=100.0 * 4 * 3600.0),
        OutdoorSeries([5.0], T0_TS),
        now_ts=T0_TS,
        initial_temp_c=SETPOINT_C,
    )
    plug = TasmotaPlugEmulator("heater", host=host, port=port, rated_power_w=2000.0, clock=clock)
    await plug.start()
    devices = await open_devices(config, clock)
    store = StateStore(tmp_path / "agent.sqlite3")
    client = CoordinatorClient(coordinator.url, timeout_s=5.0)

    def room_reading() -> TemperatureReading:
        return TemperatureReading(
            room_temp_c=room.room_temp_c, reading_ts=room.now_ts, received_ts=room.now_ts
        )

    daemon = AgentDaemon(
        config,
        devices=devices,
        room=room_reading,
        store=store,
        client=client,
        clock=clock,
        rng=random.Random(5),
    )
    next_sync_ts = T0_TS
    power_w = 0.0

    async def run_until(end_ts: float) -> list[float]:
        nonlocal next_sync_ts, power_w
        temps_c = []
        while clock.now_ts < end_ts:
            clock.now_ts += TICK_S
            temps_c.append(room.advance(clock.now_ts, power_w))
            await daemon.tick()
            power_w = plug.power_w
            if clock.now_ts >= next_sync_ts:
                next_sync_ts = clock.now_ts + await daemon.sync()
        return temps_c

    try:
        async with running(coordinator):
            answer = await client.enroll(
                v1.EnrollRequest(
                    enrollment_code=code,
                    device_name="living room",
                    device_kind="rack",
                    hardware=v1.Hardware(max_power_w=2000.0, min_power_w=2000.0),
                    has_room=True,
                )
            )
            identity = Identity(
                url=client.url, device_id=answer.device_id, device_token=answer.device_token
            )
            store.save_identity(identity)
            settled_temps_c = await run_until(T0_TS + 3600.0)
            assert store.pending_count() <= 5  # at most one heartbeat interval of samples
        outage_start_ts = clock.now_ts
        outage_temps_c = await run_until(outage_start_ts + 600.0)
        outage_end_ts = clock.now_ts
        assert store.pending_count() >= 9, "the samples of the outage wait in the state file"
        assert daemon.backoff.failures >= 1
        async with running(coordinator):
            await run_until(outage_end_ts + 600.0)
        assert store.pending_count() <= 5  # at most one heartbeat interval of samples
    finally:
        for device in devices:
            await device.aclose()
        await plug.stop()
        await client.aclose()
        store.close()
    assert plug.power_w == 0.0, "closing leaves the element off"
    assert min(settled_temps_c) >= SETPOINT_C - 1.0

    band_c = (SETPOINT_C - COLD_TOLERANCE_K - 0.5, SETPOINT_C + HOT_TOLERANCE_K + 0.5)
    assert all(band_c[0] <= t <= band_c[1] for t in outage_temps_c), outage_temps_c
    stored = _stored_samples(database_url, identity.device_id)
    during = sorted(ts for ts in stored if outage_start_ts <= ts <= outage_end_ts)
    assert len(during) >= 10
    ordered = sorted(stored)
    assert all(b - a == 60.0 for a, b in itertools.pairwise(ordered)), "no gap"
    assert ordered[0] <= T0_TS + 60.0
    assert ordered[-1] > outage_end_ts  # and what came after, once it was back
    assert all(band_c[0] <= stored[ts] <= band_c[1] for ts in during)  # type: ignore[operator]


def test_room_stays_in_band_and_telemetry_of_an_outage_arrives(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    asyncio.run(_scenario(tmp_path, mosquitto_broker))
