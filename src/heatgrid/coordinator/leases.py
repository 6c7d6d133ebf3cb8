"""Leases: devices claim tasks, report progress and checkpoints, complete or fail them.

Claiming is one code path on both databases. The candidates are read with
``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL: concurrent claimers lock disjoint tasks;
SQLite ignores the clause and runs one writer at a time, see ``db.engine``); the pure policy
:func:`heatgrid.core.scheduling.choose` picks among them; the chosen tasks become leased
with a new attempt row whose primary key ``(task, attempt)`` makes a double grant impossible.

A lease lapses ``lease_s`` after the last news from its device (heartbeat, progress,
checkpoint). :func:`expire_leases`, run before each claim and periodically
(:mod:`.housekeeping`), ends the attempt, settles the energy of its last checkpoint, and
requeues the task with backoff, to resume from that checkpoint, or moves it to the dead letter
(``dead``) when its attempts are spent.

With ``Settings.verify_results`` a completed attempt reports its result to
:mod:`.verification` (held credit, judged with the task's other results), and a ``reported``
task is claimable as a *replica* only by a device of an owner none of whose devices holds a
result of it; a replica starts from scratch, and so does, there, any attempt whose task's newest
checkpoint another device saved (a device answers for its whole result). A *segment replay*
(:mod:`.verification`) is the one exception: its lease resumes from the original attempt's
checkpoint ``replay_start_seq`` and stops at ``replay_stop_step``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import (
    Row,
    Table,
    UnaryExpression,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from heatgrid.coordinator import ledger, verification
from heatgrid.coordinator.checkpoints import CheckpointStore, StagedBlob
from heatgrid.coordinator.db.models import (
    HOLDING_TASK_STATES,
    UNFINISHED_TASK_STATES,
    Artifact,
    Checkpoint,
    Device,
    HeatWindowSegmentRow,
    Job,
    Task,
    TaskAttempt,
)
from heatgrid.coordinator.errors import ConflictError, GoneError, InvalidError, NotFoundError
from heatgrid.coordinator.settings import Settings
from heatgrid.core import leasing, scheduling
from heatgrid.core.leasing import AttemptOutcome, TaskEvent, TaskState
from heatgrid.core.trust import Judgement
from heatgrid.protocol import v1
from heatgrid.protocol.jobs import ArtifactRef, CheckpointMark
from heatgrid.protocol.values import check_json_object

__all__ = [
    "LeaseHolder",
    "candidate_order_by",
    "check_holder",
    "claim",
    "complete",
    "complete_batch",
    "end_attempt",
    "expire_leases",
    "holds",
    "lost",
    "prune_checkpoints",
    "read_checkpoint",
    "refresh_job",
    "renew_device_leases",
    "report_progress",
    "result_sha256",
    "save_checkpoint",
    "state_in",
    "task_status",
    "tasks_of",
]

_CANDIDATES = 64
# The claim's statements are written on the tables (Core), not on the mapped classes: a
# statement that names a mapped attribute goes through the ORM's compile state and result
# handling at every execution (about 0.2 ms more per statement here, timed on SQLite in
# memory), though its rows are plain tuples either way.
_TASKS = cast(Table, Task.__table__)
_ATTEMPTS = cast(Table, TaskAttempt.__table__)
_DEVICES = cast(Table, Device.__table__)
_WINDOWS = cast(Table, HeatWindowSegmentRow.__table__)
_MIN_ENERGY_J = 1.0
_QUEUED, _LEASED, _DEAD = TaskState.QUEUED.value, TaskState.LEASED.value, TaskState.DEAD.value
_REPORTED, _VERIFYING = TaskState.REPORTED.value, TaskState.VERIFYING.value
_SORT_COLUMNS: dict[str, Any] = {
    "priority": _TASKS.c.priority,
    "queued_ts": _TASKS.c.queued_ts,
    "task_id": _TASKS.c.id,
}
_EVENT_OF_OUTCOME: dict[AttemptOutcome, TaskEvent] = {
    outcome: event
    for event, outcome in leasing.EVENT_OUTCOME.items()
    if event is not TaskEvent.REPORT  # a completion reports only where results are verified
}


def state_in(*states: str) -> ColumnElement[bool]:
    """Return ``tasks.state IN (…)`` with the states as literals, not bound parameters.

    The claim and lease indexes are partial on PostgreSQL (``db.models.Task``): a prepared
    statement's generic plan can use one only when the query's states are in its text.
    """
    if not all(state.isidentifier() for state in states):
        raise ValueError(f"not task states: {states!r}")
    return _TASKS.c.state.in_([literal_column(f"'{state}'") for state in states])


def result_sha256(result: dict[str, object]) -> str:
    """Return the SHA-256 of a result's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- claiming


def _claimant(session: Session, device: Device, slots: int) -> scheduling.Claimant:
    hardware = device.hardware
    window = tuple(
        scheduling.WindowSegment(row.start_ts, row.duration_s, row.heat_power_w)
        for row in session.execute(
            select(_WINDOWS.c.start_ts, _WINDOWS.c.duration_s, _WINDOWS.c.heat_power_w)
            .where(_WINDOWS.c.device_id == device.id)
            .order_by(_WINDOWS.c.start_ts)
        )
    )
    return scheduling.Claimant(
        device_id=device.id,
        kind=device.kind,  # type: ignore[arg-type]  # checked by the database
        vram_gb=float(hardware.get("vram_gb") or 0.0),
        has_room=device.has_room,
        max_power_w=float(hardware["max_power_w"]),
        window=window,
        slots=slots,
    )


