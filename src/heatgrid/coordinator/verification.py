"""Result verification: held credit, replicas on other owners, reputation, verdicts (issue 17).

With ``Settings.verify_results``, an attempt that returns its result *reports* it
(:attr:`heatgrid.core.leasing.TaskEvent.REPORT`). Its settlement is posted to a held account
(:func:`hold`); the task's first result of a round decides, from its device's reputation on
the job kind (:func:`heatgrid.core.trust.round_quorum`, drawn with a secure generator), how
many owners must agree (:attr:`Task.quorum`: 1 lets a trusted device's result through
unchecked, else the job's ``verify_quorum`` or the coordinator's). :func:`judge` then applies
:func:`heatgrid.core.trust.judge_results` to the task's held results:

Results agree when their digests are equal or, for a job that declares ``verify_rel_l2``,
when the tensor fingerprints they carry agree within it
(:func:`heatgrid.core.fingerprint.fingerprints_agree`).

* verified: the devices that returned the agreed digest are paid (held credit released to
  their owners) and, when the result was checked, the device whose own result the check was
  drawn for gains reputation (an agreeing replica does not:
  :func:`heatgrid.core.trust.after_check`); those that returned another digest forfeit their
  held credit to the submitter, lose their reputation and are quarantined; the task's result
  is the agreed one;
* a replica is wanted: the task is ``reported`` and claimable by a device of an owner none of
  whose devices holds a result of it (``leases``);
* undecided (``verify_max_results`` results, no quorum): every held result is void, its credit
  refunded to the submitter, and the task runs again from the start.

A checked training task (a tolerance, and checkpoints that carry their step and fingerprint) is
checked by a *segment replay* rather than a whole replica (:func:`judge`): the replayers'
tensors at the end of a drawn segment are judged with the original's checkpoint there by the
same rule, and a verdict against the original *refutes* it
(:attr:`heatgrid.core.trust.Judgement.REFUTED`): it is caught as above, the replayers are paid,
and the task runs again from the start.

A result still held when its task is cancelled or dead-lettered is void as well: an owner is
credited only for a verified result. A result let through unchecked (quorum 1) verifies its task
at once, but its credit stays held until a spot check of a later result of its device passes (a
check drawn for a result it reported first: agreeing as another device's replica, which a device
can tell from its lease, pays that replica and releases nothing); a device caught at a spot
check forfeits everything since its last passed check (:func:`heatgrid.core.trust.held_fate`,
the one rule). Credit held ``hold_limit_s`` without being decided (no later check, or no device
of another owner to replicate a checked task) is refunded to the submitter by
:func:`expire_holds` (``result_unverified`` in the ledger, on the owner's device), and a checked
task whose results were refunded so runs again.

Ledger, per verified attempt of cost ``c`` micro-euros and owner share ``s``: at the report
``submitter`` −c, ``held:owner:<id>`` +c (energy as for any attempt); paid: ``held:owner`` −c,
``owner`` +s, ``platform`` +(c − s); forfeited or void: ``held:owner`` −c, ``submitter`` +c.

Clawback (``Settings.clawback_window_s``, 90 days by default; 0 turns it off): when a device
is caught, its results paid by a later passed check without being checked themselves and
reported within the window before the catch
(:func:`heatgrid.core.trust.clawback_due`) are taken back in the same transaction that
quarantines it: per result ``owner`` −min(s, what the owner's balance still holds),
``platform`` −(c − s), ``submitter`` + the sum (``result_clawed_back``); the attempt is marked
``clawed_back``. The operator's release of the device reverses it (:func:`reverse_clawbacks`):
per result the clawback's entries with their signs turned: ``owner`` + what was taken from it,
``platform`` + its fee, ``submitter`` − its refund, charged again as a task is
(``result_clawback_reversed``, once per result); the attempt is marked
``clawback_reversed_ts``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from heatgrid.coordinator import challenges, ledger
from heatgrid.coordinator.db.models import (
    Account,
    Checkpoint,
    Device,
    DeviceReputation,
    Job,
    LedgerEntry,
    LedgerTransaction,
    Task,
    TaskAttempt,
)
from heatgrid.coordinator.ledger import held_account
from heatgrid.coordinator.settings import Settings
from heatgrid.core import fingerprint, leasing, trust
from heatgrid.core.leasing import TaskEvent, TaskState
from heatgrid.core.trust import HoldFate, Judgement, Reputation
from heatgrid.protocol.jobs import (
    REPLAY_STEP_KEY,
    CheckpointMark,
    TensorFingerprintBody,
    result_fingerprint,
)

__all__ = [
    "CAUGHT",
    "HELD",
    "INLINE_JOB_KIND",
    "VERIFIED",
    "VOID",
    "ClawbackReversal",
    "expire_holds",
    "held_account",
    "hold",
    "job_kind",
    "judge",
    "release",
    "reputation",
    "reverse_clawbacks",
    "void_held",
]

HELD, VERIFIED, CAUGHT, VOID = "held", "verified", "caught", "void"
"""An attempt's verdict (``TaskAttempt.verdict``): credit held, paid, forfeited, refunded."""
INLINE_JOB_KIND = "inline"
"""The job kind of jobs without an artifact (their tasks' input is all they run)."""

