"""Home Assistant MQTT discovery: HA's documented keys, and commands over a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiomqtt
import pytest

from heatgrid.agent.homeassistant import (
    HaTopics,
    HeaterIdentity,
    HomeAssistantBridge,
    climate_config,
    discovery_messages,
    sensor_configs,
)
from heatgrid.core.errors import InputError

IDENTITY = HeaterIdentity(node_id="heater_1", name="Living room heater")
# Keys Home Assistant documents for MQTT discovery (home-assistant.io/integrations/climate.mqtt,
# /integrations/sensor.mqtt and /integrations/mqtt#discovery-payload); every key we send must be
# one of them, or Home Assistant refuses the whole configuration.
HA_COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "enabled_by_default", "encoding", "entity_category", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "qos", "unique_id",
}  # fmt: skip
HA_CLIMATE_KEYS = HA_COMMON_KEYS | {
    "action_template", "action_topic", "current_humidity_template", "current_humidity_topic",
    "current_temperature_template", "current_temperature_topic", "fan_mode_command_template",
    "fan_mode_command_topic", "fan_mode_state_template", "fan_mode_state_topic", "fan_modes",
    "initial", "max_humidity", "max_temp", "min_humidity", "min_temp", "mode_command_template",
    "mode_command_topic", "mode_state_template", "mode_state_topic", "modes", "optimistic",
    "payload_off", "payload_on", "power_command_topic", "precision",
    "preset_mode_command_template", "preset_mode_command_topic", "preset_mode_state_topic",
    "preset_mode_value_template", "preset_modes", "retain", "swing_mode_command_template",
    "swing_mode_command_topic", "swing_mode_state_template", "swing_mode_state_topic",
    "swing_modes", "target_humidity_command_template", "target_humidity_command_topic",
    "target_humidity_state_template", "target_humidity_state_topic",
    "temperature_command_template", "temperature_command_topic",
    "temperature_high_command_template", "temperature_high_command_topic",
    "temperature_high_state_template", "temperature_high_state_topic",
    "temperature_low_command_template", "temperature_low_command_topic",
    "temperature_low_state_template", "temperature_low_state_topic",
    "temperature_state_template", "temperature_state_topic", "temperature_unit", "temp_step",
    "value_template",
}  # fmt: skip
HA_SENSOR_KEYS = HA_COMMON_KEYS | {
    "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
    "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement",
    "value_template",
}  # fmt: skip
HA_DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
HA_ORIGIN_KEYS = {"name", "sw_version", "support_url"}
HA_CLIMATE_MODES = {"auto", "off", "cool", "heat", "dry", "fan_only"}
HA_PRECISIONS = {0.1, 0.5, 1.0}
CLIMATE_KEYS = {
    "name",
    "unique_id",
    "device",
    "availability_topic",
    "payload_available",
    "payload_not_available",
    "modes",
    "mode_command_topic",
    "mode_state_topic",
    "temperature_command_topic",
    "temperature_state_topic",
    "current_temperature_topic",
    "action_topic",
    "min_temp",
    "max_temp",
    "temp_step",
    "temperature_unit",
}


def test_climate_discovery_has_home_assistants_keys() -> None:
    config = climate_config(IDENTITY)
    assert set(config) >= CLIMATE_KEYS
    assert config["modes"] == ["heat", "off"]
    assert (config["min_temp"], config["max_temp"], config["temp_step"]) == (5.0, 28.0, 0.5)
    topics = HaTopics.for_node("heater_1")
    assert config["temperature_command_topic"] == topics.setpoint_command
    assert config["mode_command_topic"] == topics.mode_command
    assert config["current_temperature_topic"] == topics.room_temp
    assert config["action_topic"] == topics.action
    assert config["device"]["identifiers"] == ["heatgrid_heater_1"]
    assert config["device"]["name"] == "Living room heater"
    json.dumps(config)  # serializable


def test_every_key_sent_is_one_home_assistant_documents() -> None:
    climate = climate_config(IDENTITY)
    assert set(climate) <= HA_CLIMATE_KEYS, set(climate) - HA_CLIMATE_KEYS
    assert set(climate["modes"]) <= HA_CLIMATE_MODES
    assert climate["precision"] in HA_PRECISIONS
    assert climate["temperature_unit"] in {"C", "F"}
    assert climate["name"] is None  # the climate entity takes the device's name
    for object_id, config in sensor_configs(IDENTITY).items():
        assert set(config) <= HA_SENSOR_KEYS, (object_id, set(config) - HA_SENSOR_KEYS)
        assert config.get("state_class") in {None, "measurement", "total", "total_increasing"}
    for _, payload in discovery_messages(IDENTITY):
        assert set(payload["device"]) <= HA_DEVICE_KEYS
        assert payload["device"]["identifiers"]
        assert set(payload["origin"]) <= HA_ORIGIN_KEYS
        assert payload["origin"]["name"] == "heatgrid"


def test_sensor_discovery_has_units_classes_and_one_device() -> None:
    sensors = sensor_configs(IDENTITY)
    assert set(sensors) == {
        "power",
        "hashrate",
        "job",
        "earnings",
        "energy",
        "accepted_work",
        "mining_earnings",
    }
    assert sensors["power"]["unit_of_measurement"] == "W"
    assert sensors["power"]["device_class"] == "power"
    assert sensors["power"]["state_class"] == "measurement"
    assert sensors["hashrate"]["unit_of_measurement"] == "TH/s"
    assert sensors["earnings"]["unit_of_measurement"] == "EUR"
    assert sensors["earnings"]["device_class"] == "monetary"
    assert sensors["earnings"]["state_class"] == "total"
    assert "unit_of_measurement" not in sensors["job"]
    # Home Assistant's Energy dashboard takes an energy sensor that only grows (meter resets
    # aside), in Wh, kWh or MWh.
    assert sensors["energy"]["device_class"] == "energy"
    assert sensors["energy"]["state_class"] == "total_increasing"
    assert sensors["energy"]["unit_of_measurement"] == "kWh"
    assert sensors["accepted_work"]["state_class"] == "total_increasing"
    assert sensors["accepted_work"]["unit_of_measurement"] == "diff-1 shares"
    assert sensors["mining_earnings"]["state_class"] == "total_increasing"
    assert sensors["mining_earnings"]["unit_of_measurement"] == "sat"
    assert "device_class" not in sensors["mining_earnings"]  # monetary needs an ISO currency
    for config in sensors.values():
        assert {"unique_id", "state_topic", "availability_topic", "device", "name"} <= set(config)
    messages = discovery_messages(IDENTITY)
    assert [topic for topic, _ in messages] == [
        "homeassistant/climate/heater_1/thermostat/config",
        "homeassistant/sensor/heater_1/power/config",
        "homeassistant/sensor/heater_1/hashrate/config",
        "homeassistant/sensor/heater_1/job/config",
        "homeassistant/sensor/heater_1/earnings/config",
        "homeassistant/sensor/heater_1/energy/config",
        "homeassistant/sensor/heater_1/accepted_work/config",
        "homeassistant/sensor/heater_1/mining_earnings/config",
    ]
    unique_ids = [payload["unique_id"] for _, payload in messages]
    assert len(set(unique_ids)) == len(unique_ids)
    assert all(payload["device"] == messages[0][1]["device"] for _, payload in messages)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"node_id": "a/b"}, "node_id"),
        ({"node_id": ""}, "node_id"),
        ({"min_setpoint_c": 30.0}, "min_setpoint_c"),
        ({"max_setpoint_c": float("nan")}, "max_setpoint_c"),
        ({"setpoint_step_c": 0.0}, "setpoint_step_c"),
        ({"setpoint_step_c": float("inf")}, "setpoint_step_c"),
        ({"name": " "}, "name"),
        ({"discovery_prefix": "ha/#"}, "discovery_prefix"),
    ],
)
def test_a_bad_identity_is_refused(changes: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"node_id": "h", "name": "H", **changes}
    with pytest.raises(InputError, match=match):
        HeaterIdentity(**arguments)


async def _collect(client: aiomqtt.Client, count: int) -> dict[str, str]:
    seen: dict[str, str] = {}

    async def loop() -> None:
        async for message in client.messages:
            payload = message.payload
            seen[message.topic.value] = (
                payload.decode() if isinstance(payload, bytes) else str(payload)
            )
            if len(seen) >= count:
                return

    await asyncio.wait_for(loop(), 5.0)
    return seen


def test_the_bridge_announces_and_turns_commands_into_callbacks(
    mosquitto_broker: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = mosquitto_broker
    topics = HaTopics.for_node("heater_1")
    setpoints_c: list[float] = []
    modes: list[str] = []

    async def on_mode(mode: str) -> None:  # a coroutine callback works too
        modes.append(mode)

    async def main() -> None:
        bridge = HomeAssistantBridge(
            IDENTITY, host=host, port=port, on_setpoint=setpoints_c.append, on_mode=on_mode
        )
        await bridge.start()
        try:
            async with aiomqtt.Client(host, port) as home_assistant:
                # Subscribed after the bridge announced: retained configs reach a late HA.
                await home_assistant.subscribe("homeassistant/#")
                await home_assistant.subscribe(topics.availability)
                seen = await _collect(home_assistant, 9)
                assert seen[topics.availability] == "online"
                climate = json.loads(seen["homeassistant/climate/heater_1/thermostat/config"])
                assert climate == climate_config(IDENTITY)
                power = json.loads(seen["homeassistant/sensor/heater_1/power/config"])
                assert power["unit_of_measurement"] == "W"

                await home_assistant.subscribe(topics.setpoint_state)
                for bad in ("warm", "", "nan", "99", "-3", '{"t": 20}'):
                    await home_assistant.publish(topics.setpoint_command, bad, qos=1)
                await home_assistant.publish(topics.setpoint_command, "21.5", qos=1)
                echoed = await _collect(home_assistant, 1)
                assert echoed == {topics.setpoint_state: "21.5"}
                assert setpoints_c == [21.5]

                await home_assistant.subscribe(topics.mode_state)
                for mode in ("cool", "HEAT", "heat"):
                    await home_assistant.publish(topics.mode_command, mode, qos=1)
                assert await _collect(home_assistant, 1) == {topics.mode_state: "heat"}
                await home_assistant.publish(topics.mode_command, "off", qos=1)
                assert await _collect(home_assistant, 1) == {topics.mode_state: "off"}
                assert modes == ["heat", "off"]

                await home_assistant.subscribe("heatgrid/heater_1/#")
                await bridge.publish_state(
                    room_temp_c=19.84,
                    action="heating",
                    power_w=1234.56,
                    hashrate_ths=48.1234,
                    job="bitcoin",
                    earnings_eur=0.12344,
                    energy_kwh=12.34567,
                    accepted_work_diff1=11_796_480.4,
                    mining_earnings_sat=2_475,
                )
                states = await _collect(home_assistant, 12)
                assert states[topics.room_temp] == "19.84"
                assert states[topics.action] == "heating"
                assert states[topics.power] == "1234.6"
                assert states[topics.hashrate] == "48.123"
                assert states[topics.job] == "bitcoin"
                assert states[topics.earnings] == "0.1234"
                assert states[topics.energy] == "12.346"
                assert states[topics.accepted_work] == "11796480"
                assert states[topics.mining_earnings] == "2475"
                await bridge.aclose()
                assert await _collect(home_assistant, 1) == {topics.availability: "offline"}
        finally:
            await bridge.aclose()

    with caplog.at_level(logging.WARNING, logger="heatgrid.agent.homeassistant"):
        asyncio.run(main())
    warnings = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(warnings) == 8  # six bad setpoints, two bad modes
    assert any("99 °C is outside [5, 28]" in text for text in warnings)


def test_a_failed_callback_is_not_echoed_and_a_restarted_home_assistant_is_answered(
    mosquitto_broker: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = mosquitto_broker
    topics = HaTopics.for_node("heater_1")
    accepted_c: list[float] = []

    def on_setpoint(setpoint_c: float) -> None:
        if setpoint_c > 25.0:
            raise RuntimeError("the daemon refuses this setpoint")
        accepted_c.append(setpoint_c)

    async def main() -> None:
        bridge = HomeAssistantBridge(
            IDENTITY, host=host, port=port, on_setpoint=on_setpoint, on_mode=lambda _: None
        )
        await bridge.start()
        try:
            async with aiomqtt.Client(host, port) as home_assistant:
                await home_assistant.subscribe(topics.setpoint_state)
                await home_assistant.publish(topics.setpoint_command, "26", qos=1)
                await home_assistant.publish(topics.setpoint_command, "19", qos=1)
                # Commands are handled in order: the refused 26 °C was never echoed.
                assert await _collect(home_assistant, 1) == {topics.setpoint_state: "19.0"}
                assert accepted_c == [19.0]

                await home_assistant.subscribe("homeassistant/climate/#")
                retained = await _collect(home_assistant, 1)
                assert set(retained) == {"homeassistant/climate/heater_1/thermostat/config"}
                await home_assistant.publish("homeassistant/status", "online", qos=1)
                again = await _collect(home_assistant, 1)
                assert json.loads(again["homeassistant/climate/heater_1/thermostat/config"]) == (
                    climate_config(IDENTITY)
                )
        finally:
            await bridge.aclose()
        assert not bridge.connected

    with caplog.at_level(logging.ERROR, logger="heatgrid.agent.homeassistant"):
        asyncio.run(main())
    assert any("refuses this setpoint" in r.exc_text for r in caplog.records if r.exc_text)