_CANDIDATE_COLUMNS = (
    _TASKS.c.id,
    _TASKS.c.state,
    _TASKS.c.submitter_id,
    _TASKS.c.priority,
    _TASKS.c.queued_ts,
    _TASKS.c.runs_on_gpu,
    _TASKS.c.runs_on_cpu,
    _TASKS.c.min_vram_gb,
    _TASKS.c.energy_j,
    _TASKS.c.progress_energy_j,
    _TASKS.c.checkpoint_every_j,
)
"""What the scheduling policy needs of a candidate: no input, no result (read as plain rows)."""


def _queued(task: Row[Any]) -> scheduling.QueuedTask:
    kinds = tuple(
        kind for kind, runs in (("gpu", task.runs_on_gpu), ("cpu", task.runs_on_cpu)) if runs
    )
    replica = task.state == _REPORTED  # a replica runs the whole task again
    remaining_j = task.energy_j - (0.0 if replica else task.progress_energy_j)
    return scheduling.QueuedTask(
        task_id=task.id,
        submitter_id=str(task.submitter_id),
        priority=task.priority,
        queued_ts=task.queued_ts,
        device_kinds=kinds,
        min_vram_gb=task.min_vram_gb,
        energy_to_checkpoint_j=max(_MIN_ENERGY_J, min(task.checkpoint_every_j, remaining_j)),
    )


def _fleet_view(
    session: Session,
    claimant: scheduling.Claimant,
    candidates: Sequence[scheduling.QueuedTask],
    now_ts: float,
    settings: Settings,
) -> scheduling.FleetView:
    """Return what the policy needs of the fleet.

    That is the running tasks of the candidates' submitters (the only ones it looks up), and
    for a device without a room the heaters wanting work; fifo needs neither.
    """
    running: dict[str, int] = {}
    if settings.scheduling_policy != "fifo":  # fifo reads neither
        submitters = sorted({int(task.submitter_id) for task in candidates})
        running = {
            str(submitter): int(count)
            for submitter, count in session.execute(
                select(_TASKS.c.submitter_id, func.count())
                .where(state_in(*HOLDING_TASK_STATES), _TASKS.c.submitter_id.in_(submitters))
                .group_by(_TASKS.c.submitter_id)
            )
        }
    if claimant.has_room or settings.scheduling_policy == "fifo":
        return scheduling.FleetView(running_by_submitter=running)
    devices, windows = _DEVICES.c, _WINDOWS.c
    busy = exists().where(_TASKS.c.lease_device_id == devices.id, state_in(*HOLDING_TASK_STATES))
    wanting = session.scalar(
        select(func.count(func.distinct(devices.id)))
        .select_from(_DEVICES)
        .join(_WINDOWS, windows.device_id == devices.id)
        .where(
            devices.has_room.is_(True),
            devices.revoked_ts.is_(None),
            devices.kind.in_(("gpu", "cpu")),
            devices.last_seen_ts >= now_ts - settings.online_window_s,
            windows.start_ts <= now_ts,
            windows.start_ts + windows.duration_s > now_ts,
            windows.heat_power_w > 0.0,
            ~busy,
        )
    )
    return scheduling.FleetView(running_by_submitter=running, heaters_wanting_work=wanting or 0)


def candidate_order_by(policy: str) -> list[UnaryExpression[object]]:
    """Return the SQL ``ORDER BY`` of a claim's candidates: :func:`core.leasing.candidate_order`."""
    return [
        _SORT_COLUMNS[column.field].desc()
        if column.descending
        else _SORT_COLUMNS[column.field].asc()
        for column in leasing.candidate_order(policy)
    ]


_LEASED_COLUMNS = (
    Task.id,
    Task.state,
    Task.job_id,
    Task.task_index,
    Task.attempt,
    Task.lease_expires_ts,
    Task.task_input,
    Task.energy_j,
    Task.checkpoint_every_j,
    Task.progress_energy_j,
    Task.checkpoint_seq,
    Task.replay_of_attempt,
    Task.replay_start_seq,
    Task.replay_stop_step,
)


_JobFacts = tuple[dict[str, str], ArtifactRef | None]
"""A job's input URLs and artifact, as its leases carry them."""


def _facts(input_urls: dict[str, str] | None, sha256: str | None, size_bytes: int) -> _JobFacts:
    """Return a job's facts from its stored input URLs and its artifact's columns.

    ``sha256`` None: the job has no artifact (``size_bytes`` is then not read).
    """
    artifact = None if sha256 is None else ArtifactRef(sha256=sha256, size_bytes=size_bytes)
    return dict(input_urls or {}), artifact