_SECURE = secrets.SystemRandom()
_LOG = logging.getLogger(__name__)


def job_kind(job: Job) -> str:
    """Return the kind a job's results build reputation on: its artifact's SHA-256."""
    return job.artifact_sha256 or INLINE_JOB_KIND


def reputation(session: Session, device_id: str, kind: str) -> Reputation:
    """Return a device's reputation on a job kind (a new device: zero)."""
    row = session.get(DeviceReputation, (device_id, kind))
    return Reputation(kind, 0 if row is None else row.consecutive_verified)


def _record(
    session: Session,
    device_id: str,
    kind: str,
    *,
    checked_as: trust.CheckedAs,
    agreed: bool,
    now_ts: float,
) -> None:
    after = trust.after_check(reputation(session, device_id, kind), checked_as, agreed)
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
    session: Session,
    job: Job,
    held: tuple[TaskAttempt, int],
    verdict: str,
    now_ts: float,
    *,
    kind: str | None = None,
) -> bool:
    """Move a held attempt's credit: to its owner (verified), else back to the submitter.

    ``held`` is the attempt and its device's owner; ``kind`` names the ledger transaction
    (``result_<verdict>`` by default). The transaction's key names the attempt, not the
    verdict, so a held result's credit moves once even when a sweep and a judgement race.
    Returns whether this call moved it.
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
    posted = ledger.post(
        session,
        key=f"held_release:{attempt.task_id}:{attempt.attempt}",  # one release per result
        kind=kind or f"result_{verdict}",
        postings=postings,
        now_ts=now_ts,
        job_id=job.id,
        task_id=attempt.task_id,
        device_id=attempt.device_id,
    )
    if posted:  # else another transaction (a sweep, a judgement) released it first
        attempt.verdict = verdict
    return posted


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


def _settle_unchecked(
    session: Session,
    device_id: str,
    *,
    caught: bool,
    passed_check_reported_ts: float | None,
    now_ts: float,
    settings: Settings,
) -> None:
    """Apply :func:`heatgrid.core.trust.held_fate` to the device's unchecked held results."""
    for run, owner, job in _unchecked_held(session, device_id):
        fate = trust.held_fate(
            run.ended_ts if run.ended_ts is not None else now_ts,
            caught=caught,
            passed_check_reported_ts=passed_check_reported_ts,
            now_ts=now_ts,
            hold_limit_s=settings.hold_limit_s,
        )
        if fate is not HoldFate.HELD:
            moved = _close(
                session, job, (run, owner), _VERDICT_OF_FATE[fate], now_ts, kind=_KIND_OF_FATE[fate]
            )
            if moved and fate is HoldFate.PAY:  # paid, never itself checked: clawback may reach it
                run.paid_unchecked_ts = now_ts


def _paid_unchecked(
    session: Session, device_id: str, since_ts: float
) -> list[tuple[TaskAttempt, Job]]:
    """Return the device's results paid without being checked, not taken back, newest first.

    Only those reported at ``since_ts`` or later [s, POSIX] are read (a device's older history
    can be long); :func:`heatgrid.core.trust.clawback_due` still decides each one.
    """
    return _device_attempts(
        session,
        device_id,
        (
            TaskAttempt.verdict == VERIFIED,
            TaskAttempt.paid_unchecked_ts.is_not(None),
            TaskAttempt.clawed_back.is_(False),
            TaskAttempt.ended_ts >= since_ts,
        ),
        newest_first=True,
    )


