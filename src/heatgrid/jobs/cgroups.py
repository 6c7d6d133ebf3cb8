"""Control groups for task sandboxes: limits, freezing and killing a task's every process.

A task's processes live in a cgroup of their own: memory and process-count limits, a CPU-time
account, and a freezer that stops every process of the task at once (a child that calls
``setsid`` escapes a process-group signal, not its cgroup). Both hierarchies are supported:

* cgroup v2 (the unified hierarchy at ``/sys/fs/cgroup``, with ``cgroup.controllers``): the
  task's cgroup is made under ``$HEATGRID_CGROUP_ROOT`` when set, else under the runner's own
  cgroup, which must be able to hand the ``memory`` and ``pids`` controllers to children
  (systemd: ``Delegate=yes``).
* cgroup v1 (one mount per controller at ``/sys/fs/cgroup/<controller>``): ``memory``,
  ``pids`` and ``freezer`` are needed, ``cpuacct`` is used when present. The task's cgroup is
  made under the runner's own cgroup in each hierarchy.

Where neither is usable, :func:`create_task_cgroup` raises :class:`CgroupUnavailableError` saying
why: a task is never run without limits.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = [
    "CGROUP_MOUNT",
    "CgroupUnavailableError",
    "TaskCgroup",
    "create_task_cgroup",
    "detect_cgroup_version",
    "remove_leftover_task_cgroup",
]

CGROUP_MOUNT: Final = Path("/sys/fs/cgroup")
"""Where the cgroup file systems are mounted."""

_V1_REQUIRED = ("memory", "pids", "freezer")
_WAIT_STEP_S = 0.01
_SETTLE_TIMEOUT_S = 10.0


class CgroupUnavailableError(RuntimeError):
    """No cgroup hierarchy can hold a task's limits here; the message says why and what to do."""


def detect_cgroup_version(mount: Path = CGROUP_MOUNT) -> int:
    """Return 2 for a unified (v2) hierarchy, 1 for v1 controllers, else raise."""
    if (mount / "cgroup.controllers").is_file():
        return 2
    missing = [name for name in _V1_REQUIRED if not (mount / name / "cgroup.procs").is_file()]
    if not missing:
        return 1
    raise CgroupUnavailableError(
        f"no usable cgroup hierarchy at {mount}: neither cgroup v2 (no cgroup.controllers) nor "
        f"the cgroup v1 controllers {', '.join(missing)}; a task cannot be limited, so it is "
        "not run"
    )


def _own_paths() -> dict[str, str]:
    """Return this process's cgroup path per v1 controller, and ``""`` for v2 (the unified one)."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path.lstrip("/")
    return paths


def _write(path: Path, text: str) -> None:
    with path.open("w") as file:
        file.write(text)


def _wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + _SETTLE_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"cgroup: {what} did not happen within {_SETTLE_TIMEOUT_S} s")
        time.sleep(_WAIT_STEP_S)


class TaskCgroup(ABC):
    """One task's cgroup (a directory per hierarchy): join, freeze, thaw, kill, account."""

    version: int

    @property
    @abstractmethod
    def procs_files(self) -> list[Path]:
        """The ``cgroup.procs`` files a process writes its PID into to join the task."""

    @abstractmethod
    def pids(self) -> list[int]:
        """Return the PIDs (host namespace) of every process of the task."""

    @abstractmethod
    def freeze(self) -> None:
        """Stop every process of the task; returns once they are all frozen."""

    @abstractmethod
    def thaw(self) -> None:
        """Let every process of the task run again."""

    @abstractmethod
    def frozen(self) -> bool:
        """Return True while the task is frozen."""

    @abstractmethod
    def cpu_s(self) -> float | None:
        """Return the CPU time of every process of the task so far [s], or None if unknown."""

    @abstractmethod
    def oom_killed(self) -> bool:
        """Return True when the kernel killed a process of the task for memory."""

    @abstractmethod
    def pids_limit_hit(self) -> bool:
        """Return True when a fork of the task was refused for the process-count limit."""

    @abstractmethod
    def _dirs(self) -> list[Path]: ...

    def kill(self, last_pid: int | None = None) -> None:
        """Kill every process of the task, a child that called ``setsid`` too; wait till gone.

        Parameters
        ----------
        last_pid : int, optional
            A process to kill only once every other is gone: the runner's own child, so that
            each process dies before its parent and is reaped by it, and no zombie is left to
            a host init that might not reap.
        """
        spares: list[int | None] = [last_pid, None] if last_pid is not None else [None]
        for spare in spares:
            self.freeze()
            for pid in self.pids():
                if pid != spare:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            self.thaw()
            _wait_until(
                functools.partial(self._only_left, spare), "killing every process of the task"
            )

    def _only_left(self, spare: int | None) -> bool:
        return set(self.pids()) <= {spare}

    def remove(self) -> None:
        """Kill what is left and remove the cgroup's directories."""
        if any(path.is_dir() for path in self._dirs()):
            self.kill()
        for path in self._dirs():
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:  # EBUSY while the last process is being reaped
                    if error.errno != errno.EBUSY:
                        raise
                    time.sleep(_WAIT_STEP_S)


