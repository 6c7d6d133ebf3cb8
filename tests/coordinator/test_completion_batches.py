"""Completions handed in as a batch: each exactly once, each on its own, in one request."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, func, select

from heatgrid.coordinator import leases as lease_rules
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import (
    Device,
    Job,
    LedgerEntry,
    LedgerTransaction,
    Task,
    TaskAttempt,
)
from heatgrid.core.leasing import AttemptOutcome
from heatgrid.protocol import v1

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")


def _device(coordinator: Coordinator, owner: str, name: str) -> tuple[str, dict[str, str]]:
    body = coordinator.enroll_body(coordinator.enrollment_code(owner), name)
    body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
    enrolled = coordinator.client.post("/v1/devices/enroll", json=body).json()
    device_id, headers = enrolled["device_id"], coordinator.auth(enrolled["device_token"])
    now_ts = coordinator.clock()
    beat = {
        "sent_ts": now_ts,
        "heat_window": [{"start_ts": now_ts, "duration_s": 86_400.0, "heat_power_w": 1000.0}],
    }
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=beat, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return device_id, headers


def _batch(coordinator: Coordinator, device: tuple[str, dict[str, str]], items: list[Any]) -> Any:
    answer = coordinator.client.post(
        f"/v1/devices/{device[0]}/completions",
        json={"completions": items},
        headers=device[1],
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["outcomes"]


def _count(database_url: str, statement: Any) -> Any:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(statement)
    finally:
        engine.dispose()


def test_a_batch_completes_each_once_and_refuses_each_on_its_own(
    coordinator: Coordinator,
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job = {
        "name": "job",
        "checkpoint_every_j": 90_000.0,
        "tasks": [{"task_input": {"n": n}, "energy_j": 360_000.0} for n in range(4)],
    }
    answer = coordinator.client.post("/v1/jobs", json=job, headers=coordinator.auth(submitter))
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    mine = _device(coordinator, owner, "mine")
    other = _device(coordinator, owner, "other")
    claimed = coordinator.client.post(
        f"/v1/devices/{mine[0]}/claim", json={"slots": 3}, headers=mine[1]
    ).json()["leases"]
    [theirs] = coordinator.client.post(
        f"/v1/devices/{other[0]}/claim", json={"slots": 1}, headers=other[1]
    ).json()["leases"]
    first, second, third = claimed

    def item(lease: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return {
            "task_id": lease["task_id"],
            "attempt": lease["attempt"],
            "energy_j": 1000.0,
            "result": {"task": lease["task_id"]},
            **changes,
        }

    items = [
        item(first),
        item(second),
        item(theirs),  # another device's task: 404, as alone
        item(third, attempt=third["attempt"] + 1),  # an attempt never leased: 404
        item(first),  # the same completion again, in the same batch: accepted once
    ]
    outcomes = _batch(coordinator, mine, items)
    assert [outcome["status_code"] for outcome in outcomes] == [200, 200, 404, 404, 200]
    assert [outcome["task_id"] for outcome in outcomes] == [entry["task_id"] for entry in items]
    assert outcomes[0]["status"]["state"] == "completed"
    assert "no attempt" in outcomes[2]["detail"]

    again = _batch(coordinator, mine, [item(second), item(first, result={"other": 1})])
    assert [outcome["status_code"] for outcome in again] == [200, 409]  # replay; another result
    assert "another result" in again[1]["detail"]
    late = _batch(coordinator, mine, [item(third, energy_j=500.0), item(third, result={"n": 1})])
    assert [outcome["status_code"] for outcome in late] == [200, 409]

    done = _count(
        coordinator.database_url,
        select(func.count())
        .select_from(Task)
        .where(Task.job_id == job_id, Task.state == "completed"),
    )
    assert done == 3
    settled = _count(
        coordinator.database_url,
        select(func.count())
        .select_from(LedgerTransaction)
        .where(LedgerTransaction.job_id == job_id),
    )
    assert settled == 3  # one transaction per completed attempt, none twice
    leased_to_other = coordinator.client.post(
        f"/v1/devices/{other[0]}/tasks/{theirs['task_id']}/complete",
        json={key: value for key, value in item(theirs).items() if key != "task_id"},
        headers=other[1],
    )
    assert leased_to_other.status_code == 200, leased_to_other.text


def test_a_batch_is_refused_whole_when_malformed(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key()
    device = _device(coordinator, owner, "mine")
    url = f"/v1/devices/{device[0]}/completions"
    empty = coordinator.client.post(url, json={"completions": []}, headers=device[1])
    assert empty.status_code == 422
    nul = {"task_id": "a\x00b", "attempt": 1, "energy_j": 1.0, "result": {}}
    answer = coordinator.client.post(url, json={"completions": [nul]}, headers=device[1])
    assert answer.status_code == 422, answer.text
    too_many = [
        {"task_id": f"t{n}", "attempt": 1, "energy_j": 1.0, "result": {}}
        for n in range(v1.MAX_BATCHED_COMPLETIONS + 1)
    ]
    answer = coordinator.client.post(url, json={"completions": too_many}, headers=device[1])
    assert answer.status_code == 422


@pytest.mark.parametrize("verb", ["progress", "complete", "fail"])
def test_an_attempt_beyond_a_database_integer_is_refused_at_the_door(
    coordinator: Coordinator, verb: str
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    job = {"name": "job", "tasks": [{"task_input": {}, "energy_j": 360_000.0}]}
    assert coordinator.client.post(
        "/v1/jobs", json=job, headers=coordinator.auth(submitter)
    ).is_success
    device_id, headers = _device(coordinator, owner, "mine")
    claim = coordinator.client.post(
        f"/v1/devices/{device_id}/claim", json={"slots": 1}, headers=headers
    )
    [lease] = claim.json()["leases"]
    extra = {"progress": {}, "complete": {"result": {}}, "fail": {"error": "x"}}[verb]
    body = {"attempt": 2**63, "energy_j": 1.0, **extra}
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/tasks/{lease['task_id']}/{verb}", json=body, headers=headers
    )
    assert answer.status_code == 422, answer.text
    assert "attempt" in answer.json()["detail"]


def _job(coordinator: Coordinator, submitter: str, tasks: int) -> str:
    job = {
        "name": "job",
        "checkpoint_every_j": 90_000.0,
        "tasks": [{"task_input": {"n": n}, "energy_j": 360_000.0} for n in range(tasks)],
    }
    answer = coordinator.client.post("/v1/jobs", json=job, headers=coordinator.auth(submitter))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["job_id"])


def _claim(coordinator: Coordinator, device: tuple[str, dict[str, str]], slots: int) -> Any:
    answer = coordinator.client.post(
        f"/v1/devices/{device[0]}/claim", json={"slots": slots}, headers=device[1]
    )
    assert answer.status_code == 200, answer.text
    leases = answer.json()["leases"]
    assert len(leases) == slots
    return leases


def _what_stays(database_url: str, job_id: str, device_id: str) -> dict[str, Any]:
    """The rows a job's completions left, with its own ids replaced by placeholders."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            tasks = session.execute(
                select(
                    Task.task_index,
                    Task.state,
                    Task.attempt,
                    Task.result,
                    Task.result_sha256,
                    Task.lease_device_id,
                    Task.lease_expires_ts,
                    Task.ended_ts,
                    Task.last_error,
                    TaskAttempt.outcome,
                    TaskAttempt.energy_j,
                    TaskAttempt.ended_ts,
                    TaskAttempt.error,
                )
                .join(TaskAttempt, TaskAttempt.task_id == Task.id)
                .where(Task.job_id == job_id)
                .order_by(Task.task_index, TaskAttempt.attempt)
            ).all()
            entries = session.execute(
                select(Task.task_index, LedgerEntry.account, LedgerEntry.unit, LedgerEntry.amount)
                .join(LedgerTransaction, LedgerTransaction.task_id == Task.id)
                .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
                .where(Task.job_id == job_id)
                .order_by(Task.task_index, LedgerEntry.account, LedgerEntry.unit)
            ).all()
            job = session.execute(select(Job.state, Job.ended_ts).where(Job.id == job_id)).one()
    finally:
        engine.dispose()
    return {
        "tasks": [tuple(row) for row in tasks],
        "entries": [
            (index, account.replace(device_id, "DEVICE").replace(job_id, "JOB"), unit, amount)
            for index, account, unit, amount in entries
        ],
        "job": tuple(job),
    }


