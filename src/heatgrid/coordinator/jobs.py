"""Jobs: submit, list, show and cancel — the services behind the submitters' API and CLI.

A submitter sees and changes only its own jobs; an operator sees and cancels every job
(``actor`` None is the operator's command line on the server).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from heatgrid.coordinator import leases, ledger
from heatgrid.coordinator.api.job_schemas import JobDetail, JobInfo, JobSubmission, TaskInfo
from heatgrid.coordinator.auth import AccountPrincipal, new_id
from heatgrid.coordinator.db.models import (
    TASK_STATES,
    Account,
    Device,
    Job,
    LedgerEntry,
    LedgerTransaction,
    Task,
    TaskAttempt,
)
from heatgrid.coordinator.errors import ConflictError, ForbiddenError, NotFoundError
from heatgrid.coordinator.settings import Settings

__all__ = [
    "cancel_job",
    "get_job",
    "job_detail",
    "job_info",
    "list_jobs",
    "queue_status",
    "submit_job",
]


def submit_job(
    session: Session,
    actor: AccountPrincipal,
    submission: JobSubmission,
    *,
    now_ts: float,
    settings: Settings,
) -> Job:
    """Store a job and queue its tasks, and commit; the price is fixed now."""
    if actor.role not in ("submitter", "operator"):
        raise ForbiddenError(f"only submitters submit jobs; this key's account is an {actor.role}")
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
    )
    session.add(job)
    session.flush()
    session.add_all(
        Task(
            id=new_id(),
            job_id=job.id,
            task_index=index,
            submitter_id=actor.account_id,
            state="queued",
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
    session.commit()
    return job


def list_jobs(session: Session, actor: AccountPrincipal | None) -> Sequence[Job]:
    """Return the jobs ``actor`` may see (an operator or None: all), newest first."""
    query = select(Job).order_by(Job.created_ts.desc(), Job.id)
    if actor is not None and not actor.is_operator:
        query = query.where(Job.submitter_id == actor.account_id)
    return session.scalars(query).all()


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
    """Cancel a running job: queued tasks are dropped, leased ones stopped and settled."""
    job = get_job(session, job_id, actor)
    if job.state != "running":
        raise ConflictError(f"job {job_id}: it is already {job.state}")
    tasks = session.scalars(
        select(Task)
        .where(Task.job_id == job_id, Task.state.in_(("queued", "leased")))
        .with_for_update()
    ).all()
    for task in tasks:
        if task.state == "leased":
            leases.end_attempt(session, task, "cancelled", now_ts=now_ts, settings=settings)
        else:
            task.state = "cancelled"
            task.ended_ts = now_ts
    job.state = "cancelled"
    job.ended_ts = now_ts
    session.commit()
    return job


def _settled(session: Session, job: Job) -> tuple[float, float]:
    """Energy [J] and cost [EUR] settled for a job so far."""
    energy_j = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account == f"job:{job.id}", LedgerEntry.unit == "j"
        )
    )
    charged = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerEntry.account == f"submitter:{job.submitter_id}",
            LedgerEntry.unit == "micro_eur",
            LedgerTransaction.job_id == job.id,
        )
    )
    return float(energy_j or 0), -float(charged or 0) / ledger.MICRO_EUR_PER_EUR


def _heat_reused_j(session: Session, job: Job) -> float:
    """Energy [J] settled for a job on devices that warmed a room (the rest ran in racks)."""
    device_account = literal("device:") + Device.id
    given = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(Device, LedgerEntry.account == device_account)
        .where(
            LedgerTransaction.job_id == job.id,
            LedgerEntry.unit == "j",
            Device.has_room.is_(True),
        )
    )
    return -float(given or 0)


def job_info(session: Session, job: Job) -> JobInfo:
    """Return the summary view of a job."""
    counts = dict(
        session.execute(
            select(Task.state, func.count()).where(Task.job_id == job.id).group_by(Task.state)
        ).all()
    )
    energy_j, cost_eur = _settled(session, job)
    return JobInfo(
        job_id=job.id,
        name=job.name,
        submitter_name=session.get_one(Account, job.submitter_id).name,
        state=job.state,
        priority=job.priority,
        device_kinds=list(job.device_kinds),
        min_vram_gb=job.min_vram_gb,
        max_attempts=job.max_attempts,
        price_eur_per_kwh=job.price_eur_per_kwh,
        task_count=job.task_count,
        tasks_by_state={str(state): int(count) for state, count in counts.items()},
        energy_j=energy_j,
        heat_reused_energy_j=_heat_reused_j(session, job),
        cost_eur=cost_eur,
        created_ts=job.created_ts,
        ended_ts=job.ended_ts,
    )


def job_detail(session: Session, job: Job) -> JobDetail:
    """Return a job with each of its tasks."""
    return JobDetail(
        **job_info(session, job).model_dump(),
        tasks=[
            TaskInfo(
                task_id=task.id,
                task_index=task.task_index,
                state=task.state,
                attempt=task.attempt,
                energy_j=task.energy_j,
                progress_energy_j=task.progress_energy_j,
                checkpoint_seq=task.checkpoint_seq,
                lease_device_id=task.lease_device_id,
                lease_expires_ts=task.lease_expires_ts,
                result=task.result,
                last_error=task.last_error,
            )
            for task in leases.tasks_of(session, job.id)
        ],
    )


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
