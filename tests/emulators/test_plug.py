"""The emulated Tasmota plug speaks Tasmota's MQTT topics on a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.emulators.plug import PlugMeter, TasmotaPlugEmulator

T0 = 1_767_225_600.0


class _Clock:
    def __init__(self) -> None:
        self.now_ts = T0

    def __call__(self) -> float:
        return self.now_ts


async def _next(client: aiomqtt.Client, topic: str, timeout_s: float = 5.0) -> str:
    async def wait() -> str:
        async for message in client.messages:
            if message.topic.matches(topic):
                payload = message.payload
                return payload.decode() if isinstance(payload, bytes) else str(payload)
        raise AssertionError("connection closed")

    return await asyncio.wait_for(wait(), timeout_s)


def _energy(payload: str, outer: str | None = None) -> dict[str, Any]:
    body = json.loads(payload)
    return dict((body[outer] if outer else body)["ENERGY"])


def test_commands_answers_and_telemetry(mosquitto_broker: tuple[str, int]) -> None:
    host, port = mosquitto_broker

    async def main() -> None:
        clock = _Clock()
        async with aiomqtt.Client(host, port) as observer:
            await observer.subscribe("stat/heater/#")
            await observer.subscribe("tele/heater/#")
            async with TasmotaPlugEmulator(
                "heater",
                host=host,
                port=port,
                rated_power_w=1800.0,
                clock=clock,
                telemetry_period_s=60.0,
                poll_s=0.01,
            ):
                assert await _next(observer, "tele/heater/LWT") == "Online"
                assert await _next(observer, "stat/heater/POWER") == "OFF"
                first = _energy(await _next(observer, "tele/heater/SENSOR"))
                assert first["Power"] == 0
                assert first["Total"] == 0.0

                await observer.publish("cmnd/heater/POWER", "on")
                assert json.loads(await _next(observer, "stat/heater/RESULT")) == {"POWER": "ON"}
                assert await _next(observer, "stat/heater/POWER") == "ON"
                on_change = _energy(await _next(observer, "tele/heater/SENSOR"))
                assert on_change["Power"] == 1800
                assert on_change["Voltage"] == 230

                clock.now_ts += 3600.0  # an hour at 1.8 kW; telemetry is due
                periodic = _energy(await _next(observer, "tele/heater/SENSOR"))
                assert periodic["Total"] == pytest.approx(1.8)

                await observer.publish("cmnd/heater/STATUS", "10")
                status = _energy(await _next(observer, "stat/heater/STATUS10"), "StatusSNS")
                assert status["Power"] == 1800
                assert status["Total"] == pytest.approx(1.8)

                await observer.publish("cmnd/heater/POWER", "TOGGLE")
                assert await _next(observer, "stat/heater/POWER") == "OFF"
                await observer.publish("cmnd/heater/POWER", "")
                assert await _next(observer, "stat/heater/POWER") == "OFF"
                await observer.publish("cmnd/heater/POWER", "maybe")
                error = json.loads(await _next(observer, "stat/heater/RESULT"))
                assert error == {"Command": "Error"}
                await observer.publish("cmnd/heater/Dimmer", "50")
                unknown = json.loads(await _next(observer, "stat/heater/RESULT"))
                assert unknown == {"Command": "Unknown"}
            assert await _next(observer, "tele/heater/LWT") == "Offline"

    asyncio.run(main())


@given(
    steps=st.lists(st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=1e5)), max_size=20)
)
def test_meter_energy_is_rated_power_times_time_on(steps: list[tuple[bool, float]]) -> None:
    meter = PlugMeter(rated_power_w=2000.0, now_ts=T0)
    now_ts, on, expected_j = T0, False, 0.0
    for switch_on, duration_s in steps:
        meter.switch(switch_on, now_ts)
        on = switch_on
        now_ts += duration_s
        expected_j += 2000.0 * duration_s if on else 0.0
    meter.advance(now_ts)
    # Timestamps near 1.8e9 s resolve 2.4e-7 s: each step may be off by that much at 2 kW.
    assert meter.energy_j == pytest.approx(
        expected_j, rel=1e-9, abs=2000.0 * 5e-7 * (len(steps) + 1)
    )
    assert meter.power_w == (2000.0 if on else 0.0)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InputError, match="rated_power_w"):
        PlugMeter(rated_power_w=0.0, now_ts=T0)
    with pytest.raises(InputError, match="plug name"):
        TasmotaPlugEmulator("a/b", host="127.0.0.1", port=1, rated_power_w=1.0)
    with pytest.raises(InputError, match="telemetry_period_s"):
        TasmotaPlugEmulator(
            "a", host="127.0.0.1", port=1, rated_power_w=1.0, telemetry_period_s=0.0
        )