def _device_attempts(
    session: Session,
    device_id: str,
    where: Sequence[ColumnElement[bool]],
    *,
    newest_first: bool = False,
) -> list[tuple[TaskAttempt, Job]]:
    """Return the device's attempts that match ``where``, each with its job, by end time."""
    ended = TaskAttempt.ended_ts.desc() if newest_first else TaskAttempt.ended_ts
    rows = session.execute(
        select(TaskAttempt, Job)
        .join(Task, Task.id == TaskAttempt.task_id)
        .join(Job, Job.id == Task.job_id)
        .where(TaskAttempt.device_id == device_id, *where)
        .order_by(ended, TaskAttempt.task_id, TaskAttempt.attempt)
    ).all()
    return [(attempt, job) for attempt, job in rows]


def _claw_back(
    session: Session, device_id: str, owner_id: int, *, now_ts: float, settings: Settings
) -> int:
    """Take back what the caught device's unchecked results were paid; return how many.

    The results :func:`heatgrid.core.trust.clawback_due` names (paid by a later passed check,
    never checked themselves, reported within ``settings.clawback_window_s`` before now) are
    taken back newest first: per result, the platform's fee and as much of the owner's share
    as the owner's balance still holds (:func:`heatgrid.core.trust.clawback_amounts`: no
    debt), both refunded to the submitter, one balanced transaction each
    (``result_clawed_back``, keyed by the attempt, so never twice). The owner's account row
    is locked first (``FOR UPDATE`` on PostgreSQL), so two catches of one owner's devices
    cannot both spend the same balance. Nothing happens when the window is 0 (off).
    """
    window_s = settings.clawback_window_s
    if window_s <= 0.0:
        return 0
    due = [
        (run, job)
        for run, job in _paid_unchecked(session, device_id, now_ts - window_s)
        if trust.clawback_due(
            run.ended_ts if run.ended_ts is not None else now_ts,
            checked=False,  # paid_unchecked_ts: its credit was released by another's check
            caught_ts=now_ts,
            clawback_window_s=window_s,
        )
    ]
    if not due:
        return 0
    session.execute(select(Account.id).where(Account.id == owner_id).with_for_update())
    owner = f"owner:{owner_id}"
    available = ledger.account_balance(session, owner, "micro_eur")
    costs = [_cost(job, run) for run, job in due]
    shares = [round(cost * job.owner_share) for cost, (_, job) in zip(costs, due, strict=True)]
    taken = trust.clawback_amounts(shares, available)
    clawed = 0
    for (run, job), cost, share, part in zip(due, costs, shares, taken, strict=True):
        fee = cost - share
        posted = ledger.post(
            session,
            key=_clawback_key(run),
            kind=ledger.CLAWBACK_KIND,
            postings=[
                ledger.Posting(owner, "micro_eur", -part),
                ledger.Posting("platform", "micro_eur", -fee),
                ledger.Posting(f"submitter:{job.submitter_id}", "micro_eur", part + fee),
            ],
            now_ts=now_ts,
            job_id=job.id,
            task_id=run.task_id,
            device_id=run.device_id,
        )
        if posted:
            run.clawed_back = True
            clawed += 1
    if clawed:
        _LOG.info(
            "paid results of a caught device taken back",
            extra={
                "device_id": device_id,
                "count": clawed,
                "short_micro_eur": sum(shares) - sum(taken),
            },
        )
    return clawed


@dataclass(frozen=True, slots=True)
class ClawbackReversal:
    """What reversing a device's clawbacks gave back, and what paid it [micro-EUR].

    ``results``: clawed-back results reversed now; ``owner_micro_eur``: given back to their
    owner; ``fee_micro_eur``: the platform's fees on them given back;
    ``from_submitters_micro_eur``: the submitters' refunds charged back, which paid for both
    (so it is their sum).
    """

    results: int = 0
    owner_micro_eur: int = 0
    fee_micro_eur: int = 0
    from_submitters_micro_eur: int = 0


