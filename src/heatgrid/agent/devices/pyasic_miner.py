"""An ASIC miner as a heating element, read and driven through pyasic.

:func:`connect_pyasic_miner` asks the miner's RPC port which firmware it runs (pyasic's own
parsers of the ``version`` and ``devdetails`` answers), builds pyasic's backend for it and points
it at the given ports; :class:`PyasicMiner` then reads hash rate, power, temperatures and fans,
sets the power target, pauses and resumes mining, and points the miner at a Stratum pool.

pyasic reports many failures by returning ``False`` or ``None``. This adapter never passes such
a failure on silently: a command pyasic reports as not applied, or a power target the miner does
not hold when read back, raises :class:`~heatgrid.agent.devices.base.DeviceCommandError`; a
reading without power or mining state raises
:class:`~heatgrid.agent.devices.base.DeviceUnavailableError`. pyasic's global settings are left
alone: the ports are set on the miner object, and every call is bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from heatgrid.agent.devices.base import (
    DeviceAdapter,
    DeviceCommandError,
    DeviceReading,
    DeviceUnavailableError,
    PoolGroup,
    StratumPool,
)
from heatgrid.agent.devices.settings import PyasicDeviceSpec
from heatgrid.core.arbiter import DeviceCapability

# pyasic configures the root logger when imported (a handler, level WARNING), which would
# silence the agent's own INFO logs and make its logging.basicConfig a no-op: put it back.
_ROOT_LOGGER = logging.getLogger()
_ROOT_LEVEL, _ROOT_HANDLERS = _ROOT_LOGGER.level, list(_ROOT_LOGGER.handlers)
with warnings.catch_warnings():
    # pyasic 0.79 declares pydantic models with a class-based Config, and passlib imports the
    # deprecated crypt module: third-party deprecations raised once, at import.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(pyasic|passlib)\b")
    from pyasic.config import MinerConfig
    from pyasic.config.pools import Pool, PoolConfig
    from pyasic.config.pools import PoolGroup as PyasicPoolGroup
    from pyasic.device.algorithm.hashrate.unit.sha256 import SHA256Unit
    from pyasic.errors import APIError
    from pyasic.miners.data import DataOptions
    from pyasic.miners.factory import MinerFactory
_ROOT_LOGGER.setLevel(_ROOT_LEVEL)
_ROOT_LOGGER.handlers[:] = _ROOT_HANDLERS

__all__ = ["PyasicMiner", "connect_pyasic_miner"]

_MAX_RPC_ANSWER_BYTES = 1 << 20
_READ_OPTIONS = [
    DataOptions.HASHRATE,
    DataOptions.HASHBOARDS,
    DataOptions.WATTAGE,
    DataOptions.WATTAGE_LIMIT,
    DataOptions.FANS,
    DataOptions.IS_MINING,
]
_CGMINER_NO_POOLS = 8  # cgminer API status code MSG_NOPOOL: "No pools"
_T = TypeVar("_T")


class PyasicMiner(DeviceAdapter):
    """A miner driven through a pyasic backend: a :class:`HeatDevice`.

    Build it with :func:`connect_pyasic_miner`, which finds the backend for the firmware.

    Parameters
    ----------
    settings : PyasicDeviceSpec
        The validated settings: name, address, power range, minimum cycle, timeout and power
        step.
    miner : pyasic miner
        The pyasic backend object, its RPC and web ports already set.
    clock : callable
        Returns the present time [POSIX s], for ``read_ts``.
    """

    def __init__(
        self,
        settings: PyasicDeviceSpec,
        miner: Any,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._power_step_w = settings.power_step_w
        self._held_w: int | None = None  # the target this adapter set while mining
        self._capability = DeviceCapability(
            device_id=settings.name,
            kind="asic",
            min_power_w=settings.min_power_w,
            max_power_w=settings.max_power_w,
            min_cycle_s=settings.min_cycle_s,
        )
        self._miner = miner
        self.address = f"{settings.host}:{settings.rpc_port}"
        self._timeout_s = settings.timeout_s
        self._coordinator_pool = settings.coordinator_pool
        self._clock = clock
        self._last_read_ts = -math.inf
        self._closed = False

    @property
    def coordinator_pool(self) -> bool:
        """Whether the agent points this miner at the coordinator's Stratum proxy."""
        return self._coordinator_pool

    @property
    def model(self) -> str:
        """The pyasic backend class driving the miner (make, model and firmware)."""
        return type(self._miner).__name__

    async def read(self) -> DeviceReading:
        """Read hash rate, power, power target, temperatures, fans and mining state.

        Raises
        ------
        DeviceUnavailableError
            If the device is closed, the miner does not answer within ``timeout_s``, or pyasic
            returns no power or no mining state.
        """
        if self._closed:
            raise DeviceUnavailableError(f"{self.name}: read: the device is closed")
        try:
            data = await self._bounded(self._miner.get_data(include=_READ_OPTIONS))
        except (TimeoutError, APIError, OSError) as error:
            raise DeviceUnavailableError(self._failed("read", error)) from None
        if data.wattage is None or data.is_mining is None:
            missing = "power" if data.wattage is None else "mining state"
            raise DeviceUnavailableError(
                f"{self.name}: read: miner {self.model} at {self.address} returned no {missing}"
            )
        mining = bool(data.is_mining)
        limit = data.wattage_limit
        read_ts = max(self._clock(), self._last_read_ts)
        self._last_read_ts = read_ts
        return DeviceReading(
            read_ts=read_ts,
            power_w=max(0.0, float(data.wattage)),
            power_measured=True,
            power_target_w=(float(limit) if limit is not None else None) if mining else 0.0,
            device_temp_c=_hottest_c(data.hashboards),
            fans_ok=all(fan.speed > 0 for fan in data.fans) if data.fans else None,
            hashrate_ths=_ths(data.hashrate),
            running=mining,
        )

    async def set_power(self, power_w: float) -> None:
        """Mine at the power target ``power_w`` [W] (rounded to a watt), or pause at 0.

        A target within ``power_step_w`` of the one this adapter set, while the miner still
        mines, is not sent again: a few watts are not worth a write to the firmware (some
        persist each one), and the agent re-plans every tick.

        Raises
        ------
        DeviceCommandError
            If the device is closed, ``power_w`` is neither 0 nor within
            ``[min_power_w, max_power_w]``, the miner does not answer, pyasic reports the command
            as not applied, or the miner does not hold the target when read back.
        """
        command = f"set_power({power_w!r} W)"
        self._check_open(command)
        if power_w == 0.0:
            await self._pause(command)
            return
        self._check_power_range(command, power_w)
        target_w = round(power_w)
        if self._held_w is not None and abs(target_w - self._held_w) < self._power_step_w:
            return  # mining within a step of it already: not worth a write to the firmware
        self._held_w = None
        await self._set_power_limit(command, target_w)
        mining = await self._command(command, "is_mining", self._miner.is_mining())
        if mining is None:
            raise DeviceCommandError(self._not_applied(command, "is_mining (no answer)"))
        if not mining:
            applied = await self._command(command, "resume_mining", self._miner.resume_mining())
            if applied is not True:
                raise DeviceCommandError(self._not_applied(command, "resume_mining"))
        self._held_w = target_w

    async def safe_state(self) -> None:
        """Pause mining: hashing stops and power falls to the miner's idle draw.

        Raises
        ------
        DeviceCommandError
            If the device is closed or pyasic reports the pause as not applied.
        """
        self._check_open("safe_state")
        await self._pause("safe_state")

    async def set_pool(self, url: str, user: str, password: str = "x") -> None:
        """Point the miner at one Stratum pool (the coordinator's endpoint), keeping its mode.

        Parameters
        ----------
        url : str
            Stratum URL, such as ``stratum+tcp://coordinator.example:3333``.
        user : str
            Worker name at the pool.
        password : str
            Pool password (Stratum proxies usually ignore it).

        Raises
        ------
        DeviceCommandError
            If the device is closed, the miner refuses the configuration, or the pool it reports
            afterwards is not ``url``.
        """
        pools = PoolConfig.simple([Pool(url=url, user=user, password=password)])
        await self._send_pools(f"set_pool({url!r})", pools)

    async def get_pools(self) -> tuple[PoolGroup, ...]:
        """Return the miner's pool groups as pyasic reads them, first the one in use.

        Firmwares that report no pool password (the cgminer-style API, FluxOS) give ``"x"``.
        Empty when the miner has no pool configured (a miner fresh out of its box): pyasic
        answers an empty configuration when its read fails too, so an empty one counts only
        when the miner's cgminer-style RPC API confirms it (``pools`` answered with status
        code 8, "No pools", or an empty list).

        Raises
        ------
        DeviceUnavailableError
            If the device is closed, the miner does not answer, or it reports no pool and its
            RPC API does not confirm that it has none.
        """
        if self._closed:
            raise DeviceUnavailableError(f"{self.name}: get_pools: the device is closed")
        try:
            config = await self._bounded(self._miner.get_config())
        except (TimeoutError, APIError, OSError) as error:
            raise DeviceUnavailableError(self._failed("get_pools", error)) from None
        groups = tuple(
            PoolGroup(
                pools=tuple(
                    StratumPool(url=str(pool.url), user=pool.user, password=pool.password)
                    for pool in group.pools
                ),
                quota=group.quota,
                name=group.name,
            )
            for group in config.pools.groups
            if group.pools
        )
        if not groups and not await self._has_no_pool():
            raise DeviceUnavailableError(
                f"{self.name}: get_pools: miner {self.model} at {self.address} reports no pool, "
                "and its RPC API does not confirm that it has none"
            )
        return groups

    async def _has_no_pool(self) -> bool:
        """Whether the miner's cgminer-style RPC API says that no pool is configured."""
        rpc = getattr(self._miner, "rpc", None)
        if rpc is None:
            return False
        try:
            answer = await self._bounded(
                rpc.send_command("pools", ignore_errors=True, allow_warning=False)
            )
        except (TimeoutError, APIError, OSError):
            return False
        statuses = answer.get("STATUS") if isinstance(answer, dict) else None
        if not isinstance(statuses, list) or not statuses or not isinstance(statuses[0], dict):
            return False
        status = statuses[0]
        if status.get("STATUS") == "E":
            return status.get("Code") == _CGMINER_NO_POOLS
        return status.get("STATUS") == "S" and answer.get("POOLS") == []

    async def set_pools(self, groups: tuple[PoolGroup, ...]) -> None:
        """Configure exactly ``groups`` (the owner's pools, put back), keeping the miner's mode.

        Raises
        ------
        DeviceCommandError
            If the device is closed, ``groups`` holds no pool, the miner refuses the
            configuration, or the first pool it reports afterwards is not the first given.
        """
        command = "set_pools"
        if not any(group.pools for group in groups):
            raise DeviceCommandError(f"{self.name}: {command}: no pool given")
        pools = PoolConfig(
            groups=[
                PyasicPoolGroup(
                    pools=[
                        Pool(url=pool.url, user=pool.user, password=pool.password)
                        for pool in group.pools
                    ],
                    quota=group.quota,
                    name=group.name,
                )
                for group in groups
                if group.pools
            ]
        )
        await self._send_pools(command, pools)

    async def _send_pools(self, command: str, pools: Any) -> None:
        self._check_open(command)
        wanted = str(pools.groups[0].pools[0].url)
        limit_w = await self._command(command, "get_wattage_limit", self._miner.get_wattage_limit())
        current = await self._command(command, "get_config", self._miner.get_config())
        config = MinerConfig(
            pools=pools,
            fan_mode=current.fan_mode,
            temperature=current.temperature,
            mining_mode=current.mining_mode,
        )
        await self._command(command, "send_config", self._miner.send_config(config))
        after = await self._command(command, "get_config", self._miner.get_config())
        urls = [str(pool.url) for group in after.pools.groups for pool in group.pools]
        if urls[:1] != [wanted]:
            raise DeviceCommandError(
                self._not_applied(command, f"send_config (the miner reports pools {urls})")
            )
        if limit_w is not None:  # the mode sent back must not have moved the power target
            await self._set_power_limit(command, int(limit_w))

    async def aclose(self) -> None:
        """Pause mining (best effort) and close; later commands raise."""
        if self._closed:
            return
        try:
            await self._pause("aclose")
        finally:
            self._closed = True

    async def _set_power_limit(self, command: str, target_w: int) -> None:
        applied = await self._command(
            command, "set_power_limit", self._miner.set_power_limit(target_w)
        )
        if applied is not True:
            raise DeviceCommandError(self._not_applied(command, f"set_power_limit({target_w})"))
        held = await self._command(command, "get_wattage_limit", self._miner.get_wattage_limit())
        if held is None or round(float(held)) != target_w:
            raise DeviceCommandError(
                self._not_applied(command, f"set_power_limit({target_w}): the miner holds {held}")
            )

    async def _pause(self, command: str) -> None:
        self._held_w = None
        applied = await self._command(command, "stop_mining", self._miner.stop_mining())
        if applied is not True:
            raise DeviceCommandError(self._not_applied(command, "stop_mining"))

    async def _command(self, command: str, step: str, call: Awaitable[_T]) -> _T:
        try:
            return await self._bounded(call)
        except (TimeoutError, APIError, OSError) as error:
            raise DeviceCommandError(self._failed(f"{command}: {step}", error)) from None

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        async with asyncio.timeout(self._timeout_s):
            return await call

    def _check_open(self, command: str) -> None:
        if self._closed:
            raise DeviceCommandError(f"{self.name}: {command}: the device is closed")

    def _failed(self, what: str, error: BaseException) -> str:
        reason = str(error) or f"no answer within {self._timeout_s:g} s"
        return f"{self.name}: {what} failed: miner at {self.address}: {reason}"

    def _not_applied(self, command: str, step: str) -> str:
        return f"{self.name}: {command}: miner {self.model} at {self.address} did not apply {step}"


