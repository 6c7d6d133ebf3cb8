"""The settings of each device kind: one validated model per kind, the only source of defaults.

A ``[[devices]]`` entry of the agent's configuration is validated once, here, into one of these
frozen models; :func:`~heatgrid.agent.devices.registry.open_device` builds the adapter from it
and the adapters take it as it is. Every default a device uses is a field default below (or,
where it depends on other fields, a documented method here), so no adapter or registry holds a
second copy of a setting, a default or a check. Checks that need the hardware (an NVIDIA
board's power-limit range, a miner that answers) stay with the adapter that opens it.

Powers are in W, times in s, as everywhere. Pool settings for a miner belong on
:class:`PyasicDeviceSpec`.
"""

from __future__ import annotations

import ipaddress
import os
import typing
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = [
    "DEVICE_TYPES",
    "CpuDeviceSpec",
    "DeviceSpec",
    "MqttPlugDeviceSpec",
    "NvmlDeviceSpec",
    "PyasicDeviceSpec",
]

_PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
_NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
_Port = Annotated[int, Field(ge=1, le=65535)]
_Name = Annotated[str, Field(min_length=1, max_length=100)]

_CPU_MIN_FRACTION = 0.05
_GPU_IDLE_FRACTION = 0.1


class _DeviceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CpuDeviceSpec(_DeviceSettings):
    """``[[devices]]`` with ``type = "cpu"``: the CPU heats with busy worker processes.

    Attributes
    ----------
    name : str
        The device's name in the configuration.
    idle_power_w : float
        The CPU's draw with no worker running [W], > 0.
    max_power_w : float
        The CPU's draw with every worker running all the time [W], > ``idle_power_w``.
    min_power_w : float or None
        Lowest power target while on [W], within ``[idle_power_w, max_power_w]``; None: see
        :meth:`floor_power_w`.
    worker_count : int or None
        Number of busy worker processes; None: see :meth:`workers`.
    period_s : float
        Duty-cycle period [s].
    min_cycle_s : float
        Shortest time on or off, for the arbiter [s].
    """

    type: Literal["cpu"] = "cpu"
    name: _Name = "cpu"
    idle_power_w: _PositiveFloat
    max_power_w: _PositiveFloat
    min_power_w: _PositiveFloat | None = None
    worker_count: Annotated[int, Field(ge=1)] | None = None
    period_s: _PositiveFloat = 0.1
    min_cycle_s: _NonNegativeFloat = 0.0

    @field_validator("max_power_w")
    @classmethod
    def _above_idle(cls, value: float, info: ValidationInfo) -> float:
        idle_power_w = info.data.get("idle_power_w")
        if idle_power_w is not None and not value > idle_power_w:
            raise ValueError(f"must exceed idle_power_w ({idle_power_w:g} W), got {value:g} W")
        return value

    @field_validator("min_power_w")
    @classmethod
    def _within_idle_and_max(cls, value: float | None, info: ValidationInfo) -> float | None:
        low, high = info.data.get("idle_power_w"), info.data.get("max_power_w")
        if value is not None and low is not None and high is not None and not low <= value <= high:
            raise ValueError(
                f"must lie within [idle_power_w, max_power_w] = [{low:g}, {high:g}] W, "
                f"got {value:g} W"
            )
        return value

    def floor_power_w(self) -> float:
        """Return the lowest power target while on [W].

        ``min_power_w`` when given, else 5 % of the way from ``idle_power_w`` to
        ``max_power_w``.
        """
        if self.min_power_w is not None:
            return self.min_power_w
        return self.idle_power_w + _CPU_MIN_FRACTION * (self.max_power_w - self.idle_power_w)

    def workers(self) -> int:
        """Return the number of worker processes: ``worker_count``, else one per core."""
        return self.worker_count if self.worker_count is not None else (os.cpu_count() or 1)


class MqttPlugDeviceSpec(_DeviceSettings):
    """``[[devices]]`` with ``type = "mqtt_plug"``: a resistive element on a Tasmota plug.

    Attributes
    ----------
    name : str
        The device's name in the configuration.
    plug : str
        The plug's Tasmota ``Topic`` (no ``/``, ``+`` or ``#``).
    host : str
        MQTT broker address.
    port : int
        MQTT broker TCP port.
    rated_power_w : float
        Power of the element when switched on [W].
    min_cycle_s : float
        Shortest time on or off [s] (enforced by the arbiter).
    command_timeout_s : float
        How long a command or a read waits for the plug's answer [s].
    """

    type: Literal["mqtt_plug"] = "mqtt_plug"
    name: _Name = "boost"
    plug: Annotated[str, Field(min_length=1)]
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: _Port = 1883
    rated_power_w: _PositiveFloat
    min_cycle_s: _NonNegativeFloat = 300.0
    command_timeout_s: _PositiveFloat = 5.0

    @field_validator("plug")
    @classmethod
    def _tasmota_topic(cls, value: str) -> str:
        if any(character in value for character in "/+#"):
            raise ValueError(f"must be a Tasmota topic without '/', '+' or '#', got {value!r}")
        return value