def _job_facts(session: Session, job_ids: set[str]) -> dict[str, _JobFacts]:
    """Return each job's input URLs and artifact, for its leases: one ``SELECT`` for all."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Job.id, Job.input_urls, Artifact.sha256, Artifact.size_bytes)
        .outerjoin(Artifact, Artifact.sha256 == Job.artifact_sha256)
        .where(Job.id.in_(sorted(job_ids)))
    )
    return {row.id: _facts(row.input_urls, row.sha256, row.size_bytes) for row in rows}


def _lease_message(
    task: Row[Any],
    facts: dict[str, _JobFacts],
    *,
    fresh: bool,
) -> v1.TaskLease:
    """Return the lease of ``task``; ``fresh``: from the start, whatever its checkpoints.

    A replica of a task whose round replays a segment (``replay_of_attempt``) resumes from the
    original attempt's checkpoint ``replay_start_seq`` and stops at ``replay_stop_step``.
    """
    input_urls, artifact = facts[task.job_id]
    replay = task.state == _VERIFYING and task.replay_of_attempt is not None
    start_seq = task.replay_start_seq if replay else None
    if not replay and not fresh and task.progress_energy_j != 0.0:
        start_seq = task.checkpoint_seq
    # Built from stored, checked values (the input by ``_unservable``): not validated again.
    return v1.TaskLease.model_construct(
        task_index=task.task_index,
        artifact=artifact,
        input_urls=dict(input_urls),
        task_id=task.id,
        job_id=task.job_id,
        attempt=task.attempt,
        lease_expires_ts=task.lease_expires_ts,
        task_input=task.task_input,
        energy_j=task.energy_j,
        checkpoint_every_j=task.checkpoint_every_j,
        progress_energy_j=0.0 if fresh else task.progress_energy_j,
        checkpoint_seq=start_seq,
        stop_step=task.replay_stop_step if replay else None,
    )


def _fresh(
    session: Session, device: Device, leased: Sequence[Row[Any]], settings: Settings
) -> set[str]:
    """Return the leased tasks that start from scratch, not from their newest checkpoint.

    A replica always does. Where results are verified, so does a task whose newest checkpoint
    another device saved: a device answers for its result, so it never builds on another's
    (its progress starts again from zero).
    """
    fresh = {task.id for task in leased if task.state == _VERIFYING}
    if settings.verify_results:
        resumed = [task for task in leased if task.id not in fresh and task.progress_energy_j]
        for task in resumed:
            newest = session.get(Checkpoint, (task.id, task.checkpoint_seq))
            if newest is None or newest.device_id != device.id:
                fresh.add(task.id)
        restarted = [task.id for task in resumed if task.id in fresh]
        if restarted:
            session.execute(
                update(Task)
                .where(Task.id.in_(restarted))
                .values(progress_energy_j=0.0)
                .execution_options(synchronize_session=False)
            )
    return fresh


def _unservable(task_input: object) -> str | None:
    """Why a task's stored input cannot be handed out (stored before the door checked it)."""
    if not isinstance(task_input, dict):
        return "task_input: not a JSON object"
    try:
        check_json_object(task_input)
    except ValueError as error:
        return f"task_input: {error}"
    return None


def _replica_ok(owner_id: int) -> Any:
    """Return the rule: a reported task with no held result from a device of ``owner_id``."""
    attempts = _ATTEMPTS.c
    same_owner = (
        select(attempts.task_id)
        .select_from(_ATTEMPTS)
        .join(_DEVICES, _DEVICES.c.id == attempts.device_id)
        .where(
            attempts.task_id == _TASKS.c.id,
            attempts.verdict == verification.HELD,
            _DEVICES.c.owner_id == owner_id,
        )
    )
    return and_(state_in(_REPORTED), ~exists(same_owner))


def _candidates(
    session: Session,
    claimant: scheduling.Claimant,
    *,
    now_ts: float,
    policy: str,
    replicas_for: int | None = None,
) -> list[Row[Any]]:
    """Lock and return the first ready tasks the claimant's hardware runs, in the policy's order.

    ``replicas_for``: the claimant's owner, when reported tasks may be replicated on it.
    """
    ready = state_in(_QUEUED)
    if replicas_for is not None:
        ready = or_(ready, _replica_ok(replicas_for))
    tasks = _TASKS.c
    query = select(*_CANDIDATE_COLUMNS).where(
        ready,
        tasks.not_before_ts <= now_ts,  # leasing.is_ready
        tasks.min_vram_gb <= claimant.vram_gb,
    )
    if claimant.kind == "gpu":
        query = query.where(tasks.runs_on_gpu.is_(True))
    elif claimant.kind == "cpu":
        query = query.where(tasks.runs_on_cpu.is_(True))
    rows: list[Row[Any]] = list(
        session.execute(
            query.order_by(*candidate_order_by(policy))
            .limit(max(_CANDIDATES, 2 * claimant.slots))
            .with_for_update(skip_locked=True)
        )
    )
    return rows


def _lease(
    session: Session, device: Device, chosen: Sequence[str], *, now_ts: float, settings: Settings
) -> list[Row[Any]]:
    """Lease the chosen tasks (locked, queued or reported) to ``device`` in one ``UPDATE``."""
    leased = leasing.next_state(TaskState.QUEUED, TaskEvent.LEASE).value
    replica = leasing.next_state(TaskState.REPORTED, TaskEvent.LEASE).value
    rows = session.execute(
        update(Task)
        # The state is a guard, not a way in: written so that no index on it applies
        # (``state || ''``), SQLite's planner, which has no statistics, seeks the chosen ids
        # by primary key instead of reading every queued task through a state index.
        .where(Task.id.in_(chosen), Task.state.concat("").in_((_QUEUED, _REPORTED)))
        .values(
            state=case((Task.state == _REPORTED, replica), else_=leased),
            attempt=Task.attempt + 1,
            lease_device_id=device.id,
            lease_expires_ts=now_ts + settings.lease_s,
        )
        .returning(*_LEASED_COLUMNS)
        .execution_options(synchronize_session=False)
    ).all()
    order = {task_id: index for index, task_id in enumerate(chosen)}
    return sorted(rows, key=lambda row: order[row.id])


