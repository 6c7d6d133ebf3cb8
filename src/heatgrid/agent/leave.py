"""Leave the coordinator: the miners get their owner's pools back, the agent its identity off.

:func:`leave` is what ``heatgrid agent leave`` does. Each miner whose pools the agent kept
before pointing it at the coordinator's Stratum proxy is set back to them through pyasic, and
the enrolled identity and the mining password are forgotten, so the agent runs on as a local
thermostat only. A miner that cannot be reached now keeps its pools in the state file, and the
agent (which is no longer enrolled) puts them back at its next sync, or a second ``leave`` does.
The coordinator is not told: the device stays registered there until its operator removes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from heatgrid.agent.config import AgentConfig
from heatgrid.agent.devices.base import DeviceUnavailableError, PoolMiner
from heatgrid.agent.devices.settings import PyasicDeviceSpec
from heatgrid.agent.mining_pool import PoolPointer
from heatgrid.agent.state_store import StateStore

__all__ = ["LeaveOutcome", "leave"]


@dataclass(frozen=True, kw_only=True)
class LeaveOutcome:
    """What :func:`leave` did.

    Attributes
    ----------
    device_id : str or None
        The identity forgotten (None: the heater was not enrolled).
    restored : tuple of str
        Names of the miners set back to their owner's pools.
    failures : tuple of str
        One line per miner whose owner's pools are kept but could not be set back now.
    """

    device_id: str | None
    restored: tuple[str, ...]
    failures: tuple[str, ...]


async def leave(
    config: AgentConfig, store: StateStore, *, clock: Callable[[], float] = time.time
) -> LeaveOutcome:
    """Give every miner its owner's pools back and forget the coordinator's identity.

    Parameters
    ----------
    config : AgentConfig
        The agent's configuration (its ``pyasic`` devices are the miners).
    store : StateStore
        The agent's state file, holding the identity and the owner's pools.
    clock : callable
        Returns the present time [POSIX s].

    Returns
    -------
    LeaveOutcome
        The identity forgotten, the miners restored and those that could not be.
    """
    from heatgrid.agent.devices.pyasic_miner import connect_pyasic_miner  # noqa: PLC0415

    identity = store.identity
    kept = PoolPointer([], store, clock).kept
    miners: list[PoolMiner] = []
    failures: list[str] = []
    for spec in config.devices:
        if not isinstance(spec, PyasicDeviceSpec) or spec.name not in kept:
            continue
        try:
            miners.append(await connect_pyasic_miner(spec, clock=clock))
        except DeviceUnavailableError as error:
            failures.append(f"{spec.name}: the owner's pools not restored: {error}")
    pointer = PoolPointer(miners, store, clock)
    failures += await pointer.restore(every_miner=True)
    configured = {spec.name for spec in config.devices}
    failures += [
        f"{name}: the owner's pools are kept, but no device of that name is configured"
        for name in kept
        if name not in configured
    ]
    pointer.forget_password()
    store.forget_identity()
    left = pointer.kept
    return LeaveOutcome(
        device_id=None if identity is None else identity.device_id,
        restored=tuple(name for name in kept if name not in left),
        failures=tuple(failures),
    )
