"""Build a device adapter from one entry of the agent's configuration.

The agent's configuration lists its devices; each entry is a mapping with a ``type`` and that
type's keys (powers in W, times in s)::

    {"type": "pyasic", "name": "attic-miner", "host": "192.168.1.20",
     "min_power_w": 300, "max_power_w": 1200}                  # rpc_port, web_port, min_cycle_s,
                                                              # timeout_s, power_step_w (25)
    {"type": "nvml", "name": "gpu0", "gpu_index": 0}          # min_power_w, max_power_w,
                                                              # idle_power_w, min_cycle_s, period_s
    {"type": "cpu", "name": "cpu", "idle_power_w": 15, "max_power_w": 65}
                                                              # min_power_w, worker_count,
                                                              # period_s, min_cycle_s
    {"type": "mqtt_plug", "name": "boost", "plug": "tasmota_boost", "host": "127.0.0.1",
     "rated_power_w": 2000}                                   # port, min_cycle_s,
                                                              # command_timeout_s

``name`` defaults to ``<type>-<index>``. :func:`open_device` checks every key before it touches
hardware: an unknown type or key, a missing key or a value of the wrong kind raises
:class:`~heatgrid.core.errors.InputError` naming it (``devices[0].type: unknown device type
'foo' (known: cpu, mqtt_plug, nvml, pyasic)``). A device that cannot be reached at start (a
miner that does not answer, no NVIDIA driver, no MQTT broker) raises
:class:`~heatgrid.agent.devices.base.DeviceUnavailableError` naming the entry, the key and the
address.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from heatgrid.agent.devices.base import DeviceUnavailableError, HeatDevice
from heatgrid.agent.devices.cpu import CpuHeater
from heatgrid.agent.devices.mqtt_plug import MqttPlug
from heatgrid.agent.devices.nvml_gpu import open_nvml_gpu
from heatgrid.agent.devices.pyasic_miner import DEFAULT_RPC_PORT, connect_pyasic_miner
from heatgrid.core.errors import InputError

__all__ = ["DEVICE_TYPES", "open_device"]

_DEFAULT_MQTT_PORT = 1883


class _Spec:
    """Reads typed values from one configuration entry, naming ``devices[i].key`` on error."""

    def __init__(self, index: int, spec: Mapping[str, object], known: tuple[str, ...]) -> None:
        self.where = f"devices[{index}]"
        for key in spec:
            if key not in known:
                raise InputError(
                    f"{self.where}.{key}: unknown key for type {spec['type']!r} "
                    f"(known: {', '.join(sorted(known))})"
                )
        self._spec = spec

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value:
            raise InputError(f"{self.where}.{key}: must be a non-empty string, got {value!r}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{self.where}.{key}: must be a number, got {value!r}")
        return float(value)

    def has(self, key: str) -> bool:
        return key in self._spec

    def optional_number(self, key: str) -> float | None:
        return self.number(key) if key in self._spec else None

    def integer(self, key: str, default: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{self.where}.{key}: must be an integer, got {value!r}")
        return value

    def optional_integer(self, key: str) -> int | None:
        return self.integer(key) if key in self._spec else None

    def port(self, key: str, default: int | None = None) -> int:
        value = self.integer(key, default)
        if not 1 <= value <= 65535:
            raise InputError(f"{self.where}.{key}: must be between 1 and 65535, got {value!r}")
        return value

    def _get(self, key: str, default: object) -> object:
        if key in self._spec:
            return self._spec[key]
        if default is None:
            raise InputError(f"{self.where}.{key}: missing (required for this device type)")
        return default


_Opener = Callable[[_Spec, str, Callable[[], float]], Awaitable[HeatDevice]]


async def _open_pyasic(spec: _Spec, name: str, clock: Callable[[], float]) -> HeatDevice:
    host = spec.text("host")
    rpc_port = spec.port("rpc_port", DEFAULT_RPC_PORT)
    web_port = spec.port("web_port") if spec.has("web_port") else None
    try:
        return await connect_pyasic_miner(
            name,
            host,
            min_power_w=spec.number("min_power_w"),
            max_power_w=spec.number("max_power_w"),
            rpc_port=rpc_port,
            web_port=web_port,
            min_cycle_s=spec.number("min_cycle_s", 600.0),
            timeout_s=spec.number("timeout_s", 10.0),
            power_step_w=spec.number("power_step_w", 25.0),
            clock=clock,
        )
    except DeviceUnavailableError as error:
        raise DeviceUnavailableError(
            f"{spec.where}.host: miner at {host}:{rpc_port} is unreachable: {error}"
        ) from None


async def _open_nvml(spec: _Spec, name: str, clock: Callable[[], float]) -> HeatDevice:
    gpu_index = spec.integer("gpu_index", 0)
    try:
        return open_nvml_gpu(
            name,
            index=gpu_index,
            min_power_w=spec.optional_number("min_power_w"),
            max_power_w=spec.optional_number("max_power_w"),
            idle_power_w=spec.optional_number("idle_power_w"),
            min_cycle_s=spec.number("min_cycle_s", 60.0),
            period_s=spec.number("period_s", 1.0),
            clock=clock,
        )
    except DeviceUnavailableError as error:
        raise DeviceUnavailableError(
            f"{spec.where}.gpu_index: GPU {gpu_index} is unavailable: {error}"
        ) from None


async def _open_cpu(spec: _Spec, name: str, clock: Callable[[], float]) -> HeatDevice:
    return CpuHeater(
        name=name,
        idle_power_w=spec.number("idle_power_w"),
        max_power_w=spec.number("max_power_w"),
        min_power_w=spec.optional_number("min_power_w"),
        worker_count=spec.optional_integer("worker_count"),
        period_s=spec.number("period_s", 0.1),
        min_cycle_s=spec.number("min_cycle_s", 0.0),
        clock=clock,
    )


async def _open_mqtt_plug(spec: _Spec, name: str, clock: Callable[[], float]) -> HeatDevice:
    host = spec.text("host")
    port = spec.port("port", _DEFAULT_MQTT_PORT)
    plug = MqttPlug(
        name,
        plug=spec.text("plug"),
        host=host,
        port=port,
        rated_power_w=spec.number("rated_power_w"),
        min_cycle_s=spec.number("min_cycle_s", 300.0),
        command_timeout_s=spec.number("command_timeout_s", 5.0),
        clock=clock,
    )
    try:
        await plug.start()
    except DeviceUnavailableError as error:
        raise DeviceUnavailableError(
            f"{spec.where}.host: MQTT broker at {host}:{port} is unreachable: {error}"
        ) from None
    return plug


_OPENERS: dict[str, tuple[_Opener, tuple[str, ...]]] = {
    "cpu": (
        _open_cpu,
        ("idle_power_w", "max_power_w", "min_power_w", "worker_count", "period_s", "min_cycle_s"),
    ),
    "mqtt_plug": (
        _open_mqtt_plug,
        ("plug", "host", "port", "rated_power_w", "min_cycle_s", "command_timeout_s"),
    ),
    "nvml": (
        _open_nvml,
        ("gpu_index", "min_power_w", "max_power_w", "idle_power_w", "min_cycle_s", "period_s"),
    ),
    "pyasic": (
        _open_pyasic,
        (
            "host",
            "rpc_port",
            "web_port",
            "min_power_w",
            "max_power_w",
            "min_cycle_s",
            "timeout_s",
            "power_step_w",
        ),
    ),
}
DEVICE_TYPES: tuple[str, ...] = tuple(sorted(_OPENERS))
"""The device types :func:`open_device` builds."""


async def open_device(
    index: int, spec: Mapping[str, object], *, clock: Callable[[], float] = time.time
) -> HeatDevice:
    """Build and open the device adapter that configuration entry ``devices[index]`` describes.

    Parameters
    ----------
    index : int
        Position of the entry in the agent's ``devices`` list, for messages.
    spec : mapping
        The entry: ``type`` (one of :data:`DEVICE_TYPES`), an optional ``name``, and the type's
        keys (see the module's documentation).
    clock : callable
        Returns the present time [POSIX s]; stamps the device's readings.

    Returns
    -------
    HeatDevice
        The opened adapter, not yet commanded; close it with ``aclose()``.

    Raises
    ------
    InputError
        If the entry is not a mapping, its type is unknown, or a key is unknown, missing or of
        the wrong kind or range; the message names ``devices[index].key``.
    DeviceUnavailableError
        If the device cannot be reached at start; the message names the entry, the key and
        the address.
    """
    where = f"devices[{index}]"
    if not isinstance(spec, Mapping):
        raise InputError(f"{where}: must be a mapping with a 'type', got {spec!r}")
    device_type = spec.get("type")
    if device_type not in _OPENERS:
        if device_type is None:
            raise InputError(f"{where}.type: missing (known: {', '.join(DEVICE_TYPES)})")
        raise InputError(
            f"{where}.type: unknown device type {device_type!r} (known: {', '.join(DEVICE_TYPES)})"
        )
    opener, keys = _OPENERS[str(device_type)]
    entry = _Spec(index, spec, ("type", "name", *keys))
    name = entry.text("name", f"{device_type}-{index}")
    try:
        return await opener(entry, name, clock)
    except InputError as error:
        message = str(error)
        if message.startswith(where):
            raise
        raise InputError(f"{where}: {message}") from None