def _end_one_by_one(
    coordinator: Coordinator, device_id: str, items: list[dict[str, Any]], failed: dict[str, Any]
) -> None:
    """End the attempts through the per-task path (``leases.end_attempt``, ORM objects)."""
    settings = coordinator.app.state.settings
    engine = make_engine(coordinator.database_url)
    try:
        with make_session_factory(engine)() as session:
            device = session.get_one(Device, device_id)
            for item in items:
                report = v1.TaskCompletion.model_validate(
                    {key: value for key, value in item.items() if key != "task_id"}
                )
                lease_rules.complete(
                    session,
                    device,
                    item["task_id"],
                    report,
                    now_ts=coordinator.clock(),
                    settings=settings,
                )
            task = session.get_one(Task, failed["task_id"])
            session.get_one(TaskAttempt, (task.id, task.attempt)).energy_j = failed["energy_j"]
            lease_rules.end_attempt(
                session,
                task,
                AttemptOutcome.FAILED,
                now_ts=coordinator.clock(),
                settings=settings,
                error=failed["error"],
            )
            session.commit()
    finally:
        engine.dispose()


def test_a_batch_leaves_the_rows_that_the_per_task_path_leaves(coordinator: Coordinator) -> None:
    """The set-based path (batch, single routes) and ``leases.end_attempt`` agree, row by row.

    Both apply ``core.leasing.attempt_end``, but each reads and writes in its own way: a
    drift in either (columns set, settlement, job check, retry backoff) shows here.
    """
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    batched, single = _device(coordinator, owner, "batched"), _device(coordinator, owner, "single")
    jobs = []
    for device in (batched, single):
        jobs.append(_job(coordinator, submitter, 5))
        leases = sorted(_claim(coordinator, device, 5), key=lambda lease: lease["task_index"])
        assert {lease["job_id"] for lease in leases} == {jobs[-1]}
        first = leases[0]
        progress = coordinator.client.post(
            f"/v1/devices/{device[0]}/tasks/{first['task_id']}/progress",
            json={"attempt": first["attempt"], "energy_j": 700.0},
            headers=device[1],
        )
        assert progress.status_code == 200, progress.text
        *done, last = leases
        items = [
            {
                "task_id": lease["task_id"],
                "attempt": lease["attempt"],
                "energy_j": 1000.0 * (n + 1) + 0.4,  # a different energy and result each
                "result": {"n": lease["task_input"]["n"], "nested": {"x": [n, None]}},
            }
            for n, lease in enumerate(done)
        ]
        failed = {"task_id": last["task_id"], "attempt": 1, "energy_j": 50.0, "error": "oom"}
        if device is batched:
            assert [outcome["status_code"] for outcome in _batch(coordinator, device, items)] == [
                200
            ] * 4
            answer = coordinator.client.post(
                f"/v1/devices/{device[0]}/tasks/{last['task_id']}/fail",
                json={key: value for key, value in failed.items() if key != "task_id"},
                headers=device[1],
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["stop"] is True
        else:
            _end_one_by_one(coordinator, device[0], items, failed)
    left_by_batch = _what_stays(coordinator.database_url, jobs[0], batched[0])
    left_one_by_one = _what_stays(coordinator.database_url, jobs[1], single[0])
    assert left_by_batch == left_one_by_one
    assert left_by_batch["job"][0] == "running"  # the failed task is queued again
    assert left_by_batch["tasks"][-1][1:3] == ("queued", 1)
    assert len(left_by_batch["entries"]) == 4 * 5  # each completion settled once, five entries


def test_the_single_routes_are_batches_of_one(coordinator: Coordinator, backend: str) -> None:
    """``…/complete`` and ``…/fail`` send the statements of a batch of one (no ORM path)."""
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    device = _device(coordinator, owner, "mine")
    _job(coordinator, submitter, 2)
    done, failing = _claim(coordinator, device, 2)
    seen: list[str] = []

    def record(*args: Any) -> None:
        if re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", str(args[2]), re.IGNORECASE):
            seen.append(str(args[2]))

    counts = []
    for verb, lease, body in (
        ("complete", done, {"result": {"ok": True}}),
        ("fail", failing, {"error": "oom"}),
    ):
        event.listen(coordinator.app.state.engine, "before_cursor_execute", record)
        try:
            answer = coordinator.client.post(
                f"/v1/devices/{device[0]}/tasks/{lease['task_id']}/{verb}",
                json={"attempt": lease["attempt"], "energy_j": 10.0, **body},
                headers=device[1],
            )
        finally:
            event.remove(coordinator.app.state.engine, "before_cursor_execute", record)
        assert answer.status_code == 200, answer.text
        counts.append(len(seen))
        seen.clear()
    # device row, lock and read, 2 updates, 2 ledger inserts, job check: as a batch
    # (PostgreSQL: the updates are one statement, and so are the ledger inserts)
    most = 5 if backend == "postgresql" else 8
    assert counts[0] <= most, counts
    assert counts[1] <= most, counts  # the same, the handed-back count inside the read


def test_a_batch_sends_as_many_statements_whatever_its_size(
    coordinator: Coordinator, backend: str
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    device = _device(coordinator, owner, "mine")
    _job(coordinator, submitter, 12)
    seen: list[str] = []

    def record(*args: Any) -> None:
        if re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", str(args[2]), re.IGNORECASE):
            seen.append(str(args[2]))

    counts = []
    for size in (2, 8):
        leases = _claim(coordinator, device, size)
        items = [
            {
                "task_id": lease["task_id"],
                "attempt": lease["attempt"],
                "energy_j": 10.0 * n,
                "result": {"n": n},
            }
            for n, lease in enumerate(leases)
        ]
        event.listen(coordinator.app.state.engine, "before_cursor_execute", record)
        try:
            assert {outcome["status_code"] for outcome in _batch(coordinator, device, items)} == {
                200
            }
        finally:
            event.remove(coordinator.app.state.engine, "before_cursor_execute", record)
        counts.append(len(seen))
        seen.clear()
    assert counts[0] == counts[1], counts
    # device row, lock and read, 2 updates, 2 ledger, job check (PostgreSQL: 1 update, 1 ledger)
    assert counts[1] <= (5 if backend == "postgresql" else 8), counts


_VERIFYING = {
    "rate_limit_per_s": 1e9,
    "rate_limit_burst": 1_000_000,
    "anonymous_rate_limit_per_s": 1e9,
    "anonymous_rate_limit_burst": 1_000_000,
    "verify_results": True,
}


@pytest.mark.parametrize("settings_overrides", [_VERIFYING])
def test_where_results_are_verified_a_batch_reports_them_as_single_completions_do(
    coordinator: Coordinator,
) -> None:
    owner, submitter = coordinator.owner_key(), coordinator.submitter_key()
    device = _device(coordinator, owner, "mine")
    job_id = _job(coordinator, submitter, 2)
    leases = _claim(coordinator, device, 1)
    items = [
        {"task_id": lease["task_id"], "attempt": lease["attempt"], "energy_j": 10.0, "result": {}}
        for lease in leases
    ]
    [outcome] = _batch(coordinator, device, items)
    assert outcome["status_code"] == 200, outcome
    assert outcome["status"]["state"] == "reported"  # held for a replica, not completed
    [(state, kept)] = _count_rows(
        coordinator.database_url,
        select(Task.state, TaskAttempt.result_sha256)
        .join(TaskAttempt, TaskAttempt.task_id == Task.id)
        .where(Task.id == leases[0]["task_id"]),
    )
    assert (state, kept is not None) == ("reported", True)  # the attempt keeps its result
    assert _job_state(coordinator, job_id) == "running"


def _count_rows(database_url: str, statement: Any) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.execute(statement).all())
    finally:
        engine.dispose()


def _job_state(coordinator: Coordinator, job_id: str) -> str:
    [(state,)] = _count_rows(coordinator.database_url, select(Job.state).where(Job.id == job_id))
    return str(state)