class PyasicDeviceSpec(_DeviceSettings):
    """``[[devices]]`` with ``type = "pyasic"``: an ASIC miner driven through pyasic.

    Attributes
    ----------
    name : str
        The device's name in the configuration.
    host : str
        The miner's IP address (pyasic addresses miners by IP).
    rpc_port : int
        TCP port of the miner's cgminer-style RPC (4028 on every firmware pyasic knows).
    web_port : int or None
        TCP port of the miner's web API; None: pyasic's default for the firmware.
    min_power_w, max_power_w : float
        The power targets the firmware accepts while mining [W], ``min <= max``.
    min_cycle_s : float
        Shortest time mining or paused, for the arbiter [s]; restarts are slow and noisy.
    timeout_s : float
        Longest wait for one read or command [s].
    power_step_w : float
        Smallest change of power target worth sending while mining [W].
    coordinator_pool : bool
        Once the agent is enrolled with a coordinator that runs a Stratum proxy, point the
        miner's pool at that proxy with this heater's mining credentials (user
        ``DEVICE_ID.NAME``), so the heater's shares are counted and paid. False: the agent never
        touches the miner's pools (the owner mines where they like). Without a coordinator the
        pools are left alone either way.
    """

    type: Literal["pyasic"] = "pyasic"
    name: _Name = "miner"
    host: Annotated[str, Field(min_length=1)]
    rpc_port: _Port = 4028
    web_port: _Port | None = None
    min_power_w: _PositiveFloat
    max_power_w: _PositiveFloat
    min_cycle_s: _NonNegativeFloat = 600.0
    timeout_s: _PositiveFloat = 10.0
    power_step_w: _NonNegativeFloat = 25.0
    coordinator_pool: bool = True

    @field_validator("host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"must be an IP address, got {value!r}") from None
        return value

    @field_validator("max_power_w")
    @classmethod
    def _not_below_min(cls, value: float, info: ValidationInfo) -> float:
        min_power_w = info.data.get("min_power_w")
        if min_power_w is not None and value < min_power_w:
            raise ValueError(f"must be at least min_power_w ({min_power_w:g} W), got {value:g} W")
        return value


class NvmlDeviceSpec(_DeviceSettings):
    """``[[devices]]`` with ``type = "nvml"``: an NVIDIA GPU through NVML.

    Attributes
    ----------
    name : str
        The device's name in the configuration.
    gpu_index : int
        NVML index of the GPU.
    max_power_w : float
        Highest power offered to the arbiter [W], within the board's power-limit range
        (checked when the GPU is opened).
    min_power_w : float or None
        Lowest power offered to the arbiter [W], within the board's power-limit range; None:
        the board's lowest limit.
    idle_power_w : float or None
        The board's draw with its tasks stopped [W], below the lowest power; None: see
        :meth:`idle_w`.
    min_cycle_s : float
        Shortest time on or off, for the arbiter [s].
    period_s : float
        Duty-cycle period when the power limit cannot be set [s].
    vram_gb : float or None
        GPU memory offered to tasks [GB], told to the coordinator at enrollment.
    """

    type: Literal["nvml"] = "nvml"
    name: _Name = "gpu"
    gpu_index: Annotated[int, Field(ge=0)] = 0
    max_power_w: _PositiveFloat
    min_power_w: _PositiveFloat | None = None
    idle_power_w: _PositiveFloat | None = None
    min_cycle_s: _NonNegativeFloat = 60.0
    period_s: _PositiveFloat = 1.0
    vram_gb: _PositiveFloat | None = None

    @field_validator("min_power_w")
    @classmethod
    def _not_above_max(cls, value: float | None, info: ValidationInfo) -> float | None:
        max_power_w = info.data.get("max_power_w")
        if value is not None and max_power_w is not None and value > max_power_w:
            raise ValueError(f"must not exceed max_power_w ({max_power_w:g} W), got {value:g} W")
        return value

    @field_validator("idle_power_w")
    @classmethod
    def _below_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        min_power_w = info.data.get("min_power_w")
        if value is not None and min_power_w is not None and not value < min_power_w:
            raise ValueError(f"must be below min_power_w ({min_power_w:g} W), got {value:g} W")
        return value

    def idle_w(self, max_power_w: float) -> float:
        """Return the idle draw [W]: ``idle_power_w``, else 10 % of ``max_power_w`` [W]."""
        if self.idle_power_w is not None:
            return self.idle_power_w
        return _GPU_IDLE_FRACTION * max_power_w


DeviceSpec = Annotated[
    CpuDeviceSpec | MqttPlugDeviceSpec | PyasicDeviceSpec | NvmlDeviceSpec,
    Field(discriminator="type"),
]
"""One ``[[devices]]`` entry, told apart by its ``type``."""

DEVICE_TYPES: tuple[str, ...] = tuple(
    sorted(
        typing.get_args(model.model_fields["type"].annotation)[0]
        for model in typing.get_args(typing.get_args(DeviceSpec)[0])
    )
)
"""The device types, as ``type`` names them in the configuration."""
