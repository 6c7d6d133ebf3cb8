"""Result verification: held credit, replicas on other owners, reputation, verdicts (issue 17).

With ``Settings.verify_results``, an attempt that returns its result *reports* it
(:attr:`heatgrid.core.leasing.TaskEvent.REPORT`). Its settlement is posted to a held account
(:func:`hold`); the task's first result of a round decides, from its device's reputation on
the job kind (:func:`heatgrid.core.trust.needs_replica`, drawn with a secure generator), how
many owners must agree (:attr:`Task.quorum`: 1 lets a trusted device's result through
unchecked, else the job's ``verify_quorum`` or the coordinator's). :func:`judge` then applies
:func:`heatgrid.core.trust.judge_results` to the task's held results:

Results agree when their digests are equal or, for a job that declares ``verify_rel_l2``,
when the tensor fingerprints they carry agree within it
(:func:`heatgrid.core.fingerprint.fingerprints_agree`).

* verified: the devices that returned the agreed digest are paid (held credit released to
  their owners) and, when the result was checked, gain reputation; those that returned another
  digest forfeit their held credit to the submitter, lose their reputation and are
  quarantined; the task's result is the agreed one;
* a replica is wanted: the task is ``reported`` and claimable by a device of an owner none of
  whose devices holds a result of it (``leases``);
* undecided (``verify_max_results`` results, no quorum): every held result is void, its credit
  refunded to the submitter, and the task runs again from the start.

A result still held when its task is cancelled or dead-lettered is void as well: an owner is
credited only for a verified result. A result let through unchecked (quorum 1) verifies its
task at once, but its credit stays held until its device has reported ``hold_results`` more
results (:func:`release_matured`); a device caught before then forfeits all of it.

Ledger, per verified attempt of cost ``c`` micro-euros and owner share ``s``: at the report
``submitter`` −c, ``held:owner:<id>`` +c (energy as for any attempt); paid: ``held:owner`` −c,
``owner`` +s, ``platform`` +(c − s); forfeited or void: ``held:owner`` −c, ``submitter`` +c.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from heatgrid.coordinator import challenges, ledger
from heatgrid.coordinator.db.models import Device, DeviceReputation, Job, Task, TaskAttempt
from heatgrid.coordinator.ledger import held_account
from heatgrid.coordinator.settings import Settings
from heatgrid.core import fingerprint, trust
from heatgrid.core.leasing import TaskState
from heatgrid.core.trust import Judgement, Reputation
from heatgrid.protocol.jobs import result_fingerprint

__all__ = [
    "CAUGHT",
    "HELD",
    "INLINE_JOB_KIND",
    "VERIFIED",
    "VOID",
    "held_account",
    "hold",
    "job_kind",
    "judge",
    "release_matured",
    "reputation",
    "void_held",
]

HELD, VERIFIED, CAUGHT, VOID = "held", "verified", "caught", "void"
"""An attempt's verdict (``TaskAttempt.verdict``): credit held, paid, forfeited, refunded."""
INLINE_JOB_KIND = "inline"
"""The job kind of jobs without an artifact (their tasks' input is all they run)."""

_SECURE = secrets.SystemRandom()


def job_kind(job: Job) -> str:
    """Return the kind a job's results build reputation on: its artifact's SHA-256."""
    return job.artifact_sha256 or INLINE_JOB_KIND


def reputation(session: Session, device_id: str, kind: str) -> Reputation:
    """Return a device's reputation on a job kind (a new device: zero)."""
    row = session.get(DeviceReputation, (device_id, kind))
    return Reputation(kind, 0 if row is None else row.consecutive_verified)


def _record(session: Session, device_id: str, kind: str, agreed: bool, now_ts: float) -> None:
    after = trust.after_result(reputation(session, device_id, kind), agreed)
    row = session.get(DeviceReputation, (device_id, kind))
    if row is None:
        session.add(
            DeviceReputation(
                device_id=device_id,
                job_kind=kind,
                consecutive_verified=after.consecutive_verified,
                updated_ts=now_ts,
            )
        )
    else:
        row.consecutive_verified = after.consecutive_verified
        row.updated_ts = now_ts


def _cost(job: Job, attempt: TaskAttempt) -> int:
    return ledger.attempt_cost_micro_eur(round(attempt.energy_j), job.price_eur_per_kwh)


def hold(session: Session, task: Task, attempt: TaskAttempt, *, now_ts: float) -> None:
    """Settle a reported attempt into its owner's held account, and mark it held."""
    ledger.settle_attempt(
        session, attempt, job_id=task.job_id, energy_j=attempt.energy_j, now_ts=now_ts, held=True
    )
    attempt.verdict = HELD


def _close(
    session: Session, job: Job, held: tuple[TaskAttempt, int], verdict: str, now_ts: float
) -> None:
    """Move a held attempt's credit: to its owner (verified), else back to the submitter.

    ``held`` is the attempt and its device's owner.
    """
    attempt, owner_id = held
    cost = _cost(job, attempt)
    debit = ledger.Posting(held_account(owner_id), "micro_eur", -cost)
    if verdict == VERIFIED:
        share = round(cost * job.owner_share)
        postings = [
            debit,
            ledger.Posting(f"owner:{owner_id}", "micro_eur", share),
            ledger.Posting("platform", "micro_eur", cost - share),
        ]
    else:
        postings = [debit, ledger.Posting(f"submitter:{job.submitter_id}", "micro_eur", cost)]
    ledger.post(
        session,
        key=f"{verdict}:{attempt.task_id}:{attempt.attempt}",
        kind=f"result_{verdict}",
        postings=postings,
        now_ts=now_ts,
        job_id=job.id,
        task_id=attempt.task_id,
        device_id=attempt.device_id,
    )
    attempt.verdict = verdict


