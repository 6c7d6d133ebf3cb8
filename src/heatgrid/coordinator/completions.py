"""Attempts ended set-wise: completions, failures, hand-backs and expired leases, a batch at once.

One code path ends attempts for the batch route (``POST …/completions``), the single routes
(``…/complete``, ``…/fail``, ``…/hand-back``: a batch of one) and the lease sweeper (the
expired leases it finds: a batch of up to :data:`EXPIRE_BATCH`). Each ending gets the outcome it
would get alone: a completion is accepted once (the same result again is accepted again and
counted once), 404 when the device never ran that attempt, 409 when the lease is lost or
another result was accepted, 422 when the energy went backwards; one refused leaves the
others. Where the task goes is :func:`heatgrid.core.leasing.attempt_end`, the one rule that
:func:`.leases.end_attempt` (the per-task path: cancellations, verified results) applies too.
Whatever the batch's size, one transaction of:

1. one ``SELECT … FOR UPDATE OF tasks`` of every named attempt with its task, job and device
   owner (and, where a retry is counted, the task's handed-back attempts), in task id order
   (concurrent batches lock in the same order);
2. the decisions, in memory, in task id order (a task ended earlier in the same batch is seen
   ended by a later duplicate);
3. one ``UPDATE`` of the ended attempts, one ``UPDATE`` of their tasks (per-row values as
   ``CASE``), their settlements in two statements (:func:`.ledger.post_many`), and one
   ``SELECT`` of the jobs that the batch may have ended. On PostgreSQL the two updates are
   one statement and so are the settlements (rows as arrays, ``unnest``; data-modifying
   CTEs), so a batch is four statements after its read.

``tests/coordinator/test_completion_batches.py`` checks that a batch leaves the same rows
(tasks, attempts, ledger entries) as :func:`.leases.end_attempt` ending the same attempts one
by one. Completions whose rules need more than the plain transition (result verification) take
:func:`.leases.complete_batch`, task by task, instead (:func:`_plain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Row,
    Table,
    case,
    exists,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from heatgrid.coordinator import leases, ledger, verification
from heatgrid.coordinator.db.engine import json_rows, json_rows_source
from heatgrid.coordinator.db.models import (
    HOLDING_TASK_STATES,
    UNFINISHED_TASK_STATES,
    Device,
    Job,
    Task,
    TaskAttempt,
)
from heatgrid.coordinator.errors import ConflictError, InvalidError, NotFoundError
from heatgrid.coordinator.leases import holds, lost, refresh_job, result_sha256, task_status
from heatgrid.coordinator.settings import Settings
from heatgrid.core import leasing
from heatgrid.core.leasing import AttemptOutcome, TaskEvent, TaskState
from heatgrid.protocol import v1

__all__ = ["EXPIRE_BATCH", "complete_batch", "complete_one", "end_held", "expire_batch"]

_COMPLETED = TaskState.COMPLETED.value
_DEAD_OR_CANCELLED = (TaskState.DEAD, TaskState.CANCELLED)
EXPIRE_BATCH = 100
"""Most expired leases one sweep ends in one transaction."""
_Refusal = NotFoundError | ConflictError | InvalidError
# Statements on the tables (Core), not the mapped classes: no ORM compile state and result
# handling at each execution (see ``leases``).
_TASKS = cast(Table, Task.__table__)
_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True)
class _Ending:
    """One attempt to end: what a device reported, or the sweeper found expired."""

    task_id: str
    attempt: int
    event: TaskEvent
    energy_j: float | None = None  # None: the energy the attempt last reported (expiry)
    result: dict[str, Any] | None = None  # a completion's
    error: str | None = None


@dataclass
class _TaskNow:
    """A task as this batch has left it so far (read once, then changed in memory)."""

    id: str
    state: str
    attempt: int
    lease_device_id: str | None
    lease_expires_ts: float | None
    result_sha256: str | None


@dataclass(frozen=True)
class _Ended:
    """What an ended attempt writes."""

    task_id: str
    attempt: int
    job_id: str
    outcome: str
    error: str | None
    energy_j: float
    values: Mapping[str, object]  # the task's columns that attempt_end's rule sets
    transaction: ledger.Transaction
    dead: bool


# PostgreSQL: the batch's read driven by its (task, attempt) pairs as rows of one JSON
# parameter (``db.engine.json_rows``), so each row is found by primary key whatever the
# planner believes of the tables' sizes (a list of pairs as ``(task_id, attempt) IN (…)`` was
# planned as a scan of ``task_attempts`` filtered by every pair), and of a fixed text, which
# psycopg prepares.
_PG_READ = text(
    "SELECT t.id, t.state, t.attempt, t.lease_device_id, t.lease_expires_ts, t.result_sha256, "
    "t.job_id, a.attempt AS ran_attempt, a.device_id, a.energy_j AS attempt_energy_j, "
    "a.checkpointed_energy_j, j.max_attempts, j.price_eur_per_kwh, j.owner_share, "
    "j.submitter_id, d.owner_id, "
    "CASE WHEN CAST(:counted AS BOOLEAN) THEN (SELECT count(*) FROM task_attempts AS o "
    "WHERE o.task_id = t.id AND o.attempt <> a.attempt AND o.outcome = :handed_back) "
    "ELSE 0 END AS handed_back "
    f"FROM {json_rows_source('pairs', 'v', 'task_id VARCHAR, attempt INTEGER', jsonb=True)} "
    "JOIN tasks AS t ON t.id = v.task_id "
    "JOIN task_attempts AS a ON a.task_id = v.task_id AND a.attempt = v.attempt "
    "JOIN jobs AS j ON j.id = t.job_id JOIN devices AS d ON d.id = a.device_id "
    "ORDER BY t.id, a.attempt FOR UPDATE OF t"
)


def _read(
    session: Session, pairs: Sequence[tuple[str, int]], *, counted: bool
) -> tuple[dict[tuple[str, int], Row[Any]], dict[str, _TaskNow]]:
    """Lock and read every named attempt with its task, job and owner: one statement.

    ``counted``: also count each task's handed-back attempts (other than the named one), which
    a retry's count of attempts leaves out.
    """
    pairs = sorted(set(pairs))
    if session.get_bind().dialect.name == "postgresql":
        rows: list[Row[Any]] = list(
            session.execute(
                _PG_READ,
                {
                    "pairs": json_rows(
                        [{"task_id": task_id, "attempt": attempt} for task_id, attempt in pairs]
                    ),
                    "counted": counted,
                    "handed_back": AttemptOutcome.HANDED_BACK.value,
                },
            )
        )
        return _found(rows)
    columns: list[Any] = [
        Task.id,
        Task.state,
        Task.attempt,
        Task.lease_device_id,
        Task.lease_expires_ts,
        Task.result_sha256,
        Task.job_id,
        TaskAttempt.attempt.label("ran_attempt"),
        TaskAttempt.device_id,
        TaskAttempt.energy_j.label("attempt_energy_j"),
        TaskAttempt.checkpointed_energy_j,
        Job.max_attempts,
        Job.price_eur_per_kwh,
        Job.owner_share,
        Job.submitter_id,
        Device.owner_id,
    ]
    if counted:
        other = aliased(TaskAttempt)
        columns.append(
            select(func.count())
            .where(
                other.task_id == Task.id,
                other.attempt != TaskAttempt.attempt,
                other.outcome == AttemptOutcome.HANDED_BACK.value,
            )
            .scalar_subquery()
            .label("handed_back")
        )
    rows = list(
        session.execute(
            select(*columns)
            .join(TaskAttempt, TaskAttempt.task_id == Task.id)
            .join(Job, Job.id == Task.job_id)
            .join(Device, Device.id == TaskAttempt.device_id)
            .where(
                Task.id.in_(sorted({task_id for task_id, _ in pairs})),  # a seek on SQLite
                tuple_(TaskAttempt.task_id, TaskAttempt.attempt).in_(pairs),
            )
            .order_by(Task.id, TaskAttempt.attempt)
            .with_for_update(of=Task)
        )
    )
    return _found(rows)


def _found(rows: Sequence[Row[Any]]) -> tuple[dict[tuple[str, int], Row[Any]], dict[str, _TaskNow]]:
    """Return the read's rows by (task, attempt), and each task as the batch starts from."""
    found = {(row.id, row.ran_attempt): row for row in rows}
    tasks = {
        row.id: _TaskNow(
            id=row.id,
            state=row.state,
            attempt=row.attempt,
            lease_device_id=row.lease_device_id,
            lease_expires_ts=row.lease_expires_ts,
            result_sha256=row.result_sha256,
        )
        for row in rows
    }
    return found, tasks