def _read_int(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


class _CgroupV1(TaskCgroup):
    version = 1

    def __init__(self, name: str, memory_bytes: int, max_processes: int, mount: Path) -> None:
        self._dir = self._paths(name, mount)
        try:
            for path in self._dir.values():
                path.mkdir()
            memory = self._dir["memory"]
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                _write(swap, str(memory_bytes))
            _write(self._dir["pids"] / "pids.max", str(max_processes))
        except OSError as error:
            self.remove()
            raise CgroupUnavailableError(
                f"cgroup v1: cannot set up {error.filename}: {error.strerror}; the runner needs "
                "write access to the memory, pids and freezer hierarchies (run it as root, or "
                "give its user a delegated cgroup)"
            ) from None

    @staticmethod
    def _paths(name: str, mount: Path) -> dict[str, Path]:
        """Return the cgroup's directory per controller, under the runner's own cgroup in each."""
        own = _own_paths()
        controllers = [*_V1_REQUIRED]
        if (mount / "cpuacct" / "cgroup.procs").is_file():
            controllers.append("cpuacct")
        paths = {}
        for controller in controllers:
            parent = mount / controller / own.get(controller, "")
            if not parent.is_dir():
                parent = mount / controller
            paths[controller] = parent / name
        return paths

    @classmethod
    def existing(cls, name: str, mount: Path) -> _CgroupV1:
        """Return the cgroup ``name`` as made by :meth:`__init__`, without making it."""
        cgroup = cls.__new__(cls)
        cgroup._dir = cls._paths(name, mount)
        return cgroup

    def _dirs(self) -> list[Path]:
        return list(self._dir.values())

    @property
    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self._dir.values()]

    def pids(self) -> list[int]:
        try:
            text = (self._dir["freezer"] / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(pid) for pid in text.split()]

    def _state(self) -> str:
        return (self._dir["freezer"] / "freezer.state").read_text().strip()

    def freeze(self) -> None:
        _write(self._dir["freezer"] / "freezer.state", "FROZEN")
        _wait_until(lambda: self._state() == "FROZEN", "freezing the task")

    def thaw(self) -> None:
        _write(self._dir["freezer"] / "freezer.state", "THAWED")

    def frozen(self) -> bool:
        return self._state() == "FROZEN"

    def cpu_s(self) -> float | None:
        if "cpuacct" not in self._dir:
            return None
        return int((self._dir["cpuacct"] / "cpuacct.usage").read_text()) / 1e9

    def oom_killed(self) -> bool:
        return _read_int(self._dir["memory"] / "memory.oom_control", "oom_kill") > 0

    def pids_limit_hit(self) -> bool:
        events = self._dir["pids"] / "pids.events"
        return events.exists() and _read_int(events, "max") > 0


