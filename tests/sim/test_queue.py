"""The simulated task queue: leases, progress in energy, checkpoints, lost and handed-back tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.sim.jobs import Jobs
from heatgrid.sim.queue import TaskQueue, task_id

STEP_S = 300.0
LEASE_S = 900.0


def _jobs(sizes_j: list[float], arrivals_ts: list[float]) -> Jobs:
    count = len(sizes_j)
    return Jobs(
        arrival_ts=np.sort(np.array(arrivals_ts, dtype=np.float64)),
        size_j=np.array(sizes_j, dtype=np.float64),
        priority=np.zeros(count, dtype=np.int64),
        submitter=np.arange(count, dtype=np.int64) % 3,
        cpu_ok=np.ones(count, dtype=np.bool_),
        min_vram_gb=np.zeros(count),
    )


def test_task_ids_sort_like_indices() -> None:
    assert task_id(3) == "t0000003"
    assert sorted([task_id(10), task_id(9)]) == [task_id(9), task_id(10)]


def test_a_task_finishes_when_its_energy_is_burned() -> None:
    queue = TaskQueue(_jobs([1000.0 * STEP_S * 1.5], [0.0]), n_devices=1, checkpoint_every_j=1e5)
    queue.arrive(0.0)
    assert list(queue.queued) == [0]
    queue.lease(0, 0)
    used = queue.run(np.array([1000.0]), 0.0, STEP_S)
    assert used[0] == pytest.approx(1000.0 * STEP_S)
    assert math.isnan(queue.done_ts[0])
    used = queue.run(np.array([1000.0]), STEP_S, STEP_S)
    assert used[0] == pytest.approx(500.0 * STEP_S)
    assert queue.done_ts[0] == pytest.approx(STEP_S * 1.5)
    assert queue.task_of[0] == -1
    assert queue.running_by_submitter["s0"] == 0


def test_a_lost_lease_resumes_from_the_last_checkpoint() -> None:
    queue = TaskQueue(_jobs([10e6], [0.0]), n_devices=2, checkpoint_every_j=1e6)
    queue.arrive(0.0)
    queue.lease(0, 1)
    queue.run(np.array([0.0, 5000.0]), 0.0, STEP_S)  # 1.5 MJ: one checkpoint at 1 MJ
    now = STEP_S
    offline = np.array([False, True])  # device 1 goes offline (its heartbeats stop)
    for _ in range(3):  # for the lease time
        queue.run(np.array([0.0, 0.0]), now, STEP_S, online=~offline)
        now += STEP_S
    lost_j = queue.expire(now, LEASE_S)
    assert lost_j == pytest.approx(0.5e6)
    assert queue.progress_j[0] == pytest.approx(1e6)
    assert queue.leases_lost == 1
    assert queue.queued[0].queued_ts == 0.0  # it keeps its place in the order
    assert queue.not_before_ts[0] == now + 10.0  # the first retry waits retry_base_s
    assert queue.lock_order("fifo", now) == []
    assert queue.lock_order("fifo", now + 10.0) == [0]
    assert queue.queued[0].energy_to_checkpoint_j == pytest.approx(1e6)
    assert queue.ended[-1].settled_j == pytest.approx(1e6)


def test_a_warm_room_pauses_its_task_then_hands_it_back() -> None:
    """As the agent: a checkpoint after pause_after_s without power, a hand-back after
    hand_back_after_s: paid to that checkpoint, ready at once, not counted."""
    queue = TaskQueue(_jobs([10e6], [0.0]), n_devices=1, checkpoint_every_j=1e6, max_attempts=1)
    queue.arrive(0.0)
    queue.lease(0, 0)
    queue.run(np.array([5000.0]), 0.0, STEP_S)  # 1.5 MJ: one checkpoint at 1 MJ
    now = STEP_S
    for _ in range(int(1800.0 / STEP_S) - 1):  # the room is warm; heartbeats keep the lease
        queue.run(np.array([0.0]), now, STEP_S)
        now += STEP_S
        assert queue.expire(now, LEASE_S) == 0.0
        assert queue.task_of[0] == 0
        assert queue.checkpoint_j[0] == pytest.approx(1.5e6)  # paused after one step (300 s)
    queue.run(np.array([0.0]), now, STEP_S)
    now += STEP_S
    assert queue.expire(now, LEASE_S) == 0.0  # nothing lost: it paused at 1.5 MJ
    assert queue.task_of[0] == -1
    assert queue.leases_handed_back == 1
    assert queue.leases_lost == 0
    assert queue.ended[-1].outcome == "handed_back"
    assert queue.ended[-1].settled_j == pytest.approx(1.5e6)
    assert queue.not_before_ts[0] == now  # ready at once
    queue.lease(0, 0)  # its second attempt; the first is not counted: max_attempts 1 left
    queue.fail(0, now)
    assert queue.state[0] == "dead"
    assert queue.attempts[0] == 2


def test_a_task_goes_to_the_dead_letter_when_its_attempts_are_spent() -> None:
    queue = TaskQueue(_jobs([10e6], [0.0]), n_devices=1, checkpoint_every_j=1e6, max_attempts=2)
    queue.arrive(0.0)
    queue.lease(0, 0)
    queue.fail(0, 100.0)
    assert queue.attempts[0] == 1
    assert 0 in queue.queued
    queue.lease(0, 0)
    queue.fail(0, 200.0)
    assert queue.dead == 1
    assert 0 not in queue.queued
    assert queue.task_of[0] == -1
    assert [attempt.outcome for attempt in queue.ended] == ["failed", "failed"]


@given(
    sizes=st.lists(st.floats(1e5, 5e6), min_size=1, max_size=12),
    arrival_steps=st.lists(st.integers(0, 20), min_size=12, max_size=12),
    powers=st.lists(
        st.lists(st.sampled_from([0.0, 150.0, 800.0, 3000.0]), min_size=4, max_size=4),
        min_size=1,
        max_size=40,
    ),
)
def test_energy_and_jobs_are_accounted_for(
    sizes: list[float], arrival_steps: list[int], powers: list[list[float]]
) -> None:
    """Property: burned = kept + lost; completed + queued + running + future = submitted."""
    jobs = _jobs(sizes, [STEP_S * a for a in arrival_steps[: len(sizes)]])
    queue = TaskQueue(jobs, n_devices=4, checkpoint_every_j=4e5)
    total_used_j = 0.0
    for k, row in enumerate(powers):
        now = k * STEP_S
        queue.arrive(now)
        for device in np.flatnonzero(queue.task_of < 0):
            if queue.queued:
                queue.lease(next(iter(queue.queued)), int(device))
        power_w = np.array(row)
        used_j = queue.run(power_w, now, STEP_S)
        assert np.all(used_j <= power_w * STEP_S + 1e-6)
        total_used_j += float(np.sum(used_j))
        queue.expire(now + STEP_S, LEASE_S)

        done = ~np.isnan(queue.done_ts)
        running = queue.device_of >= 0
        future = jobs.arrival_ts > now
        queued = np.zeros(jobs.count, dtype=np.bool_)
        queued[list(queue.queued)] = True
        dead = np.array([state == "dead" for state in queue.state])
        membership = done.astype(int) + running + queued + future + dead
        assert np.all(membership == 1)
        assert np.all(queue.checkpoint_j <= queue.progress_j + 1e-6)
        assert np.all(queue.progress_j <= jobs.size_j + 1e-6)
        np.testing.assert_allclose(queue.progress_j[done], jobs.size_j[done])
        assert float(np.sum(queue.burned_j)) == pytest.approx(total_used_j, rel=1e-12, abs=1e-6)
        assert float(np.sum(queue.burned_j)) - queue.lost_j == pytest.approx(
            float(np.sum(queue.progress_j)), rel=1e-12, abs=1e-6
        )
        assert sum(queue.running_by_submitter.values()) == int(np.count_nonzero(running))
