"""Scheduling policy: which queued tasks a device asking for work should lease.

Pure and shared: the coordinator calls :func:`choose` when a device claims work, with the
candidate tasks it locked; the simulator calls the same function for its simulated devices.

Model. A task needs energy, not time: ``energy_to_checkpoint_j`` is the electric energy its
device must burn to reach the task's next checkpoint (or its end). A heater offers its heat
window, the power its room will want over the coming hours; a task fits a heater when the
window delivers that energy (:func:`time_to_deliver_s` is finite). A device without a room (a
rack, a mining farm) burns its maximum power whenever it has work, so any task fits it.

Policies (:data:`POLICIES`):

``"heat-aware"`` (the default)
    Tasks by falling priority; within a priority the submitter with the fewest running tasks
    first (fairness, updated as tasks are chosen), then the oldest. A heater takes a task only
    if its heat window reaches the task's next checkpoint, counting the energy of the tasks it
    already took. A device without a room leaves the first ``heaters_wanting_work`` fitting
    tasks to the heaters that want heat and have no task, unless a task has waited longer than
    ``max_wait_s``: heat that is reused beats heat that is wasted, but not forever.
``"fifo"``
    The oldest fitting tasks, whatever the heat window, priority or submitter.
``"mining-only"``
    No task is ever leased; every heater mines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, get_args

from heatgrid.core.errors import InputError, require_finite, require_non_negative, require_positive

__all__ = [
    "DEFAULT_MAX_WAIT_S",
    "POLICIES",
    "Claimant",
    "ClaimantKind",
    "FleetView",
    "Policy",
    "QueuedTask",
    "WindowSegment",
    "choose",
    "fits_hardware",
    "time_to_deliver_s",
    "window_energy_j",
]

Policy: TypeAlias = Literal["heat-aware", "fifo", "mining-only"]
POLICIES: tuple[str, ...] = get_args(Policy)
"""Names of the scheduling policies, the default first."""

ClaimantKind: TypeAlias = Literal["asic", "gpu", "cpu", "rack"]
_TASK_KINDS = ("gpu", "cpu")

DEFAULT_MAX_WAIT_S = 900.0
"""How long a task may be held back for heaters before a device without a room takes it [s]."""


@dataclass(frozen=True)
class WindowSegment:
    """A stretch of a heat window: from ``start_ts`` for ``duration_s``, ``heat_power_w`` wanted.

    Parameters
    ----------
    start_ts : float
        Start [POSIX s, UTC].
    duration_s : float
        Length [s], > 0.
    heat_power_w : float
        Heat power the room wants over the segment [W], >= 0.
    """

    start_ts: float
    duration_s: float
    heat_power_w: float

    def __post_init__(self) -> None:
        require_finite("start_ts", self.start_ts)
        require_positive("duration_s", self.duration_s)
        require_non_negative("heat_power_w", self.heat_power_w)


@dataclass(frozen=True, kw_only=True)
class Claimant:
    """A device asking for work.

    Parameters
    ----------
    device_id : str
        Its identifier.
    kind : {"asic", "gpu", "cpu", "rack"}
        What computes; an ASIC runs no task.
    vram_gb : float
        GPU memory [GB], >= 0.
    has_room : bool
        True for a heater, whose heat window bounds the work it takes; False for a device whose
        heat is not reused (it burns ``max_power_w`` whenever it has work).
    max_power_w : float
        Highest power [W], > 0.
    window : tuple of WindowSegment
        Its latest heat window, in time order (ignored when ``has_room`` is False).
    slots : int
        How many tasks it can take now, >= 0.
    """

    device_id: str
    kind: ClaimantKind
    vram_gb: float
    has_room: bool
    max_power_w: float
    window: tuple[WindowSegment, ...] = ()
    slots: int = 1

    def __post_init__(self) -> None:
        if self.kind not in get_args(ClaimantKind):
            raise InputError(f"kind must be one of {get_args(ClaimantKind)}, got {self.kind!r}")
        require_non_negative("vram_gb", self.vram_gb)
        require_positive("max_power_w", self.max_power_w)
        if self.slots < 0:
            raise InputError(f"slots must be >= 0, got {self.slots}")


@dataclass(frozen=True, kw_only=True)
class QueuedTask:
    """A task waiting for a device.

    Parameters
    ----------
    task_id : str
        Its identifier.
    submitter_id : str
        Who submitted its job, for fairness.
    priority : int
        Larger runs first.
    queued_ts : float
        When it became ready to run [POSIX s, UTC]; orders tasks within a priority.
    device_kinds : tuple of str
        Kinds it runs on (``"gpu"``, ``"cpu"``); a rack runs either.
    min_vram_gb : float
        GPU memory it needs [GB], >= 0.
    energy_to_checkpoint_j : float
        Energy to burn to reach its next checkpoint or its end [J], > 0.
    """

    task_id: str
    submitter_id: str
    priority: int
    queued_ts: float
    device_kinds: tuple[str, ...]
    min_vram_gb: float
    energy_to_checkpoint_j: float

    def __post_init__(self) -> None:
        bad = [kind for kind in self.device_kinds if kind not in _TASK_KINDS]
        if not self.device_kinds or bad:
            raise InputError(f"device_kinds must be among {_TASK_KINDS}, got {self.device_kinds}")
        require_finite("queued_ts", self.queued_ts)
        require_non_negative("min_vram_gb", self.min_vram_gb)
        require_positive("energy_to_checkpoint_j", self.energy_to_checkpoint_j)


@dataclass(frozen=True, kw_only=True)
class FleetView:
    """What the policy knows of the rest of the fleet when one device claims.

    Parameters
    ----------
    running_by_submitter : mapping of str to int
        Tasks leased now, per submitter.
    heaters_wanting_work : int
        Heaters with a room that want heat now and run no task, >= 0.
    """

    running_by_submitter: Mapping[str, int] = field(default_factory=dict)
    heaters_wanting_work: int = 0


def window_energy_j(window: Sequence[WindowSegment], start_ts: float, end_ts: float) -> float:
    """Return the heat energy a window wants between two instants [J].

    Parameters
    ----------
    window : sequence of WindowSegment
        Segments in time order, not overlapping.
    start_ts, end_ts : float
        The interval [POSIX s, UTC].
    """
    total_j = 0.0
    for segment in window:
        begin = max(start_ts, segment.start_ts)
        end = min(end_ts, segment.start_ts + segment.duration_s)
        if end > begin:
            total_j += segment.heat_power_w * (end - begin)
    return total_j


def time_to_deliver_s(window: Sequence[WindowSegment], now_ts: float, energy_j: float) -> float:
    """Return how long from ``now_ts`` the window takes to want ``energy_j`` of heat [s].

    Parameters
    ----------
    window : sequence of WindowSegment
        Segments in time order, not overlapping.
    now_ts : float
        From when [POSIX s, UTC].
    energy_j : float
        Energy to deliver [J], >= 0.

    Returns
    -------
    float
        Seconds after ``now_ts``; 0 for no energy; ``inf`` if the window ends first.
    """
    remaining_j = require_non_negative("energy_j", energy_j)
    if remaining_j == 0.0:
        return 0.0
    for segment in window:
        begin = max(now_ts, segment.start_ts)
        end = segment.start_ts + segment.duration_s
        if end <= begin or segment.heat_power_w <= 0.0:
            continue
        available_j = segment.heat_power_w * (end - begin)
        if available_j >= remaining_j:
            return begin + remaining_j / segment.heat_power_w - now_ts
        remaining_j -= available_j
    return math.inf


def fits_hardware(claimant: Claimant, task: QueuedTask) -> bool:
    """Return whether ``claimant`` has the hardware ``task`` needs."""
    if claimant.kind == "asic":
        return False
    kind_ok = claimant.kind == "rack" or claimant.kind in task.device_kinds
    return kind_ok and claimant.vram_gb >= task.min_vram_gb


def choose(
    policy: str,
    claimant: Claimant,
    tasks: Sequence[QueuedTask],
    fleet: FleetView,
    *,
    now_ts: float,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> tuple[str, ...]:
    """Return the ids of the tasks ``claimant`` should lease now, in the order to run them.

    Parameters
    ----------
    policy : str
        One of :data:`POLICIES`.
    claimant : Claimant
        The device asking.
    tasks : sequence of QueuedTask
        Candidates (the coordinator passes those it locked), in any order.
    fleet : FleetView
        Running tasks per submitter and heaters wanting work.
    now_ts : float
        The present [POSIX s, UTC].
    max_wait_s : float
        Longest a task is held back for heaters from a device without a room [s], >= 0.

    Returns
    -------
    tuple of str
        At most ``claimant.slots`` task ids.

    Raises
    ------
    InputError
        For an unknown policy.
    """
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    require_non_negative("max_wait_s", max_wait_s)
    fitting = [task for task in tasks if fits_hardware(claimant, task)]
    if policy == "mining-only" or claimant.slots == 0 or not fitting:
        return ()
    if policy == "fifo":
        fitting.sort(key=lambda task: (task.queued_ts, task.task_id))
        return tuple(task.task_id for task in fitting[: claimant.slots])
    return _heat_aware(claimant, fitting, fleet, now_ts=now_ts, max_wait_s=max_wait_s)


def _heat_aware(
    claimant: Claimant,
    fitting: list[QueuedTask],
    fleet: FleetView,
    *,
    now_ts: float,
    max_wait_s: float,
) -> tuple[str, ...]:
    running = dict(fleet.running_by_submitter)
    pending = sorted(fitting, key=lambda task: (-task.priority, task.queued_ts, task.task_id))
    left_for_heaters = 0 if claimant.has_room else fleet.heaters_wanting_work
    committed_j = 0.0
    chosen: list[str] = []
    while pending and len(chosen) < claimant.slots:
        index = _next_fair(pending, running)
        task = pending.pop(index)
        if claimant.has_room:
            needed_j = committed_j + task.energy_to_checkpoint_j
            if math.isinf(time_to_deliver_s(claimant.window, now_ts, needed_j)):
                continue
            committed_j = needed_j
        elif left_for_heaters > 0 and now_ts - task.queued_ts < max_wait_s:
            left_for_heaters -= 1
            continue
        chosen.append(task.task_id)
        running[task.submitter_id] = running.get(task.submitter_id, 0) + 1
    return tuple(chosen)


def _next_fair(pending: list[QueuedTask], running: Mapping[str, int]) -> int:
    """Index of the next task: top priority, then least-served submitter, then oldest."""
    top = pending[0].priority
    best = 0
    for index, task in enumerate(pending):
        if task.priority != top:
            break
        if running.get(task.submitter_id, 0) < running.get(pending[best].submitter_id, 0):
            best = index
    return best
