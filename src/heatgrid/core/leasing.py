"""Task lifecycle: one state machine for the coordinator and the simulator.

Pure and shared: :mod:`heatgrid.coordinator.leases` stores these states in its database and
:mod:`heatgrid.sim.queue` in arrays; both move a task only through :func:`next_state`, settle
an attempt's energy with :func:`settled_energy_j`, retry with :func:`retry_not_before_ts` and
order the candidates of a claim with :func:`candidate_order` (the coordinator turns its columns
into SQL ``ORDER BY``, the simulator sorts by :func:`candidate_sort_key`). Contract tests in
``tests/contract/`` run one script of claims, progress, expiries, completions and failures
through both and compare the outcomes.

The machine (:data:`TRANSITIONS`)::

    queued --lease--> leased --complete--> completed             (results not verified)
                      leased --report--> reported | verified     (results verified)
    reported --lease--> verifying --report--> verified | reported | rejected
    rejected --requeue--> queued, or dead when the job's attempts are spent
                      leased --expire | fail--> queued (after a backoff), or dead when the
                                                job's attempts are spent, or still leased
                                                while another attempt of it is live
                      leased --hand_back--> queued (ready at once), or still leased while
                                            another attempt of it is live; never dead
    verifying --expire | fail--> reported (the replica is run again), or dead, or verifying
    verifying --hand_back--> reported (the replica is run again), or verifying; never dead
    queued | leased | reported | verifying --cancel--> cancelled

A task's *attempt* is one lease of it to one device; it ends with an :class:`AttemptOutcome`.
An event that ends an attempt names the attempt's outcome (:data:`EVENT_OUTCOME`). The energy
an ended attempt is paid for is all it burned when its work is kept (completed, cancelled: the
submitter stopped it), else the energy up to its last checkpoint (expired, failed: the work
after it is lost and resumed from the checkpoint; handed back: its device checkpointed and
gave the task back on purpose, because its room is warm or it is stopping).

A handed-back attempt is not a failure: it does not count against the job's attempts
(:func:`counts_against_attempts`) and the task is not backed off. The caller of
:func:`next_state` passes the attempts that count.

Verification (issue 17). Where results are verified, an attempt that returns its result
*reports* it (:attr:`TaskEvent.REPORT`), and the task's results so far are judged by
:func:`heatgrid.core.trust.judge_results`; its :class:`~heatgrid.core.trust.Judgement` picks the
target (:func:`reported_state`): ``verified`` when devices of enough different owners agree (one
owner when a trusted device's result is not spot-checked), ``reported`` while a replica on a
device of another owner is wanted (claimable again as a replica; ``verifying`` while one runs),
``rejected`` when the allowed results are in and no digest has a quorum: then every result is
void and the task runs again from the start (``requeue``). A checked training task may be
checked by a *segment replay* instead of a whole replica (the same states and moves); when the
replayers agree against the original, the judgement is ``REFUTED``: the task is ``rejected``
and runs again from the start, the original's result forfeited.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, overload

import numpy as np
from numpy.typing import NDArray

from heatgrid.core._arrays import FloatArray
from heatgrid.core.errors import InputError, require_finite, require_non_negative
from heatgrid.core.scheduling import POLICIES, QueuedTask
from heatgrid.core.trust import Judgement

__all__ = [
    "CANDIDATE_ORDER",
    "DEFAULT_HAND_BACK_AFTER_S",
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PAUSE_AFTER_S",
    "DEFAULT_RETRY_BASE_S",
    "DEFAULT_RETRY_MAX_S",
    "EVENT_OUTCOME",
    "LEASED_STATES",
    "REPLICA_STATES",
    "STORED_TASK_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "AttemptEnd",
    "AttemptOutcome",
    "SortColumn",
    "TaskEvent",
    "TaskState",
    "attempt_end",
    "attempts_spent",
    "candidate_order",
    "candidate_sort_key",
    "counted_attempts",
    "counts_against_attempts",
    "hands_back",
    "is_counted_retry",
    "is_ready",
    "keeps_work",
    "next_state",
    "pauses",
    "reported_state",
    "retry_backoff_s",
    "retry_not_before_ts",
    "settled_energy_j",
]

DEFAULT_MAX_ATTEMPTS = 5
"""Attempts a task gets before the dead letter, unless its job says otherwise."""
DEFAULT_RETRY_BASE_S = 10.0
"""Backoff after a task's first failed or expired attempt [s]; it doubles with each attempt."""
DEFAULT_RETRY_MAX_S = 600.0
"""Longest backoff [s]."""
DEFAULT_LEASE_S = 300.0
"""How long a lease holds without news from its device (heartbeats, progress) [s]."""
DEFAULT_PAUSE_AFTER_S = 300.0
"""A heater's task left without power this long is asked to checkpoint and stop [s]."""
DEFAULT_HAND_BACK_AFTER_S = 1800.0
"""A heater's task left without power this long is handed back to the coordinator [s]."""