def _clawback_moves(session: Session, keys: Sequence[str]) -> dict[str, dict[str, int]]:
    """Return, per clawback transaction key, what it moved on each account [micro-EUR]."""
    rows = session.execute(
        select(LedgerTransaction.key, LedgerEntry.account, func.sum(LedgerEntry.amount))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.key.in_(keys), LedgerEntry.unit == "micro_eur")
        .group_by(LedgerTransaction.key, LedgerEntry.account)
    ).all()
    moves: dict[str, dict[str, int]] = {}
    for key, account, amount in rows:
        moves.setdefault(str(key), {})[str(account)] = int(amount or 0)
    return moves


def reverse_clawbacks(session: Session, device_id: str, *, now_ts: float) -> ClawbackReversal:
    """Give back what clawback took for the device's results; return what was given back.

    Called when the operator releases the device: lifting its quarantine says its catch was
    wrong, so the clawback that came with the catch is undone too. Per clawed-back result not
    reversed yet, oldest first, one balanced transaction (``result_clawback_reversed``, keyed by
    the attempt, so a retried release gives back nothing twice) that is the clawback's own
    entries with their signs turned: the owner gets back what its clawback took from it (an
    owner short of balance at the catch gets back only what was taken), the platform its fee,
    and the submitter is charged its refund again, as it is charged for a task (its account
    may go below zero): its results were good after all. The attempt keeps ``clawed_back``
    and gains ``clawback_reversed_ts``.
    """
    rows = _device_attempts(
        session,
        device_id,
        (TaskAttempt.clawed_back.is_(True), TaskAttempt.clawback_reversed_ts.is_(None)),
    )
    if not rows:
        return ClawbackReversal()
    moves = _clawback_moves(session, [_clawback_key(run) for run, _ in rows])
    owner_total = fee_total = submitters_total = reversed_count = 0
    for run, job in rows:
        moved = moves.get(_clawback_key(run), {})
        posted = ledger.post(
            session,
            key=f"clawback_reversed:{run.task_id}:{run.attempt}",
            kind=ledger.CLAWBACK_REVERSED_KIND,
            postings=[ledger.Posting(name, "micro_eur", -amount) for name, amount in moved.items()],
            now_ts=now_ts,
            job_id=job.id,
            task_id=run.task_id,
            device_id=run.device_id,
        )
        if posted:  # else a concurrent release posted it (and marked the attempt) first
            run.clawback_reversed_ts = now_ts
            reversed_count += 1
            owner_total -= sum(v for name, v in moved.items() if name.startswith("owner:"))
            fee_total -= moved.get("platform", 0)
            submitters_total += moved.get(f"submitter:{job.submitter_id}", 0)
    if reversed_count:
        _LOG.info(
            "clawbacks of a released device reversed",
            extra={"device_id": device_id, "count": reversed_count},
        )
    return ClawbackReversal(reversed_count, owner_total, fee_total, submitters_total)


def release(
    session: Session, device: Device, *, now_ts: float, keep_clawbacks: bool = False
) -> ClawbackReversal:
    """Lift the device's quarantine and, unless ``keep_clawbacks``, reverse its clawbacks.

    The operator's release (the API's ``POST /v1/devices/{id}/release`` and ``heatgrid devices
    release``): :func:`heatgrid.coordinator.challenges.release` (it owes a new hardware
    challenge), then :func:`reverse_clawbacks`. The caller commits; returns what was given back.
    The device's row is locked first (``FOR UPDATE`` on PostgreSQL), so a second release at the
    same time waits for the first to commit and then finds its clawbacks reversed.
    """
    session.execute(select(Device.id).where(Device.id == device.id).with_for_update())
    challenges.release(device, now_ts=now_ts)
    if keep_clawbacks:
        return ClawbackReversal()
    return reverse_clawbacks(session, device.id, now_ts=now_ts)


def _clawback_key(run: TaskAttempt) -> str:
    """Return the ledger key of the clawback of ``run`` (one per attempt)."""
    return f"clawback:{run.task_id}:{run.attempt}"