def _dead_letter(
    session: Session, task: Row[Any], problem: str, *, now_ts: float, attempt_written: bool
) -> None:
    """Undo the lease of a task whose stored input breaks the rules; it goes to the dead letter.

    ``attempt_written``: the lease's attempt row was inserted with it, and is removed.
    """
    if attempt_written:
        session.execute(
            delete(TaskAttempt).where(
                TaskAttempt.task_id == task.id, TaskAttempt.attempt == task.attempt
            )
        )
    session.execute(
        update(Task)
        .where(Task.id == task.id)
        .values(
            state=_DEAD,
            attempt=Task.attempt - 1,
            lease_device_id=None,
            lease_expires_ts=None,
            ended_ts=now_ts,
            last_error=problem,
        )
        .execution_options(synchronize_session=False)
    )
    refresh_job(session, task.job_id, now_ts=now_ts)


# PostgreSQL: the claim's attempt rows as arrays (``unnest``): a statement text that does not
# grow with the number of slots, which psycopg parses once and prepares.
_PG_ATTEMPTS = text(
    "INSERT INTO task_attempts (task_id, attempt, device_id, outcome, started_ts, "
    "start_progress_energy_j, energy_j, checkpointed_energy_j) "
    "SELECT task_id, attempt, :device_id, :outcome, :started_ts, start_progress_energy_j, "
    "0.0, 0.0 FROM unnest(CAST(:task_id AS VARCHAR[]), CAST(:attempt AS INTEGER[]), "
    "CAST(:start_progress_energy_j AS DOUBLE PRECISION[])) "
    "AS v(task_id, attempt, start_progress_energy_j)"
)


# PostgreSQL: the chosen tasks leased, their attempt rows inserted and their jobs' facts read in
# one statement (data-modifying CTEs), of a fixed text that psycopg prepares. The attempt
# starts from the task's progress, or from scratch for a replica (``verifying``), as
# :func:`_insert_attempts` writes it where results are not verified.
_PG_LEASE = text(
    "WITH leased AS (UPDATE tasks SET state = CASE WHEN state = :reported THEN :replica "
    "ELSE :leased END, attempt = attempt + 1, lease_device_id = :device_id, "
    "lease_expires_ts = :lease_expires_ts "
    "WHERE id = ANY(CAST(:ids AS VARCHAR[])) AND state || '' IN (:queued, :reported) "
    "RETURNING id, state, job_id, task_index, attempt, lease_expires_ts, task_input, energy_j, "
    "checkpoint_every_j, progress_energy_j, checkpoint_seq, replay_of_attempt, "
    "replay_start_seq, replay_stop_step), "
    "attempts AS (INSERT INTO task_attempts (task_id, attempt, device_id, outcome, started_ts, "
    "start_progress_energy_j, energy_j, checkpointed_energy_j) "
    "SELECT id, attempt, :device_id, :outcome, :now_ts, "
    "CASE WHEN state = :verifying THEN 0.0 ELSE progress_energy_j END, 0.0, 0.0 FROM leased) "
    "SELECT leased.*, jobs.input_urls, artifacts.sha256 AS artifact_sha256, "
    "artifacts.size_bytes AS artifact_size_bytes FROM leased "
    "JOIN jobs ON jobs.id = leased.job_id "
    "LEFT OUTER JOIN artifacts ON artifacts.sha256 = jobs.artifact_sha256"
)


def _lease_postgresql(
    session: Session, device: Device, chosen: Sequence[str], *, now_ts: float, settings: Settings
) -> list[Row[Any]]:
    """Lease the chosen tasks, insert their attempts and read their jobs: one statement.

    What :func:`_lease`, :func:`_insert_attempts` and :func:`_job_facts` do, for a claim whose
    leases do not depend on who saved a checkpoint (results not verified: see :func:`_fresh`).
    """
    rows = session.execute(
        _PG_LEASE,
        {
            "ids": list(chosen),
            "queued": _QUEUED,
            "reported": _REPORTED,
            "leased": leasing.next_state(TaskState.QUEUED, TaskEvent.LEASE).value,
            "replica": leasing.next_state(TaskState.REPORTED, TaskEvent.LEASE).value,
            "verifying": _VERIFYING,
            "device_id": device.id,
            "lease_expires_ts": now_ts + settings.lease_s,
            "outcome": AttemptOutcome.RUNNING.value,
            "now_ts": now_ts,
        },
    ).all()
    order = {task_id: index for index, task_id in enumerate(chosen)}
    return sorted(rows, key=lambda row: order[row.id])


def _facts_of(rows: Sequence[Row[Any]]) -> dict[str, _JobFacts]:
    """Return each job's input URLs and artifact as :func:`_lease_postgresql` read them."""
    return {
        row.job_id: _facts(row.input_urls, row.artifact_sha256, row.artifact_size_bytes)
        for row in rows
    }


def _insert_attempts(
    session: Session, device: Device, leased: Sequence[Row[Any]], fresh: set[str], *, now_ts: float
) -> None:
    """Insert the running attempt of each leased task: one statement."""
    starts = [0.0 if task.id in fresh else task.progress_energy_j for task in leased]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _PG_ATTEMPTS,
            {
                "device_id": device.id,
                "outcome": AttemptOutcome.RUNNING.value,
                "started_ts": now_ts,
                "task_id": [task.id for task in leased],
                "attempt": [task.attempt for task in leased],
                "start_progress_energy_j": starts,
            },
        )
        return
    # An executemany with RETURNING goes as one multi-row INSERT, compiled once and cached
    # (``.values([...])`` is compiled anew for every claim).
    session.execute(
        insert(_ATTEMPTS).returning(_ATTEMPTS.c.task_id),
        [
            {
                "task_id": task.id,
                "attempt": task.attempt,
                "device_id": device.id,
                "outcome": AttemptOutcome.RUNNING.value,
                "started_ts": now_ts,
                "start_progress_energy_j": start_j,
                "energy_j": 0.0,
                "checkpointed_energy_j": 0.0,
            }
            for task, start_j in zip(leased, starts, strict=True)
        ],
    )