class TaskState(enum.StrEnum):
    """Where a task is in its lifecycle (its value is what the coordinator stores)."""

    QUEUED = "queued"
    """Waiting for a device; claimable once its ``not_before_ts`` has passed."""
    LEASED = "leased"
    """At least one attempt is running on a device."""
    COMPLETED = "completed"
    """Its result is in and kept."""
    DEAD = "dead"
    """The dead letter: its attempts are spent."""
    CANCELLED = "cancelled"
    """Its job was cancelled."""
    REPORTED = "reported"
    """A result is in and held, not yet verified: it waits for a replica on another owner."""
    VERIFYING = "verifying"
    """A replica (a spot check) of a reported result runs on a device of another owner."""
    VERIFIED = "verified"
    """Devices of enough different owners agree on its result (or it was not spot-checked)."""
    REJECTED = "rejected"
    """Its results found no quorum: all are void and it is requeued (never stored)."""


class AttemptOutcome(enum.StrEnum):
    """How one attempt (one lease of a task to a device) ended."""

    RUNNING = "running"
    """Not ended: its lease holds."""
    COMPLETED = "completed"
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"
    """Its device gave the task back on purpose (a warm room, a stop), after a checkpoint."""


class TaskEvent(enum.StrEnum):
    """What happens to a task."""

    LEASE = "lease"
    """A device claimed it: a new attempt starts."""
    COMPLETE = "complete"
    """An attempt returned the result, kept without verification."""
    REPORT = "report"
    """An attempt returned a result to be verified (judged with the task's other results)."""
    EXPIRE = "expire"
    """An attempt's lease lapsed (its device went silent)."""
    FAIL = "fail"
    """An attempt's device reported a failure."""
    CANCEL = "cancel"
    """Its job was cancelled."""
    REQUEUE = "requeue"
    """Its rejected results are void, or its held ones went unverified past the hold limit: it
    runs again from the start."""
    HAND_BACK = "hand_back"
    """An attempt's device gave the task back unfinished, on purpose, to resume elsewhere."""


STORED_TASK_STATES: tuple[str, ...] = tuple(
    state.value for state in TaskState if state is not TaskState.REJECTED
)
"""The states a task is stored in, in declaration order (the coordinator's CHECK list).

``rejected`` is left at once (``requeue``) in the transaction that reaches it."""
TERMINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.VERIFIED, TaskState.DEAD, TaskState.CANCELLED}
)
"""States a task never leaves."""
LEASED_STATES = frozenset({TaskState.LEASED, TaskState.VERIFYING})
"""States in which an attempt of the task holds a lease."""
REPLICA_STATES = frozenset({TaskState.REPORTED, TaskState.VERIFYING})
"""States in which a result is held and a lease of the task is a replica of it."""

EVENT_OUTCOME: Mapping[TaskEvent, AttemptOutcome] = {
    TaskEvent.COMPLETE: AttemptOutcome.COMPLETED,
    TaskEvent.REPORT: AttemptOutcome.COMPLETED,
    TaskEvent.EXPIRE: AttemptOutcome.EXPIRED,
    TaskEvent.FAIL: AttemptOutcome.FAILED,
    TaskEvent.CANCEL: AttemptOutcome.CANCELLED,
    TaskEvent.HAND_BACK: AttemptOutcome.HANDED_BACK,
}
"""The outcome an event gives the attempt it ends."""