async def connect_pyasic_miner(
    settings: PyasicDeviceSpec, *, clock: Callable[[], float] = time.time
) -> PyasicMiner:
    """Find which firmware the miner at ``settings.host`` runs and return its adapter.

    Parameters
    ----------
    settings : PyasicDeviceSpec
        The validated settings (address, ports, power range, timeouts).
    clock : callable
        Returns the present time [POSIX s].

    Returns
    -------
    PyasicMiner
        The adapter, not yet commanded (the miner keeps doing what it did).

    Raises
    ------
    DeviceUnavailableError
        If nothing answers at ``host:rpc_port`` within ``timeout_s``, or what answers is not a
        miner pyasic knows; the message names the address.
    """
    host, rpc_port, timeout_s = settings.host, settings.rpc_port, settings.timeout_s
    name, address = settings.name, f"{settings.host}:{settings.rpc_port}"
    try:
        version = await _rpc_text(host, rpc_port, "version", timeout_s)
    except (TimeoutError, OSError) as error:
        reason = str(error) or f"no answer within {timeout_s:g} s"
        raise DeviceUnavailableError(f"{name}: no miner answers at {address}: {reason}") from None
    # pyasic's factory parses these answers but probes only the default ports; its parsers
    # are used here so that a miner on any port is recognised the same way.
    miner_type = MinerFactory._parse_socket_type(version) if version else None
    if miner_type is None:
        raise DeviceUnavailableError(
            f"{name}: what answers at {address} is not a miner pyasic knows: {version!r:.200}"
        )
    model = await _model(host, rpc_port, timeout_s)
    miner = MinerFactory._select_miner_from_classes(host, model, miner_type)
    miner.rpc.port = rpc_port
    if settings.web_port is not None and getattr(miner, "web", None) is not None:
        miner.web.port = settings.web_port
    return PyasicMiner(settings, miner, clock=clock)


