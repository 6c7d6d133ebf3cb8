"""Contract: every move the coordinator makes while verifying results is a move of core.leasing.

Heaters of five owners (three liars with different wrong answers, two honest) run a job of
one task through the coordinator's API with ``verify_results`` on SQLite and PostgreSQL. The
state of every task is read after every request; each change must be one
:data:`heatgrid.core.leasing.TRANSITIONS` allows (``rejected`` is left in the same transaction
by ``requeue``, so ``verifying`` may become ``queued`` through it), and the run must pass
through every stored verification state.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Task
from heatgrid.core import leasing
from heatgrid.core.leasing import TaskEvent, TaskState

from ..coordinator.conftest import Coordinator
from ..coordinator.test_verification import Heater, _cheat, _honest, _submit

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture
def settings_overrides(settings_overrides: dict[str, Any]) -> dict[str, Any]:
    """Verify results (a new device's every result is replicated)."""
    return {**settings_overrides, "verify_results": True}


def _allowed(source: TaskState, target: TaskState) -> bool:
    reachable = {
        state
        for (state, _event), targets in leasing.TRANSITIONS.items()
        if state is source
        for state in targets
    }
    if TaskState.REJECTED in reachable:  # left at once: rejected --requeue--> queued | dead
        reachable |= set(leasing.TRANSITIONS[(TaskState.REJECTED, TaskEvent.REQUEUE)])
    return target in reachable


def test_the_coordinators_verification_moves_are_the_core_machines(
    coordinator: Coordinator,
) -> None:
    submitter = coordinator.submitter_key()
    liars = [
        Heater(coordinator, coordinator.owner_key(name), name, answer)
        for name, answer in (
            ("alice", _cheat),
            ("bob", lambda task_input: {"square": -1}),
            ("carl", lambda task_input: {"square": -2}),
        )
    ]
    honest = [
        Heater(coordinator, coordinator.owner_key(name), name, _honest) for name in ("dave", "erin")
    ]
    job_id = _submit(coordinator, submitter, tasks=1)
    engine = make_engine(coordinator.database_url)
    sessions = make_session_factory(engine)

    def states() -> dict[str, TaskState]:
        with sessions() as session:
            rows = session.execute(select(Task.id, Task.state).where(Task.job_id == job_id))
            return {str(task_id): TaskState(state) for task_id, state in rows}

    seen = [states()]
    try:
        for heaters in (liars, honest):  # three answers: void and requeued; then two agree
            for heater in heaters:
                lease = heater.claim()
                assert lease is not None
                seen.append(states())
                heater.complete(lease)
                seen.append(states())
            coordinator.clock.advance(1_000.0)  # past the retry backoff
    finally:
        engine.dispose()

    moves = {
        (before[task_id], after[task_id])
        for before, after in itertools.pairwise(seen)
        for task_id in before
        if before[task_id] is not after[task_id]
    }
    assert [move for move in moves if not _allowed(*move)] == []
    visited = {state for snapshot in seen for state in snapshot.values()}
    assert visited >= {
        TaskState.QUEUED,
        TaskState.LEASED,
        TaskState.REPORTED,
        TaskState.VERIFYING,
        TaskState.VERIFIED,
    }
    assert (TaskState.VERIFYING, TaskState.QUEUED) in moves  # three owners, three answers
    assert (TaskState.VERIFYING, TaskState.VERIFIED) in moves
    assert set(seen[-1].values()) == {TaskState.VERIFIED}
