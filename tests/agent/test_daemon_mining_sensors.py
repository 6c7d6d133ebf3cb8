"""Home Assistant shows the heater's mining as the coordinator's proxy counted it.

A real coordinator (uvicorn, SQLite) holds the heater's accepted shares and a settlement; the
daemon reads them with its device token when it syncs and publishes them, with its energy, on
a real mosquitto broker where a Home Assistant client listens.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
from sqlalchemy import select
from tests.agent.coordinator_app import ServedCoordinator, SimClock, migrated_database, running

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.homeassistant import HaTopics
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.open_devices import open_devices, open_home_assistant
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningShare
from heatgrid.coordinator.mining_settlements import settle
from heatgrid.emulators.plug import TasmotaPlugEmulator
from heatgrid.protocol import v1

T0_TS = 1_767_225_600.0
TICK_S = 60.0
TOPICS = HaTopics.for_node("garage_rig")
CONFIG = """
[heater]
name = "garage rig"

[homeassistant]
enabled = true

[sensor]
topic = "unused: the room is read in-process"

[thermostat]
setpoint_c = 21.0
tick_s = 60.0

[[devices]]
type = "mqtt_plug"
name = "heater"
plug = "heater"
rated_power_w = 1400.0
min_cycle_s = 120.0
"""


def _mine(database_url: str, device_id: str) -> int:
    """Store 360 shares of difficulty 32768 (an S9's hour), settle them; return the credit."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            session.add_all(
                MiningShare(
                    share_key=f"{index:064x}",
                    device_id=device_id,
                    worker=f"{device_id}.s9",
                    job_id=f"{index // 30:x}",
                    difficulty=32_768.0,
                    accepted_ts=T0_TS - 3600.0 + 10.0 * index,
                    block_hash=None,
                    upstream_accepted=True,
                )
                for index in range(360)
            )
            session.commit()
            result = settle(
                session,
                scheme="pro_rata",
                until_ts=T0_TS,
                fee_fraction=0.02,
                pool_paid_sat=2_525,
                now_ts=T0_TS,
            )
            assert result is not None
            assert session.scalar(select(MiningShare.settlement_id).limit(1)) is not None
            return result.device_credits_sat[device_id]
    finally:
        engine.dispose()


async def _scenario(tmp_path: Path, broker: tuple[str, int]) -> None:
    host, port = broker
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(database_url, tmp_path / "checkpoints", clock)
    environ = {
        "HEATGRID_AGENT__DEVICES__0__HOST": f'"{host}"',
        "HEATGRID_AGENT__DEVICES__0__PORT": str(port),
        "HEATGRID_AGENT__HOMEASSISTANT__HOST": f'"{host}"',
        "HEATGRID_AGENT__HOMEASSISTANT__PORT": str(port),
    }
    config = parse_config(CONFIG, environ=environ)
    async with (
        TasmotaPlugEmulator("heater", host=host, port=port, rated_power_w=1400.0, clock=clock),
        running(coordinator),
        CoordinatorClient(coordinator.url, timeout_s=5.0) as client,
        aiomqtt.Client(host, port) as home_assistant,
    ):
        await home_assistant.subscribe("heatgrid/garage_rig/#", qos=1)
        seen: dict[str, str] = {}

        async def listen() -> None:
            async for message in home_assistant.messages:
                payload = message.payload
                seen[message.topic.value] = (
                    payload.decode() if isinstance(payload, bytes) else str(payload)
                )

        listener = asyncio.create_task(listen())
        devices = await open_devices(config, clock)
        enrolled = await client.enroll(
            v1.EnrollRequest(
                enrollment_code=code,
                device_name="garage rig",
                device_kind="asic",
                hardware=v1.Hardware(
                    model="Antminer S9", max_power_w=1400.0, min_power_w=400.0, hashrate_ths=14.0
                ),
                has_room=True,
            )
        )
        credited_sat = _mine(database_url, enrolled.device_id)
        with StateStore(tmp_path / "agent.sqlite3") as store:
            store.save_identity(
                Identity(
                    url=client.url,
                    device_id=enrolled.device_id,
                    device_token=enrolled.device_token,
                )
            )
            daemon = AgentDaemon(
                config,
                devices=devices,
                room=lambda: TemperatureReading(
                    room_temp_c=18.0, reading_ts=clock.now_ts, received_ts=clock.now_ts
                ),
                store=store,
                client=client,
                clock=clock,
            )
            bridge = await open_home_assistant(config, daemon, retry_s=0.2)
            assert bridge is not None
            try:
                for _ in range(5):  # a cold room: the element runs at 1400 W
                    clock.now_ts += TICK_S
                    await daemon.tick()
                await daemon.sync()
                assert daemon.mining is not None
                assert await daemon.publish_home_assistant()
                async with asyncio.timeout(20.0):
                    while TOPICS.mining_earnings not in seen or TOPICS.energy not in seen:
                        await asyncio.sleep(0.01)
            finally:
                await bridge.aclose()
                for device in devices:
                    await device.aclose()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await listener
    assert seen[TOPICS.accepted_work] == str(360 * 32_768)
    assert seen[TOPICS.mining_earnings] == str(credited_sat)
    assert credited_sat == 2_474  # 2,525 sat less the 2 % fee (50.5 sat, rounded half up)
    # Four ticks at 1400 W after the first (which only starts the count): 1400 W · 240 s.
    assert float(seen[TOPICS.energy]) == round(1400.0 * 4 * TICK_S / 3.6e6, 3)


def test_home_assistant_shows_the_proxys_count_of_the_heaters_mining(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    asyncio.run(_scenario(tmp_path, mosquitto_broker))