def _check_completion(ending: _Ending, task: _TaskNow, device: Device, digest: str) -> bool:
    """Return whether a completion is a repeat of the accepted one; refuse what may not end."""
    if task.state == _COMPLETED:
        if task.attempt == ending.attempt and task.result_sha256 == digest:
            return True
        raise ConflictError(
            f"task {task.id}: already completed by attempt {task.attempt} with another result"
            if task.attempt == ending.attempt
            else f"task {task.id}: already completed by attempt {task.attempt}"
        )
    if not holds(task, device, ending.attempt):
        raise lost(task, ending.attempt)
    return False


def _end(  # noqa: PLR0917 - one ending's facts, private
    ending: _Ending,
    row: Row[Any],
    task: _TaskNow,
    digest: str | None,
    now_ts: float,
    settings: Settings,
) -> _Ended:
    """End one attempt by :func:`core.leasing.attempt_end`; change ``task`` in memory."""
    outcome = leasing.EVENT_OUTCOME[ending.event]
    energy_j = row.attempt_energy_j if ending.energy_j is None else ending.energy_j
    if energy_j < row.attempt_energy_j:
        raise InvalidError(
            f"energy_j: {energy_j} is less than the {row.attempt_energy_j} J this attempt "
            "already reported; it counts the attempt's energy from its start and never decreases"
        )
    end = leasing.attempt_end(
        task.state,
        ending.event,
        now_ts=now_ts,
        attempts_started=leasing.counted_attempts(
            task.attempt, int(row.handed_back) if leasing.is_counted_retry(outcome) else 0, outcome
        ),
        max_attempts=row.max_attempts,
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
    )
    values: dict[str, object] = {
        "state": end.state.value,
        "lease_device_id": None,
        "lease_expires_ts": None,
    }
    if not end.keeps_work:
        values["last_error"] = ending.error
    if end.ended_ts is not None:
        values["ended_ts"] = end.ended_ts
    if end.not_before_ts is not None:
        values["not_before_ts"] = end.not_before_ts
    if digest is not None:
        values["result"] = ending.result
        values["result_sha256"] = digest
        task.result_sha256 = digest
    task.state = end.state.value
    task.lease_device_id = None
    task.lease_expires_ts = None
    return _Ended(
        task_id=task.id,
        attempt=ending.attempt,
        job_id=row.job_id,
        outcome=outcome.value,
        error=ending.error,
        energy_j=energy_j,
        values=values,
        transaction=ledger.attempt_transaction(
            task_id=task.id,
            attempt=ending.attempt,
            job_id=row.job_id,
            submitter_id=row.submitter_id,
            device_id=row.device_id,
            owner_id=row.owner_id,
            energy_j=leasing.settled_energy_j(outcome, energy_j, row.checkpointed_energy_j),
            price_eur_per_kwh=row.price_eur_per_kwh,
            owner_share=row.owner_share,
        ),
        dead=end.state in _DEAD_OR_CANCELLED,
    )