_VERDICT_OF_FATE = {HoldFate.PAY: VERIFIED, HoldFate.FORFEIT: CAUGHT, HoldFate.REFUND: VOID}
_KIND_OF_FATE = {
    HoldFate.PAY: "result_verified",
    HoldFate.FORFEIT: "result_caught",
    HoldFate.REFUND: "result_unverified",
}


def _quorum(session: Session, job: Job, device_id: str, settings: Settings) -> int:
    rep = reputation(session, device_id, job_kind(job))
    quorum = job.verify_quorum or settings.verify_quorum
    return trust.round_quorum(rep, _SECURE.random(), quorum, floor=settings.spot_check_floor)


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


def _chain(session: Session, task: Task, attempt: TaskAttempt) -> list[Checkpoint]:
    """Return the checkpoints the reported ``attempt``'s result was trained through, in order.

    Those its device saved since its last start from scratch: where results are verified a
    device resumes only from its own newest checkpoint (``leases._fresh``), so the chain is
    its checkpoints of the attempts from its latest fresh start up to this one.
    """
    starts = session.execute(
        select(TaskAttempt.attempt, TaskAttempt.start_progress_energy_j)
        .where(
            TaskAttempt.task_id == task.id,
            TaskAttempt.device_id == attempt.device_id,
            TaskAttempt.attempt <= attempt.attempt,
        )
        .order_by(TaskAttempt.attempt.desc())
    ).all()
    first = next((number for number, start_j in starts if start_j == 0.0), attempt.attempt)
    return list(
        session.scalars(
            select(Checkpoint)
            .where(
                Checkpoint.task_id == task.id,
                Checkpoint.device_id == attempt.device_id,
                Checkpoint.attempt >= first,
                Checkpoint.attempt <= attempt.attempt,
            )
            .order_by(Checkpoint.seq)
        )
    )


def _replay_draw() -> float:
    """Return the uniform draw that picks the segment to replay (a secure generator)."""
    return _SECURE.random()


def _plan_replay(session: Session, task: Task, job: Job, attempt: TaskAttempt) -> None:
    """Make the task's check a segment replay, where its result and checkpoints allow one.

    Allowed for a job with a tolerance (``verify_rel_l2``) whose reported result carries a
    tensor fingerprint and was trained through checkpoints that all carry a step and a
    fingerprint. The segments are those of :func:`heatgrid.core.fingerprint.replay_segment`
    between the chain's checkpoints, plus the *tail*: from the last checkpoint to the task's
    end, compared with the result's fingerprint (it catches a result made up after the last
    checkpoint, or a training stopped short). A segment whose start's blob was pruned cannot
    be drawn. Sets the ``replay_*`` columns; else leaves them None (a whole replica).
    """
    final = result_fingerprint(attempt.result) if isinstance(attempt.result, dict) else None
    chain = _chain(session, task, attempt)
    if (
        job.verify_rel_l2 is None
        or final is None
        or not chain
        or any(row.step is None or row.fingerprint is None for row in chain)
    ):
        return
    steps = [int(row.step or 0) for row in chain]
    startable = [row.pruned_ts is None for row in chain]
    steps.append(max(steps) + 1)  # the tail, of a length unknown here: drawn like any segment
    startable.append(False)
    segment = fingerprint.replay_segment(steps, _replay_draw(), startable)
    if segment is None:
        return
    task.replay_of_attempt = attempt.attempt
    task.replay_start_seq = None if segment.start is None else chain[segment.start].seq
    tail = segment.end == len(chain)
    task.replay_end_seq = None if tail else chain[segment.end].seq
    task.replay_stop_step = None if tail else chain[segment.end].step


def _clear_replay(task: Task) -> None:
    task.replay_of_attempt = task.replay_start_seq = None
    task.replay_end_seq = task.replay_stop_step = None


@dataclass(frozen=True)
class _ReplayAnswers:
    """What a segment replay's round is judged by (:func:`_replay_inputs`).

    ``digests`` and ``prints`` by device as :func:`heatgrid.core.trust.judge_results` takes
    them, ``original`` the replayed attempt's device (None: not among the held), and
    ``bad_start`` the replayers that restored a state its mark does not claim.
    """

    digests: dict[str, str]
    prints: dict[str, fingerprint.TensorFingerprint]
    original: str | None
    bad_start: frozenset[str]