_RETRY = (TaskState.QUEUED, TaskState.DEAD, TaskState.LEASED)
_REPLICA_RETRY = (TaskState.REPORTED, TaskState.DEAD, TaskState.VERIFYING)
_HANDED_BACK = (TaskState.QUEUED, TaskState.QUEUED, TaskState.LEASED)
_REPLICA_HANDED_BACK = (TaskState.REPORTED, TaskState.REPORTED, TaskState.VERIFYING)
_JUDGED = (TaskState.VERIFIED, TaskState.REPORTED, TaskState.REJECTED)
TRANSITIONS: Mapping[tuple[TaskState, TaskEvent], tuple[TaskState, ...]] = {
    (TaskState.QUEUED, TaskEvent.LEASE): (TaskState.LEASED,),
    (TaskState.LEASED, TaskEvent.COMPLETE): (TaskState.COMPLETED,),
    (TaskState.LEASED, TaskEvent.REPORT): _JUDGED,
    (TaskState.LEASED, TaskEvent.EXPIRE): _RETRY,
    (TaskState.LEASED, TaskEvent.FAIL): _RETRY,
    (TaskState.REPORTED, TaskEvent.LEASE): (TaskState.VERIFYING,),
    (TaskState.VERIFYING, TaskEvent.REPORT): _JUDGED,
    (TaskState.VERIFYING, TaskEvent.EXPIRE): _REPLICA_RETRY,
    (TaskState.VERIFYING, TaskEvent.FAIL): _REPLICA_RETRY,
    (TaskState.REJECTED, TaskEvent.REQUEUE): (TaskState.QUEUED, TaskState.DEAD),
    (TaskState.REPORTED, TaskEvent.REQUEUE): (TaskState.QUEUED, TaskState.DEAD),
    (TaskState.LEASED, TaskEvent.HAND_BACK): _HANDED_BACK,
    (TaskState.VERIFYING, TaskEvent.HAND_BACK): _REPLICA_HANDED_BACK,
    (TaskState.QUEUED, TaskEvent.CANCEL): (TaskState.CANCELLED,),
    (TaskState.LEASED, TaskEvent.CANCEL): (TaskState.CANCELLED,),
    (TaskState.REPORTED, TaskEvent.CANCEL): (TaskState.CANCELLED,),
    (TaskState.VERIFYING, TaskEvent.CANCEL): (TaskState.CANCELLED,),
}
"""Every allowed move: ``(state, event)`` to the states it may lead to (see :func:`next_state`).

A pair not listed is refused. A retry (``expire``, ``fail``) leads back to the state it came
from while another attempt is live, else to ``dead`` when the attempts are spent, else to
``queued`` (a lost replica: to ``reported``, to be run again); a ``hand_back`` likewise, but
never to ``dead``. A ``report`` leads where the
judgement of the task's results says (:func:`reported_state`); a ``requeue`` to ``queued``,
or ``dead`` when the attempts are spent."""

_JUDGED_STATE: Mapping[Judgement, TaskState] = {
    Judgement.VERIFIED: TaskState.VERIFIED,
    Judgement.NEEDS_REPLICA: TaskState.REPORTED,
    Judgement.UNDECIDED: TaskState.REJECTED,
    Judgement.REFUTED: TaskState.REJECTED,
}


def next_state(
    state: TaskState | str,
    event: TaskEvent | str,
    *,
    attempts_started: int = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    live_attempts: int = 0,
    judgement: Judgement | None = None,
) -> TaskState:
    """Return the state a task moves to when ``event`` happens in ``state``.

    Parameters
    ----------
    state : TaskState or str
        The task's state now.
    event : TaskEvent or str
        What happens.
    attempts_started : int
        Attempts of the task started so far that count against ``max_attempts`` (the ending
        one included; handed-back ones excluded, see :func:`counts_against_attempts`), >= 0.
    max_attempts : int
        The job's attempts before the dead letter, >= 1.
    live_attempts : int
        Attempts of the task still running besides the one this event ends, >= 0 (0 while a
        task runs on one device at a time).
    judgement : Judgement or None
        For ``report``: the judgement of the task's results with the reported one
        (:func:`heatgrid.core.trust.judge_results`); required there, ignored elsewhere.

    Returns
    -------
    TaskState
        The new state.

    Raises
    ------
    InputError
        If the move is not in :data:`TRANSITIONS`, or a count is out of range.
    """
    source, happening = TaskState(state), TaskEvent(event)
    targets = TRANSITIONS.get((source, happening))
    if targets is None:
        raise InputError(f"a task that is {source.value} cannot {happening.value}")
    if len(targets) == 1:
        return targets[0]
    if happening is TaskEvent.REPORT:
        if judgement is None:
            raise InputError("a report needs the judgement of the task's results")
        return reported_state(judgement)
    if live_attempts < 0 or attempts_started < 0 or max_attempts < 1:
        raise InputError(
            f"live_attempts and attempts_started must be >= 0 and max_attempts >= 1, got "
            f"{live_attempts}, {attempts_started}, {max_attempts}"
        )
    requeued, dead = targets[0], targets[1]
    if live_attempts > 0 and len(targets) > 2:
        return targets[2]
    if attempts_spent(attempts_started, max_attempts):
        return dead
    return requeued