def _decide(  # noqa: PLR0917 - one ending's facts, private
    ending: _Ending,
    row: Row[Any] | None,
    task: _TaskNow | None,
    device: Device | None,
    now_ts: float,
    settings: Settings,
) -> _Ended | None:
    """Check one ending as its route would alone and end it (None: a repeated completion).

    ``device`` None: the sweeper's, for a lease it found expired under its lock.
    """
    if row is None or task is None or (device is not None and row.device_id != device.id):
        raise NotFoundError(
            f"task {ending.task_id}: no attempt {ending.attempt} of it was leased to this device"
        )
    digest = None
    if device is None:  # expired: still holding, as read under the lock
        if task.state not in HOLDING_TASK_STATES or task.attempt != ending.attempt:
            raise lost(task, ending.attempt)
    elif ending.event is TaskEvent.COMPLETE:
        assert ending.result is not None  # a completion carries its result
        digest = result_sha256(ending.result)
        if _check_completion(ending, task, device, digest):
            return None
    elif not holds(task, device, ending.attempt):
        raise lost(task, ending.attempt)
    return _end(ending, row, task, digest, now_ts, settings)


def _per_row(
    key: InstrumentedAttribute[Any], values: Mapping[str, object], column: Any, rows: int
) -> object:
    """Return the value of ``column`` for the ``rows`` rows written.

    One value when every row gets the same, else a ``CASE`` on ``key`` (rows missing from
    ``values`` keep theirs).
    """
    distinct = {repr(value) for value in values.values()}
    if len(values) == rows and len(distinct) == 1:
        return next(iter(values.values()))
    return case(
        {task_id: literal(value, column.type) for task_id, value in values.items()},
        value=key,
        else_=column,
    )