def _start_claim(session: Session, task: Task) -> tuple[int, fingerprint.TensorFingerprint] | None:
    """Return the original's mark of the replay's start checkpoint (None: the task's start)."""
    if task.replay_start_seq is None:
        return None
    start = session.get_one(Checkpoint, (task.id, task.replay_start_seq))
    return int(start.step or 0), TensorFingerprintBody.model_validate(start.fingerprint).core()


def _restored(run: TaskAttempt) -> tuple[int, fingerprint.TensorFingerprint] | None:
    """Return the step and fingerprint the attempt said it restored (checked at the door)."""
    if run.start_mark is None:
        return None
    mark = CheckpointMark.model_validate(run.start_mark)
    if mark.step is None or mark.fingerprint is None:
        return None
    return mark.step, mark.fingerprint.core()


def _replay_inputs(
    session: Session, task: Task, job: Job, held: Sequence[tuple[TaskAttempt, int]]
) -> _ReplayAnswers:
    """Return the digests and fingerprints a segment replay is judged by, and the original.

    The original attempt's are those of its checkpoint at the segment's end (its result's for
    the tail); a replayer's are those its result carries for the segment's end step. A result
    that does not answer the segment (another step, no fingerprint) is compared by its digest,
    which agrees with no one: a replayer that returns it is caught like any wrong result.

    A replayer that reports what it restored (``start_mark``) where it does not match the
    original's mark of the start checkpoint (:func:`heatgrid.core.trust.replay_start_agrees`)
    answers with that state's digest instead: it disagrees with the original, so the
    original's blob is refuted when another owner's replay restores the same state (a restore
    is exact), and a replayer that made the mismatch up is caught when another owner's agrees
    with the original.
    """
    digests: dict[str, str] = {}
    prints: dict[str, fingerprint.TensorFingerprint] = {}
    bad_start: set[str] = set()
    original = None
    claim = _start_claim(session, task)
    for run, _ in held:
        value = None
        restored = None if run.attempt == task.replay_of_attempt else _restored(run)
        if run.attempt == task.replay_of_attempt:
            original = run.device_id
            if task.replay_end_seq is None:
                value = result_fingerprint(run.result) if isinstance(run.result, dict) else None
            else:
                end = session.get_one(Checkpoint, (task.id, task.replay_end_seq))
                value = TensorFingerprintBody.model_validate(end.fingerprint).core()
        elif (
            claim is not None
            and restored is not None
            and job.verify_rel_l2 is not None
            and not trust.replay_start_agrees(claim, restored, job.verify_rel_l2)
        ):
            step, state = restored
            digests[run.device_id] = f"start:{step}:{state.values_sha256}"
            bad_start.add(run.device_id)
            continue
        elif isinstance(run.result, dict) and run.result.get(REPLAY_STEP_KEY) == (
            task.replay_stop_step
        ):
            value = result_fingerprint(run.result)
        if value is None:
            digests[run.device_id] = f"result:{run.result_sha256}"
        else:
            digests[run.device_id] = f"values:{value.values_sha256}"
            prints[run.device_id] = value
    return _ReplayAnswers(digests, prints, original, frozenset(bad_start))


def _verdict(
    session: Session,
    task: Task,
    job: Job,
    held: Sequence[tuple[TaskAttempt, int]],
    settings: Settings,
) -> tuple[trust.Verdict, Judgement, _ReplayAnswers | None]:
    """Return the verdict on the held results, its judgement, and a replay's answers."""
    assert task.quorum is not None  # set by the round's first result
    owners = {run.device_id: str(owner) for run, owner in held}
    most = trust.results_allowed(task.quorum, settings.verify_max_results)
    if task.replay_of_attempt is None:
        verdict = trust.judge_results(
            {run.device_id: str(run.result_sha256) for run, _ in held},
            owners,
            task.quorum,
            most,
            fingerprints_by_device=_fingerprints(held) if job.verify_rel_l2 is not None else None,
            rel_l2_max=job.verify_rel_l2,
        )
        return verdict, verdict.judgement, None
    answers = _replay_inputs(session, task, job, held)
    verdict = trust.judge_results(
        answers.digests,
        owners,
        task.quorum,
        most,
        fingerprints_by_device=answers.prints,
        rel_l2_max=job.verify_rel_l2,
    )
    if answers.original is None:
        return verdict, verdict.judgement, None
    return verdict, trust.replay_judgement(verdict, answers.original), answers


