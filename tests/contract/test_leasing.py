"""Contract: the coordinator and the simulator's queue run one task lifecycle (core.leasing).

Scripts of claims, progress, checkpoints, expiries, completions and failures on two devices
and three tasks run through the coordinator (its HTTP API on SQLite and PostgreSQL, with
``expire_leases`` run at the end of each step as its housekeeping does) and through
:class:`heatgrid.sim.queue.TaskQueue` (candidates in its lock order, then
:func:`heatgrid.core.scheduling.choose`, as the simulator's engine claims). Both must give the
same claims, the same ended attempts with the same energy settled, and the same task states,
attempts, progress, order and backoff after every step, under each scheduling policy.
:data:`LIFECYCLE` reaches every outcome at the default backoff; :data:`RETRIES` has backoffs
longer than a step, doubling up to their cap, and the dead letter on a third attempt.
:data:`VERIFIED` runs with results verified (``verify_results``; the simulator's
:class:`~heatgrid.sim.verifier.Verifier`): reports, replicas on the other owner's rack, a
restart from scratch, and the racks' reputations, which must agree too.

Both sides end attempts by :func:`heatgrid.core.leasing.attempt_end`; a side given a drifted
copy of it (no backoff and never the dead letter, the simulator's rules before; no cap on the
backoff; a dead letter one attempt late), or of ``settled_energy_j``, is caught; so is a side
that decides a verified round's quorum by another rule than
:func:`heatgrid.core.trust.round_quorum`.

Time: step ``k`` starts at ``t_k``. Claims, progress reports (which renew the lease) and
failures happen at ``t_k``; leases are expired at ``t_{k+1}``. The simulator's lease lapses
after ``lease_s`` of zero power, the coordinator's ``lease_s`` after the last news: with
``lease_s`` a whole number of steps both lapse at the end of the same step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from heatgrid.coordinator import completions, leases, verification
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import (
    DeviceReputation,
    LedgerEntry,
    LedgerTransaction,
    Task,
    TaskAttempt,
)
from heatgrid.core import leasing, trust
from heatgrid.core.scheduling import Claimant, FleetView, choose
from heatgrid.sim import queue as sim_queue
from heatgrid.sim import verifier as verifier_module
from heatgrid.sim.jobs import Jobs
from heatgrid.sim.queue import TaskQueue
from heatgrid.sim.scenario import Verification
from heatgrid.sim.verifier import Verifier

from ..coordinator.conftest import T0_TS, Coordinator
from .drift import drifted

STEP_S = 60.0
LEASE_S = 3 * STEP_S
TASK_J = 360_000.0
CHECKPOINT_J = 90_000.0
PRIORITIES = (0, 1, 0)
_NO_DRAWS = np.random.default_rng(0)
"""The simulator's spot-check draws: at a floor of 1 every result is checked, whatever they are."""
START_TS = T0_TS + STEP_S  # the tasks are submitted at T0_TS, T0_TS + 1 s, T0_TS + 2 s

Step = tuple[tuple[int, ...], tuple[float, float], tuple[int, ...], tuple[int, ...]]
"""One step: devices that claim (in this order), power of each device [W], devices that fail,
devices offline (they send nothing; an online device without power keeps its lease)."""


@dataclass(frozen=True)
class Script:
    """A scripted sequence of steps and the retry rules both sides are given."""

    name: str
    steps: tuple[Step, ...]
    max_attempts: int
    retry_base_s: float = leasing.DEFAULT_RETRY_BASE_S
    retry_max_s: float = leasing.DEFAULT_RETRY_MAX_S
    pause_after_s: float = leasing.DEFAULT_PAUSE_AFTER_S
    hand_back_after_s: float = leasing.DEFAULT_HAND_BACK_AFTER_S
    verify: bool = False
    """Verify results (each rack its own owner; every result spot-checked: floor 1)."""


