"""Contract: the claim's SQL ``ORDER BY`` is core.leasing's candidate sort key, on both databases.

The coordinator orders candidates in SQL (:func:`heatgrid.coordinator.leases.candidate_order_by`,
generated from :func:`heatgrid.core.leasing.candidate_order`), the simulator in Python
(:func:`heatgrid.core.leasing.candidate_sort_key`). On random tasks with many ties in priority
and age, the database's order equals sorting by the key, on SQLite and PostgreSQL. A
coordinator whose columns drift from core's (its tie-break on the task id reversed) is caught.
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from heatgrid.coordinator import leases
from heatgrid.coordinator.auth import new_id
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Job, Task
from heatgrid.core import leasing
from heatgrid.core.scheduling import QueuedTask

from ..coordinator.conftest import Coordinator
from .drift import drifted

TASKS = 300


def _fill(coordinator: Coordinator, seed: int) -> str:
    """Submit one job through the API, then add random queued tasks to it; return its id."""
    key = coordinator.submitter_key()
    answer = coordinator.client.post(
        "/v1/jobs",
        json={"name": "order", "tasks": [{"task_input": {}, "energy_j": 1000.0}]},
        headers=coordinator.auth(key),
    )
    assert answer.status_code == 201, answer.text
    job_id = str(answer.json()["job_id"])
    rng = random.Random(seed)
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            job = session.get_one(Job, job_id)
            for index in range(1, TASKS):
                queued_ts = coordinator.clock() + rng.choice([0.0, 0.5, 1.0, 7.25, 3600.0])
                session.add(
                    Task(
                        id=new_id(),
                        job_id=job_id,
                        task_index=index,
                        submitter_id=job.submitter_id,
                        state="queued",
                        priority=rng.choice([-5, 0, 0, 1, 100]),
                        runs_on_gpu=True,
                        runs_on_cpu=False,
                        min_vram_gb=0.0,
                        task_input={},
                        energy_j=1000.0,
                        checkpoint_every_j=1000.0,
                        progress_energy_j=0.0,
                        checkpoint_seq=0,
                        attempt=0,
                        queued_ts=queued_ts,
                        not_before_ts=queued_ts,
                    )
                )
            session.commit()
    finally:
        engine.dispose()
    return job_id


def _queued(task: Task) -> QueuedTask:
    return QueuedTask(
        task_id=task.id,
        submitter_id=str(task.submitter_id),
        priority=task.priority,
        queued_ts=task.queued_ts,
        device_kinds=("gpu",),
        min_vram_gb=0.0,
        energy_to_checkpoint_j=1.0,
    )


def _orders(coordinator: Coordinator, policy: str) -> tuple[list[str], list[str]]:
    """Return the queued tasks' ids in the SQL order and sorted by core's key."""
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(
                select(Task)
                .where(Task.state == "queued")
                .order_by(*leases.candidate_order_by(policy))
            ).all()
            in_sql = [task.id for task in rows]
            by_key = sorted(
                rows, key=lambda task: leasing.candidate_sort_key(policy)(_queued(task))
            )
    finally:
        engine.dispose()
    # The data exercise every column: ties in priority and age are broken by id.
    assert len({(t.priority, t.queued_ts) for t in rows}) < TASKS / 5
    return in_sql, [task.id for task in by_key]


@pytest.mark.parametrize("policy", ["heat-aware", "fifo"])
def test_the_database_orders_candidates_by_the_core_key(
    coordinator: Coordinator, policy: str
) -> None:
    _fill(coordinator, seed=len(policy))
    in_sql, by_key = _orders(coordinator, policy)
    assert len(in_sql) == TASKS
    assert in_sql == by_key


@pytest.mark.parametrize("policy", ["heat-aware", "fifo"])
def test_the_contract_fails_when_the_coordinator_breaks_ties_otherwise(
    coordinator: Coordinator, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ties_reversed(name: str) -> tuple[leasing.SortColumn, ...]:
        *columns, by_id = leasing.candidate_order(name)
        return (*columns, by_id._replace(descending=True))

    monkeypatch.setattr(leases, "leasing", drifted(leasing, candidate_order=ties_reversed))
    _fill(coordinator, seed=len(policy))
    in_sql, by_key = _orders(coordinator, policy)
    assert sorted(in_sql) == sorted(by_key)
    assert in_sql != by_key
