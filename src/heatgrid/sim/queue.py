"""The simulated coordinator's task queue and leases, on the coordinator's own rules.

Every move of a task is :func:`heatgrid.core.leasing.next_state`, and where an ended attempt
leaves its task is :func:`heatgrid.core.leasing.attempt_end`, as in
:mod:`heatgrid.coordinator.leases` and :mod:`heatgrid.coordinator.completions`
(``tests/contract/test_leasing.py`` runs the same scripts through both):

* A task is queued when it arrives, leased to a device that claims it (candidates in
  :func:`heatgrid.core.leasing.candidate_order`, among those ready, then the policy,
  :func:`heatgrid.core.scheduling.choose`, picks), and completed when its device has burned its
  size in energy.
* Progress counts in energy; a checkpoint is taken each ``checkpoint_every_j``.
* A heater whose room stops wanting heat does what the agent does: after ``pause_after_s``
  without power (:func:`~heatgrid.core.leasing.pauses`) its task checkpoints where it is, and
  after ``hand_back_after_s`` (:func:`~heatgrid.core.leasing.hands_back`) the task is handed
  back: paid up to that checkpoint, claimable again at once, and the attempt does not count
  against ``max_attempts``. Its heartbeats keep the lease meanwhile.
* A device offline for ``lease_s`` (its heartbeats stop) loses its lease, and a device may
  fail its attempt: the attempt is paid up to its last checkpoint
  (:func:`~heatgrid.core.leasing.settled_energy_j`), the energy since then is lost, and the
  task is requeued, keeping its place in the order (``queued_ts``) but not claimable before
  the backoff of :func:`~heatgrid.core.leasing.retry_not_before_ts` has passed, to resume
  from that checkpoint; or, when its ``max_attempts`` (less its handed-back attempts,
  :func:`~heatgrid.core.leasing.counted_attempts`) are spent, it goes to the dead letter.
* With a :class:`~heatgrid.sim.verifier.Verifier` (the scenario's ``verification``), a
  finished attempt *reports* its result, judged by the verifier: a verified task is done; a
  spot-checked one is ``reported`` and queued again as a replica, which runs the task from the
  start on a device that holds no result of it (``verifying`` while it runs); an undecided one
  runs again from the start. And a device answers for its whole result: a task whose newest
  checkpoint another device saved starts from scratch when leased (as the coordinator's
  ``leases`` restarts it). Replica attempts and the progress so dropped are the energy
  verification costs (``replica_j``, ``restarted_j``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from heatgrid.core import leasing
from heatgrid.core._arrays import FloatArray
from heatgrid.core.leasing import AttemptOutcome, TaskEvent, TaskState
from heatgrid.core.scheduling import Claimant, QueuedTask, fits_hardware
from heatgrid.core.trust import Judgement
from heatgrid.sim._fused_kernel import Leases, run_tasks
from heatgrid.sim.jobs import Jobs
from heatgrid.sim.verifier import Verifier

__all__ = ["EndedAttempt", "TaskQueue", "task_id"]


class EndedAttempt(NamedTuple):
    """One attempt that ended, as the coordinator's ledger settles it.

    Parameters
    ----------
    task : int
        Task index.
    attempt : int
        Its number (1 for the first lease of the task).
    outcome : AttemptOutcome
        How it ended.
    energy_j : float
        Energy it burned [J].
    settled_j : float
        Energy it is paid for [J].
    """

    task: int
    attempt: int
    outcome: AttemptOutcome
    energy_j: float
    settled_j: float


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
    max_attempts : int
        Attempts per task before the dead letter, >= 1.
    retry_base_s, retry_max_s : float
        Backoff before a task is retried (:func:`heatgrid.core.leasing.retry_backoff_s`) [s].
    pause_after_s, hand_back_after_s : float
        A heater's task without power this long checkpoints, and this long is handed back [s].
    verifier : Verifier or None
        Judges reported results (None: a finished attempt completes its task).
    """

    def __init__(
        self,
        jobs: Jobs,
        n_devices: int,
        checkpoint_every_j: float,
        *,
        max_attempts: int = leasing.DEFAULT_MAX_ATTEMPTS,
        retry_base_s: float = leasing.DEFAULT_RETRY_BASE_S,
        retry_max_s: float = leasing.DEFAULT_RETRY_MAX_S,
        pause_after_s: float = leasing.DEFAULT_PAUSE_AFTER_S,
        hand_back_after_s: float = leasing.DEFAULT_HAND_BACK_AFTER_S,
        verifier: Verifier | None = None,
    ) -> None:
        self.jobs = jobs
        self.checkpoint_every_j = checkpoint_every_j
        self.max_attempts = max_attempts
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.pause_after_s, self.hand_back_after_s = pause_after_s, hand_back_after_s
        self.leases = Leases(
            checkpoint_every_j=float(checkpoint_every_j),
            pause_after_s=float(pause_after_s),
            hand_back_after_s=float(hand_back_after_s),
            lease_s=math.inf,  # expire() is told the lease at each call
        )
        count = jobs.count
        self.progress_j = np.zeros(count)
        self.checkpoint_j = np.zeros(count)
        self.attempt_start_j = np.zeros(count)
        self.burned_j = np.zeros(count)
        self.done_ts = np.full(count, math.nan)
        self.not_before_ts = np.array(jobs.arrival_ts, dtype=np.float64)
        self.attempts = np.zeros(count, dtype=np.int64)
        self.handed_back = np.zeros(count, dtype=np.int64)
        """Attempts of each task handed back (they do not count against ``max_attempts``)."""
        self.state: list[TaskState] = [TaskState.QUEUED] * count
        self.device_of = np.full(count, -1, dtype=np.int64)
        self.task_of = np.full(n_devices, -1, dtype=np.int64)
        self.zero_power_s = np.zeros(n_devices)
        self.offline_s = np.zeros(n_devices)
        self.running_by_submitter: Counter[str] = Counter()
        self.queued: dict[int, QueuedTask] = {}
        self.ended: list[EndedAttempt] = []
        """Every attempt that ended, in the order they ended."""
        self.leases_lost = 0
        self.leases_handed_back = 0
        self.dead = 0
        self.lost_j = 0.0
        self.verifier = verifier
        self.replica_j = 0.0
        """Energy burned by replica attempts (those of ``verifying`` tasks) [J]."""
        self.restarted_j = 0.0
        """Progress dropped when a task restarted from scratch on another device [J]."""
        self.saved_by = np.full(count, -1, dtype=np.int64)
        """The device whose attempt saved each task's newest checkpoint (-1: none)."""
        self._arrived = 0

    def arrive(self, now_ts: float) -> None:
        """Queue the tasks that have arrived by ``now_ts`` [POSIX s, UTC]."""
        arrival = self.jobs.arrival_ts
        while self._arrived < arrival.size and arrival[self._arrived] <= now_ts:
            self._enqueue(self._arrived)
            self._arrived += 1

    def next_event_ts(self) -> float:
        """Return the first instant a claim could lease a task [POSIX s, UTC]; inf if none.

        The next arrival, or the earliest ``not_before_ts`` of a queued task (a task waiting
        out its retry backoff cannot be claimed before then).
        """
        arrival = self.jobs.arrival_ts
        next_ts = float(arrival[self._arrived]) if self._arrived < arrival.size else math.inf
        if self.queued:
            waiting = np.fromiter(self.queued, dtype=np.int64, count=len(self.queued))
            next_ts = min(next_ts, float(np.min(self.not_before_ts[waiting])))
        return next_ts

    def _enqueue(self, index: int) -> None:
        jobs = self.jobs
        remaining_j = float(jobs.size_j[index] - self.progress_j[index])
        self.queued[index] = QueuedTask(
            task_id=task_id(index),
            submitter_id=f"s{int(jobs.submitter[index])}",
            priority=int(jobs.priority[index]),
            queued_ts=float(jobs.arrival_ts[index]),
            device_kinds=("gpu", "cpu") if bool(jobs.cpu_ok[index]) else ("gpu",),
            min_vram_gb=float(jobs.min_vram_gb[index]),
            energy_to_checkpoint_j=min(self.checkpoint_every_j, remaining_j),
        )

    def lock_order(self, policy: str, now_ts: float) -> list[int]:
        """Return the queued tasks ready at ``now_ts``, in the order a claim locks them."""
        key = leasing.candidate_sort_key(policy)
        ready = [
            (index, task)
            for index, task in self.queued.items()
            if leasing.is_ready(float(self.not_before_ts[index]), now_ts)
        ]
        ready.sort(key=lambda item: key(item[1]))
        return [index for index, _ in ready]

    def candidates(
        self, claimant: Claimant, order: list[int], batch: int, *, device: int = -1
    ) -> list[QueuedTask]:
        """Return the first ``batch`` tasks of ``order`` still queued that fit ``claimant``.

        A task whose round holds a result of ``device`` (the claimant) is not among them: a
        replica runs on a device of another owner.
        """
        queued, verifier = self.queued, self.verifier
        found: list[QueuedTask] = []
        for index in order:
            task = queued.get(index)
            if verifier is not None and verifier.holds_result(index, device):
                continue
            if task is not None and fits_hardware(claimant, task):
                found.append(task)
                if len(found) == batch:
                    break
        return found

    def lease(self, index: int, device: int) -> None:
        """Lease queued task ``index`` to ``device``: its next attempt starts.

        With a verifier, from scratch when another device saved its newest checkpoint.
        """
        self.state[index] = leasing.next_state(self.state[index], TaskEvent.LEASE)
        task = self.queued.pop(index)
        if self.verifier is not None and self.saved_by[index] != device:
            self.restarted_j += float(self.progress_j[index])
            self.progress_j[index] = self.checkpoint_j[index] = 0.0
        self.attempts[index] += 1
        self.attempt_start_j[index] = self.progress_j[index]
        self.device_of[index] = device
        self.task_of[device] = index
        self.zero_power_s[device] = self.offline_s[device] = 0.0
        self.running_by_submitter[task.submitter_id] += 1

    def _release(self, index: int) -> None:
        device = int(self.device_of[index])
        self.task_of[device] = -1
        self.device_of[index] = -1
        self.running_by_submitter[f"s{int(self.jobs.submitter[index])}"] -= 1

    def _end(
        self,
        index: int,
        event: TaskEvent,
        now_ts: float,
        judgement: Judgement | None = None,
    ) -> float:
        """End task ``index``'s attempt with ``event`` at ``now_ts``; return the energy lost [J].

        Where the task goes (requeued after a backoff, the dead letter, completed, verified,
        reported for a replica) is :func:`heatgrid.core.leasing.attempt_end`, the coordinator's
        own rule; ``judgement`` is a report's (:meth:`Verifier.judge`).
        """
        outcome = leasing.EVENT_OUTCOME[event]
        start_j = float(self.attempt_start_j[index])
        energy_j = float(self.progress_j[index]) - start_j
        settled_j = leasing.settled_energy_j(
            outcome, energy_j, float(self.checkpoint_j[index]) - start_j
        )
        attempt = int(self.attempts[index])
        self.ended.append(EndedAttempt(index, attempt, outcome, energy_j, settled_j))
        if settled_j > 0.0:
            self.saved_by[index] = self.device_of[index]
        if self.state[index] is TaskState.VERIFYING:
            self.replica_j += energy_j
        self.progress_j[index] = start_j + settled_j
        self._release(index)
        end = leasing.attempt_end(
            self.state[index],
            event,
            now_ts=now_ts,
            attempts_started=leasing.counted_attempts(
                attempt, int(self.handed_back[index]), outcome
            ),
            max_attempts=self.max_attempts,
            judgement=judgement,
            retry_base_s=self.retry_base_s,
            retry_max_s=self.retry_max_s,
        )
        self.state[index] = end.state
        if outcome is AttemptOutcome.HANDED_BACK:
            self.handed_back[index] += 1
        if end.not_before_ts is not None:
            self.not_before_ts[index] = end.not_before_ts
        if end.rejected or (event is TaskEvent.REPORT and end.state is TaskState.REPORTED):
            # void results, or a replica: the task runs again from its start
            self.progress_j[index] = self.checkpoint_j[index] = 0.0
        if end.state in {TaskState.QUEUED, TaskState.REPORTED}:
            self._enqueue(index)
        elif end.state in {TaskState.COMPLETED, TaskState.VERIFIED} and end.ended_ts is not None:
            self.done_ts[index] = end.ended_ts
        elif end.state is TaskState.DEAD:
            self.dead += 1
        lost_j = energy_j - settled_j
        self.lost_j += lost_j
        return lost_j

    def run(
        self,
        power_w: FloatArray,
        now_ts: float,
        step_s: float,
        *,
        online: NDArray[np.bool_] | None = None,
    ) -> FloatArray:
        """Advance the leased tasks by one step at the devices' powers.

        Parameters
        ----------
        power_w : numpy.ndarray
            Power of every device over the step [W].
        now_ts : float
            Start of the step [POSIX s, UTC].
        step_s : float
            Step length [s].
        online : numpy.ndarray of bool or None
            Whether each device was online over the step (None: every one). An online device
            without power pauses and hands back its task; an offline one loses its lease.

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
        spent_j = np.empty(devices.size)
        finished = np.empty(devices.size, dtype=np.bool_)
        after_s = np.empty(devices.size)
        run_tasks(
            devices,
            tasks,
            np.asarray(power_w, dtype=np.float64),
            np.ones(power_w.shape, dtype=np.bool_) if online is None else online,
            float(step_s),
            (self.jobs.size_j, self.progress_j, self.checkpoint_j, self.burned_j),
            (self.zero_power_s, self.offline_s),
            self.leases,
            (spent_j, finished, after_s),
        )
        used_j[devices] = spent_j
        for position in np.flatnonzero(finished):
            self.complete(int(tasks[position]), now_ts + float(after_s[position]))
        idle = np.asarray(power_w)[devices] <= 0.0
        offline = np.zeros(devices.size, dtype=np.bool_) if online is None else ~online[devices]
        pausing = idle & ~offline & leasing.pauses(self.zero_power_s[devices], self.pause_after_s)
        paused = tasks[pausing & (self.task_of[devices] >= 0)]  # not those completed above
        self.checkpoint_j[paused] = self.progress_j[paused]
        return used_j

    def complete(self, index: int, done_ts: float) -> None:
        """End task ``index``'s attempt as completed at ``done_ts`` [POSIX s, UTC].

        With a verifier the attempt reports its result, and the task goes where the
        judgement of its round's results says.
        """
        verifier = self.verifier
        if verifier is None:
            self._end(index, TaskEvent.COMPLETE, done_ts)
            return
        judgement = verifier.judge(index, int(self.device_of[index]))
        self._end(index, TaskEvent.REPORT, done_ts, judgement)

    def expire(self, now_ts: float, lease_s: float) -> float:
        """End the leases of devices offline or without power too long; return the energy lost [J].

        A device offline for ``lease_s`` loses its lease (expired); an online heater without
        power for ``hand_back_after_s`` hands its task back.
        """
        lost_j = 0.0
        leased = self.task_of >= 0
        for device in np.flatnonzero(leased & (self.offline_s >= lease_s)):
            lost_j += self._end(int(self.task_of[device]), TaskEvent.EXPIRE, now_ts)
            self.leases_lost += 1
        giving_back = leasing.hands_back(self.zero_power_s, self.hand_back_after_s)
        for device in np.flatnonzero(leased & (self.offline_s == 0.0) & giving_back):
            lost_j += self._end(int(self.task_of[device]), TaskEvent.HAND_BACK, now_ts)
            self.leases_handed_back += 1
        return lost_j

    def fail(self, device: int, now_ts: float) -> float:
        """End the attempt ``device`` runs as failed at ``now_ts``; return the energy lost [J]."""
        index = int(self.task_of[device])
        if index < 0:
            raise ValueError(f"device {device} holds no lease")
        return self._end(index, TaskEvent.FAIL, now_ts)


def task_id(index: int) -> str:
    """Return the id of task ``index``: ``t`` and seven digits (text order is index order)."""
    return f"t{index:07d}"