# PostgreSQL: the batch's rows as one JSON parameter (``db.engine.json_rows_source``), so
# the statement's text is the same whatever the batch's size: psycopg parses it once and
# prepares it (a ``CASE`` of a placeholder per row is parsed anew for every batch), and the
# rows are encoded in C (an array parameter per column was dumped element by element in
# Python).
_PG_END = text(
    "WITH v AS (SELECT v.* FROM "
    + json_rows_source(
        "rows",
        "v",
        "task_id VARCHAR, attempt INTEGER, outcome VARCHAR, error TEXT, "
        "energy_j DOUBLE PRECISION, state VARCHAR, keeps_error BOOLEAN, last_error TEXT, "
        "ended_ts DOUBLE PRECISION, not_before_ts DOUBLE PRECISION, result JSON, "
        "result_sha256 VARCHAR",
    )
    + "), "
    "ended AS (UPDATE task_attempts AS a SET outcome = v.outcome, ended_ts = :now_ts, "
    "error = v.error, energy_j = v.energy_j "
    "FROM v WHERE a.task_id = v.task_id AND a.attempt = v.attempt) "
    "UPDATE tasks AS t SET state = v.state, lease_device_id = NULL, lease_expires_ts = NULL, "
    "last_error = CASE WHEN v.keeps_error THEN t.last_error ELSE v.last_error END, "
    "ended_ts = COALESCE(v.ended_ts, t.ended_ts), "
    "not_before_ts = COALESCE(v.not_before_ts, t.not_before_ts), "
    "result = CASE WHEN v.result_sha256 IS NULL THEN t.result ELSE v.result END, "
    "result_sha256 = COALESCE(v.result_sha256, t.result_sha256) "
    "FROM v WHERE t.id = v.task_id"
)
"""The ended attempts and their tasks, one ``UPDATE … FROM`` the batch's rows each, one statement.

The two touch different tables, so that they run on one snapshot (a data-modifying CTE and
its outer statement) changes nothing of what either writes. A result travels inside the rows
as a JSON value (stored as the ``json`` text it is there).
"""


def _write_postgresql(session: Session, ended: Sequence[_Ended], *, now_ts: float) -> None:
    """Write the ended attempts' and their tasks' rows: one statement (:data:`_PG_END`)."""
    session.execute(
        _PG_END,
        {
            "now_ts": now_ts,
            "rows": json_rows(
                [
                    {
                        "task_id": done.task_id,
                        "attempt": done.attempt,
                        "outcome": done.outcome,
                        "error": done.error,
                        "energy_j": done.energy_j,
                        "state": done.values["state"],
                        "keeps_error": "last_error" not in done.values,
                        "last_error": done.values.get("last_error"),
                        "ended_ts": done.values.get("ended_ts"),
                        "not_before_ts": done.values.get("not_before_ts"),
                        "result": done.values.get("result"),
                        "result_sha256": done.values.get("result_sha256"),
                    }
                    for done in ended
                ]
            ),
        },
    )


