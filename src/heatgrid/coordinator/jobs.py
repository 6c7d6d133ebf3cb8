"""Jobs: submit, list, show and cancel — the services behind the submitters' API and CLI.

A submitter sees and changes only its own jobs; an operator sees and cancels every job
(``actor`` None is the operator's command line on the server).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from heatgrid.coordinator import artifacts, leases, verification
from heatgrid.coordinator.api.job_schemas import JobSubmission
from heatgrid.coordinator.auth import AccountPrincipal, new_id
from heatgrid.coordinator.db.models import (
    TASK_STATES,
    Job,
    Task,
    TaskAttempt,
)
from heatgrid.coordinator.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
)
from heatgrid.coordinator.pages import PageRequest, encode_cursor
from heatgrid.coordinator.settings import Settings
from heatgrid.core import leasing
from heatgrid.core.leasing import AttemptOutcome, TaskEvent, TaskState

__all__ = [
    "JOB_CURSOR_KINDS",
    "cancel_job",
    "get_job",
    "list_jobs",
    "queue_status",
    "submit_job",
]


def _submission_sha256(submission: JobSubmission) -> str:
    """Return the SHA-256 of a submission's canonical JSON (sorted keys, no spaces, ASCII)."""
    unset = {  # a submission without them hashes as before they existed
        name for name in ("verify_quorum", "verify_rel_l2") if getattr(submission, name) is None
    }
    body = submission.model_dump(mode="json", exclude=unset)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _job_with_key(
    session: Session, submitter_id: int, idempotency_key: str, request_sha256: str
) -> Job | None:
    """Return the job a submitter created with this key, or None; 409 if its body differed."""
    job = session.scalars(
        select(Job).where(Job.submitter_id == submitter_id, Job.idempotency_key == idempotency_key)
    ).first()
    if job is not None and job.request_sha256 != request_sha256:
        raise ConflictError(
            f"Idempotency-Key: {idempotency_key!r} was used for job {job.id}, submitted with "
            "another body; send a new key for a new job"
        )
    return job


