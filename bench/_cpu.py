"""CPU time of process trees, read from ``/proc`` (Linux), for the benchmark's CPU split.

A phase's CPU split is the CPU time each part (server, database, load generator) used during
the phase: :func:`tree_cpu_s` before and after, subtracted. A process that ended and was
waited for counts through its parent's ``cutime``/``cstime``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tree_cpu_s"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """Return (parent pid, CPU seconds of the process and its waited-for children)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return int(fields[1]), ticks / _TICKS_PER_S


def tree_cpu_s(root_pid: int) -> float:
    """Return the CPU time [s] used so far by ``root_pid`` and every live descendant."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                stats[int(entry.name)] = found
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0.0, [root_pid]
    while pending:
        pid = pending.pop()
        if pid in stats:
            total += stats[pid][1]
        pending.extend(children.get(pid, ()))
    return total