LIFECYCLE = Script(
    "lifecycle",
    (
        ((0, 1), (1500.0, 1000.0), (), ()),  # both claim; device 1 then goes offline
        ((), (1500.0, 0.0), (), (1,)),
        ((), (1500.0, 0.0), (), (1,)),
        ((), (1500.0, 0.0), (), (1,)),  # device 0 completes; device 1's lease lapses (no save)
        ((0, 1), (1500.0, 0.0), (), ()),  # device 1 finds only a task in backoff
        ((1,), (1000.0, 1500.0), (0,), ()),  # device 0 fails after a checkpoint and 60 kJ more
        ((0,), (1500.0, 1500.0), (), ()),  # device 0 retakes the failed task: its last attempt
        ((), (1000.0, 1500.0), (0,), ()),  # and fails it: dead letter
        ((), (0.0, 1500.0), (), ()),  # device 1 completes
        ((0, 1), (0.0, 0.0), (), ()),  # nothing is left to claim
    ),
    max_attempts=2,
)
"""Every outcome once, at the default backoff (10 s, shorter than a step)."""

RETRIES = Script(
    "retries",
    (
        ((0, 1), (1500.0, 1500.0), (0,), ()),  # device 0 fails at a checkpoint: 45 s
        ((0,), (1500.0, 0.0), (0,), (1,)),  # it retakes and fails it: 90 s, capped at 75 s
        ((0,), (1500.0, 0.0), (), (1,)),  # that task waits: device 0 gets the last one
        ((), (1500.0, 0.0), (), (1,)),  # device 1 (offline since step 1) loses its lease
        ((1,), (1500.0, 1500.0), (1,), ()),  # device 1 fails the failed task's third try: dead
        ((1,), (1500.0, 1500.0), (1,), ()),  # device 1 takes its lapsed task and fails it: 75 s
        ((0, 1), (0.0, 0.0), (), ()),  # device 0 completed; the one task left waits: no claim
        ((1,), (0.0, 1500.0), (), ()),  # device 1 takes it again, its third attempt
        ((), (0.0, 1500.0), (), ()),  # and completes it
        ((0, 1), (0.0, 0.0), (), ()),
    ),
    max_attempts=3,
    retry_base_s=45.0,
    retry_max_s=75.0,
)
"""Backoffs longer than a step: doubling, its cap, an expiry paid to its checkpoint, the dead
letter on the third attempt."""

HAND_BACK = Script(
    "hand-back",
    (
        ((0, 1), (1500.0, 1000.0), (), ()),  # both claim; device 1's room turns warm
        ((), (1500.0, 0.0), (), ()),
        ((), (1500.0, 0.0), (), ()),  # device 1's task pauses: a checkpoint at 60 kJ
        ((), (1500.0, 0.0), (), ()),  # device 0 completes
        ((), (0.0, 0.0), (), ()),  # device 1 hands its task back: ready at once, not counted
        ((0,), (1500.0, 0.0), (0,), ()),  # device 0 resumes it from 60 kJ and fails: requeued
        ((1, 0), (1500.0, 1500.0), (), ()),  # device 1 retakes it: its second counted attempt
        ((), (1500.0, 1000.0), (1,), ()),  # and fails it: dead letter
        ((), (1500.0, 0.0), (), ()),
        ((), (1500.0, 0.0), (), ()),  # device 0 completes
        ((0, 1), (0.0, 0.0), (), ()),
    ),
    max_attempts=2,
    pause_after_s=2 * STEP_S,
    hand_back_after_s=4 * STEP_S,
)
"""A heater whose room turns warm pauses its task (a checkpoint) and hands it back: the task is
claimable at once, the hand-back is paid to that checkpoint and is not counted against the
job's attempts."""

VERIFIED = Script(
    "verified",
    (
        ((0, 1), (1500.0, 1500.0), (), ()),  # both claim (heat-aware: 0 task 1, 1 task 0)
        ((), (1500.0, 1500.0), (0,), ()),  # device 0 fails its task after a checkpoint at 180 kJ
        ((), (0.0, 1500.0), (), ()),
        ((), (0.0, 1500.0), (), ()),  # device 1 reports its task: a replica is wanted
        ((1, 0), (1500.0, 1500.0), (), ()),  # 1 restarts 0's failed task from 0; 0 replicates
        ((), (1500.0, 1500.0), (), ()),
        ((), (1500.0, 1500.0), (), ()),
        ((), (1500.0, 1500.0), (), ()),  # one task verified; device 1 reports the other
        ((1, 0), (1500.0, 1500.0), (), ()),  # 1 takes task 2; 0 replicates 1's result
        ((), (1500.0, 1500.0), (), ()),
        ((), (1500.0, 1500.0), (), ()),
        ((), (1500.0, 1500.0), (), ()),  # verified; device 1 reports task 2
        ((1, 0), (1500.0, 0.0), (), ()),  # 1 finds only its own result; 0 replicates task 2
        ((), (1500.0, 0.0), (), ()),
        ((), (1500.0, 0.0), (), ()),
        ((), (1500.0, 0.0), (), ()),  # task 2 verified
        ((0, 1), (0.0, 0.0), (), ()),  # nothing is left to claim
    ),
    max_attempts=3,
    verify=True,
)
"""Results verified: a reported result waits for a replica on the other owner's rack, which
runs it from scratch and never on the rack that holds the result; a task failed after a
checkpoint restarts from scratch on the other rack; every task ends verified, and only the rack
whose own results were checked gains reputation."""