def judge(
    session: Session, task: Task, attempt: TaskAttempt, *, now_ts: float, settings: Settings
) -> Judgement:
    """Judge the task's held results now that ``attempt`` reported (already held); apply it.

    A round whose first result is spot-checked, of a training task that allows it, is checked
    by a segment replay (:func:`_plan_replay`) instead of a whole replica: the replayers'
    tensors at the segment's end are judged against the original's checkpoint there by the
    same rule (:func:`heatgrid.core.trust.judge_results`, then
    :func:`heatgrid.core.trust.replay_judgement`), and the verdict is applied as for replicas;
    a refuted original forfeits its result and the task runs again.

    Returns the judgement; the caller moves the task (``core.leasing.next_state``).
    """
    job = session.get_one(Job, task.job_id)
    if task.quorum is None:  # the round's first result: spot-check it or not
        task.quorum = _quorum(session, job, attempt.device_id, settings)
        _clear_replay(task)
        if task.quorum > 1:
            _plan_replay(session, task, job, attempt)
    held = _held(session, task)
    verdict, judgement, answers = _verdict(session, task, job, held, settings)
    if verdict.judgement is Judgement.VERIFIED:
        _spend_checkpoints(task)  # verified or refuted: no attempt resumes from them
        checked = task.quorum > 1
        kind = job_kind(job)
        drawn = held[0][0].attempt  # the round's first result: its check was drawn after it
        for run, owner in held:
            honest = run.device_id in verdict.honest
            if checked or not honest:
                _close(session, job, (run, owner), VERIFIED if honest else CAUGHT, now_ts)
            # A replica's device knew its result would be compared: agreeing, it is paid for
            # itself and earns nothing more (core.trust.passed_drawn_check, the one rule).
            checked_as = trust.CheckedAs.OWN if run.attempt == drawn else trust.CheckedAs.REPLICA
            if checked:
                _record(
                    session,
                    run.device_id,
                    kind,
                    checked_as=checked_as,
                    agreed=honest,
                    now_ts=now_ts,
                )
            # A passed drawn check pays what came before it; a caught device forfeits.
            if not honest or (checked and trust.passed_drawn_check(checked_as, honest)):
                _settle_unchecked(
                    session,
                    run.device_id,
                    caught=not honest,
                    passed_check_reported_ts=run.ended_ts if honest else None,
                    now_ts=now_ts,
                    settings=settings,
                )
            if not honest:
                _claw_back(session, run.device_id, owner, now_ts=now_ts, settings=settings)
                challenges.quarantine(
                    session.get_one(Device, run.device_id),
                    _caught_reason(task, run, verdict, answers),
                    now_ts=now_ts,
                )
        if judgement is Judgement.REFUTED:  # the replayers hold a segment, not a result
            task.quorum = None
            _clear_replay(task)
        else:  # the original's whole result, where a replay checked a segment of it
            agreed = verdict.honest if answers is None else {answers.original}
            first = next(run for run, _ in held if run.device_id in agreed)
            task.result = first.result
            task.result_sha256 = first.result_sha256
    elif verdict.judgement is Judgement.UNDECIDED:
        void_held(session, task, now_ts=now_ts)
    return judgement


def _caught_reason(
    task: Task, run: TaskAttempt, verdict: trust.Verdict, answers: _ReplayAnswers | None
) -> str:
    """Return why a device is quarantined for its result ``run`` (not among the honest)."""
    said = f"returned a wrong result for task {task.id} (attempt {run.attempt}); "
    if answers is None:
        return said + "devices of other owners agreed on another"
    if run.device_id == answers.original and verdict.honest <= answers.bad_start:
        return said + (
            f"devices of other owners restored its checkpoint {task.replay_start_seq} and "
            "found another state than its mark claims"
        )
    return said + f"devices of other owners replayed {_segment(task)} and agreed on other tensors"


