"""Open the devices and the room sensor that the configuration names, or refuse to start.

Every device is opened, reached and put in its safe state before the daemon starts, so a
configuration that names an unreachable device stops the agent before anything heats. Errors
are :class:`~heatgrid.core.errors.InputError` naming the key (``devices[1]``, ``sensor.host``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from heatgrid.agent.config import AgentConfig, SensorSettings, adapter_entry
from heatgrid.agent.devices.base import (
    DeviceCommandError,
    DeviceUnavailableError,
    HeatDevice,
)
from heatgrid.agent.devices.registry import open_device
from heatgrid.agent.mqtt_sensor import MqttTemperatureSensor, MqttUnavailableError
from heatgrid.core.errors import InputError

__all__ = ["open_devices", "open_sensor"]


async def open_devices(config: AgentConfig, clock: Callable[[], float]) -> list[HeatDevice]:
    """Open every configured device, read it and put it in its safe state.

    Parameters
    ----------
    config : AgentConfig
        The configuration.
    clock : callable
        Returns the present [POSIX s]; stamps the readings.

    Returns
    -------
    list of HeatDevice
        The devices, in configuration order, each in its safe state.

    Raises
    ------
    InputError
        If a device cannot be opened, read or made safe; the message names ``devices[i]``.
        Devices already opened are closed first.
    """
    opened: list[HeatDevice] = []
    try:
        for index, spec in enumerate(config.devices):
            key = f"devices[{index}] ({spec.type} {spec.name!r})"
            try:
                device = await open_device(index, adapter_entry(spec), clock=clock)
            except (DeviceUnavailableError, DeviceCommandError, OSError) as error:
                raise InputError(f"{key}: cannot be reached: {error}") from None
            opened.append(device)
            try:
                await device.read()
                await device.safe_state()
            except (DeviceUnavailableError, DeviceCommandError) as error:
                raise InputError(f"{key}: does not answer: {error}") from None
    except BaseException:
        for device in opened:
            with contextlib.suppress(DeviceCommandError, DeviceUnavailableError):
                await device.aclose()
        raise
    return opened


async def open_sensor(
    settings: SensorSettings, clock: Callable[[], float], *, topic: str | None = None
) -> MqttTemperatureSensor:
    """Connect the room sensor (or, with ``topic``, another sensor on the same broker).

    Raises
    ------
    InputError
        If the broker cannot be reached; the message names ``sensor.host``.
    """
    sensor = MqttTemperatureSensor(
        topic or settings.topic,
        host=settings.host,
        port=settings.port,
        key=settings.key,
        timestamp_key=settings.timestamp_key,
        clock=clock,
    )
    try:
        await sensor.start(timeout_s=settings.connect_timeout_s)
    except MqttUnavailableError as error:
        await sensor.aclose()
        raise InputError(
            f"sensor.host: the MQTT broker {settings.host}:{settings.port} cannot be reached: "
            f"{error}"
        ) from None
    return sensor
