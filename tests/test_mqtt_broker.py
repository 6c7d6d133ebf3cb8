"""The mosquitto fixture: a real broker that takes MQTT, is killed at teardown, and skips well."""

from __future__ import annotations

import asyncio
import socket

import aiomqtt
import pytest
from tests import mqtt_broker


def test_the_broker_carries_messages_and_is_gone_after_the_block() -> None:
    with mqtt_broker.running_broker() as (host, port):

        async def round_trip() -> bytes | bytearray | str | int | float | None:
            async with aiomqtt.Client(host, port) as client:
                await client.subscribe("t/x", qos=1)
                await client.publish("t/x", "hello", qos=1)
                message = await asyncio.wait_for(anext(aiter(client.messages)), 5.0)
                return message.payload

        assert asyncio.run(round_trip()) == b"hello"
    with socket.socket() as sock:
        assert sock.connect_ex((host, port)) != 0


def test_a_missing_binary_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt_broker, "_mosquitto_binary", lambda: None)
    monkeypatch.delenv("HEATGRID_REQUIRE_SERVICES", raising=False)
    with (
        pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"),
        mqtt_broker.running_broker(),
    ):
        pass
    monkeypatch.setenv("HEATGRID_REQUIRE_SERVICES", "1")
    with (
        pytest.raises(pytest.fail.Exception, match="CI must have it"),
        mqtt_broker.running_broker(),
    ):
        pass