def _write(session: Session, ended: Sequence[_Ended], *, now_ts: float) -> None:
    """Write the ended attempts: four statements whatever the batch's size (PostgreSQL: two)."""
    if session.get_bind().dialect.name == "postgresql":
        _write_postgresql(session, ended, now_ts=now_ts)
        _settle(session, ended, now_ts=now_ts)
        return
    rows = len(ended)
    attempt_values = {
        name: _per_row(
            TaskAttempt.task_id,
            {done.task_id: getattr(done, name) for done in ended},
            getattr(TaskAttempt, name),
            rows,
        )
        for name in ("outcome", "error", "energy_j")
    }
    session.execute(
        update(TaskAttempt)
        .where(
            tuple_(TaskAttempt.task_id, TaskAttempt.attempt).in_(
                [(done.task_id, done.attempt) for done in ended]
            )
        )
        .values(ended_ts=now_ts, **attempt_values)
        .execution_options(synchronize_session=False)
    )
    columns = sorted({name for done in ended for name in done.values})
    task_values: dict[str, Any] = {
        name: _per_row(
            Task.id,
            {done.task_id: done.values[name] for done in ended if name in done.values},
            getattr(Task, name),
            rows,
        )
        for name in columns
    }
    session.execute(
        update(Task)
        .where(Task.id.in_([done.task_id for done in ended]))
        .values(task_values)
        .execution_options(synchronize_session=False)
    )
    _settle(session, ended, now_ts=now_ts)


def _settle(session: Session, ended: Sequence[_Ended], *, now_ts: float) -> None:
    """Post the ended attempts' settlements; void the held results of tasks that died."""
    ledger.post_many(session, [done.transaction for done in ended], now_ts=now_ts)
    for done in ended:
        if done.dead:  # rare: results still held for verification are void
            verification.void_held(session, session.get_one(Task, done.task_id), now_ts=now_ts)


def _refresh_jobs(session: Session, job_ids: set[str], *, now_ts: float) -> None:
    """End the jobs of ``job_ids`` that have no unfinished task left.

    One ``SELECT`` finds them, then :func:`.leases.refresh_job` ends each (rarely any).
    """
    # IN (the states a task can be in unfinished): an index seek per state on (job_id, state),
    # where NOT IN would walk past every finished task of the job first.
    tasks, jobs = _TASKS.c, _JOBS.c
    unfinished = exists().where(tasks.job_id == jobs.id, tasks.state.in_(UNFINISHED_TASK_STATES))
    finished = session.scalars(
        select(jobs.id).where(jobs.id.in_(sorted(job_ids)), jobs.state == "running", ~unfinished)
    ).all()
    for job_id in finished:
        refresh_job(session, job_id, now_ts=now_ts)


def _end_all(
    session: Session,
    device: Device | None,
    endings: Sequence[_Ending],
    *,
    now_ts: float,
    settings: Settings,
) -> list[v1.TaskStatus | _Refusal]:
    """End ``endings`` set-wise (the caller commits); a status or a refusal for each, in order."""
    counted = any(
        leasing.is_counted_retry(leasing.EVENT_OUTCOME[ending.event]) for ending in endings
    )
    found, tasks = _read(
        session, [(ending.task_id, ending.attempt) for ending in endings], counted=counted
    )
    answers: dict[int, v1.TaskStatus | _Refusal] = {}
    ended: list[_Ended] = []
    for index in sorted(range(len(endings)), key=lambda index: endings[index].task_id):
        ending = endings[index]
        task = tasks.get(ending.task_id)
        try:
            done = _decide(
                ending,
                found.get((ending.task_id, ending.attempt)),
                task,
                device,
                now_ts,
                settings,
            )
        except (NotFoundError, ConflictError, InvalidError) as error:
            answers[index] = error
            continue
        if done is not None:
            ended.append(done)
        assert task is not None  # decided: it was found
        answers[index] = (
            v1.TaskStatus(
                task_id=task.id,
                attempt=ending.attempt,
                state=task.state,
                lease_expires_ts=None,
                stop=True,
            )
            if device is None
            else task_status(task, ending.attempt, device)
        )
    if ended:
        _write(session, ended, now_ts=now_ts)
        _refresh_jobs(session, {done.job_id for done in ended}, now_ts=now_ts)
    return [answers[index] for index in range(len(endings))]


