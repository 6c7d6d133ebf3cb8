"""The task lifecycle of core.leasing: transitions, retries, settled energy, candidate order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core import leasing
from heatgrid.core.errors import InputError
from heatgrid.core.leasing import AttemptOutcome, TaskEvent, TaskState
from heatgrid.core.scheduling import POLICIES, QueuedTask
from heatgrid.core.trust import Judgement


def test_a_task_is_leased_completed_and_stays_completed() -> None:
    assert leasing.next_state(TaskState.QUEUED, TaskEvent.LEASE) is TaskState.LEASED
    assert leasing.next_state("leased", "complete") is TaskState.COMPLETED
    for event in TaskEvent:
        with pytest.raises(InputError, match="completed cannot"):
            leasing.next_state(TaskState.COMPLETED, event)


def test_a_lost_attempt_requeues_until_the_attempts_are_spent() -> None:
    for event in (TaskEvent.EXPIRE, TaskEvent.FAIL):
        assert (
            leasing.next_state(TaskState.LEASED, event, attempts_started=2, max_attempts=3)
            is TaskState.QUEUED
        )
        assert (
            leasing.next_state(TaskState.LEASED, event, attempts_started=3, max_attempts=3)
            is TaskState.DEAD
        )


def test_a_replica_ending_leaves_the_task_leased_while_another_attempt_runs() -> None:
    state = leasing.next_state(
        TaskState.LEASED, TaskEvent.FAIL, attempts_started=5, max_attempts=5, live_attempts=1
    )
    assert state is TaskState.LEASED


def test_every_state_the_table_reaches_is_stored_but_rejected_which_is_left_at_once() -> None:
    reached = {s for key, targets in leasing.TRANSITIONS.items() for s in (key[0], *targets)}
    assert reached == set(TaskState)
    assert leasing.STORED_TASK_STATES == (
        "queued",
        "leased",
        "completed",
        "dead",
        "cancelled",
        "reported",
        "verifying",
        "verified",
    )
    for (source, _event), _targets in leasing.TRANSITIONS.items():
        assert source not in leasing.TERMINAL_STATES


def test_a_reported_result_goes_where_its_judgement_says() -> None:
    for source in (TaskState.LEASED, TaskState.VERIFYING):
        for judgement, target in (
            (Judgement.VERIFIED, TaskState.VERIFIED),
            (Judgement.NEEDS_REPLICA, TaskState.REPORTED),
            (Judgement.UNDECIDED, TaskState.REJECTED),
            (Judgement.REFUTED, TaskState.REJECTED),  # a replay proved the original wrong
        ):
            assert leasing.next_state(source, "report", judgement=judgement) is target
        with pytest.raises(InputError, match="judgement"):
            leasing.next_state(source, TaskEvent.REPORT)
    assert leasing.next_state(TaskState.REPORTED, TaskEvent.LEASE) is TaskState.VERIFYING
    assert (
        leasing.next_state(TaskState.REJECTED, "requeue", attempts_started=2, max_attempts=3)
        is TaskState.QUEUED
    )
    assert (
        leasing.next_state(TaskState.REJECTED, "requeue", attempts_started=3, max_attempts=3)
        is TaskState.DEAD
    )
    with pytest.raises(InputError, match="queued cannot report"):
        leasing.next_state(TaskState.QUEUED, TaskEvent.REPORT, judgement=Judgement.VERIFIED)
    for event in TaskEvent:
        with pytest.raises(InputError, match="verified cannot"):
            leasing.next_state(TaskState.VERIFIED, event, judgement=Judgement.VERIFIED)


def test_a_lost_replica_leaves_the_result_reported_for_another() -> None:
    for event in (TaskEvent.EXPIRE, TaskEvent.FAIL):
        assert (
            leasing.next_state(TaskState.VERIFYING, event, attempts_started=2, max_attempts=5)
            is TaskState.REPORTED
        )
        assert (
            leasing.next_state(TaskState.VERIFYING, event, attempts_started=5, max_attempts=5)
            is TaskState.DEAD
        )
        assert (
            leasing.next_state(
                TaskState.VERIFYING, event, attempts_started=5, max_attempts=5, live_attempts=1
            )
            is TaskState.VERIFYING
        )
    for source in (TaskState.REPORTED, TaskState.VERIFYING):
        assert leasing.next_state(source, TaskEvent.CANCEL) is TaskState.CANCELLED
    assert leasing.EVENT_OUTCOME[TaskEvent.REPORT] is AttemptOutcome.COMPLETED


def test_energy_settled_per_outcome() -> None:
    assert leasing.settled_energy_j(AttemptOutcome.COMPLETED, 500.0, 300.0) == 500.0
    assert leasing.settled_energy_j("cancelled", 500.0, 300.0) == 500.0
    assert leasing.settled_energy_j("expired", 500.0, 300.0) == 300.0
    assert leasing.settled_energy_j(AttemptOutcome.FAILED, 500.0, 300.0) == 300.0
    with pytest.raises(InputError, match="running"):
        leasing.settled_energy_j(AttemptOutcome.RUNNING, 500.0, 300.0)


def test_backoff_doubles_up_to_its_ceiling() -> None:
    waits = [leasing.retry_backoff_s(n, retry_base_s=10.0, retry_max_s=600.0) for n in range(1, 9)]
    assert waits == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0]
    assert leasing.retry_not_before_ts(1000.0, 2, retry_base_s=10.0, retry_max_s=600.0) == 1020.0
    with pytest.raises(InputError, match="attempts_started"):
        leasing.retry_backoff_s(0)
    assert leasing.is_ready(1020.0, 1020.0)
    assert not leasing.is_ready(1020.0, 1019.9)


def _task(task_id: str, priority: int, queued_ts: float) -> QueuedTask:
    return QueuedTask(
        task_id=task_id,
        submitter_id="s",
        priority=priority,
        queued_ts=queued_ts,
        device_kinds=("gpu",),
        min_vram_gb=0.0,
        energy_to_checkpoint_j=1.0,
    )


@given(
    st.lists(
        st.tuples(st.integers(-2, 2), st.sampled_from([0.0, 1.5, 3.0]), st.text("ab0", max_size=3)),
        max_size=20,
        unique_by=lambda row: row[2],
    )
)
def test_the_sort_key_follows_the_declared_columns(rows: list[tuple[int, float, str]]) -> None:
    tasks = [_task(task_id, priority, queued_ts) for priority, queued_ts, task_id in rows]
    by_priority = sorted(tasks, key=leasing.candidate_sort_key("heat-aware"))
    assert [(t.priority, t.queued_ts, t.task_id) for t in by_priority] == sorted(
        ((t.priority, t.queued_ts, t.task_id) for t in tasks), key=lambda r: (-r[0], r[1], r[2])
    )
    by_age = sorted(tasks, key=leasing.candidate_sort_key("fifo"))
    assert [(t.queued_ts, t.task_id) for t in by_age] == sorted(
        (t.queued_ts, t.task_id) for t in tasks
    )


def test_every_policy_has_an_order_and_unknown_ones_are_refused() -> None:
    assert set(leasing.CANDIDATE_ORDER) == set(POLICIES)
    with pytest.raises(InputError, match="policy"):
        leasing.candidate_order("random")


def test_a_hand_back_requeues_and_never_spends_the_attempts() -> None:
    leased, back = leasing.TaskState.LEASED, leasing.TaskEvent.HAND_BACK
    for started in (1, 5, 50):
        assert leasing.next_state(leased, back, attempts_started=started, max_attempts=1) == (
            leasing.TaskState.QUEUED
        )
    assert leasing.next_state(leased, back, live_attempts=1) is leasing.TaskState.LEASED
    assert leasing.EVENT_OUTCOME[back] is leasing.AttemptOutcome.HANDED_BACK
    assert not leasing.counts_against_attempts("handed_back")
    assert all(
        leasing.counts_against_attempts(outcome)
        for outcome in leasing.AttemptOutcome
        if outcome is not leasing.AttemptOutcome.HANDED_BACK
    )
    # paid to its checkpoint, like any attempt whose work after it is not kept
    assert leasing.settled_energy_j("handed_back", 900.0, 600.0) == 600.0


@given(
    event=st.sampled_from(
        [TaskEvent.COMPLETE, TaskEvent.EXPIRE, TaskEvent.FAIL, TaskEvent.HAND_BACK]
    ),
    attempts_started=st.integers(1, 8),
    max_attempts=st.integers(1, 8),
    now_ts=st.floats(0.0, 2.0e9),
)
def test_attempt_end_is_next_state_with_the_times_it_implies(
    event: TaskEvent, attempts_started: int, max_attempts: int, now_ts: float
) -> None:
    """The one rule for an ended attempt: next_state's target, ended or ready when it says."""
    end = leasing.attempt_end(
        TaskState.LEASED,
        event,
        now_ts=now_ts,
        attempts_started=attempts_started,
        max_attempts=max_attempts,
    )
    assert end.state is leasing.next_state(
        TaskState.LEASED, event, attempts_started=attempts_started, max_attempts=max_attempts
    )
    assert end.outcome is leasing.EVENT_OUTCOME[event]
    assert (end.ended_ts is not None) == (end.state in leasing.TERMINAL_STATES)
    assert end.ended_ts in (None, now_ts)
    if end.state is TaskState.QUEUED and event is TaskEvent.HAND_BACK:
        assert end.not_before_ts == now_ts  # ready at once
    elif end.state is TaskState.QUEUED:
        assert end.not_before_ts == leasing.retry_not_before_ts(now_ts, attempts_started)
    else:
        assert end.not_before_ts is None
    assert end.keeps_work == (event is TaskEvent.COMPLETE)
    assert not end.rejected


