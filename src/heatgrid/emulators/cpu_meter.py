"""An emulated power meter on a CPU heater: its idle draw plus the CPU time its work burns.

A CPU heater's heat is the work of its processes: the heater's agent runs busy worker processes
or a job's sandboxed task as its children, and every CPU-second they use is heat. The meter
reads the CPU time of every live descendant of the agent's process (Linux ``/proc``, the agent
itself left out: its control loop is not the heater's work) and turns its rate into power::

    power_w = idle_power_w + core_power_w * busy_cores       (at most max_power_w)

where ``busy_cores`` is CPU-seconds per second of the monotonic clock since the previous
reading. ``core_power_w`` is what one busy core of this machine stands for: an emulated heater
of 500 W can be one real core, as long as the agent's ``[jobs] core_power_w`` and its CPU
device's ``max_power_w - idle_power_w`` say the same (then the meter and the agent agree).

A process that ends between two readings loses its last partial interval; one that starts counts
from zero. Where ``/proc`` is absent the meter reads the idle draw only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from heatgrid.core.errors import InputError, require_non_negative, require_positive

__all__ = ["ProcessTreeMeter", "descendants_cpu_s"]

_PROC = Path("/proc")
_TICKS_PER_S = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def _stat_fields(text: str) -> list[str]:
    """Return the fields of ``/proc/PID/stat`` after the command name (which may hold spaces)."""
    return text[text.rfind(")") + 2 :].split()


def descendants_cpu_s(root_pid: int, proc: Path = _PROC) -> dict[tuple[int, int], float]:
    """Return the CPU time of every live descendant of ``root_pid`` (not itself) [s].

    Keys are ``(pid, start_ticks)``, so that a reused PID is another process. Processes that
    vanish while being read are left out.
    """
    parents: dict[int, int] = {}
    usage: dict[int, tuple[int, float]] = {}
    try:
        entries = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            fields = _stat_fields((proc / entry / "stat").read_text())
        except OSError:
            continue
        # after the name: state ppid ... utime(12th) stime(13th) ... starttime(20th), 1-based
        pid = int(entry)
        parents[pid] = int(fields[1])
        usage[pid] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / _TICKS_PER_S)
    found: dict[tuple[int, int], float] = {}
    for pid, (start_ticks, cpu_s) in usage.items():
        ancestor, hops = parents.get(pid), 0
        while ancestor is not None and ancestor not in (0, root_pid) and hops < 64:
            ancestor, hops = parents.get(ancestor), hops + 1
        if ancestor == root_pid:
            found[pid, start_ticks] = cpu_s
    return found


class ProcessTreeMeter:
    """The power of a CPU heater from the CPU time of a process's descendants.

    Parameters
    ----------
    root_pid : int
        The heater's agent process; its descendants' work is the heater's heat.
    idle_power_w : float
        The heater's draw with nothing running [W], >= 0.
    core_power_w : float
        Power one busy core of this machine stands for [W], > 0.
    max_power_w : float
        The heater's highest draw [W], >= ``idle_power_w``.
    monotonic : callable
        A monotonic clock [s].
    proc : pathlib.Path
        Where the process file system is mounted.
    """

    def __init__(
        self,
        root_pid: int,
        *,
        idle_power_w: float,
        core_power_w: float,
        max_power_w: float,
        monotonic: Callable[[], float] = time.monotonic,
        proc: Path = _PROC,
    ) -> None:
        self.root_pid = root_pid
        self.idle_power_w = require_non_negative("idle_power_w", idle_power_w)
        self.core_power_w = require_positive("core_power_w", core_power_w)
        if not max_power_w >= idle_power_w:
            raise InputError(
                f"max_power_w must be at least idle_power_w ({idle_power_w:g} W), "
                f"got {max_power_w:g} W"
            )
        self.max_power_w = max_power_w
        self._monotonic = monotonic
        self._proc = proc
        self._last: tuple[float, dict[tuple[int, int], float]] | None = None

    def power_w(self) -> float:
        """Return the heater's power over the interval since the previous call [W].

        The first call has no interval yet and returns ``idle_power_w``.
        """
        now = self._monotonic()
        usage = descendants_cpu_s(self.root_pid, self._proc)
        last, self._last = self._last, (now, usage)
        if last is None or now <= last[0]:
            return self.idle_power_w
        before = last[1]
        used_s = sum(max(cpu_s - before.get(key, 0.0), 0.0) for key, cpu_s in usage.items())
        busy_cores = used_s / (now - last[0])
        return min(self.idle_power_w + self.core_power_w * busy_cores, self.max_power_w)