SCRIPTS = (LIFECYCLE, RETRIES, HAND_BACK, VERIFIED)


@dataclass
class Trace:
    """What one side did: comparable across the coordinator and the simulator."""

    claims: list[tuple[int, int, int | None, int | None]] = field(default_factory=list)
    ended: list[tuple[int, int, str, float]] = field(default_factory=list)
    steps: list[list[tuple[Any, ...]]] = field(default_factory=list)
    reputations: list[int] = field(default_factory=list)
    """Verified results in a row of each device on the job kind, after the script."""


def _task_row(
    state: str, attempts: int, progress_j: float, queued_ts: float, not_before_ts: float
) -> tuple[Any, ...]:
    """A task's comparable state; progress and backoff only where both sides define them."""
    settled = state in ("queued", "dead", "leased", "verifying")
    return (
        state,
        attempts,
        round(progress_j) if settled else None,
        queued_ts,
        not_before_ts if state == "queued" else None,
    )


# --------------------------------------------------------------------------- the simulator


def _claimant(device: int) -> Claimant:
    return Claimant(
        device_id=f"d{device}", kind="rack", vram_gb=80.0, has_room=False, max_power_w=5000.0
    )


def run_simulator(policy: str, script: Script) -> Trace:
    """Run ``script`` through the simulator's queue."""
    count = len(PRIORITIES)
    jobs = Jobs(
        arrival_ts=T0_TS + np.arange(count, dtype=np.float64),
        size_j=np.full(count, TASK_J),
        priority=np.array(PRIORITIES, dtype=np.int64),
        submitter=np.zeros(count, dtype=np.int64),
        cpu_ok=np.zeros(count, dtype=np.bool_),
        min_vram_gb=np.zeros(count),
    )
    queue = TaskQueue(
        jobs,
        2,
        CHECKPOINT_J,
        max_attempts=script.max_attempts,
        retry_base_s=script.retry_base_s,
        retry_max_s=script.retry_max_s,
        pause_after_s=script.pause_after_s,
        hand_back_after_s=script.hand_back_after_s,
        verifier=Verifier(Verification(spot_check_floor=1.0), jobs.submitter, _NO_DRAWS)
        if script.verify
        else None,
    )
    trace = Trace()
    for step, (claiming, powers_w, failing, offline) in enumerate(script.steps):
        now_ts = START_TS + step * STEP_S
        queue.arrive(now_ts)
        for device in claiming:
            order = queue.lock_order(policy, now_ts)
            candidates = queue.candidates(_claimant(device), order, 64, device=device)
            view = FleetView(running_by_submitter=dict(queue.running_by_submitter))
            chosen = choose(policy, _claimant(device), candidates, view, now_ts=now_ts)
            for task in chosen:
                queue.lease(int(task[1:]), device)
            index = int(queue.task_of[device])
            got = index if chosen else None
            trace.claims.append(
                (step, device, got, None if got is None else int(queue.attempts[index]))
            )
        online = np.array([device not in offline for device in range(2)])
        queue.run(np.array(powers_w), now_ts, STEP_S, online=online)
        for device in failing:
            if queue.task_of[device] >= 0:
                queue.fail(device, now_ts)
        queue.expire(now_ts + STEP_S, LEASE_S)
        trace.steps.append(
            [
                _task_row(
                    queue.state[i].value,
                    int(queue.attempts[i]),
                    float(
                        queue.checkpoint_j[i]
                        if queue.state[i] in ("leased", "verifying")
                        else queue.progress_j[i]
                    ),
                    float(jobs.arrival_ts[i]),
                    float(queue.not_before_ts[i]),
                )
                for i in range(count)
            ]
        )
    trace.ended = sorted(
        (a.task, a.attempt, a.outcome.value, float(round(a.settled_j))) for a in queue.ended
    )
    if queue.verifier is not None:
        trace.reputations = [
            queue.verifier.reputation(device, 0).consecutive_verified for device in range(2)
        ]
    return trace


