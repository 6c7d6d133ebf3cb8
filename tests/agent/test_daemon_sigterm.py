"""``heatgrid agent`` as a real process: it heats, and SIGTERM leaves the heater in its safe state.

The heater is an emulated Tasmota plug on a real mosquitto broker; the room temperature is a
retained MQTT message, as a room sensor publishes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from heatgrid.agent.state_store import StateStore
from heatgrid.emulators.plug import TasmotaPlugEmulator

_WAIT_S = 60.0  # an upper bound against hanging, not a timing requirement


def _config(tmp_path: Path, host: str, port: int) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
[state]
path = "{tmp_path / "agent.sqlite3"}"

[sensor]
host = "{host}"
port = {port}
topic = "home/room/temperature"
key = "room_temp_c"

[thermostat]
setpoint_c = 21.0
min_on_s = 0.0
min_off_s = 0.0
tick_s = 0.2
grace_s = 10.0

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


async def _until(condition: object, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():  # type: ignore[operator]
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "the agent did not get there"
        await asyncio.sleep(0.05)


async def _scenario(tmp_path: Path, host: str, port: int) -> tuple[int, str]:
    config = _config(tmp_path, host, port)
    async with TasmotaPlugEmulator("heater", host=host, port=port, rated_power_w=1000.0) as plug:
        async with aiomqtt.Client(host, port) as client:
            payload = json.dumps({"room_temp_c": 18.0, "sample_ts": time.time()})
            await client.publish("home/room/temperature", payload, qos=1, retain=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "heatgrid.cli.main", "agent", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            await _until(lambda: plug.power_w == 1000.0, process)  # a cold room: heating
            os.kill(process.pid, signal.SIGTERM)
            status = await asyncio.to_thread(process.wait, _WAIT_S)
            assert plug.power_w == 0.0, "SIGTERM left the element on"
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        return status, stderr


def test_sigterm_puts_the_heater_in_its_safe_state(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    status, stderr = asyncio.run(_scenario(tmp_path, *mosquitto_broker))
    assert status == 0, stderr
    assert "safe state" in stderr
    assert "Traceback" not in stderr
    with StateStore(tmp_path / "agent.sqlite3") as store:
        assert store.pending_count() >= 1  # local-only: telemetry waits for enrollment
        assert store.get("loop_state")["thermostat"]["heating"] is True


def test_a_stale_sensor_never_starts_heating(
    tmp_path: Path, mosquitto_broker: tuple[str, int]
) -> None:
    host, port = mosquitto_broker

    async def scenario() -> float:
        config = _config(tmp_path, host, port)
        async with TasmotaPlugEmulator(
            "heater", host=host, port=port, rated_power_w=1000.0
        ) as plug:
            async with aiomqtt.Client(host, port) as client:
                payload = json.dumps({"room_temp_c": 18.0, "sample_ts": time.time() - 3600.0})
                await client.publish("home/room/temperature", payload, qos=1, retain=True)
            process = subprocess.Popen(
                [sys.executable, "-m", "heatgrid.cli.main", "agent", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                store_path = tmp_path / "agent.sqlite3"

                def ticked() -> bool:
                    if not store_path.exists():
                        return False
                    with StateStore(store_path) as store:
                        return store.pending_count() >= 1

                await _until(ticked, process)
                power_w = plug.power_w
                os.kill(process.pid, signal.SIGTERM)
                await asyncio.to_thread(process.wait, _WAIT_S)
            finally:
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                if process.stderr:
                    process.stderr.close()
            return power_w

    assert asyncio.run(scenario()) == 0.0
    with StateStore(tmp_path / "agent.sqlite3") as store:
        assert store.get("loop_state")["thermostat"]["alarm"] != 0


pytestmark = pytest.mark.timeout(120)
