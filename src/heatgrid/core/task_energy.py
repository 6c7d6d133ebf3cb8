"""Task energy from a host's meters: counter deltas and a task's share of them.

A CPU package's energy counter (Intel RAPL, ``energy_uj``) counts every joule the package
drew, for every process on the host, and wraps around at ``max_energy_range_uj``. A task's
share of an interval's package energy is its CPU time over all the host's CPU time in that
interval (busy time of every core): a task that kept one core of four busy while the others
idled is given the whole package energy of the interval, idle cores included, since nothing
else ran; two tasks share it by their CPU time. The rule never gives out more than was
metered: each task at most the package energy, all tasks together at most the package energy.

Pure: the caller reads the counters and passes the numbers in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

from heatgrid.core.errors import InputError

__all__ = [
    "ENERGY_METHODS",
    "EnergyMethod",
    "attribute_energy_j",
    "counter_delta_uj",
]

EnergyMethod = Literal["rapl", "nvml", "cpu_time_estimate"]
"""How a task's energy was found: metered by RAPL (CPU package, shared by CPU-time share), by
NVML (the GPU's own energy counter), or estimated as CPU time times a stated power per core."""

ENERGY_METHODS: Final[tuple[EnergyMethod, ...]] = ("rapl", "nvml", "cpu_time_estimate")
"""Every :data:`EnergyMethod`."""


def counter_delta_uj(before_uj: int, after_uj: int, max_range_uj: int) -> int:
    """Return the energy counted between two readings of a wrapping counter [uJ].

    Parameters
    ----------
    before_uj, after_uj : int
        The counter's readings, in order [uJ]; each in ``[0, max_range_uj]``.
    max_range_uj : int
        The counter's range: it wraps to 0 after this value [uJ] (RAPL's
        ``max_energy_range_uj``); positive.

    Returns
    -------
    int
        ``after - before`` when the counter did not wrap, else the way round through
        ``max_range_uj`` (at most one wrap is assumed: read more often than the counter
        fills, every few minutes at most for RAPL) [uJ].

    Raises
    ------
    InputError
        A reading outside ``[0, max_range_uj]`` or a range that is not positive.
    """
    if max_range_uj <= 0:
        raise InputError(f"max_range_uj must be positive, got {max_range_uj}")
    for name, value in (("before_uj", before_uj), ("after_uj", after_uj)):
        if not 0 <= value <= max_range_uj:
            raise InputError(f"{name} must be between 0 and {max_range_uj}, got {value}")
    if after_uj >= before_uj:
        return after_uj - before_uj
    return max_range_uj - before_uj + after_uj + 1


def attribute_energy_j(
    package_j: float, task_cpu_s: Sequence[float], host_cpu_s: float
) -> list[float]:
    """Share an interval's metered package energy among tasks by their CPU time [J].

    Parameters
    ----------
    package_j : float
        Energy the package drew in the interval [J]; finite, >= 0.
    task_cpu_s : sequence of float
        Each task's CPU time in the interval [s]; finite, >= 0.
    host_cpu_s : float
        CPU time of every process on the host in the interval (busy time of all cores) [s];
        finite, >= 0. Counted separately from the tasks', it may come out a little smaller
        than their sum (the two are read at slightly different instants): the larger counts.

    Returns
    -------
    list of float
        Each task's energy [J]: ``package_j * cpu / max(host_cpu_s, sum(task_cpu_s))``; 0 for
        every task when no CPU time was counted. Each is at most ``package_j`` and they sum to
        at most ``package_j``.

    Raises
    ------
    InputError
        A negative or non-finite input.
    """
    values = [("package_j", package_j), ("host_cpu_s", host_cpu_s)]
    values += [(f"task_cpu_s[{index}]", cpu) for index, cpu in enumerate(task_cpu_s)]
    for name, value in values:
        if not (math.isfinite(value) and value >= 0.0):
            raise InputError(f"{name} must be finite and >= 0, got {value!r}")
    counted_s = max(host_cpu_s, math.fsum(task_cpu_s))
    if counted_s <= 0.0:
        return [0.0 for _ in task_cpu_s]
    shares = [min(package_j * (cpu / counted_s), package_j) for cpu in task_cpu_s]
    while math.fsum(shares) > package_j:  # rounding: a few ulp over at most
        shares = [math.nextafter(share, 0.0) for share in shares]
    return shares