# --------------------------------------------------------------------------- the coordinator


@dataclass
class _Lease:
    task_id: str
    attempt: int
    start_j: float
    energy_j: float = 0.0
    unpowered_s: float = 0.0
    paused: bool = False


class _Side:
    """The coordinator as two racks and one submitter see it, through its API."""

    def __init__(self, coordinator: Coordinator, script: Script) -> None:
        self.coordinator = coordinator
        owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
        owners = (owner, coordinator.owner_key("bob") if script.verify else owner)
        self.headers: list[dict[str, str]] = []
        self.devices: list[str] = []
        for name, key in zip(("rack0", "rack1"), owners, strict=True):
            body = coordinator.enroll_body(coordinator.enrollment_code(key), name)
            body.update(
                device_kind="rack",
                hardware={"max_power_w": 5000.0, "vram_gb": 80.0},
                has_room=False,
            )
            answer = coordinator.client.post("/v1/devices/enroll", json=body)
            assert answer.status_code == 201, answer.text
            self.devices.append(answer.json()["device_id"])
            self.headers.append(coordinator.auth(answer.json()["device_token"]))
        self.task_ids: list[str] = []
        for index, priority in enumerate(PRIORITIES):
            coordinator.clock.now_ts = T0_TS + index
            body = {
                "name": f"job{index}",
                "priority": priority,
                "max_attempts": script.max_attempts,
                "checkpoint_every_j": CHECKPOINT_J,
                "tasks": [{"task_input": {"n": index}, "energy_j": TASK_J}],
            }
            answer = coordinator.client.post(
                "/v1/jobs", json=body, headers=coordinator.auth(submitter)
            )
            assert answer.status_code == 201, answer.text
            job = coordinator.client.get(
                f"/v1/jobs/{answer.json()['job_id']}", headers=coordinator.auth(submitter)
            ).json()
            self.task_ids.append(job["tasks"][0]["task_id"])
        self.leases: dict[int, _Lease] = {}

    def post(self, device: int, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.coordinator.client.request(
            "PUT" if path.endswith("checkpoint") else "POST",
            f"/v1/devices/{self.devices[device]}{path}",
            headers={**self.headers[device], **kwargs.pop("headers", {})},
            **kwargs,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def claim(self, device: int) -> tuple[int | None, int | None]:
        leases_ = self.post(device, "/claim", json={"slots": 1})["leases"]
        if not leases_:
            return None, None
        [lease] = leases_
        self.leases[device] = _Lease(lease["task_id"], lease["attempt"], lease["progress_energy_j"])
        return self.task_ids.index(lease["task_id"]), int(lease["attempt"])

    def burn(self, device: int, energy_j: float) -> None:
        lease = self.leases[device]
        left_j = TASK_J - lease.start_j - lease.energy_j
        previous_j = lease.start_j + lease.energy_j
        lease.energy_j += min(energy_j, left_j)
        lease.unpowered_s, lease.paused = 0.0, False
        task = f"/tasks/{lease.task_id}"
        if energy_j >= left_j:
            body = {"attempt": lease.attempt, "energy_j": lease.energy_j, "result": {"ok": 1}}
            self.post(device, f"{task}/complete", json=body)
            del self.leases[device]
            return
        saved_j = (lease.start_j + lease.energy_j) // CHECKPOINT_J * CHECKPOINT_J
        if saved_j > previous_j // CHECKPOINT_J * CHECKPOINT_J:  # the agent saves a checkpoint
            self.checkpoint(device, saved_j)
        self.post(
            device, f"{task}/progress", json={"attempt": lease.attempt, "energy_j": lease.energy_j}
        )

    def checkpoint(self, device: int, saved_j: float) -> None:
        lease = self.leases[device]
        self.post(
            device,
            f"/tasks/{lease.task_id}/checkpoint",
            params={"attempt": lease.attempt, "energy_j": saved_j - lease.start_j},
            content=f"{lease.task_id}@{saved_j}".encode(),
            headers={"Content-Type": "application/octet-stream"},
        )

    def report(
        self, powers_w: tuple[float, float], failing: tuple[int, ...], offline: tuple[int, ...]
    ) -> None:
        """A step's news from the online devices that hold a lease, at its start."""
        for device, power_w in enumerate(powers_w):
            if device in self.leases and device not in offline:
                if power_w > 0.0:
                    self.burn(device, power_w * STEP_S)
                else:
                    self.idle(device)
        for device in failing:
            if device in self.leases:
                self.fail(device)

    def end_step(self, offline: tuple[int, ...], script: Script) -> None:
        """At a step's end: the agents' own rules for a task without power (core.leasing)."""
        for device in list(self.leases):
            lease = self.leases[device]
            if device in offline or lease.unpowered_s == 0.0:
                continue
            if leasing.pauses(lease.unpowered_s, script.pause_after_s) and not lease.paused:
                lease.paused = True
                self.checkpoint(device, lease.start_j + lease.energy_j)
            if leasing.hands_back(lease.unpowered_s, script.hand_back_after_s):
                del self.leases[device]
                body = {"attempt": lease.attempt, "energy_j": lease.energy_j, "reason": "warm"}
                self.post(device, f"/tasks/{lease.task_id}/hand-back", json=body)

    def idle(self, device: int) -> None:
        """A step without power, online: the agent's heartbeats keep its lease."""
        lease = self.leases[device]
        lease.unpowered_s += STEP_S
        body = {"attempt": lease.attempt, "energy_j": lease.energy_j}
        self.post(device, f"/tasks/{lease.task_id}/progress", json=body)

    def fail(self, device: int) -> None:
        lease = self.leases.pop(device)
        body = {"attempt": lease.attempt, "energy_j": lease.energy_j, "error": "scripted"}
        self.post(device, f"/tasks/{lease.task_id}/fail", json=body)


def run_coordinator(coordinator: Coordinator, script: Script) -> Trace:
    """Run ``script`` through the coordinator's API (and its expiry, as housekeeping runs it)."""
    side = _Side(coordinator, script)
    settings = coordinator.app.state.settings
    engine = make_engine(coordinator.database_url)
    trace = Trace()
    try:
        for step, (claiming, powers_w, failing, offline) in enumerate(script.steps):
            coordinator.clock.now_ts = START_TS + step * STEP_S
            for device in claiming:
                trace.claims.append((step, device, *side.claim(device)))
            side.report(powers_w, failing, offline)
            coordinator.clock.advance(STEP_S)
            side.end_step(offline, script)
            with make_session_factory(engine)() as session:
                leases.expire_leases(session, now_ts=coordinator.clock(), settings=settings)
                for device in list(side.leases):  # a lapsed lease is gone for its device
                    task = session.get_one(Task, side.leases[device].task_id)
                    live = task.state in ("leased", "verifying")
                    if not live or task.attempt != side.leases[device].attempt:
                        del side.leases[device]
                tasks = [session.get_one(Task, task_id) for task_id in side.task_ids]
                trace.steps.append(
                    [
                        _task_row(
                            t.state, t.attempt, t.progress_energy_j, t.queued_ts, t.not_before_ts
                        )
                        for t in tasks
                    ]
                )
        with make_session_factory(engine)() as session:
            for attempt in session.scalars(select(TaskAttempt)):
                joules = session.scalar(
                    select(LedgerEntry.amount)
                    .join(LedgerTransaction, LedgerEntry.transaction_id == LedgerTransaction.id)
                    .where(
                        LedgerTransaction.key == f"attempt:{attempt.task_id}:{attempt.attempt}",
                        LedgerEntry.account.startswith("job:"),
                        LedgerEntry.unit == "j",
                    )
                )
                trace.ended.append(
                    (
                        side.task_ids.index(attempt.task_id),
                        attempt.attempt,
                        attempt.outcome,
                        float(joules or 0),  # a zero posting is not stored
                    )
                )
        trace.ended.sort()
        if script.verify:
            with make_session_factory(engine)() as session:
                trace.reputations = [
                    sum(
                        session.scalars(
                            select(DeviceReputation.consecutive_verified).where(
                                DeviceReputation.device_id == device_id
                            )
                        )
                    )
                    for device_id in side.devices
                ]
    finally:
        engine.dispose()
    return trace


# --------------------------------------------------------------------------- the contract


@pytest.fixture(params=["heat-aware", "fifo"])
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SCRIPTS, ids=[script.name for script in SCRIPTS])
def script(request: pytest.FixtureRequest) -> Script:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def settings_overrides(policy: str, script: Script) -> dict[str, Any]:
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 1_000_000,
        "scheduling_policy": policy,
        "lease_s": LEASE_S,
        "retry_base_s": script.retry_base_s,
        "retry_max_s": script.retry_max_s,
        "verify_results": script.verify,
        "spot_check_floor": 1.0,  # every result checked: the spot checks draw nothing
    }