def reported_state(judgement: Judgement) -> TaskState:
    """Return where a reported result leaves its task, by the judgement of its results.

    ``verified`` for :attr:`~heatgrid.core.trust.Judgement.VERIFIED`, ``reported`` (a replica
    is wanted) for ``NEEDS_REPLICA``, ``rejected`` (requeued at once) for ``UNDECIDED`` and for
    ``REFUTED`` (a segment replay proved the original result wrong: it runs again).
    """
    return _JUDGED_STATE[Judgement(judgement)]


def attempts_spent(attempts_started: int, max_attempts: int) -> bool:
    """Return whether a task whose attempt just ended goes to the dead letter."""
    return attempts_started >= max_attempts


def counts_against_attempts(outcome: AttemptOutcome | str) -> bool:
    """Return whether an attempt that ended with ``outcome`` counts against the job's attempts.

    Every ended attempt does but a handed-back one: a heater that checkpoints and gives a task
    back because its room is warm did not fail it. A retry after a counted attempt is backed
    off (:func:`retry_not_before_ts`); a handed-back task is ready at once.
    """
    return AttemptOutcome(outcome) is not AttemptOutcome.HANDED_BACK


def counted_attempts(attempt: int, handed_back: int, outcome: AttemptOutcome | str) -> int:
    """Return the attempts that count when attempt number ``attempt`` ends with ``outcome``.

    What :func:`next_state` and :func:`attempt_end` take as ``attempts_started``. A retry
    (:func:`is_counted_retry`: expired, failed) counts every attempt started but the
    ``handed_back`` ones before it; the other outcomes never read the count: they get
    ``attempt``.

    Parameters
    ----------
    attempt : int
        The ending attempt's number (1 for the task's first lease), >= 1.
    handed_back : int
        Earlier attempts of the task that were handed back, 0 to ``attempt - 1``.
    outcome : AttemptOutcome or str
        How it ends.
    """
    if not 0 <= handed_back < attempt:
        raise InputError(
            f"handed_back must be from 0 to attempt - 1, got {handed_back} of {attempt}"
        )
    return attempt - handed_back if is_counted_retry(outcome) else attempt


def is_counted_retry(outcome: AttemptOutcome | str) -> bool:
    """Return whether an attempt ending with ``outcome`` is a retry that counts its attempts.

    Expired and failed: the task is retried (or dead) and :func:`counted_attempts` reads the
    task's handed-back attempts; the other outcomes do not need them.
    """
    return not keeps_work(outcome) and counts_against_attempts(outcome)


@overload
def pauses(unpowered_s: float, pause_after_s: float = ...) -> bool: ...
@overload
def pauses(unpowered_s: FloatArray, pause_after_s: float = ...) -> NDArray[np.bool_]: ...
def pauses(
    unpowered_s: float | FloatArray, pause_after_s: float = DEFAULT_PAUSE_AFTER_S
) -> bool | NDArray[np.bool_]:
    """Return whether a heater asks its task to checkpoint and stop: no power for so long.

    A device with power (0 s without) never pauses, even with a setting of 0.

    Parameters
    ----------
    unpowered_s : float or numpy.ndarray
        Time the task's device has had no power, its room warm [s].
    pause_after_s : float
        The heater's setting [s]; shorter gaps only freeze the task.
    """
    return (unpowered_s > 0.0) & (unpowered_s >= pause_after_s)