def claim(
    session: Session, device: Device, request: v1.ClaimRequest, *, now_ts: float, settings: Settings
) -> list[v1.TaskLease]:
    """Lease tasks to ``device`` as the scheduling policy decides, and commit.

    One transaction: end the leases that expired (a few, the sweeper does the rest), lock the
    candidates (``FOR UPDATE SKIP LOCKED``, in :func:`candidate_order_by`'s order), let the
    policy choose, lease the chosen in one ``UPDATE … RETURNING`` and insert their attempt
    rows in one ``INSERT``; on PostgreSQL, where results are not verified, the lease, the
    attempts and the read of their jobs are one statement (:func:`_lease_postgresql`).

    Returns
    -------
    list of v1.TaskLease
        The new leases, possibly none (then the device mines or idles).
    """
    from heatgrid.coordinator import completions  # noqa: PLC0415 - it builds on this module

    completions.expire_batch(session, now_ts=now_ts, settings=settings)
    claimant = _claimant(session, device, request.slots)
    if claimant.kind == "asic" or settings.scheduling_policy == "mining-only":
        session.commit()
        return []
    candidates = _candidates(
        session,
        claimant,
        now_ts=now_ts,
        policy=settings.scheduling_policy,
        replicas_for=device.owner_id if settings.verify_results else None,
    )
    if not candidates:
        session.commit()
        return []
    queued = [_queued(task) for task in candidates]
    chosen = scheduling.choose(
        settings.scheduling_policy,
        claimant,
        queued,
        _fleet_view(session, claimant, queued, now_ts, settings),
        now_ts=now_ts,
        max_wait_s=settings.max_wait_s,
    )
    if not chosen:
        session.commit()
        return []
    one_statement = session.get_bind().dialect.name == "postgresql" and not settings.verify_results
    leased = []
    for task in (
        _lease_postgresql(session, device, chosen, now_ts=now_ts, settings=settings)
        if one_statement
        else _lease(session, device, chosen, now_ts=now_ts, settings=settings)
    ):
        problem = _unservable(task.task_input)
        if problem is not None:  # never leased: it would break every claim that picks it
            _dead_letter(session, task, problem, now_ts=now_ts, attempt_written=one_statement)
        else:
            leased.append(task)
    if one_statement:
        fresh = {task.id for task in leased if task.state == _VERIFYING}  # as _fresh decides
        facts = _facts_of(leased)
    else:
        fresh = _fresh(session, device, leased, settings)
        if leased:
            _insert_attempts(session, device, leased, fresh, now_ts=now_ts)
        facts = _job_facts(session, {task.job_id for task in leased})
    answer = [  # before the commit: all or nothing
        _lease_message(task, facts, fresh=task.id in fresh) for task in leased
    ]
    session.commit()
    return answer


# --------------------------------------------------------------------------- ending attempts


def end_attempt(
    session: Session,
    task: Task,
    outcome: AttemptOutcome | str,
    *,
    now_ts: float,
    settings: Settings,
    error: str | None = None,
) -> None:
    """End the task's running attempt with ``outcome``, settle it, and move the task on.

    ``completed`` and ``cancelled`` end the task; ``expired`` and ``failed`` requeue it with
    backoff to resume from its last checkpoint, or move it to the dead letter when the job's
    attempts are spent (handed-back attempts do not count); ``handed_back`` requeues it at
    once. The caller commits.
    """
    event = _EVENT_OF_OUTCOME[AttemptOutcome(outcome)]
    counted = _counted_attempts(session, task, outcome)
    attempt = session.get_one(TaskAttempt, (task.id, task.attempt))
    attempt.outcome = AttemptOutcome(outcome).value
    attempt.ended_ts = now_ts
    attempt.error = error
    task.lease_device_id = None
    task.lease_expires_ts = None
    if not leasing.keeps_work(outcome):
        task.last_error = error
    job = session.get_one(Job, task.job_id)
    judgement = None
    if event is TaskEvent.COMPLETE and settings.verify_results:
        event = TaskEvent.REPORT
        verification.hold(session, task, attempt, now_ts=now_ts)
        session.flush()
        judgement = verification.judge(session, task, attempt, now_ts=now_ts, settings=settings)
    else:
        energy_j = leasing.settled_energy_j(
            outcome, attempt.energy_j, attempt.checkpointed_energy_j
        )
        ledger.settle_attempt(
            session, attempt, job_id=task.job_id, energy_j=energy_j, now_ts=now_ts
        )
    end = leasing.attempt_end(
        task.state,
        event,
        now_ts=now_ts,
        attempts_started=counted,
        max_attempts=job.max_attempts,
        judgement=judgement,
        retry_base_s=settings.retry_base_s,
        retry_max_s=settings.retry_max_s,
    )
    if end.rejected and judgement is Judgement.REFUTED:  # the original forfeited its result
        task.progress_energy_j = 0.0
        task.last_error = (
            "a replay of one of its training segments on devices of other owners refuted "
            "its result; it runs again"
        )
    elif end.rejected:  # its results are void (judge refunded them): run it again
        task.progress_energy_j = 0.0
        task.last_error = "its results disagreed and no quorum was reached; it runs again"
    if end.state in (TaskState.DEAD, TaskState.CANCELLED):
        verification.void_held(session, task, now_ts=now_ts)
    task.state = end.state.value
    if end.ended_ts is not None:
        task.ended_ts = end.ended_ts
    if end.not_before_ts is not None:
        task.not_before_ts = end.not_before_ts
    session.flush()
    refresh_job(session, task.job_id, now_ts=now_ts)