def _assert_same(coordinator_trace: Trace, simulator_trace: Trace) -> None:
    assert simulator_trace.claims == coordinator_trace.claims
    assert simulator_trace.ended == coordinator_trace.ended
    assert simulator_trace.reputations == coordinator_trace.reputations
    for step, (sim_rows, coordinator_rows) in enumerate(
        zip(simulator_trace.steps, coordinator_trace.steps, strict=True)
    ):
        assert sim_rows == coordinator_rows, f"after step {step}"


def test_the_coordinator_and_the_simulator_run_one_lifecycle(
    coordinator: Coordinator, policy: str, script: Script
) -> None:
    coordinator_trace = run_coordinator(coordinator, script)
    simulator_trace = run_simulator(policy, script)
    _assert_same(coordinator_trace, simulator_trace)
    ended = {(end[2], end[3]) for end in simulator_trace.ended}
    outcomes = {outcome for outcome, _j in ended}
    last = simulator_trace.steps[-1]
    if script is VERIFIED:
        _assert_verified(simulator_trace)
        return
    assert [row[0] for row in last].count("dead") == 1
    dead_attempts = [row[1] for row in last if row[0] == "dead"]
    if script is HAND_BACK:
        assert outcomes == {"completed", "handed_back", "failed"}
        assert ("handed_back", 60_000.0) in ended  # paid to the checkpoint of its pause
        handed_back = [row for row in simulator_trace.steps[4] if row[:2] == ("queued", 1)]
        assert [row[4] for row in handed_back] == [START_TS + 5 * STEP_S]  # ready at once
        assert dead_attempts == [script.max_attempts + 1]  # the hand-back is not counted
        return
    # The other scripts reach every other outcome: completed, expired, failed, the dead letter.
    assert outcomes == {"completed", "expired", "failed"}
    assert dead_attempts == [script.max_attempts]
    assert any(claim[2] is None for claim in simulator_trace.claims[:-2])  # a backoff refused
    if script is RETRIES:  # 45 s after a first attempt, 90 s capped at 75 s after a second
        assert {row[4] - START_TS for row in simulator_trace.steps[1] if row[0] == "queued"} == {
            -58.0,  # the task never leased yet: ready since it was submitted
            60.0 + 75.0,
        }
        assert ("expired", 90_000.0) in ended