def _held(session: Session, task: Task) -> Sequence[tuple[TaskAttempt, int]]:
    """Return the task's held attempts with their devices' owners, in attempt order."""
    rows = session.execute(
        select(TaskAttempt, Device.owner_id)
        .join(Device, Device.id == TaskAttempt.device_id)
        .where(TaskAttempt.task_id == task.id, TaskAttempt.verdict == HELD)
        .order_by(TaskAttempt.attempt)
    ).all()
    return [(attempt, int(owner)) for attempt, owner in rows]


def _unchecked_held(session: Session, device_id: str) -> list[tuple[TaskAttempt, int, Job]]:
    """Return the device's held results that verified their tasks unchecked, oldest first."""
    rows = session.execute(
        select(TaskAttempt, Device.owner_id, Job)
        .join(Device, Device.id == TaskAttempt.device_id)
        .join(Task, Task.id == TaskAttempt.task_id)
        .join(Job, Job.id == Task.job_id)
        .where(
            TaskAttempt.device_id == device_id,
            TaskAttempt.verdict == HELD,
            Task.state == TaskState.VERIFIED.value,
        )
        .order_by(TaskAttempt.ended_ts, TaskAttempt.task_id, TaskAttempt.attempt)
    ).all()
    return [(attempt, int(owner), job) for attempt, owner, job in rows]


def release_matured(session: Session, device_id: str, *, now_ts: float, settings: Settings) -> None:
    """Pay the device's unchecked results that ``hold_results`` later results of it followed."""
    held = _unchecked_held(session, device_id)
    if not held:
        return
    newest = list(
        session.scalars(
            select(TaskAttempt.ended_ts)
            .where(TaskAttempt.device_id == device_id, TaskAttempt.result_sha256.is_not(None))
            .order_by(TaskAttempt.ended_ts.desc())
            .limit(settings.hold_results)
        )
    )
    for run, owner, job in held:
        reported_ts = run.ended_ts if run.ended_ts is not None else now_ts
        later = [ended_ts for ended_ts in newest if ended_ts is not None and ended_ts > reported_ts]
        if len(later) >= settings.hold_results:
            _close(session, job, (run, owner), VERIFIED, now_ts)


def _quorum(session: Session, job: Job, device_id: str, settings: Settings) -> int:
    rep = reputation(session, device_id, job_kind(job))
    draw = _SECURE.random()
    checked = trust.needs_replica(rep, draw, floor=settings.spot_check_floor)
    return (job.verify_quorum or settings.verify_quorum) if checked else 1


def _fingerprints(
    held: Sequence[tuple[TaskAttempt, int]],
) -> dict[str, fingerprint.TensorFingerprint]:
    """Return the tensor fingerprint of each held result that carries one (checked at the door)."""
    found = {}
    for run, _ in held:
        if isinstance(run.result, dict):
            value = result_fingerprint(run.result)
            if value is not None:
                found[run.device_id] = value
    return found


def judge(
    session: Session, task: Task, attempt: TaskAttempt, *, now_ts: float, settings: Settings
) -> Judgement:
    """Judge the task's held results now that ``attempt`` reported (already held); apply it.

    Returns the judgement; the caller moves the task (``core.leasing.next_state``).
    """
    job = session.get_one(Job, task.job_id)
    if task.quorum is None:  # the round's first result: spot-check it or not
        task.quorum = _quorum(session, job, attempt.device_id, settings)
    held = _held(session, task)
    verdict = trust.judge_results(
        {run.device_id: str(run.result_sha256) for run, _ in held},
        {run.device_id: str(owner) for run, owner in held},
        task.quorum,
        max(settings.verify_max_results, task.quorum + 1),
        fingerprints_by_device=_fingerprints(held) if job.verify_rel_l2 is not None else None,
        rel_l2_max=job.verify_rel_l2,
    )
    if verdict.judgement is Judgement.VERIFIED:
        checked = task.quorum > 1
        kind = job_kind(job)
        for run, owner in held:
            honest = run.device_id in verdict.honest
            if checked or not honest:
                _close(session, job, (run, owner), VERIFIED if honest else CAUGHT, now_ts)
            if checked:
                _record(session, run.device_id, kind, honest, now_ts)
            if not honest:
                for earlier, earlier_owner, earlier_job in _unchecked_held(session, run.device_id):
                    _close(session, earlier_job, (earlier, earlier_owner), CAUGHT, now_ts)
                challenges.quarantine(
                    session.get_one(Device, run.device_id),
                    f"returned a wrong result for task {task.id} (attempt {run.attempt}); "
                    "devices of other owners agreed on another",
                    now_ts=now_ts,
                )
        first = next(run for run, _ in held if run.device_id in verdict.honest)
        task.result = first.result
        task.result_sha256 = first.result_sha256
    elif verdict.judgement is Judgement.UNDECIDED:
        void_held(session, task, now_ts=now_ts)
    return verdict.judgement


def void_held(session: Session, task: Task, *, now_ts: float) -> None:
    """Refund every held result of the task to its submitter; the next result starts a round."""
    job = session.get_one(Job, task.job_id)
    for run, owner in _held(session, task):
        _close(session, job, (run, owner), VOID, now_ts)
    task.quorum = None