def _counted_attempts(session: Session, task: Task, outcome: AttemptOutcome | str) -> int:
    """Return the task's attempts that count against its job's (the ending one included).

    Only a retry (expired, failed) reads them: a completion or cancellation ends the task, a
    hand-back never spends attempts: those get ``task.attempt`` (their move does not read it).
    """
    if not leasing.is_counted_retry(outcome):
        return task.attempt  # the move does not read it: skip the count
    handed_back = session.scalar(
        select(func.count())
        .select_from(TaskAttempt)
        .where(
            TaskAttempt.task_id == task.id,
            TaskAttempt.attempt != task.attempt,
            TaskAttempt.outcome == AttemptOutcome.HANDED_BACK.value,
        )
    )
    return leasing.counted_attempts(task.attempt, int(handed_back or 0), outcome)


def refresh_job(session: Session, job_id: str, *, now_ts: float) -> None:
    """Mark a running job ended once every task is: completed or verified, dead, cancelled.

    A task whose result is reported or verifying is not ended: its job runs on.
    """
    job = session.get_one(Job, job_id)
    if job.state != "running":
        return
    unfinished = select(Task.id).where(
        Task.job_id == job_id, Task.state.in_(UNFINISHED_TASK_STATES)
    )
    if session.scalar(select(exists(unfinished))):  # an index seek, not a count of all tasks
        return
    dead = select(Task.id).where(Task.job_id == job_id, Task.state == _DEAD)
    job.state = "failed" if session.scalar(select(exists(dead))) else "completed"
    job.ended_ts = now_ts


def expire_leases(session: Session, *, now_ts: float, settings: Settings) -> int:
    """End every lease past its expiry (attempt ``expired``), commit, and return how many."""
    from heatgrid.coordinator import completions  # noqa: PLC0415 - it builds on this module

    expired = 0
    while True:
        batch = completions.expire_batch(session, now_ts=now_ts, settings=settings)
        session.commit()
        expired += batch
        if batch < completions.EXPIRE_BATCH:
            return expired


def renew_device_leases(
    session: Session, device_id: str, *, now_ts: float, settings: Settings
) -> list[str]:
    """Extend every lease device ``device_id`` holds to ``now_ts + lease_s``; return their task ids.

    The caller commits.
    """
    renewed = session.scalars(
        update(Task)
        .where(Task.lease_device_id == device_id, state_in(*HOLDING_TASK_STATES))
        .values(lease_expires_ts=now_ts + settings.lease_s)
        .returning(Task.id),
        execution_options={"synchronize_session": False},
    )
    return sorted(renewed)


# --------------------------------------------------------------------------- device reports


def _locked_task(session: Session, device: Device, task_id: str, attempt: int) -> Task:
    """Return the task, locked; 404 unless ``device`` ran this attempt of it.

    One ``SELECT`` reads the task and the attempt (which stays in the session for the caller).
    """
    found = session.execute(
        select(Task, TaskAttempt)
        .join(TaskAttempt, (TaskAttempt.task_id == Task.id) & (TaskAttempt.attempt == attempt))
        .where(Task.id == task_id)
        .with_for_update(of=Task)
    ).first()
    if found is None or found[1].device_id != device.id:
        raise NotFoundError(f"task {task_id}: no attempt {attempt} of it was leased to this device")
    task: Task = found[0]
    return task


class LeaseHolder(Protocol):
    """What the lease checks read of a task: its row, or a batch's copy of it."""

    @property
    def id(self) -> str:
        """The task's id."""

    @property
    def state(self) -> str:
        """Its state (a :class:`~heatgrid.core.leasing.TaskState` value)."""

    @property
    def attempt(self) -> int:
        """Its newest attempt's number."""

    @property
    def lease_device_id(self) -> str | None:
        """The device that holds its lease, if any."""

    @property
    def lease_expires_ts(self) -> float | None:
        """When that lease lapses [POSIX s]."""


def holds(task: LeaseHolder, device: Device, attempt: int) -> bool:
    """Whether ``device``'s attempt ``attempt`` of ``task`` holds its lease."""
    return (
        task.state in HOLDING_TASK_STATES
        and task.lease_device_id == device.id
        and task.attempt == attempt
    )


def task_status(task: LeaseHolder, attempt: int, device: Device) -> v1.TaskStatus:
    """Return what the device hears of its attempt: go on, until when, or stop."""
    holding = holds(task, device, attempt)
    return v1.TaskStatus(
        task_id=task.id,
        attempt=attempt,
        state=task.state,
        lease_expires_ts=task.lease_expires_ts if holding else None,
        stop=not holding,
    )


def lost(task: LeaseHolder, attempt: int) -> ConflictError:
    """Return the 409 for an attempt that no longer holds the task's lease."""
    return ConflictError(
        f"task {task.id}: attempt {attempt} no longer holds the lease (the task is {task.state}"
        f"{f', attempt {task.attempt}' if task.attempt != attempt else ''}); stop it"
    )


def _update_energy(attempt: TaskAttempt, energy_j: float) -> None:
    if energy_j < attempt.energy_j:
        raise InvalidError(
            f"energy_j: {energy_j} is less than the {attempt.energy_j} J this attempt already "
            "reported; it counts the attempt's energy from its start and never decreases"
        )
    attempt.energy_j = energy_j