def _assert_verified(trace: Trace) -> None:
    """The verified script passed through every verification state and restarted a task."""
    states = {row[0] for rows in trace.steps for row in rows}
    assert {"reported", "verifying", "verified"} <= states
    assert [row[0] for row in trace.steps[-1]] == ["verified"] * len(PRIORITIES)
    assert trace.reputations == [0, len(PRIORITIES)]  # device 0 reported none of its own
    restarted = [  # the task device 0 failed at 180 kJ, taken by device 1: one step from 0
        rows[task]
        for rows, before in zip(trace.steps[1:], trace.steps, strict=False)
        for task in range(len(PRIORITIES))
        if before[task][:3] == ("queued", 1, 180_000) and rows[task][:3] == ("leased", 2, 90_000)
    ]
    assert restarted
    assert (12, 1, None, None) in trace.claims  # its own result is no replica for it


def _drifted_attempt_end(**changes: Any) -> Any:
    """core.leasing.attempt_end with some of its arguments changed: a drifted copy of it."""
    rule = leasing.attempt_end

    def attempt_end(*args: Any, **kwargs: Any) -> leasing.AttemptEnd:
        return rule(*args, **{**kwargs, **changes})

    return attempt_end


def _no_backoff(*args: Any, **kwargs: Any) -> leasing.AttemptEnd:
    """The simulator's old rule: a lost task is claimable again at once."""
    end = leasing.attempt_end(*args, **kwargs)
    if end.state is leasing.TaskState.QUEUED:
        return end._replace(not_before_ts=kwargs["now_ts"])
    return end


