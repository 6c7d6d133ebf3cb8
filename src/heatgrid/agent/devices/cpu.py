"""The CPU as a heating element: busy worker processes, duty-cycled to a power target.

Power is applied by ``worker_count`` busy processes (one per core by default) that a
:class:`~heatgrid.agent.devices.duty_cycle.DutyCycler` runs for a fraction
``utilisation = (power_w − idle_power_w) / (max_power_w − idle_power_w)`` of each period.
A worker is a bare Python loop that exits by itself when its parent is gone, so a crashed agent
leaves no heat behind; :meth:`CpuHeater.set_power` with 0, :meth:`~CpuHeater.safe_state` and
:meth:`~CpuHeater.aclose` kill and reap every worker.

Power is read from Linux RAPL package counters (:mod:`heatgrid.agent.devices.rapl`) where they are
present and readable (``power_measured`` True), else from the power model
``idle_power_w + utilisation · (max_power_w − idle_power_w)`` (``power_measured`` False). With
the workers stopped the CPU still draws ``idle_power_w``: that is its off level.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from heatgrid.agent.devices.base import (
    DeviceAdapter,
    DeviceCommandError,
    DeviceReading,
    DeviceUnavailableError,
)
from heatgrid.agent.devices.duty_cycle import DutyCycler, duty_for_power
from heatgrid.agent.devices.rapl import DEFAULT_POWERCAP_ROOT, RaplMeter
from heatgrid.agent.devices.settings import CpuDeviceSpec
from heatgrid.core.arbiter import DeviceCapability

__all__ = ["CpuHeater"]

# A worker spins until its parent is gone; on Linux the kernel also kills it (even while it is
# stopped by the duty cycler) when its parent dies: prctl(PR_SET_PDEATHSIG = 1, SIGKILL = 9).
# It says "ready" on stdout once that is armed, and only then is it duty-cycled: a worker
# stopped before it armed the signal would outlive a killed agent, stopped for ever.
_SPIN_CODE = """
import os, sys
parent = int(sys.argv[1])
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)
except (OSError, AttributeError):
    pass
if os.getppid() == parent:
    sys.stdout.write("r")
    sys.stdout.close()
while os.getppid() == parent:
    pass
