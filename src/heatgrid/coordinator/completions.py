"""Completions handed in as a batch, read and written set-wise: a few statements per batch.

Each completion of a batch gets the outcome it would get alone (:func:`.leases.complete`):
accepted once (the same result again is accepted again and counted once), 404 when the device
never ran that attempt, 409 when the lease is lost or another result was accepted, 422 when the
energy went backwards; one refused leaves the others. The state rules are
:mod:`heatgrid.core.leasing`'s, applied as :func:`.leases.end_attempt` applies them to one task;
only the reading and writing differ. Whatever the batch's size, one transaction of:

1. one ``SELECT … FOR UPDATE OF tasks`` of every named attempt with its task and job, in task id
   order (concurrent batches lock in the same order);
2. the decisions, in memory, in task id order (a task completed earlier in the same batch is
   seen completed by a later duplicate);
3. one ``UPDATE`` of the accepted attempts, one ``UPDATE`` of their tasks (per-row values as
   ``CASE``), their settlements in two statements (:func:`.ledger.post_many`), and one
   ``SELECT`` of the jobs that the batch may have ended.

``tests/coordinator/test_completion_batches.py`` checks that a batch leaves the same rows
(tasks, attempts, ledger entries) as the same completions sent one by one. Completions whose
rules need more than the plain transition (result verification) take
:func:`.leases.complete_batch`, task by task, instead (:func:`_plain`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Row,
    case,
    exists,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from heatgrid.coordinator import leases, ledger
from heatgrid.coordinator.db.models import Device, Job, Task, TaskAttempt
from heatgrid.coordinator.errors import ConflictError, InvalidError, NotFoundError
from heatgrid.coordinator.leases import holds, lost, refresh_job, result_sha256, task_status
from heatgrid.coordinator.settings import Settings
from heatgrid.core import leasing
from heatgrid.core.leasing import AttemptOutcome, TaskState
from heatgrid.protocol import v1

__all__ = ["complete_batch"]

_COMPLETED = TaskState.COMPLETED.value
_UNFINISHED = tuple(
    sorted(state.value for state in TaskState if state not in leasing.TERMINAL_STATES)
)
_EVENT = next(
    event for event, outcome in leasing.EVENT_OUTCOME.items() if outcome is AttemptOutcome.COMPLETED
)


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
class _Accepted:
    """What an accepted completion writes."""

    task_id: str
    attempt: int
    job_id: str
    energy_j: float
    result: dict[str, Any]
    result_sha256: str
    values: Mapping[str, object]  # the task's columns that end_attempt's rules set
    transaction: ledger.Transaction


def _read(
    session: Session, items: Sequence[v1.BatchedCompletion]
) -> tuple[dict[tuple[str, int], Row[Any]], dict[str, _TaskNow]]:
    """Lock and read every named attempt with its task and job: one statement."""
    pairs = sorted({(item.task_id, item.attempt) for item in items})
    rows: list[Row[Any]] = list(
        session.execute(
            select(
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
            )
            .join(TaskAttempt, TaskAttempt.task_id == Task.id)
            .join(Job, Job.id == Task.job_id)
            .where(
                Task.id.in_(
                    sorted({task_id for task_id, _ in pairs})
                ),  # a seek, not a scan, on SQLite
                tuple_(TaskAttempt.task_id, TaskAttempt.attempt).in_(pairs),
            )
            .order_by(Task.id, TaskAttempt.attempt)
            .with_for_update(of=Task)
        )
    )
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


def _ended_values(
    task: _TaskNow, row: Row[Any], *, now_ts: float, settings: Settings
) -> dict[str, object]:
    """Return the task's columns after its attempt completes (:func:`.leases.end_attempt`)."""
    state = leasing.next_state(
        task.state, _EVENT, attempts_started=task.attempt, max_attempts=row.max_attempts
    )
    values: dict[str, object] = {
        "state": state.value,
        "lease_device_id": None,
        "lease_expires_ts": None,
    }
    if not leasing.keeps_work(AttemptOutcome.COMPLETED):
        values["last_error"] = None
    if state in leasing.TERMINAL_STATES:
        values["ended_ts"] = now_ts
    elif state is TaskState.QUEUED:
        values["not_before_ts"] = leasing.retry_not_before_ts(
            now_ts,
            task.attempt,
            retry_base_s=settings.retry_base_s,
            retry_max_s=settings.retry_max_s,
        )
    return values