def _spend_checkpoints(task: Task) -> None:
    """Mark the task's checkpoints so far as serving no attempt: the sweeper removes them."""
    task.spent_checkpoint_seq = task.checkpoint_seq


def _segment(task: Task) -> str:
    start = "the start" if task.replay_start_seq is None else f"checkpoint {task.replay_start_seq}"
    end = "the end" if task.replay_end_seq is None else f"checkpoint {task.replay_end_seq}"
    return f"its segment from {start} to {end}"


def void_held(session: Session, task: Task, *, now_ts: float) -> None:
    """Refund every held result of the task to its submitter; the next result starts a round."""
    job = session.get_one(Job, task.job_id)
    for run, owner in _held(session, task):
        _close(session, job, (run, owner), VOID, now_ts)
    task.quorum = None
    _clear_replay(task)
    _spend_checkpoints(task)  # it runs again from the start, or not at all


def expire_holds(session: Session, *, now_ts: float, settings: Settings) -> int:
    """Refund credit held ``settings.hold_limit_s`` unverified; commit; return results refunded.

    An unchecked result that no later spot check of its device covered in time is refunded to
    the submitter (the owner sees ``result_unverified`` in the ledger). A checked task still
    waiting for a replica (``reported``: no device of another owner took it) has its held
    results refunded the same way and runs again from the start (or goes to the dead letter
    when its attempts are spent). Rows are locked with ``SKIP LOCKED`` where the database
    has it, so coordinators sweeping together do not collide.
    """
    oldest_ts = now_ts - settings.hold_limit_s
    stale = session.execute(
        select(TaskAttempt.device_id, Task.id, Task.state)
        .join(Task, Task.id == TaskAttempt.task_id)
        .where(
            TaskAttempt.verdict == HELD,
            TaskAttempt.ended_ts <= oldest_ts,
            Task.state.in_([TaskState.VERIFIED.value, TaskState.REPORTED.value]),
        )
        .order_by(TaskAttempt.ended_ts)
    ).all()
    refunded = 0
    for device_id in sorted({device for device, _, state in stale if state == "verified"}):
        before = len(_unchecked_held(session, device_id))
        _settle_unchecked(
            session,
            device_id,
            caught=False,
            passed_check_reported_ts=None,
            now_ts=now_ts,
            settings=settings,
        )
        refunded += before - len(_unchecked_held(session, device_id))
    for task_id in sorted({task for _, task, state in stale if state == "reported"}):
        task = session.scalars(
            select(Task).where(Task.id == task_id).with_for_update(skip_locked=True)
        ).first()
        if task is None or task.state != TaskState.REPORTED.value:
            continue  # another coordinator has it, or a replica took it meanwhile
        refunded += _refund_waiting(session, task, now_ts=now_ts, settings=settings)
    session.commit()
    if refunded:
        _LOG.info("held results refunded unverified", extra={"count": refunded})
    return refunded


def _refund_waiting(session: Session, task: Task, *, now_ts: float, settings: Settings) -> int:
    """Refund a waiting task's held results past the limit and requeue it; return how many."""
    job = session.get_one(Job, task.job_id)
    held = _held(session, task)
    fates = [
        trust.held_fate(
            run.ended_ts if run.ended_ts is not None else now_ts,
            caught=False,
            passed_check_reported_ts=None,
            now_ts=now_ts,
            hold_limit_s=settings.hold_limit_s,
        )
        for run, _ in held
    ]
    if HoldFate.REFUND not in fates:
        return 0
    for run, owner in held:
        _close(session, job, (run, owner), VOID, now_ts, kind="result_unverified")
    task.quorum = None
    _clear_replay(task)
    _spend_checkpoints(task)  # it runs again from the start
    state = leasing.next_state(
        task.state, TaskEvent.REQUEUE, attempts_started=task.attempt, max_attempts=job.max_attempts
    )
    task.state = state.value
    task.progress_energy_j = 0.0
    task.last_error = (
        f"no device of another owner verified its result within {settings.hold_limit_s:g} s; "
        "the held credit was refunded and it runs again"
    )
    if state is TaskState.DEAD:
        task.ended_ts = now_ts
    else:
        task.not_before_ts = now_ts
    return len(held)