"""
_REAP_TIMEOUT_S = 10.0
_READY_TIMEOUT_S = 30.0


class CpuHeater(DeviceAdapter):
    """A :class:`~heatgrid.agent.devices.base.HeatDevice` that heats with the CPU.

    Parameters
    ----------
    settings : CpuDeviceSpec
        The validated settings: name, powers, workers, period and minimum cycle.
    powercap_root : pathlib.Path
        The powercap sysfs directory holding the RAPL zones.
    clock : callable
        Returns the present time [POSIX s], for ``read_ts``.
    monotonic : callable
        A monotonic clock [s], for power from the RAPL counters.
    """

    def __init__(
        self,
        settings: CpuDeviceSpec,
        *,
        powercap_root: Path = DEFAULT_POWERCAP_ROOT,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle_power_w = settings.idle_power_w
        self._capability = DeviceCapability(
            device_id=settings.name,
            kind="cpu",
            min_power_w=settings.floor_power_w(),
            max_power_w=settings.max_power_w,
            min_cycle_s=settings.min_cycle_s,
        )
        self._worker_count = settings.workers()
        self._cycler = DutyCycler(period_s=settings.period_s)
        self._meter = RaplMeter.discover(powercap_root, monotonic)
        self._clock = clock
        self._workers: list[subprocess.Popen[bytes]] = []
        self._target_w = 0.0
        self._closed = False

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the worker processes now running (empty when off)."""
        return tuple(worker.pid for worker in self._workers)

    @property
    def power_measured(self) -> bool:
        """True while power comes from RAPL counters, False while from the power model."""
        return self._meter is not None

    async def read(self) -> DeviceReading:
        """Read the power (RAPL or model) and the workers' state."""
        if self._closed:
            raise DeviceUnavailableError(f"{self.name}: read: the device is closed")
        alive = sum(worker.poll() is None for worker in self._workers)
        utilisation = self._cycler.duty * alive / self._worker_count if alive else 0.0
        model_w = self._idle_power_w + utilisation * (
            self._capability.max_power_w - self._idle_power_w
        )
        power_w, measured, energy_j = model_w, False, None
        if self._meter is not None:
            try:
                sample = self._meter.sample()
            except OSError:
                self._meter = None  # counters gone: the model from now on, and say so
            else:
                energy_j = sample.energy_j
                if sample.power_w is not None:
                    power_w, measured = sample.power_w, True
        return DeviceReading(
            read_ts=self._clock(),
            power_w=power_w,
            power_measured=measured,
            energy_j=energy_j,
            power_target_w=self._target_w,
            running=alive > 0 and self._target_w > 0.0,
        )

    async def set_power(self, power_w: float) -> None:
        """Run the workers for the share of time that draws ``power_w`` [W]; 0 stops them.

        Raises
        ------
        DeviceCommandError
            If the device is closed, ``power_w`` is neither 0 nor within
            ``[min_power_w, max_power_w]``, or a worker cannot be started or signalled.
        """
        command = f"set_power({power_w!r} W)"
        self._check_open(command)
        if power_w == 0.0:
            await self._stop_workers(command)
            return
        self._check_power_range(command, power_w)
        duty = duty_for_power(power_w, self._idle_power_w, self._capability.max_power_w)
        try:
            await self._start_workers()
            await self._cycler.set_duty(duty)
        except OSError as error:
            await self._stop_workers(command)
            raise DeviceCommandError(f"{self.name}: {command} failed: {error}") from error
        self._target_w = power_w

    async def safe_state(self) -> None:
        """Stop and reap every worker: the CPU goes back to its idle draw."""
        self._check_open("safe_state")
        await self._stop_workers("safe_state")

    async def aclose(self) -> None:
        """Stop every worker and close; later commands raise."""
        if self._closed:
            return
        await self._stop_workers("aclose")
        self._closed = True

    def _check_open(self, command: str) -> None:
        if self._closed:
            raise DeviceCommandError(f"{self.name}: {command}: the device is closed")

    async def _start_workers(self) -> None:
        self._workers = [worker for worker in self._workers if worker.poll() is None]
        while len(self._workers) < self._worker_count:
            worker = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _SPIN_CODE, str(os.getpid())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self._workers.append(worker)
            await _wait_ready(worker)
        self._cycler.set_pids(worker.pid for worker in self._workers)

    async def _stop_workers(self, command: str) -> None:
        self._target_w = 0.0
        workers, self._workers = self._workers, []
        self._cycler.set_pids(())
        await self._cycler.aclose(leave_running=False)
        stuck: list[int] = []
        for worker in workers:
            if worker.poll() is None:
                worker.kill()  # SIGKILL also ends a stopped process
            try:
                worker.wait(timeout=_REAP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                stuck.append(worker.pid)
                self._workers.append(worker)
        if stuck:
            raise DeviceCommandError(f"{self.name}: {command}: workers {stuck} did not exit")


async def _wait_ready(worker: subprocess.Popen[bytes]) -> None:
    """Wait until ``worker`` has armed its parent-death signal; raise :class:`OSError` if not."""
    stdout = worker.stdout
    if stdout is None:  # pragma: no cover - the worker is always started with a pipe
        raise OSError(f"worker {worker.pid} has no stdout pipe")
    read = asyncio.ensure_future(asyncio.to_thread(stdout.read, 1))
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            word = await asyncio.shield(read)
    except TimeoutError:
        worker.kill()  # ends the read with end-of-file
        word = await read
    finally:
        if read.done():
            stdout.close()
    if word != b"r":
        raise OSError(f"worker {worker.pid} did not start within {_READY_TIMEOUT_S:g} s")