def _plain(settings: Settings) -> bool:
    """Return whether a completion is ``core.leasing``'s plain transition, paid at once.

    Only that is written set-wise here. Where results are verified (held credit, replicas:
    the ``verify_results`` setting of the verification work), each completion goes through
    :func:`.leases.complete_batch`, task by task, whose rules include it.
    """
    return not settings.verify_results


def complete_batch(
    session: Session,
    device: Device,
    batch: v1.CompletionBatch,
    *,
    now_ts: float,
    settings: Settings,
) -> list[v1.CompletionOutcome]:
    """Accept several results of ``device`` in one transaction, each as alone, and commit.

    Returns
    -------
    list of v1.CompletionOutcome
        One per completion, in the batch's order.
    """
    if not _plain(settings):
        return leases.complete_batch(session, device, batch, now_ts=now_ts, settings=settings)
    answers = _end_all(
        session,
        device,
        [
            _Ending(
                item.task_id,
                item.attempt,
                TaskEvent.COMPLETE,
                energy_j=item.energy_j,
                result=item.result,
            )
            for item in batch.completions
        ],
        now_ts=now_ts,
        settings=settings,
    )
    session.commit()
    return [
        v1.CompletionOutcome(
            task_id=item.task_id,
            attempt=item.attempt,
            status_code=answer.status_code,
            detail=str(answer),
        )
        if isinstance(answer, Exception)
        else v1.CompletionOutcome(
            task_id=item.task_id, attempt=item.attempt, status_code=200, status=answer
        )
        for item, answer in zip(batch.completions, answers, strict=True)
    ]


def _one(
    session: Session, device: Device, ending: _Ending, *, now_ts: float, settings: Settings
) -> v1.TaskStatus:
    """End one attempt as a batch of one and commit; raise its refusal."""
    (answer,) = _end_all(session, device, [ending], now_ts=now_ts, settings=settings)
    if isinstance(answer, Exception):
        raise answer
    session.commit()
    return answer


def complete_one(
    session: Session,
    device: Device,
    task_id: str,
    report: v1.TaskCompletion,
    *,
    now_ts: float,
    settings: Settings,
) -> v1.TaskStatus:
    """Accept an attempt's result once (a batch of one); the same again is accepted, another 409."""
    if not _plain(settings):
        return leases.complete(session, device, task_id, report, now_ts=now_ts, settings=settings)
    ending = _Ending(
        task_id, report.attempt, TaskEvent.COMPLETE, energy_j=report.energy_j, result=report.result
    )
    return _one(session, device, ending, now_ts=now_ts, settings=settings)


def end_held(
    session: Session,
    device: Device,
    task_id: str,
    report: v1.TaskFailure | v1.TaskHandBack,
    *,
    now_ts: float,
    settings: Settings,
) -> v1.TaskStatus:
    """End an attempt that holds its lease as failed or handed back (a batch of one); commit.

    A failure is retried with backoff, or goes to the dead letter when the job's attempts are
    spent; a hand-back is requeued at once and does not count against them.
    """
    if isinstance(report, v1.TaskFailure):
        event, error = TaskEvent.FAIL, report.error
    else:
        event, error = TaskEvent.HAND_BACK, f"handed back: {report.reason}"
    ending = _Ending(task_id, report.attempt, event, energy_j=report.energy_j, error=error)
    return _one(session, device, ending, now_ts=now_ts, settings=settings)


def expire_batch(session: Session, *, now_ts: float, settings: Settings) -> int:
    """End up to :data:`EXPIRE_BATCH` leases past their expiry set-wise; the caller commits.

    Those another transaction holds are skipped (``SKIP LOCKED``): the next sweep takes them.
    Returns how many were found.
    """
    tasks = _TASKS.c
    expired = session.execute(
        select(tasks.id, tasks.attempt)
        .where(leases.state_in(*HOLDING_TASK_STATES), tasks.lease_expires_ts < now_ts)
        .order_by(tasks.lease_expires_ts)
        .limit(EXPIRE_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    if expired:
        _end_all(
            session,
            None,
            [
                _Ending(task_id, attempt, TaskEvent.EXPIRE, error="lease expired")
                for task_id, attempt in expired
            ],
            now_ts=now_ts,
            settings=settings,
        )
    return len(expired)
