"""Open the devices, the room sensor and Home Assistant's bridge, or refuse to start.

Every device is opened, reached and put in its safe state before the daemon starts, so a
configuration that names an unreachable device stops the agent before anything heats. Errors
are :class:`~heatgrid.core.errors.InputError` naming the key (``devices[1]``, ``sensor.host``).
Home Assistant is a convenience, not a need: its broker being away at start is logged, and the
bridge keeps trying while the heater runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from heatgrid.agent.config import AgentConfig, SensorSettings
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.devices.base import (
    DeviceCommandError,
    DeviceUnavailableError,
    HeatDevice,
)
from heatgrid.agent.devices.registry import open_device
from heatgrid.agent.homeassistant import HomeAssistantBridge
from heatgrid.agent.homeassistant import Mode as HaMode
from heatgrid.agent.mqtt_sensor import MqttTemperatureSensor, MqttUnavailableError
from heatgrid.core.control import Mode
from heatgrid.core.errors import InputError

__all__ = ["open_devices", "open_home_assistant", "open_sensor"]

_log = logging.getLogger(__name__)


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
                device = await open_device(index, spec, clock=clock)
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


async def open_home_assistant(
    config: AgentConfig, daemon: AgentDaemon, *, retry_s: float = 0.5
) -> HomeAssistantBridge | None:
    """Connect ``daemon`` to Home Assistant when ``[homeassistant]`` is enabled.

    The bridge's setpoint command calls :meth:`AgentDaemon.hold_setpoint`; its mode command
    :meth:`AgentDaemon.set_mode` (``off``: :attr:`Mode.OFF`; ``heat``:
    :attr:`AgentDaemon.resume_mode`). The bridge is set as ``daemon.home_assistant``, whose
    :meth:`~AgentDaemon.run` then publishes the state. A broker not reached within
    ``sensor.connect_timeout_s`` is logged; the bridge keeps trying.

    Parameters
    ----------
    config : AgentConfig
        The configuration.
    daemon : AgentDaemon
        The daemon the commands go to.
    retry_s : float
        First delay between connection attempts [s] (doubles up to 30 s).

    Returns
    -------
    HomeAssistantBridge or None
        The started bridge (close it with ``aclose``), or None when disabled.
    """
    if not config.homeassistant.enabled:
        return None
    host, port = config.home_assistant_broker()

    async def on_mode(mode: HaMode) -> None:
        await daemon.set_mode(Mode.OFF if mode == "off" else daemon.resume_mode)

    bridge = HomeAssistantBridge(
        config.home_assistant_identity(),
        host=host,
        port=port,
        on_setpoint=daemon.hold_setpoint,
        on_mode=on_mode,
        retry_s=retry_s,
    )
    daemon.home_assistant = bridge
    try:
        await bridge.start(timeout_s=config.sensor.connect_timeout_s)
    except MqttUnavailableError as error:
        _log.warning("homeassistant: %s; heating goes on, the bridge keeps trying", error)
    return bridge