async def _rpc_text(host: str, port: int, command: str, timeout_s: float) -> str:
    """Send one cgminer-style RPC command and return the whole answer as text.

    Raises
    ------
    OSError
        If the connection is refused or broken.
    TimeoutError
        If the answer does not end within ``timeout_s`` [s].
    """

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(json.dumps({"command": command}).encode())
            await writer.drain()
            answer = b""
            while len(answer) < _MAX_RPC_ANSWER_BYTES and (chunk := await reader.read(65536)):
                answer += chunk  # the miner closes the connection after its answer
            return answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async with asyncio.timeout(timeout_s):
        answer = await exchange()
    return answer.rstrip(b"\x00").decode(errors="replace")


async def _model(host: str, port: int, timeout_s: float) -> str | None:
    """Return the model the miner names in ``devdetails``, or None when it names none."""
    try:
        details = json.loads(await _rpc_text(host, port, "devdetails", timeout_s))
        model = details["DEVDETAILS"][0]["Model"]
    except (TimeoutError, OSError, ValueError, LookupError, TypeError):
        return None
    return str(model) if model else None


def _hottest_c(hashboards: list[Any]) -> float | None:
    """Return the hottest board or chip temperature reported [°C], or None without one."""
    temps_c = [
        float(temp)
        for board in hashboards
        for temp in (board.temp, board.chip_temp)
        if temp is not None and math.isfinite(float(temp))
    ]
    return max(temps_c) if temps_c else None


def _ths(hashrate: Any) -> float | None:
    """Return a pyasic hash rate in TH/s [TH/s], or None when the miner gave none."""
    if hashrate is None:
        return None
    rate = float(hashrate.into(SHA256Unit.TH).rate)
    return max(0.0, rate) if math.isfinite(rate) else None
