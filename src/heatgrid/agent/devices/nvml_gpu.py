"""An NVIDIA GPU as a heating element, through NVML (the ``nvidia-ml-py`` bindings, ``pynvml``).

The GPU's heat is the work of the task processes that compute on it (the job runner gives their
process ids with :meth:`NvmlGpu.set_task_pids`). Power is steered two ways, one per device:

* **power limit** where this process may set it (root, or an administrator allowed it):
  ``nvmlDeviceSetPowerManagementLimit`` to the target, read back and compared; the task
  processes run all the time.
* **duty cycling** otherwise (NVML answers "no permission" or "not supported"): the power limit is
  left alone and the task processes are stopped and continued
  (:class:`~heatgrid.agent.devices.duty_cycle.DutyCycler`) for the share of each period that
  draws the target on average, ``(power_w − idle_power_w) / (max_power_w − idle_power_w)``.

Power 0 stops the task processes (SIGSTOP): the board falls to its idle draw and the tasks
resume where they stopped. Closing the adapter puts back the power limit the board had when
it was opened (the owner's, or the driver's default), so a GPU left by heatgrid is not held
at the last heating power. Readings come from the board itself: power (mW), the total energy
counter (mJ, Volta and later), GPU core temperature, utilisation and, on boards that have them,
fans. :func:`open_nvml_gpu` raises :class:`~heatgrid.agent.devices.base.DeviceUnavailableError`
when NVML or the GPU is missing, naming which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pynvml  # type: ignore[import-untyped]

from heatgrid.agent.devices.base import (
    DeviceAdapter,
    DeviceCommandError,
    DeviceReading,
    DeviceUnavailableError,
)
from heatgrid.agent.devices.duty_cycle import DutyCycler, duty_for_power
from heatgrid.agent.devices.settings import NvmlDeviceSpec
from heatgrid.core.arbiter import DeviceCapability
from heatgrid.core.errors import InputError

__all__ = ["NvmlGpu", "limit_fallback_reason", "nvml_unavailable_reason", "open_nvml_gpu"]

_log = logging.getLogger(__name__)
_W_PER_MW = 1e-3
_J_PER_MJ = 1e-3
_BYTES_PER_GB = 1e9
_NVML_READ_ERRORS = (pynvml.NVMLError, OSError)


def nvml_unavailable_reason(error: BaseException) -> str:
    """Say, for a user, why NVML could not be used, from the error ``nvmlInit`` raised."""
    if isinstance(error, pynvml.NVMLError_LibraryNotFound | pynvml.NVMLError_DriverNotLoaded):
        return f"the NVIDIA driver's NVML library is not usable here ({error})"
    if isinstance(error, pynvml.NVMLError_NoPermission):
        return f"no permission to use the NVIDIA driver ({error})"
    return f"NVML failed: {error}"


def limit_fallback_reason(error: BaseException) -> str | None:
    """Return why this process cannot set the power limit, or None when ``error`` is a failure.

    "No permission" and "not supported" are lasting properties of the board and the process:
    the adapter then throttles by duty cycling instead. Any other NVML error (a lost GPU, a
    limit out of range) is a failed command and is raised.
    """
    if isinstance(error, pynvml.NVMLError_NoPermission):
        return "no permission to set the power limit (run as root or allow it with nvidia-smi)"
    if isinstance(error, pynvml.NVMLError_NotSupported):
        return "the board does not support setting its power limit"
    return None


class NvmlGpu(DeviceAdapter):
    """One NVIDIA GPU driven through NVML: a :class:`HeatDevice`.

    Build it with :func:`open_nvml_gpu`, which starts NVML and reads the board's limits.

    Parameters
    ----------
    settings : NvmlDeviceSpec
        The validated settings: name, index, minimum cycle and duty-cycle period.
    handle : NVML device handle
        From ``nvmlDeviceGetHandleByIndex``; NVML is initialised and stays so until
        :meth:`aclose`.
    min_power_w, max_power_w : float
        The power range offered to the arbiter [W], within the board's power-limit range.
    idle_power_w : float
        The board's draw with its tasks stopped [W], below ``min_power_w``; used for duty
        cycling.
    vram_gb : float
        GPU memory [GB].
    clock : callable
        Returns the present time [POSIX s], for ``read_ts``.
    """

    def __init__(
        self,
        settings: NvmlDeviceSpec,
        handle: Any,
        *,
        min_power_w: float,
        max_power_w: float,
        idle_power_w: float,
        vram_gb: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._capability = DeviceCapability(
            device_id=settings.name,
            kind="gpu",
            min_power_w=min_power_w,
            max_power_w=max_power_w,
            min_cycle_s=settings.min_cycle_s,
            vram_gb=vram_gb,
        )
        self._idle_power_w = idle_power_w
        self._handle = handle
        self._index = settings.gpu_index
        self._cycler = DutyCycler(period_s=settings.period_s)
        self._clock = clock
        self._target_w = 0.0
        self._fallback_reason: str | None = None
        self._closed = False
        self._owner_limit_mw: int | None = _optional(
            pynvml.nvmlDeviceGetPowerManagementLimit, handle
        )
        self._limit_changed = False

    @property
    def limit_control(self) -> bool:
        """True while power is steered by the board's power limit, False once duty-cycled."""
        return self._fallback_reason is None

    @property
    def idle_power_w(self) -> float:
        """The board's draw with its tasks stopped [W]."""
        return self._idle_power_w

    def set_task_pids(self, pids: Iterable[int]) -> None:
        """Steer these task processes (the ones computing on this GPU) from now on."""
        self._cycler.set_pids(pids)

    async def read(self) -> DeviceReading:
        """Read power, energy, temperature, utilisation and fans from the board.

        Raises
        ------
        DeviceUnavailableError
            If the device is closed or NVML cannot read the board's power.
        """
        if self._closed:
            raise DeviceUnavailableError(f"{self.name}: read: the device is closed")
        handle = self._handle
        try:
            power_w = float(pynvml.nvmlDeviceGetPowerUsage(handle)) * _W_PER_MW
        except _NVML_READ_ERRORS as error:
            raise DeviceUnavailableError(f"{self.name}: read: GPU {self._index}: {error}") from None
        energy_mj = _optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        temp_c = _optional(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
        rates = _optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
        fan_count = _optional(pynvml.nvmlDeviceGetNumFans, handle)
        fans_ok = None
        if fan_count:
            speeds = [
                _optional(pynvml.nvmlDeviceGetFanSpeed_v2, handle, i) for i in range(fan_count)
            ]
            if all(speed is not None for speed in speeds):
                fans_ok = all(float(speed) > 0.0 for speed in speeds)
        return DeviceReading(
            read_ts=self._clock(),
            power_w=power_w,
            power_measured=True,
            energy_j=float(energy_mj) * _J_PER_MJ if energy_mj is not None else None,
            power_target_w=self._target_w,
            device_temp_c=float(temp_c) if temp_c is not None else None,
            fans_ok=fans_ok,
            utilisation=float(rates.gpu) / 100.0 if rates is not None else None,
            running=self._target_w > 0.0,
        )

    async def set_power(self, power_w: float) -> None:
        """Run the tasks at ``power_w`` [W]; 0 stops them.

        Raises
        ------
        DeviceCommandError
            If the device is closed, ``power_w`` is neither 0 nor within
            ``[min_power_w, max_power_w]``, NVML fails to set the limit (other than "no
            permission" or "not supported", which switch to duty cycling), the board does not
            hold the limit when read back, or a task process cannot be signalled.
        """
        command = f"set_power({power_w!r} W)"
        self._check_open(command)
        if power_w == 0.0:
            await self._stop(command)
            return
        self._check_power_range(command, power_w)
        if self.limit_control:
            self._set_limit(command, power_w)
        duty = (
            1.0
            if self.limit_control
            else duty_for_power(power_w, self._idle_power_w, self._capability.max_power_w)
        )
        try:
            await self._cycler.set_duty(duty)
        except OSError as error:
            raise DeviceCommandError(f"{self.name}: {command}: task processes: {error}") from None
        self._target_w = power_w

    async def safe_state(self) -> None:
        """Stop the task processes: the board falls to its idle draw."""
        self._check_open("safe_state")
        await self._stop("safe_state")

    async def aclose(self) -> None:
        """Stop the task processes, put back the board's power limit, release NVML, close.

        The limit put back is the one the board had when opened. Later commands raise.
        """
        if self._closed:
            return
        self._closed = True
        self._target_w = 0.0
        try:
            await self._cycler.aclose(leave_running=False)
        finally:
            self._restore_limit()
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as error:
                _log.warning("%s: nvmlShutdown: %s", self.name, error)

    def _restore_limit(self) -> None:
        if not self._limit_changed or self._owner_limit_mw is None:
            return
        try:
            pynvml.nvmlDeviceSetPowerManagementLimit(self._handle, self._owner_limit_mw)
        except pynvml.NVMLError as error:
            _log.warning(
                "%s: GPU %d: could not put back its power limit of %g W: %s",
                self.name,
                self._index,
                self._owner_limit_mw / 1000,
                error,
            )

    def _set_limit(self, command: str, power_w: float) -> None:
        limit_mw = round(power_w / _W_PER_MW)
        try:
            pynvml.nvmlDeviceSetPowerManagementLimit(self._handle, limit_mw)
            self._limit_changed = True
            held_mw = int(pynvml.nvmlDeviceGetPowerManagementLimit(self._handle))
        except pynvml.NVMLError as error:
            reason = limit_fallback_reason(error)
            if reason is None:
                raise DeviceCommandError(
                    f"{self.name}: {command}: GPU {self._index}: setting the power limit "
                    f"failed: {error}"
                ) from None
            self._fallback_reason = reason
            _log.warning("%s: GPU %d: %s; duty-cycling its tasks", self.name, self._index, reason)
            return
        if abs(held_mw - limit_mw) > 1000:
            raise DeviceCommandError(
                f"{self.name}: {command}: GPU {self._index} holds a power limit of "
                f"{held_mw / 1000:g} W, not {limit_mw / 1000:g} W"
            )

    async def _stop(self, command: str) -> None:
        self._target_w = 0.0
        try:
            await self._cycler.set_duty(0.0)
        except OSError as error:
            raise DeviceCommandError(f"{self.name}: {command}: task processes: {error}") from None

    def _check_open(self, command: str) -> None:
        if self._closed:
            raise DeviceCommandError(f"{self.name}: {command}: the device is closed")


def open_nvml_gpu(settings: NvmlDeviceSpec, *, clock: Callable[[], float] = time.time) -> NvmlGpu:
    """Start NVML, find GPU ``settings.gpu_index`` and return its adapter.

    Powers left unset take the board's: ``min_power_w`` its lowest power limit,
    ``idle_power_w`` :meth:`NvmlDeviceSpec.idle_w` of the maximum.

    Parameters
    ----------
    settings : NvmlDeviceSpec
        The validated settings.
    clock : callable
        Returns the present time [POSIX s].

    Returns
    -------
    NvmlGpu
        The adapter; its tasks are not touched until the first command.

    Raises
    ------
    InputError
        If a power lies outside the board's power-limit range, or the idle draw is not below
        the lowest power; the message starts with the key.
    DeviceUnavailableError
        If NVML cannot start (no NVIDIA driver) or there is no such GPU.
    """
    name, index = settings.name, settings.gpu_index
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise DeviceUnavailableError(f"{name}: {nvml_unavailable_reason(error)}") from None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        low_mw, high_mw = pynvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        board_min_w, board_max_w = float(low_mw) * _W_PER_MW, float(high_mw) * _W_PER_MW
        max_w = settings.max_power_w
        min_w = board_min_w if settings.min_power_w is None else settings.min_power_w
        for key, value in (("min_power_w", min_w), ("max_power_w", max_w)):
            if not board_min_w <= value <= board_max_w:
                raise InputError(
                    f"{key}: must lie within GPU {index}'s power-limit range "
                    f"[{board_min_w:g}, {board_max_w:g}] W, got {value:g} W"
                )
        idle_w = settings.idle_w(max_w)
        if not idle_w < min_w:
            raise InputError(
                f"idle_power_w: must be below min_power_w ({min_w:g} W), got {idle_w:g} W"
            )
        return NvmlGpu(
            settings,
            handle,
            min_power_w=min_w,
            max_power_w=max_w,
            idle_power_w=idle_w,
            vram_gb=float(memory.total) / _BYTES_PER_GB,
            clock=clock,
        )
    except BaseException as error:
        pynvml.nvmlShutdown()
        if isinstance(error, pynvml.NVMLError):
            raise DeviceUnavailableError(f"{name}: GPU {index}: {error}") from None
        raise


def _optional(function: Callable[..., Any], *args: Any) -> Any:
    """Call an NVML reader; None when the board does not offer that reading."""
    try:
        return function(*args)
    except pynvml.NVMLError:
        return None
