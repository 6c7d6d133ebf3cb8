"""Metered task energy: RAPL and NVML counters where the host has them, else an estimate.

* **RAPL** (Intel, and AMD on recent kernels): ``/sys/class/powercap/intel-rapl:N/energy_uj``
  per CPU package (its sub-zones ``intel-rapl:N:M`` are parts of it and are not added again),
  a counter in microjoules that wraps at ``max_energy_range_uj``. The task is given its share
  of the packages' energy over its run by its cgroup's CPU time over the host's CPU time
  (``/proc/stat``), by :func:`heatgrid.core.task_energy.attribute_energy_j`.
* **NVML** (``nvidia-ml-py``, optional): for a task given a GPU, the GPU's own total-energy
  counter over the run (the task owns the GPU while it runs), plus its CPU share as above or
  estimated.
* Neither readable (a virtual machine, no permission: ``energy_uj`` is root-only on kernels
  since 5.10, or no such hardware): the task's CPU time times ``core_power_w``.

The method used is recorded with the energy (``rapl``, ``nvml`` or ``cpu_time_estimate``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from heatgrid.core.task_energy import EnergyMethod, attribute_energy_j, counter_delta_uj

__all__ = [
    "POWERCAP_ROOT",
    "EnergyMeter",
    "RaplReader",
    "TaskEnergy",
    "host_cpu_s",
]

POWERCAP_ROOT: Final = Path("/sys/class/powercap")
"""Where the kernel shows RAPL's energy counters."""

_USER_HZ = os.sysconf("SC_CLK_TCK")
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (not idle, iowait)


def host_cpu_s(proc_stat: Path = Path("/proc/stat")) -> float:
    """Return the busy CPU time of every core of the host since boot [s] (``/proc/stat``)."""
    with proc_stat.open() as file:
        fields = file.readline().split()
    if not fields or fields[0] != "cpu":
        raise OSError(f"{proc_stat} does not start with the 'cpu' line")
    ticks = [int(value) for value in fields[1:]]
    return sum(ticks[index] for index in _BUSY_FIELDS if index < len(ticks)) / _USER_HZ


@dataclass(frozen=True)
class _Zone:
    energy_file: Path
    max_range_uj: int


class RaplReader:
    """Reads the CPU packages' RAPL energy counters under a powercap directory.

    Parameters
    ----------
    root : Path
        The powercap directory (``/sys/class/powercap``; a test passes a directory laid out
        the same way).
    """

    def __init__(self, root: Path = POWERCAP_ROOT) -> None:
        self.zones: list[_Zone] = []
        """The package zones whose counters can be read."""
        with contextlib.suppress(OSError):
            for zone in sorted(root.glob("intel-rapl:*")):
                if zone.name.count(":") != 1:  # intel-rapl:0:1 is a part of package 0
                    continue
                try:
                    max_range_uj = int((zone / "max_energy_range_uj").read_text())
                    int((zone / "energy_uj").read_text())
                except (OSError, ValueError):
                    continue
                self.zones.append(_Zone(zone / "energy_uj", max_range_uj))

    @property
    def available(self) -> bool:
        """True when at least one package counter can be read."""
        return bool(self.zones)

    def read_uj(self) -> list[int]:
        """Return each package counter now [uJ]."""
        return [int(zone.energy_file.read_text()) for zone in self.zones]

    def energy_j(self, before_uj: list[int], after_uj: list[int]) -> float:
        """Return the packages' energy between two readings, wrap-around handled [J]."""
        return (
            sum(
                counter_delta_uj(start, end, zone.max_range_uj)
                for zone, start, end in zip(self.zones, before_uj, after_uj, strict=True)
            )
            / 1e6
        )


class _Nvml:
    """The total-energy counters of the host's NVIDIA GPUs, through ``nvidia-ml-py``."""

    def __init__(self) -> None:
        import pynvml  # type: ignore[import-untyped]  # noqa: PLC0415 (optional)

        self._nvml: Any = pynvml
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        if not self._handles:
            raise OSError("NVML sees no GPU")

    def read_mj(self) -> list[int]:
        return [
            int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)) for handle in self._handles
        ]


def _open_nvml() -> _Nvml | None:
    try:
        return _Nvml()
    except Exception:  # (no library, no driver, no GPU, no counter: estimate)
        return None


@dataclass(frozen=True)
class TaskEnergy:
    """A task run's energy and how it was found.

    Attributes
    ----------
    energy_j : float
        The energy [J].
    method : EnergyMethod
        ``rapl``, ``nvml`` or ``cpu_time_estimate``.
    """

    energy_j: float
    method: EnergyMethod


@dataclass
class EnergyMeter:
    """Meters one task run: call :meth:`start` before it starts, :meth:`finish` after it ends.

    Parameters
    ----------
    core_power_w : float
        Power of one busy core, for the estimate where nothing is metered [W].
    gpu : bool
        The task was given a GPU: use NVML's counter when it can be read.
    metered : bool
        Read the meters; False: always the estimate (an agent on an accelerated clock, whose
        energies are counted in the clock's seconds, not the meters').
    rapl : RaplReader
        The RAPL counters (the host's by default).
    proc_stat : Path
        The host's ``/proc/stat``.
    """

    core_power_w: float
    gpu: bool = False
    metered: bool = True
    rapl: RaplReader = field(default_factory=RaplReader)
    proc_stat: Path = Path("/proc/stat")
    _rapl_uj: list[int] | None = None
    _host_cpu_s: float = 0.0
    _nvml: _Nvml | None = None
    _nvml_mj: list[int] | None = None

    def start(self) -> None:
        """Read the counters at the start of the run."""
        self._rapl_uj, self._nvml = None, None
        if not self.metered:
            return
        if self.rapl.available:
            with contextlib.suppress(OSError, ValueError):
                self._host_cpu_s = host_cpu_s(self.proc_stat)
                self._rapl_uj = self.rapl.read_uj()
        if self.gpu:
            self._nvml = _open_nvml()
            if self._nvml is not None:
                try:
                    self._nvml_mj = self._nvml.read_mj()
                except Exception:  # (the counter is not supported on this GPU)
                    self._nvml = None

    def finish(self, task_cpu_s: float) -> TaskEnergy:
        """Return the run's energy, from the counters where they were read at both ends.

        Parameters
        ----------
        task_cpu_s : float
            CPU time of the task's cgroup over the run [s].
        """
        cpu = self._cpu_energy(task_cpu_s)
        if self._nvml is not None and self._nvml_mj is not None:
            try:
                after = self._nvml.read_mj()
            except Exception:  # (the driver went away: the CPU part only)
                return cpu
            gpu_j = (
                sum(max(end - start, 0) for start, end in zip(self._nvml_mj, after, strict=True))
                / 1e3
            )
            return TaskEnergy(cpu.energy_j + gpu_j, "nvml")
        return cpu

    def _cpu_energy(self, task_cpu_s: float) -> TaskEnergy:
        estimate = TaskEnergy(task_cpu_s * self.core_power_w, "cpu_time_estimate")
        if self._rapl_uj is None:
            return estimate
        try:
            package_j = self.rapl.energy_j(self._rapl_uj, self.rapl.read_uj())
            host_s = host_cpu_s(self.proc_stat) - self._host_cpu_s
        except (OSError, ValueError):
            return estimate
        (share_j,) = attribute_energy_j(package_j, [task_cpu_s], max(host_s, 0.0))
        return TaskEnergy(share_j, "rapl")