DRIFT_POLICY = ["heat-aware"]
"""The drift tests run one policy: the lifecycle test shows both policies' runs equal."""


def _counts_hand_backs(attempt: int, _handed_back: int, _outcome: str) -> int:
    return attempt


def _never(value_s: Any, _setting_s: float) -> Any:
    return value_s < 0.0  # False, or an array of False


DRIFTS: dict[str, tuple[str, Script, dict[str, Any]]] = {
    "simulator: no backoff": ("simulator", RETRIES, {"attempt_end": _no_backoff}),
    "simulator: never the dead letter": (
        "simulator",
        RETRIES,
        {"attempt_end": _drifted_attempt_end(max_attempts=10**6)},
    ),
    "simulator: no backoff cap": (
        "simulator",
        RETRIES,
        {"attempt_end": _drifted_attempt_end(retry_max_s=1e9)},
    ),
    "simulator: hand-backs counted": (
        "simulator",
        HAND_BACK,
        {"counted_attempts": _counts_hand_backs},
    ),
    "simulator: no pause checkpoint": ("simulator", HAND_BACK, {"pauses": _never}),
    "simulator: a warm room keeps its task": ("simulator", HAND_BACK, {"hands_back": _never}),
    "coordinator: the dead letter one attempt late": (
        "coordinator",
        RETRIES,
        {"attempt_end": _drifted_attempt_end(max_attempts=RETRIES.max_attempts + 1)},
    ),
    "coordinator: lost work paid": (  # a failure in LIFECYCLE loses work after its checkpoint
        "coordinator",
        LIFECYCLE,
        {"settled_energy_j": lambda _outcome, energy_j, _checkpointed_j: energy_j},
    ),
    "coordinator: hand-backs counted": (
        "coordinator",
        HAND_BACK,
        {"counted_attempts": _counts_hand_backs},
    ),
}
"""Drifted copies of core.leasing's rules, given to one side (the simulator's queue, or the
coordinator's per-task and set-based paths, ``leases`` and ``completions``), with the script
that shows each."""
_SIDE_MODULES = {"simulator": (sim_queue,), "coordinator": (leases, completions)}


@pytest.mark.parametrize("policy", DRIFT_POLICY)
@pytest.mark.parametrize(
    ("script", "drift"),
    [(script, name) for name, (_side, script, _changes) in DRIFTS.items()],
    ids=list(DRIFTS),
)
def test_the_contract_fails_when_one_side_runs_another_rule(
    coordinator: Coordinator,
    policy: str,
    script: Script,
    drift: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    side, _script, changes = DRIFTS[drift]
    rules = drifted(leasing, **changes)
    for module in _SIDE_MODULES[side]:
        monkeypatch.setattr(module, "leasing", rules)
    coordinator_trace = run_coordinator(coordinator, script)
    simulator_trace = run_simulator(policy, script)
    with pytest.raises(AssertionError):
        _assert_same(coordinator_trace, simulator_trace)


_QUORUM_DRIFTS = {
    "simulator: every result let through": (verifier_module, lambda *_a, **_k: 1),
    "coordinator: three owners must agree": (verification, lambda *_a, **_k: 3),
}
"""Drifted copies of core.trust.round_quorum, given to one side, with the verified script."""


@pytest.mark.parametrize("policy", DRIFT_POLICY)
@pytest.mark.parametrize("script", [VERIFIED], ids=["verified"])
@pytest.mark.parametrize("drift", list(_QUORUM_DRIFTS))
def test_the_contract_fails_when_one_side_decides_a_round_by_another_rule(
    coordinator: Coordinator,
    policy: str,
    script: Script,
    drift: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module, rule = _QUORUM_DRIFTS[drift]
    monkeypatch.setattr(module, "trust", drifted(trust, round_quorum=rule))
    coordinator_trace = run_coordinator(coordinator, script)
    simulator_trace = run_simulator(policy, script)
    with pytest.raises(AssertionError):
        _assert_same(coordinator_trace, simulator_trace)
