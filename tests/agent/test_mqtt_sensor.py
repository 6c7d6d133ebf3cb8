"""MqttTemperatureSensor reads any topic on a real broker: plain numbers and JSON fields."""

from __future__ import annotations

import asyncio
import json
import socket

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.mqtt_broker import running_broker
from tests.ports import free_port

from heatgrid.agent._mqtt import parse_reading
from heatgrid.agent.mqtt_sensor import (
    MqttTemperatureSensor,
    MqttUnavailableError,
    TemperatureReading,
)
from heatgrid.core.errors import InputError

T0 = 1_767_225_600.0


class _Clock:
    def __init__(self) -> None:
        self.now_ts = T0

    def __call__(self) -> float:
        return self.now_ts


def test_a_plain_number_with_its_arrival_time(mosquitto_broker: tuple[str, int]) -> None:
    host, port = mosquitto_broker

    async def main() -> None:
        clock = _Clock()
        sensor = MqttTemperatureSensor("home/hall/temp", host=host, port=port, clock=clock)
        await sensor.start()
        try:
            assert sensor.latest is None
            async with aiomqtt.Client(host, port) as publisher:
                waiting = asyncio.create_task(sensor.wait_for_reading(5.0))
                await asyncio.sleep(0)
                await publisher.publish("home/hall/temp", "19.25", qos=1)
                reading = await waiting
                assert reading.room_temp_c == 19.25
                assert reading.reading_ts == reading.received_ts == T0
                clock.now_ts += 60.0
                for bad in ("hot", "", "inf", "nan"):
                    await publisher.publish("home/hall/temp", bad, qos=1)
                waiting = asyncio.create_task(sensor.wait_for_reading(5.0))
                await asyncio.sleep(0)
                await publisher.publish("home/hall/temp", "19.5", qos=1)
                later = await waiting
                assert later.room_temp_c == 19.5  # the bad payloads in between were ignored
                assert later.received_ts == T0 + 60.0
                clock.now_ts += 600.0  # the sensor falls silent: its latest reading ages
                assert sensor.latest is later
                assert later.age_s(clock.now_ts) == 600.0
        finally:
            await sensor.aclose()

    asyncio.run(main())


def test_a_retained_json_reading_keeps_its_own_timestamp(
    mosquitto_broker: tuple[str, int],
) -> None:
    host, port = mosquitto_broker

    async def main() -> None:
        async with aiomqtt.Client(host, port) as publisher:
            body = {"room_temp_c": 20.5, "sample_ts": T0 - 3600.0}
            await publisher.publish("room/t", json.dumps(body), qos=1, retain=True)
            nested = {"Time": "x", "AM2301": {"Temperature": 18.1}}
            await publisher.publish("tele/th16/SENSOR", json.dumps(nested), qos=1, retain=True)
        clock = _Clock()
        flat = MqttTemperatureSensor("room/t", host=host, port=port, key="room_temp_c", clock=clock)
        deep = MqttTemperatureSensor(
            "tele/th16/SENSOR", host=host, port=port, key="AM2301.Temperature", clock=clock
        )
        try:
            waits = [asyncio.create_task(s.wait_for_reading(5.0)) for s in (flat, deep)]
            await flat.start()
            await deep.start()
            first, second = await asyncio.gather(*waits)
            assert first.room_temp_c == 20.5
            assert first.reading_ts == T0 - 3600.0  # an hour old, though it arrived now
            assert first.age_s(clock.now_ts) == 3600.0
            assert first.received_ts == T0
            assert second.room_temp_c == 18.1
            assert second.reading_ts == T0  # no timestamp field: its arrival
        finally:
            await flat.aclose()
            await deep.aclose()

    asyncio.run(main())


def test_the_sensor_reconnects_when_the_broker_comes_back() -> None:
    async def scenario(port: int) -> None:
        clock = _Clock()
        sensor = MqttTemperatureSensor(
            "room/t", host="127.0.0.1", port=port, key="room_temp_c", clock=clock, retry_s=0.05
        )
        try:
            with running_broker(port):
                await sensor.start()
                await _publish_until_read(sensor, port, 20.0)
            # the broker is gone; a new one starts on the same port
            with running_broker(port):
                clock.now_ts += 30.0
                reading = await _publish_until_read(sensor, port, 21.0)
                assert reading.received_ts == T0 + 30.0
        finally:
            await sensor.aclose()

    asyncio.run(scenario(free_port()))


async def _publish_until_read(
    sensor: MqttTemperatureSensor, port: int, room_temp_c: float
) -> TemperatureReading:
    """Publish (retained) and wait for the sensor to read it; it may still be reconnecting."""
    async with aiomqtt.Client("127.0.0.1", port) as publisher:
        body = json.dumps({"room_temp_c": room_temp_c})
        waiting = asyncio.create_task(sensor.wait_for_reading(10.0))
        await asyncio.sleep(0)
        await publisher.publish("room/t", body, qos=1, retain=True)
        reading = await waiting
    assert reading.room_temp_c == room_temp_c
    return reading


def test_no_broker_raises_unavailable() -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            sensor = MqttTemperatureSensor("t", host="127.0.0.1", port=port)
            try:
                with pytest.raises(MqttUnavailableError, match="not reachable"):
                    await sensor.start(timeout_s=0.3)
            finally:
                await sensor.aclose()

    asyncio.run(main())


@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_parse_reading_reads_plain_and_json_numbers(value: float) -> None:
    assert parse_reading(repr(value).encode()) == value
    assert parse_reading(json.dumps({"a": {"b": value}}).encode(), "a.b") == value


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (b"abc", None),
        (b"", None),
        (b"nan", None),
        (b'{"a": 1}', "b"),
        (b'{"a": true}', "a"),
        (b'{"a": null}', "a"),
        (b'{"a": "inf"}', "a"),
        (b"[1, 2]", "a"),
        (b"\xff", "a"),
    ],
)
def test_parse_reading_refuses_what_holds_no_number(payload: bytes, key: str | None) -> None:
    with pytest.raises(ValueError, match=r"not|no field"):
        parse_reading(payload, key)


@pytest.mark.parametrize(("topic", "key", "match"), [("", None, "topic"), ("t", "a..b", "key")])
def test_a_bad_topic_or_key_is_refused(topic: str, key: str | None, match: str) -> None:
    with pytest.raises(InputError, match=match):
        MqttTemperatureSensor(topic, host="127.0.0.1", port=1883, key=key)