def report_progress(
    session: Session,
    device: Device,
    task_id: str,
    report: v1.TaskProgress,
    *,
    now_ts: float,
    settings: Settings,
) -> v1.TaskStatus:
    """Record an attempt's energy and renew its lease; ``stop`` tells a lost lease. Commits."""
    task = _locked_task(session, device, task_id, report.attempt)
    if holds(task, device, report.attempt):
        _update_energy(session.get_one(TaskAttempt, (task.id, report.attempt)), report.energy_j)
        task.lease_expires_ts = now_ts + settings.lease_s
    session.commit()
    return task_status(task, report.attempt, device)


def save_checkpoint(
    session: Session,
    store: CheckpointStore,
    device: Device,
    task_id: str,
    *,
    attempt: int,
    energy_j: float,
    blob: StagedBlob,
    now_ts: float,
    settings: Settings,
    mark: CheckpointMark | None = None,
) -> v1.CheckpointReceipt:
    """Record a checkpoint taken after the attempt burned ``energy_j``; renew the lease.

    ``mark`` is the training step and tensor fingerprint the task gave with it, kept for the
    replay of a segment (checked at the door).

    ``blob`` was received and flushed to disk before this transaction began; here it is only
    moved to its key. The same upload sent twice (same attempt, energy and bytes) is stored
    once; the caller discards a blob that was not placed.
    """
    task = _locked_task(session, device, task_id, attempt)
    if not holds(task, device, attempt):
        raise lost(task, attempt)
    digest = blob.sha256
    run = session.get_one(TaskAttempt, (task.id, attempt))
    progress_j = run.start_progress_energy_j + energy_j
    newest = session.get(Checkpoint, (task.id, task.checkpoint_seq))
    task.lease_expires_ts = now_ts + settings.lease_s
    if not (
        newest is not None
        and newest.attempt == attempt
        and newest.sha256 == digest
        and newest.progress_energy_j == progress_j
    ):
        if energy_j < run.checkpointed_energy_j:
            raise InvalidError(
                f"energy_j: {energy_j} is less than the {run.checkpointed_energy_j} J of this "
                "attempt's previous checkpoint"
            )
        seq = task.checkpoint_seq + 1
        key = store.key(task.id, seq)
        store.place(blob, key)
        newest = Checkpoint(
            task_id=task.id,
            seq=seq,
            attempt=attempt,
            device_id=device.id,
            progress_energy_j=progress_j,
            blob_key=key,
            size_bytes=blob.size_bytes,
            sha256=digest,
            created_ts=now_ts,
            step=None if mark is None else mark.step,
            fingerprint=(
                None
                if mark is None or mark.fingerprint is None
                else mark.fingerprint.model_dump(mode="json")
            ),
            replay_rank=_RANK.random(),
        )
        session.add(newest)
        task.checkpoint_seq = seq
        task.progress_energy_j = progress_j
        run.checkpointed_energy_j = energy_j
        run.energy_j = max(run.energy_j, energy_j)
    session.commit()
    return v1.CheckpointReceipt(
        task_id=task.id,
        seq=newest.seq,
        size_bytes=newest.size_bytes,
        sha256=newest.sha256,
        progress_energy_j=newest.progress_energy_j,
        lease_expires_ts=now_ts + settings.lease_s,
    )


def read_checkpoint(
    session: Session,
    store: CheckpointStore,
    device: Device,
    task_id: str,
    seq: int | None,
    *,
    own_only: bool = False,
) -> tuple[Checkpoint, bytes] | None:
    """Return checkpoint ``seq`` of a task whose lease ``device`` holds, with its blob.

    ``seq`` None: the newest checkpoint, or None when the task has none. A pruned one is 410.
    A replica (``verifying``) reads only its own attempt's checkpoints: it must not start from
    the work it checks, except a segment replay, which reads the original attempt's checkpoint
    its segment starts from (``replay_start_seq``). ``own_only`` (results verified): a device
    reads only checkpoints it saved itself (or that replay start).
    """
    task = session.get(Task, task_id)
    if task is None or task.state not in HOLDING_TASK_STATES or task.lease_device_id != device.id:
        raise NotFoundError(f"task {task_id}: this device holds no lease on it")
    newest = seq is None
    if seq is None:
        if task.checkpoint_seq == 0:
            return None
        seq = task.checkpoint_seq
    row = session.get(Checkpoint, (task_id, seq))
    replay_start = (
        task.state == _VERIFYING
        and task.replay_of_attempt is not None
        and task.replay_start_seq == seq
        and not newest
    )
    if (
        row is not None
        and not replay_start
        and (
            (task.state == _VERIFYING and row.attempt != task.attempt)
            or (own_only and row.device_id != device.id)
        )
    ):
        if newest:
            return None
        raise NotFoundError(
            f"task {task_id}: checkpoint {seq} is another attempt's; this attempt runs from scratch"
        )
    spent = seq <= (task.spent_checkpoint_seq or 0)  # its round is decided: the sweeper's
    if spent and newest:
        return None
    if row is None:
        raise NotFoundError(f"task {task_id}: no checkpoint {seq}")
    if row.pruned_ts is not None or spent:
        raise GoneError(
            f"task {task_id}: checkpoint {seq} was pruned (only the newest are kept, and none "
            f"that a decided result was trained through); the newest is {task.checkpoint_seq}"
        )
    return row, store.get(row.blob_key)


def check_holder(session: Session, device: Device, task_id: str, attempt: int) -> None:
    """Raise 404 unless ``device`` ran this attempt of the task, 409 if it lost the lease."""
    task = session.get(Task, task_id)
    ran = (
        task is not None
        and session.scalar(
            select(TaskAttempt.device_id).where(
                TaskAttempt.task_id == task_id, TaskAttempt.attempt == attempt
            )
        )
        == device.id
    )
    if task is None or not ran:
        raise NotFoundError(f"task {task_id}: no attempt {attempt} of it was leased to this device")
    if not holds(task, device, attempt):
        raise lost(task, attempt)


