"""The simulated coordinator's task queue and leases, with the coordinator's semantics.

* A task is queued when it arrives, leased to a device that claims it (the policy, through
  :func:`heatgrid.core.scheduling.choose`, picks which), and done when its device has burned its
  size in energy.
* Progress counts in energy; a checkpoint is taken each ``checkpoint_every_j``.
* A device that burns no power for ``lease_s`` (its room stopped wanting heat, or it went
  offline) loses its lease: the task returns to the queue, ready from that instant, and the
  next attempt resumes from the last checkpoint; the energy since then is lost.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from heatgrid.core._arrays import FloatArray
from heatgrid.core.scheduling import QueuedTask
from heatgrid.sim.jobs import Jobs

__all__ = ["TaskQueue", "task_id"]


class TaskQueue:
    """Queue, leases and progress of every task of one run.

    Parameters
    ----------
    jobs : Jobs
        The tasks.
    n_devices : int
        Devices that may hold a lease.
    checkpoint_every_j : float
        Checkpoint spacing [J].
    """

    def __init__(self, jobs: Jobs, n_devices: int, checkpoint_every_j: float) -> None:
        self.jobs = jobs
        self.checkpoint_every_j = checkpoint_every_j
        count = jobs.count
        self.progress_j = np.zeros(count)
        self.checkpoint_j = np.zeros(count)
        self.burned_j = np.zeros(count)
        self.done_ts = np.full(count, math.nan)
        self.device_of = np.full(count, -1, dtype=np.int64)
        self.task_of = np.full(n_devices, -1, dtype=np.int64)
        self.zero_power_s = np.zeros(n_devices)
        self.running_by_submitter: Counter[str] = Counter()
        self.queued: dict[int, QueuedTask] = {}
        self.leases_lost = 0
        self.lost_j = 0.0
        self._arrived = 0

    def arrive(self, now_ts: float) -> None:
        """Queue the tasks that have arrived by ``now_ts`` [POSIX s, UTC]."""
        arrival = self.jobs.arrival_ts
        while self._arrived < arrival.size and arrival[self._arrived] <= now_ts:
            index = self._arrived
            self._enqueue(index, float(arrival[index]))
            self._arrived += 1

    def _enqueue(self, index: int, ready_ts: float) -> None:
        jobs = self.jobs
        remaining_j = float(jobs.size_j[index] - self.progress_j[index])
        self.queued[index] = QueuedTask(
            task_id=task_id(index),
            submitter_id=f"s{int(jobs.submitter[index])}",
            priority=int(jobs.priority[index]),
            queued_ts=ready_ts,
            device_kinds=("gpu", "cpu") if bool(jobs.cpu_ok[index]) else ("gpu",),
            min_vram_gb=float(jobs.min_vram_gb[index]),
            energy_to_checkpoint_j=min(self.checkpoint_every_j, remaining_j),
        )

    def lease(self, index: int, device: int) -> None:
        """Lease queued task ``index`` to ``device``."""
        task = self.queued.pop(index)
        self.device_of[index] = device
        self.task_of[device] = index
        self.zero_power_s[device] = 0.0
        self.running_by_submitter[task.submitter_id] += 1

    def _release(self, index: int) -> None:
        device = int(self.device_of[index])
        self.task_of[device] = -1
        self.device_of[index] = -1
        self.running_by_submitter[f"s{int(self.jobs.submitter[index])}"] -= 1

    def run(self, power_w: FloatArray, now_ts: float, step_s: float) -> FloatArray:
        """Advance the leased tasks by one step at the devices' powers.

        Parameters
        ----------
        power_w : numpy.ndarray
            Power of every device over the step [W].
        now_ts : float
            Start of the step [POSIX s, UTC].
        step_s : float
            Step length [s].

        Returns
        -------
        numpy.ndarray
            Task energy each device burned over the step [J] (0 past a task's end).
        """
        used_j = np.zeros(power_w.shape)
        devices = np.flatnonzero(self.task_of >= 0)
        if devices.size == 0:
            return used_j
        tasks = self.task_of[devices]
        power = power_w[devices]
        left_j = self.jobs.size_j[tasks] - self.progress_j[tasks]
        spent_j = np.minimum(power * step_s, left_j)
        used_j[devices] = spent_j
        self.progress_j[tasks] += spent_j
        self.burned_j[tasks] += spent_j
        every = self.checkpoint_every_j
        self.checkpoint_j[tasks] = np.minimum(
            np.floor(self.progress_j[tasks] / every) * every, self.jobs.size_j[tasks]
        )
        finished = (power > 0.0) & (spent_j >= left_j)
        for position in np.flatnonzero(finished):
            index = int(tasks[position])
            self.done_ts[index] = now_ts + float(left_j[position] / power[position])
            self._release(index)
        idle = power <= 0.0
        self.zero_power_s[devices] = np.where(idle, self.zero_power_s[devices] + step_s, 0.0)
        return used_j

    def expire(self, now_ts: float, lease_s: float) -> float:
        """Take back the leases of devices idle for ``lease_s``; return the energy lost [J]."""
        lost_j = 0.0
        for device in np.flatnonzero((self.task_of >= 0) & (self.zero_power_s >= lease_s)):
            index = int(self.task_of[device])
            lost_j += float(self.progress_j[index] - self.checkpoint_j[index])
            self.progress_j[index] = self.checkpoint_j[index]
            self._release(index)
            self._enqueue(index, now_ts)
            self.leases_lost += 1
        self.lost_j += lost_j
        return lost_j


def task_id(index: int) -> str:
    """Return the id of task ``index``: ``t`` and seven digits (text order is index order)."""
    return f"t{index:07d}"
