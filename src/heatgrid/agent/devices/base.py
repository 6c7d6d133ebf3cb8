"""The one interface every heat-producing device adapter implements.

An adapter is a thin asynchronous shell around real hardware (or its emulator over the same
protocol): it reads what the device does and applies the power the arbiter planned. It never
fails silently: a command the device did not take raises :class:`DeviceCommandError` naming
the device and the reason, and the agent then puts the heater in its safe state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from heatgrid.core.arbiter import DeviceCapability

__all__ = [
    "DeviceAdapter",
    "DeviceCommandError",
    "DeviceReading",
    "DeviceUnavailableError",
    "HeatDevice",
    "PoolGroup",
    "PoolMiner",
    "StratumPool",
]


class DeviceCommandError(RuntimeError):
    """A command was not applied; the message names the device, the command and why."""


class DeviceUnavailableError(RuntimeError):
    """The device cannot be reached or read; the message names the device and the address."""


@dataclass(frozen=True, kw_only=True)
class DeviceReading:
    """What a device is doing, as read from it.

    Attributes
    ----------
    read_ts : float
        When it was read [POSIX s, UTC].
    power_w : float
        Electric power drawn now, all of which becomes heat [W].
    power_measured : bool
        True when ``power_w`` comes from a meter or the device's own sensor, False when the
        adapter computed it from a power model.
    energy_j : float or None
        The device's cumulative energy counter [J], when it has one.
    power_target_w : float or None
        The power target the device holds now [W]; 0 when paused or off.
    device_temp_c : float or None
        Hottest temperature the device reports (chip, board, GPU core) [°C].
    fans_ok : bool or None
        False when a fan the device needs has stopped; None when it has no fans or cannot say.
    hashrate_ths : float or None
        Hash rate now [TH/s], for miners.
    utilisation : float or None
        Share of the recent past the device spent computing, in [0, 1] [-], where the device
        reports it (a GPU's utilisation).
    running : bool
        True while the device computes or heats (not paused, off or restarting to idle).
    """

    read_ts: float
    power_w: float
    power_measured: bool
    energy_j: float | None = None
    power_target_w: float | None = None
    device_temp_c: float | None = None
    fans_ok: bool | None = None
    hashrate_ths: float | None = None
    utilisation: float | None = None
    running: bool = False


@runtime_checkable
class HeatDevice(Protocol):
    """A device that turns electricity into heat, driven by the agent.

    Implementations: the pyasic miner, the NVML GPU, the CPU, and the MQTT smart plug of a
    resistive boost element. Each passes the contract suite in ``tests/agent/devices``.
    """

    @property
    def name(self) -> str:
        """The device's name in the agent's configuration."""
        ...

    @property
    def capability(self) -> DeviceCapability:
        """Power range, levels and minimum cycle, for :func:`heatgrid.core.arbiter.plan`."""
        ...

    async def read(self) -> DeviceReading:
        """Read the device now; raise :class:`DeviceUnavailableError` when it cannot be read."""
        ...

    async def set_power(self, power_w: float) -> None:
        """Run at ``power_w`` [W]: 0 pauses or switches off, else a power the capability allows.

        Raise :class:`DeviceCommandError` when the device did not take it (a power the
        capability does not allow is refused, not clamped).
        """
        ...

    async def safe_state(self) -> None:
        """Stop producing heat now (pause, lowest power, switch off).

        Raise :class:`DeviceCommandError` when the device did not take it.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and processes; the device is left in its safe state."""
        ...


@dataclass(frozen=True, kw_only=True)
class StratumPool:
    """One Stratum pool in a miner's configuration.

    Attributes
    ----------
    url : str
        The pool's URL, such as ``stratum+tcp://pool.example:3333``.
    user : str
        The worker name at the pool.
    password : str
        The pool password as the firmware reports it (many report none, and pyasic then
        gives ``"x"``).
    """

    url: str
    user: str
    password: str


@dataclass(frozen=True, kw_only=True)
class PoolGroup:
    """A group of pools the miner fails over between, in order of priority.

    Attributes
    ----------
    pools : tuple of StratumPool
        The pools, first the one in use.
    quota : int
        The group's share of hashing when the firmware splits it between groups (BOSminer).
    name : str or None
        The group's name where the firmware has one.
    """

    pools: tuple[StratumPool, ...]
    quota: int = 1
    name: str | None = None


@runtime_checkable
class PoolMiner(Protocol):
    """A miner whose Stratum pool the agent may set (the pyasic miner)."""

    @property
    def name(self) -> str:
        """The device's name in the agent's configuration."""
        ...

    @property
    def coordinator_pool(self) -> bool:
        """Whether the agent points it at the coordinator's Stratum proxy once enrolled."""
        ...

    async def set_pool(self, url: str, user: str, password: str = "x") -> None:
        """Mine at ``url`` as ``user``; raise :class:`DeviceCommandError` if not applied."""
        ...

    async def get_pools(self) -> tuple[PoolGroup, ...]:
        """Return the pool groups configured now, first the one in use; empty: none is.

        Raise :class:`DeviceUnavailableError` or :class:`DeviceCommandError` when they cannot
        be read (an adapter that cannot tell "none" from a failed read raises).
        """
        ...

    async def set_pools(self, groups: tuple[PoolGroup, ...]) -> None:
        """Configure exactly ``groups``; raise :class:`DeviceCommandError` if not applied."""
        ...


class DeviceAdapter:
    """What the adapters share: ``name``, ``capability``, and ``async with`` closing the device.

    A subclass sets ``_capability`` and implements the rest of :class:`HeatDevice`; leaving an
    ``async with`` block closes it, which leaves it in its safe state.
    """

    _capability: DeviceCapability

    @property
    def name(self) -> str:
        """The device's name in the agent's configuration."""
        return self._capability.device_id

    @property
    def capability(self) -> DeviceCapability:
        """Power range, levels and minimum cycle, for :func:`heatgrid.core.arbiter.plan`."""
        return self._capability

    def _check_power_range(self, command: str, power_w: float) -> None:
        """Refuse a power that is neither 0 nor within the device's range [W]."""
        capability = self._capability
        if not (
            math.isfinite(power_w) and capability.min_power_w <= power_w <= capability.max_power_w
        ):
            raise DeviceCommandError(
                f"{self.name}: {command} refused: not 0 and not within "
                f"[{capability.min_power_w:g}, {capability.max_power_w:g}] W"
            )

    async def aclose(self) -> None:
        """Release connections and processes; the device is left in its safe state."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