_RANK = secrets.SystemRandom()


def _rank(row: Checkpoint) -> float:
    return float(row.replay_rank or 0.0)


def prune_checkpoints(
    session: Session, task_id: str, *, keep: int, replay_keep: int, now_ts: float
) -> list[str]:
    """Mark all but the newest ``keep`` checkpoints of a task pruned, and commit.

    The checkpoint a segment replay of the task resumes from is kept while it is named
    (``replay_start_seq``): a replay after a disagreement starts from it again. For a job
    whose results are compared within a tolerance (``verify_rel_l2``: replayable training),
    the ``replay_keep`` older checkpoints of lowest ``replay_rank`` are kept too: a uniform
    random sample of them (the smallest of independent uniform ranks, kept as checkpoints
    arrive), which the device cannot predict, so a cheat cannot place its skipped steps
    where no replay could start. Pass 0 when results are not verified.

    Returns
    -------
    list of str
        The store keys of the blobs to remove now (after the commit: a crash in between
        leaves at most blobs that no row needs).
    """
    task = session.get(Task, task_id)
    replay_start = None if task is None else task.replay_start_seq
    older = session.scalars(
        select(Checkpoint)
        .where(Checkpoint.task_id == task_id, Checkpoint.pruned_ts.is_(None))
        .order_by(Checkpoint.seq.desc())
        .offset(keep)
    ).all()
    spared: set[int] = set()
    if replay_keep > 0 and task is not None:
        job = session.get(Job, task.job_id)
        if job is not None and job.verify_rel_l2 is not None:
            ranked = sorted((row for row in older if row.replay_rank is not None), key=_rank)
            spared = {row.seq for row in ranked[:replay_keep]}
    rows = [row for row in older if row.seq != replay_start and row.seq not in spared]
    for row in rows:
        row.pruned_ts = now_ts
    keys = [row.blob_key for row in rows]
    session.commit()
    return keys


def complete(
    session: Session,
    device: Device,
    task_id: str,
    report: v1.TaskCompletion,
    *,
    now_ts: float,
    settings: Settings,
) -> v1.TaskStatus:
    """Accept an attempt's result once; the same result again is accepted, another is 409."""
    status = _complete(session, device, task_id, report, now_ts=now_ts, settings=settings)
    session.commit()
    return status


def complete_batch(
    session: Session,
    device: Device,
    batch: v1.CompletionBatch,
    *,
    now_ts: float,
    settings: Settings,
) -> list[v1.CompletionOutcome]:
    """Accept several results of ``device`` in one transaction, each as :func:`complete` would.

    Each completion runs in its own savepoint, so a refused one (404, 409, 422) changes
    nothing and leaves the others; tasks are locked in id order, whatever the batch's order.

    Returns
    -------
    list of v1.CompletionOutcome
        One per completion, in the batch's order.
    """
    items = batch.completions
    outcomes: dict[int, v1.CompletionOutcome] = {}
    for index in sorted(range(len(items)), key=lambda index: items[index].task_id):
        item = items[index]
        try:
            with session.begin_nested():
                status = _complete(
                    session, device, item.task_id, item, now_ts=now_ts, settings=settings
                )
        except (NotFoundError, ConflictError, InvalidError) as error:
            outcomes[index] = v1.CompletionOutcome(
                task_id=item.task_id,
                attempt=item.attempt,
                status_code=error.status_code,
                detail=str(error),
            )
            continue
        outcomes[index] = v1.CompletionOutcome(
            task_id=item.task_id, attempt=item.attempt, status_code=200, status=status
        )
    session.commit()
    return [outcomes[index] for index in range(len(items))]


def _complete(
    session: Session,
    device: Device,
    task_id: str,
    report: v1.TaskCompletion,
    *,
    now_ts: float,
    settings: Settings,
) -> v1.TaskStatus:
    task = _locked_task(session, device, task_id, report.attempt)
    digest = result_sha256(report.result)
    run = session.get_one(TaskAttempt, (task.id, report.attempt))
    if run.outcome == AttemptOutcome.COMPLETED and run.result_sha256 is not None:
        if run.result_sha256 == digest:
            return task_status(task, report.attempt, device)
        raise ConflictError(
            f"task {task_id}: attempt {report.attempt} already reported another result"
        )
    if task.state == TaskState.COMPLETED:
        if task.attempt == report.attempt and task.result_sha256 == digest:
            return task_status(task, report.attempt, device)
        raise ConflictError(
            f"task {task_id}: already completed by attempt {task.attempt} with another result"
            if task.attempt == report.attempt
            else f"task {task_id}: already completed by attempt {task.attempt}"
        )
    if not holds(task, device, report.attempt):
        raise lost(task, report.attempt)
    _update_energy(run, report.energy_j)
    if settings.verify_results:  # kept by the attempt; the task's is the agreed one
        run.result = report.result
        run.result_sha256 = digest
        if report.start_mark is not None:  # a replay's start is checked by it
            run.start_mark = report.start_mark.model_dump(mode="json")
    else:
        task.result = report.result
        task.result_sha256 = digest
    end_attempt(session, task, AttemptOutcome.COMPLETED, now_ts=now_ts, settings=settings)
    return task_status(task, report.attempt, device)


def tasks_of(session: Session, job_id: str) -> Sequence[Task]:
    """Return a job's tasks in index order."""
    return session.scalars(
        select(Task).where(Task.job_id == job_id).order_by(Task.task_index)
    ).all()