def _decide(  # noqa: PLR0917 - one completion's facts, private
    item: v1.BatchedCompletion,
    row: Row[Any] | None,
    task: _TaskNow | None,
    device: Device,
    now_ts: float,
    settings: Settings,
) -> tuple[v1.TaskStatus, _Accepted | None]:
    """Decide one completion as :func:`.leases.complete` would; change ``task`` in memory."""
    if row is None or task is None or row.device_id != device.id:
        raise NotFoundError(
            f"task {item.task_id}: no attempt {item.attempt} of it was leased to this device"
        )
    digest = result_sha256(item.result)
    if task.state == TaskState.COMPLETED:
        if task.attempt == item.attempt and task.result_sha256 == digest:
            return task_status(task, item.attempt, device), None
        raise ConflictError(
            f"task {task.id}: already completed by attempt {task.attempt} with another result"
            if task.attempt == item.attempt
            else f"task {task.id}: already completed by attempt {task.attempt}"
        )
    if not holds(task, device, item.attempt):
        raise lost(task, item.attempt)
    if item.energy_j < row.attempt_energy_j:
        raise InvalidError(
            f"energy_j: {item.energy_j} is less than the {row.attempt_energy_j} J this attempt "
            "already reported; it counts the attempt's energy from its start and never decreases"
        )
    values = _ended_values(task, row, now_ts=now_ts, settings=settings)
    energy_j = leasing.settled_energy_j(
        AttemptOutcome.COMPLETED, item.energy_j, row.checkpointed_energy_j
    )
    accepted = _Accepted(
        task_id=task.id,
        attempt=item.attempt,
        job_id=row.job_id,
        energy_j=item.energy_j,
        result=item.result,
        result_sha256=digest,
        values=values,
        transaction=ledger.attempt_transaction(
            task_id=task.id,
            attempt=item.attempt,
            job_id=row.job_id,
            submitter_id=row.submitter_id,
            device_id=device.id,
            owner_id=device.owner_id,
            energy_j=energy_j,
            price_eur_per_kwh=row.price_eur_per_kwh,
            owner_share=row.owner_share,
        ),
    )
    task.state = str(values["state"])
    task.result_sha256 = digest
    task.lease_device_id = None
    task.lease_expires_ts = None
    return task_status(task, item.attempt, device), accepted


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


def _write(session: Session, accepted: Sequence[_Accepted], *, now_ts: float) -> None:
    """Write the accepted completions: four statements for the batch, whatever its size."""
    session.execute(
        update(TaskAttempt)
        .where(
            tuple_(TaskAttempt.task_id, TaskAttempt.attempt).in_(
                [(done.task_id, done.attempt) for done in accepted]
            )
        )
        .values(
            outcome=AttemptOutcome.COMPLETED.value,
            ended_ts=now_ts,
            error=None,
            energy_j=_per_row(
                TaskAttempt.task_id,
                {done.task_id: done.energy_j for done in accepted},
                TaskAttempt.energy_j,
                len(accepted),
            ),
        )
        .execution_options(synchronize_session=False)
    )
    columns = sorted({name for done in accepted for name in done.values})
    rows = len(accepted)
    task_values: dict[str, Any] = {
        name: _per_row(
            Task.id,
            {done.task_id: done.values[name] for done in accepted if name in done.values},
            getattr(Task, name),
            rows,
        )
        for name in columns
    }
    task_values["result"] = _per_row(
        Task.id, {done.task_id: done.result for done in accepted}, Task.result, rows
    )
    task_values["result_sha256"] = _per_row(
        Task.id,
        {done.task_id: done.result_sha256 for done in accepted},
        Task.result_sha256,
        rows,
    )
    session.execute(
        update(Task)
        .where(Task.id.in_([done.task_id for done in accepted]))
        .values(task_values)
        .execution_options(synchronize_session=False)
    )
    ledger.post_many(session, [done.transaction for done in accepted], now_ts=now_ts)


def _refresh_jobs(session: Session, job_ids: set[str], *, now_ts: float) -> None:
    """End the jobs of ``job_ids`` that have no unfinished task left.

    One ``SELECT`` finds them, then :func:`.leases.refresh_job` ends each (rarely any).
    """
    # IN (the states a task can be in unfinished): an index seek per state on (job_id, state),
    # where NOT IN would walk past every finished task of the job first.
    unfinished = exists().where(Task.job_id == Job.id, Task.state.in_(_UNFINISHED))
    ended = session.scalars(
        select(Job.id).where(Job.id.in_(sorted(job_ids)), Job.state == "running", ~unfinished)
    ).all()
    for job_id in ended:
        refresh_job(session, job_id, now_ts=now_ts)


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
    items = batch.completions
    found, tasks = _read(session, items)
    outcomes: dict[int, v1.CompletionOutcome] = {}
    accepted: list[_Accepted] = []
    for index in sorted(range(len(items)), key=lambda index: items[index].task_id):
        item = items[index]
        try:
            status, done = _decide(
                item,
                found.get((item.task_id, item.attempt)),
                tasks.get(item.task_id),
                device,
                now_ts,
                settings,
            )
        except (NotFoundError, ConflictError, InvalidError) as error:
            outcomes[index] = v1.CompletionOutcome(
                task_id=item.task_id,
                attempt=item.attempt,
                status_code=error.status_code,
                detail=str(error),
            )
            continue
        if done is not None:
            accepted.append(done)
        outcomes[index] = v1.CompletionOutcome(
            task_id=item.task_id, attempt=item.attempt, status_code=200, status=status
        )
    if accepted:
        _write(session, accepted, now_ts=now_ts)
        _refresh_jobs(session, {done.job_id for done in accepted}, now_ts=now_ts)
    session.commit()
    return [outcomes[index] for index in range(len(items))]