def test_attempt_end_requeues_rejected_results_at_once() -> None:
    """A report judged undecided never stays rejected: queued again, or dead when spent."""
    again = leasing.attempt_end(
        TaskState.VERIFYING,
        TaskEvent.REPORT,
        now_ts=100.0,
        attempts_started=2,
        max_attempts=3,
        judgement=Judgement.UNDECIDED,
    )
    assert (again.state, again.rejected) == (TaskState.QUEUED, True)
    assert again.not_before_ts == leasing.retry_not_before_ts(100.0, 2)
    spent = leasing.attempt_end(
        TaskState.VERIFYING,
        TaskEvent.REPORT,
        now_ts=100.0,
        attempts_started=3,
        max_attempts=3,
        judgement=Judgement.UNDECIDED,
    )
    assert (spent.state, spent.ended_ts) == (TaskState.DEAD, 100.0)
    replica = leasing.attempt_end(
        TaskState.LEASED,
        TaskEvent.REPORT,
        now_ts=100.0,
        attempts_started=1,
        judgement=Judgement.NEEDS_REPLICA,
    )
    assert (replica.state, replica.not_before_ts) == (TaskState.REPORTED, 100.0)


def test_a_refuted_original_runs_again_from_the_start() -> None:
    """A segment replay that refutes the original requeues the task, as a void round does."""
    end = leasing.attempt_end(
        TaskState.VERIFYING,
        TaskEvent.REPORT,
        now_ts=100.0,
        attempts_started=3,
        max_attempts=5,
        judgement=Judgement.REFUTED,
    )
    assert (end.state, end.rejected) == (TaskState.QUEUED, True)
    assert end.not_before_ts == leasing.retry_not_before_ts(100.0, 3)


@given(st.floats(0.0, 1e6), st.floats(0.0, 1e6))
def test_a_device_with_power_never_pauses_or_hands_back(
    setting_s: float, unpowered_s: float
) -> None:
    for rule in (leasing.pauses, leasing.hands_back):
        assert not rule(0.0, setting_s)  # powered: 0 s without power, whatever the setting
        assert rule(unpowered_s, setting_s) == (unpowered_s > 0.0 and unpowered_s >= setting_s)
        gaps = np.array([0.0, unpowered_s])
        assert rule(gaps, setting_s).tolist() == [False, rule(unpowered_s, setting_s)]