@overload
def hands_back(unpowered_s: float, hand_back_after_s: float = ...) -> bool: ...
@overload
def hands_back(unpowered_s: FloatArray, hand_back_after_s: float = ...) -> NDArray[np.bool_]: ...
def hands_back(
    unpowered_s: float | FloatArray, hand_back_after_s: float = DEFAULT_HAND_BACK_AFTER_S
) -> bool | NDArray[np.bool_]:
    """Return whether a heater hands its task back (``hand_back``): no power for so long.

    A device with power (0 s without) never hands back, even with a setting of 0.

    Parameters
    ----------
    unpowered_s : float or numpy.ndarray
        Time the task's device has had no power, its room warm [s].
    hand_back_after_s : float
        The heater's setting [s].
    """
    return (unpowered_s > 0.0) & (unpowered_s >= hand_back_after_s)


def keeps_work(outcome: AttemptOutcome | str) -> bool:
    """Return whether an attempt that ended with ``outcome`` keeps all the work it did."""
    return AttemptOutcome(outcome) in (AttemptOutcome.COMPLETED, AttemptOutcome.CANCELLED)


def settled_energy_j(
    outcome: AttemptOutcome | str, energy_j: float, checkpointed_energy_j: float
) -> float:
    """Return the energy an ended attempt is paid for [J].

    Parameters
    ----------
    outcome : AttemptOutcome or str
        How it ended (not ``running``).
    energy_j : float
        Energy it burned from its start [J].
    checkpointed_energy_j : float
        Energy it had burned at its last checkpoint [J] (0 without one).

    Returns
    -------
    float
        ``energy_j`` when its work is kept (:func:`keeps_work`), else ``checkpointed_energy_j``.
    """
    if AttemptOutcome(outcome) is AttemptOutcome.RUNNING:
        raise InputError("a running attempt settles nothing yet")
    return energy_j if keeps_work(outcome) else checkpointed_energy_j


def retry_backoff_s(
    attempts_started: int,
    *,
    retry_base_s: float = DEFAULT_RETRY_BASE_S,
    retry_max_s: float = DEFAULT_RETRY_MAX_S,
) -> float:
    """Return the wait before a task whose attempt ``attempts_started`` ended is retried [s].

    ``retry_base_s · 2^(attempts_started − 1)``, at most ``retry_max_s``.
    """
    if attempts_started < 1:
        raise InputError(f"attempts_started must be >= 1, got {attempts_started}")
    base = require_non_negative("retry_base_s", retry_base_s)
    most = require_non_negative("retry_max_s", retry_max_s)
    return float(min(most, base * 2.0 ** (attempts_started - 1)))


def retry_not_before_ts(
    now_ts: float,
    attempts_started: int,
    *,
    retry_base_s: float = DEFAULT_RETRY_BASE_S,
    retry_max_s: float = DEFAULT_RETRY_MAX_S,
) -> float:
    """Return when a task requeued at ``now_ts`` may be claimed again [POSIX s, UTC].

    The task keeps its ``queued_ts`` (its place in the candidate order); only this changes.
    """
    return require_finite("now_ts", now_ts) + retry_backoff_s(
        attempts_started, retry_base_s=retry_base_s, retry_max_s=retry_max_s
    )


class AttemptEnd(NamedTuple):
    """Where an ended attempt leaves its task: what :func:`attempt_end` returns.

    Attributes
    ----------
    state : TaskState
        The task's new state (never ``rejected``: that is requeued at once).
    outcome : AttemptOutcome
        The ended attempt's outcome.
    ended_ts : float or None
        When the task ended [POSIX s, UTC]; None while it goes on (the column is kept).
    not_before_ts : float or None
        When it may be claimed again [POSIX s, UTC]; None when that does not change.
    keeps_work : bool
        Whether the attempt keeps its work (then the task's last error is kept, else it is
        the attempt's error).
    rejected : bool
        Whether its results were rejected: they are void and the task runs again from the start.
    """

    state: TaskState
    outcome: AttemptOutcome
    ended_ts: float | None
    not_before_ts: float | None
    keeps_work: bool
    rejected: bool