def submit_job(
    session: Session,
    actor: AccountPrincipal,
    submission: JobSubmission,
    *,
    now_ts: float,
    settings: Settings,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Store a job and queue its tasks, and commit; the price is fixed now.

    Parameters
    ----------
    idempotency_key : str or None
        The submission's ``Idempotency-Key``. A submitter who sends a key again with the same
        body gets the job created the first time (nothing new is stored); with another body,
        409. Keys are the submitter's own: another submitter's same key is another job.

    Returns
    -------
    tuple of (Job, bool)
        The job, and True if it was created now (False: an earlier submission's).
    """
    if actor.role not in ("submitter", "operator"):
        raise ForbiddenError(f"only submitters submit jobs; this key's account is an {actor.role}")
    request_sha256 = _submission_sha256(submission)
    if idempotency_key is not None:
        earlier = _job_with_key(session, actor.account_id, idempotency_key, request_sha256)
        if earlier is not None:
            session.commit()
            return earlier, False
    try:
        job = _create(
            session,
            actor,
            submission,
            now_ts=now_ts,
            settings=settings,
            keys=(idempotency_key, request_sha256),
        )
        session.commit()
    except IntegrityError:
        # Another request with the same key won the race (PostgreSQL: the unique index waited
        # for it to commit); answer with its job.
        session.rollback()
        if idempotency_key is None:
            raise
        earlier = _job_with_key(session, actor.account_id, idempotency_key, request_sha256)
        if earlier is None:
            raise
        session.commit()
        return earlier, False
    return job, True


def _create(
    session: Session,
    actor: AccountPrincipal,
    submission: JobSubmission,
    *,
    now_ts: float,
    settings: Settings,
    keys: tuple[str | None, str],
) -> Job:
    """Add a job and its queued tasks to the session (flushed, not committed).

    ``keys`` is the submission's idempotency key (or None) and the SHA-256 of its body.
    """
    if submission.artifact is not None:
        stored = artifacts.submittable(session, submission.artifact.sha256, actor)
        if stored.size_bytes != submission.artifact.size_bytes:
            raise InvalidError(
                f"artifact.size_bytes: {submission.artifact.size_bytes}, but the artifact "
                f"{stored.sha256} has {stored.size_bytes} bytes"
            )
    job = Job(
        id=new_id(),
        submitter_id=actor.account_id,
        name=submission.name,
        state="running",
        priority=submission.priority,
        device_kinds=list(submission.device_kinds),
        min_vram_gb=submission.min_vram_gb,
        max_attempts=submission.max_attempts,
        price_eur_per_kwh=settings.compute_price_eur_per_kwh,
        owner_share=settings.owner_share,
        task_count=len(submission.tasks),
        created_ts=now_ts,
        idempotency_key=keys[0],
        request_sha256=keys[1],
        artifact_sha256=None if submission.artifact is None else submission.artifact.sha256,
        input_urls=dict(submission.input_urls) or None,
        verify_quorum=submission.verify_quorum,
        verify_rel_l2=submission.verify_rel_l2,
    )
    session.add(job)
    session.flush()
    session.add_all(
        Task(
            id=new_id(),
            job_id=job.id,
            task_index=index,
            submitter_id=actor.account_id,
            state=TaskState.QUEUED.value,
            priority=submission.priority,
            runs_on_gpu="gpu" in submission.device_kinds,
            runs_on_cpu="cpu" in submission.device_kinds,
            min_vram_gb=submission.min_vram_gb,
            task_input=spec.task_input,
            energy_j=spec.energy_j,
            checkpoint_every_j=spec.checkpoint_every_j or submission.checkpoint_every_j,
            progress_energy_j=0.0,
            checkpoint_seq=0,
            attempt=0,
            queued_ts=now_ts,
            not_before_ts=now_ts,
        )
        for index, spec in enumerate(submission.tasks)
    )
    session.flush()
    return job


def list_jobs(
    session: Session, actor: AccountPrincipal | None, page: PageRequest
) -> tuple[Sequence[Job], str | None]:
    """Return a page of the jobs ``actor`` may see (an operator or None: all), newest first.

    Jobs submitted in the same instant come in descending id order.

    Returns
    -------
    tuple of (sequence of Job, str or None)
        The page's jobs, and the cursor of the next page (None after the last).
    """
    # Both columns descend, so that the (created_ts, id) indexes serve the order read backwards.
    query = select(Job).order_by(Job.created_ts.desc(), Job.id.desc())
    if actor is not None and not actor.is_operator:
        query = query.where(Job.submitter_id == actor.account_id)
    if page.after is not None:
        query = query.where(tuple_(Job.created_ts, Job.id) < tuple_(*page.after))
    found = session.scalars(query.limit(page.limit + 1)).all()
    if len(found) <= page.limit:
        return found, None
    last = found[page.limit - 1]
    return found[: page.limit], encode_cursor((last.created_ts, last.id))


JOB_CURSOR_KINDS = (float, str)
"""Types of the sort key in a cursor of :func:`list_jobs`."""


def get_job(session: Session, job_id: str, actor: AccountPrincipal | None) -> Job:
    """Return one job; 404 if it does not exist or belongs to another submitter."""
    job = None if "\x00" in job_id else session.get(Job, job_id)
    if job is None or (
        actor is not None and not actor.is_operator and job.submitter_id != actor.account_id
    ):
        raise NotFoundError(f"job {job_id}: no such job among yours")
    return job


def cancel_job(
    session: Session,
    job_id: str,
    actor: AccountPrincipal | None,
    *,
    now_ts: float,
    settings: Settings,
) -> Job:
    """Cancel a running job: queued tasks are dropped, leased ones stopped and settled.

    Results still held for verification are void (refunded to the submitter).
    """
    job = get_job(session, job_id, actor)
    if job.state != "running":
        raise ConflictError(f"job {job_id}: it is already {job.state}")
    live = tuple(
        state.value
        for state in TaskState
        if state not in leasing.TERMINAL_STATES and state is not TaskState.REJECTED
    )
    tasks = session.scalars(
        select(Task).where(Task.job_id == job_id, Task.state.in_(live)).with_for_update()
    ).all()
    for task in tasks:
        if task.state in (TaskState.LEASED, TaskState.VERIFYING):
            leases.end_attempt(
                session, task, AttemptOutcome.CANCELLED, now_ts=now_ts, settings=settings
            )
        else:
            task.state = leasing.next_state(task.state, TaskEvent.CANCEL).value
            task.ended_ts = now_ts
            verification.void_held(session, task, now_ts=now_ts)
    job.state = "cancelled"
    job.ended_ts = now_ts
    session.commit()
    return job


def queue_status(session: Session) -> tuple[dict[str, int], int]:
    """Count tasks in each state, and the leases that ever expired.

    Returns
    -------
    tuple of (dict, int)
        Tasks per state (every state of ``TASK_STATES``, zero included), and the number of
        attempts that ended because their lease expired.
    """
    counts = dict.fromkeys(TASK_STATES, 0)
    for state, count in session.execute(select(Task.state, func.count()).group_by(Task.state)):
        counts[str(state)] = int(count)
    expiries = session.scalar(
        select(func.count()).select_from(TaskAttempt).where(TaskAttempt.outcome == "expired")
    )
    return counts, int(expiries or 0)