class _CgroupV2(TaskCgroup):
    version = 2

    def __init__(self, name: str, memory_bytes: int, max_processes: int, mount: Path) -> None:
        parent = self._parent(mount)
        self._dir = parent / name
        try:
            available = (parent / "cgroup.controllers").read_text().split()
            missing = [name for name in ("memory", "pids") if name not in available]
            if missing:
                raise CgroupUnavailableError(
                    f"cgroup v2: {parent} cannot hand the {' and '.join(missing)} controller(s) "
                    "to a task; set HEATGRID_CGROUP_ROOT to a delegated cgroup (systemd "
                    "Delegate=yes) that has them"
                )
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids"} <= set(enabled):
                _write(parent / "cgroup.subtree_control", "+memory +pids")
            self._dir.mkdir()
            _write(self._dir / "memory.max", str(memory_bytes))
            if (self._dir / "memory.swap.max").exists():
                _write(self._dir / "memory.swap.max", "0")
            _write(self._dir / "pids.max", str(max_processes))
        except OSError as error:
            self.remove()
            hint = (
                " (it holds processes, so it cannot hand controllers to children: run the "
                "runner in a leaf of a delegated cgroup and set HEATGRID_CGROUP_ROOT)"
                if error.errno == errno.EBUSY
                else ""
            )
            raise CgroupUnavailableError(
                f"cgroup v2: cannot set up {error.filename}: {error.strerror}{hint}"
            ) from None

    @staticmethod
    def _parent(mount: Path) -> Path:
        """Where task cgroups are made: ``$HEATGRID_CGROUP_ROOT``, else the runner's own."""
        root = os.environ.get("HEATGRID_CGROUP_ROOT")
        return Path(root) if root else mount / _own_paths().get("", "")

    @classmethod
    def existing(cls, name: str, mount: Path) -> _CgroupV2:
        """Return the cgroup ``name`` as made by :meth:`__init__`, without making it."""
        cgroup = cls.__new__(cls)
        cgroup._dir = cls._parent(mount) / name
        return cgroup

    def _dirs(self) -> list[Path]:
        return [self._dir]

    @property
    def procs_files(self) -> list[Path]:
        return [self._dir / "cgroup.procs"]

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in (self._dir / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def freeze(self) -> None:
        _write(self._dir / "cgroup.freeze", "1")
        _wait_until(self.frozen, "freezing the task")

    def thaw(self) -> None:
        _write(self._dir / "cgroup.freeze", "0")

    def frozen(self) -> bool:
        return _read_int(self._dir / "cgroup.events", "frozen") == 1

    def cpu_s(self) -> float | None:
        return _read_int(self._dir / "cpu.stat", "usage_usec") / 1e6

    def oom_killed(self) -> bool:
        return _read_int(self._dir / "memory.events", "oom_kill") > 0

    def pids_limit_hit(self) -> bool:
        return _read_int(self._dir / "pids.events", "max") > 0


def create_task_cgroup(
    name: str, *, memory_bytes: int, max_processes: int, mount: Path = CGROUP_MOUNT
) -> TaskCgroup:
    """Make a cgroup for one task with its memory and process-count limits.

    Parameters
    ----------
    name : str
        The cgroup's directory name, unique among running tasks.
    memory_bytes : int
        Memory the task may use, swap included [bytes].
    max_processes : int
        Processes and threads the task may have at once.
    mount : Path
        Where the cgroup file systems are mounted.

    Raises
    ------
    CgroupUnavailableError
        When no hierarchy can hold the limits (none mounted, no permission, no delegation).
    """
    if detect_cgroup_version(mount) == 2:
        return _CgroupV2(name, memory_bytes, max_processes, mount)
    return _CgroupV1(name, memory_bytes, max_processes, mount)


def remove_leftover_task_cgroup(name: str, *, mount: Path = CGROUP_MOUNT) -> bool:
    """Remove a task's cgroup that a runner killed mid-task left, killing what is still in it.

    A runner removes its task's cgroup when the task ends; one killed first (``kill -9`` of the
    agent, a power cut) cannot, and the cgroup, empty or not, stays until someone removes it.
    The agent calls this at its start for the tasks its previous run left
    (:func:`heatgrid.jobs.runner.forget_leftover_tasks`), with the name it made them under.

    Parameters
    ----------
    name : str
        The cgroup's directory name, as given to :func:`create_task_cgroup`.
    mount : Path
        Where the cgroup file systems are mounted.

    Returns
    -------
    bool
        True when there was such a cgroup (now removed); False when there was none, or no
        usable hierarchy.
    """
    try:
        version = detect_cgroup_version(mount)
    except CgroupUnavailableError:
        return False
    cgroup: TaskCgroup = (
        _CgroupV2.existing(name, mount) if version == 2 else _CgroupV1.existing(name, mount)
    )
    if not any(path.is_dir() for path in cgroup._dirs()):
        return False
    cgroup.remove()
    return True
