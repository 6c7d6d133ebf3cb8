"""Build a device adapter from one validated entry of the agent's configuration.

Each ``[[devices]]`` entry is validated once, by its model in
:mod:`heatgrid.agent.devices.settings` (with its defaults); :func:`open_device` only chooses
the adapter for the model's kind and hands it the model. A device that cannot be reached at
start (a miner that does not answer, no NVIDIA driver, no MQTT broker) raises
:class:`~heatgrid.agent.devices.base.DeviceUnavailableError` naming the entry, the key and the
address.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from heatgrid.agent.devices.base import DeviceUnavailableError, HeatDevice
from heatgrid.agent.devices.cpu import CpuHeater
from heatgrid.agent.devices.mqtt_plug import MqttPlug
from heatgrid.agent.devices.nvml_gpu import open_nvml_gpu
from heatgrid.agent.devices.pyasic_miner import connect_pyasic_miner
from heatgrid.agent.devices.settings import (
    DEVICE_TYPES,
    CpuDeviceSpec,
    DeviceSpec,
    MqttPlugDeviceSpec,
    NvmlDeviceSpec,
    PyasicDeviceSpec,
)
from heatgrid.core.errors import InputError

__all__ = ["DEVICE_TYPES", "open_device"]


async def open_device(
    index: int, spec: DeviceSpec, *, clock: Callable[[], float] = time.time
) -> HeatDevice:
    """Build and open the device adapter that configuration entry ``devices[index]`` describes.

    Parameters
    ----------
    index : int
        Position of the entry in the agent's ``devices`` list, for messages.
    spec : DeviceSpec
        The validated entry (one of the models of :mod:`heatgrid.agent.devices.settings`).
    clock : callable
        Returns the present time [POSIX s]; stamps the device's readings.

    Returns
    -------
    HeatDevice
        The opened adapter, not yet commanded; close it with ``aclose()``.

    Raises
    ------
    InputError
        If the hardware refuses a setting (an NVIDIA board's power-limit range); the message
        names ``devices[index].key``.
    DeviceUnavailableError
        If the device cannot be reached at start; the message names the entry, the key and
        the address.
    """
    where = f"devices[{index}]"
    try:
        return await _open(spec, clock)
    except DeviceUnavailableError as error:
        raise DeviceUnavailableError(f"{where}.{_unreachable(spec)}: {error}") from None
    except InputError as error:
        raise InputError(f"{where}.{error}") from None


async def _open(spec: DeviceSpec, clock: Callable[[], float]) -> HeatDevice:
    if isinstance(spec, CpuDeviceSpec):
        return CpuHeater(spec, clock=clock)
    if isinstance(spec, MqttPlugDeviceSpec):
        plug = MqttPlug(spec, clock=clock)
        await plug.start()
        return plug
    if isinstance(spec, PyasicDeviceSpec):
        return await connect_pyasic_miner(spec, clock=clock)
    return open_nvml_gpu(spec, clock=clock)


def _unreachable(spec: DeviceSpec) -> str:
    """Name the key and the address of a device that could not be reached."""
    if isinstance(spec, MqttPlugDeviceSpec):
        return f"host: MQTT broker at {spec.host}:{spec.port} is unreachable"
    if isinstance(spec, PyasicDeviceSpec):
        return f"host: miner at {spec.host}:{spec.rpc_port} is unreachable"
    if isinstance(spec, NvmlDeviceSpec):
        return f"gpu_index: GPU {spec.gpu_index} is unavailable"
    return "type: the CPU is unavailable"