def attempt_end(
    state: TaskState | str,
    event: TaskEvent | str,
    *,
    now_ts: float,
    attempts_started: int,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    judgement: Judgement | None = None,
    retry_base_s: float = DEFAULT_RETRY_BASE_S,
    retry_max_s: float = DEFAULT_RETRY_MAX_S,
) -> AttemptEnd:
    """Return where ``event``, ending the task's running attempt at ``now_ts``, leaves the task.

    The one rule for every way an attempt ends (complete, report, expire, fail, hand back,
    cancel), whether the coordinator ends one attempt or a batch of them: the new state
    (:func:`next_state`; a ``rejected`` task is requeued at once), and when it may be claimed
    again: a counted retry after :func:`retry_not_before_ts`, a hand-back or a wanted replica at
    once.

    Parameters
    ----------
    state : TaskState or str
        The task's state now (its attempt running).
    event : TaskEvent or str
        What ends the attempt (one of :data:`EVENT_OUTCOME`).
    now_ts : float
        The present [POSIX s, UTC].
    attempts_started : int
        Attempts that count against ``max_attempts``, the ending one included (see
        :func:`next_state`), >= 1.
    max_attempts : int
        The job's attempts before the dead letter, >= 1.
    judgement : Judgement or None
        For ``report``: the judgement of the task's results.
    retry_base_s, retry_max_s : float
        The retry backoff (:func:`retry_backoff_s`) [s].

    Returns
    -------
    AttemptEnd
        The task's new state and times.
    """
    happening = TaskEvent(event)
    outcome = EVENT_OUTCOME[happening]
    target = next_state(
        state,
        happening,
        attempts_started=attempts_started,
        max_attempts=max_attempts,
        judgement=judgement,
    )
    rejected = target is TaskState.REJECTED
    if rejected:
        target = next_state(
            target, TaskEvent.REQUEUE, attempts_started=attempts_started, max_attempts=max_attempts
        )
    ended_ts = not_before_ts = None
    if target in TERMINAL_STATES:
        ended_ts = now_ts
    elif target is TaskState.QUEUED and not counts_against_attempts(outcome):
        not_before_ts = now_ts
    elif target is TaskState.QUEUED:
        not_before_ts = retry_not_before_ts(
            now_ts, attempts_started, retry_base_s=retry_base_s, retry_max_s=retry_max_s
        )
    elif target is TaskState.REPORTED:
        not_before_ts = now_ts  # a replica may start at once
    return AttemptEnd(
        state=target,
        outcome=outcome,
        ended_ts=ended_ts,
        not_before_ts=not_before_ts,
        keeps_work=keeps_work(outcome),
        rejected=rejected,
    )


def is_ready(not_before_ts: float, now_ts: float) -> bool:
    """Return whether a queued task may be claimed at ``now_ts`` (``not_before_ts <= now_ts``)."""
    return not_before_ts <= now_ts


class SortColumn(NamedTuple):
    """One term of the candidate order: a :class:`~heatgrid.core.scheduling.QueuedTask` field.

    Parameters
    ----------
    field : str
        ``priority`` (int), ``queued_ts`` (float) or ``task_id`` (str, compared by code point).
    descending : bool
        Largest first.
    """

    field: str
    descending: bool = False


_BY_AGE = (SortColumn("queued_ts"), SortColumn("task_id"))
CANDIDATE_ORDER: Mapping[str, tuple[SortColumn, ...]] = {
    "heat-aware": (SortColumn("priority", descending=True), *_BY_AGE),
    "fifo": _BY_AGE,
    "mining-only": (SortColumn("priority", descending=True), *_BY_AGE),
}
"""The order in which a claim locks its candidate tasks, per policy."""
_NUMERIC = frozenset({"priority", "queued_ts"})


def candidate_order(policy: str) -> tuple[SortColumn, ...]:
    """Return the columns that order a claim's candidates under ``policy``, first term first."""
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    return CANDIDATE_ORDER[policy]


def candidate_sort_key(policy: str) -> Callable[[QueuedTask], tuple[Any, ...]]:
    """Return a sort key of :class:`~heatgrid.core.scheduling.QueuedTask` in the claim order.

    Built from :func:`candidate_order`: a descending column is negated (numeric columns only).
    """
    columns = candidate_order(policy)
    for column in columns:
        if column.descending and column.field not in _NUMERIC:
            raise InputError(f"{column.field} cannot sort descending in a key")

    def key(task: QueuedTask) -> tuple[Any, ...]:
        return tuple(
            -getattr(task, column.field) if column.descending else getattr(task, column.field)
            for column in columns
        )

    return key
