"""Typed read models of the coordinator: what an operator, owner or submitter looks at.

Each builder answers one page with a fixed number of SQL statements, whatever the number of
devices, jobs or tasks on it (the dashboard's tests count them). The models are frozen
dataclasses of plain values: no ORM rows leak out, so a page can be rendered after its session
is closed. Visibility follows the role: an operator sees everything, an owner only their own
heaters and their own ledger, a submitter only their own jobs and ledger.

Mining (hashrate, accepted work, earnings per owner) and the job report (energy, useful heat,
CO2) get their own models here when those parts land; a heater's earnings are already read from
the ledger, whatever posted them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.db.models import (
    Account,
    Checkpoint,
    Device,
    HeatWindowSegmentRow,
    Job,
    LedgerEntry,
    LedgerTransaction,
    Task,
    TaskAttempt,
    TelemetryHourly,
    TelemetrySampleRow,
)
from heatgrid.coordinator.errors import NotFoundError
from heatgrid.coordinator.ledger import MICRO_EUR_PER_EUR
from heatgrid.core.leasing import TaskState

__all__ = [
    "COMFORT_TOLERANCE_K",
    "AccountBalance",
    "AttemptView",
    "CheckpointView",
    "DeviceHistory",
    "DeviceStatus",
    "FleetView",
    "HeatSegment",
    "HistoryPoint",
    "JobDetailView",
    "JobSummary",
    "LedgerLine",
    "LedgerView",
    "MiningDevice",
    "MiningView",
    "TaskAttemptView",
    "TaskView",
    "device_history",
    "fleet_view",
    "job_detail_view",
    "job_summaries",
    "jobs_view",
    "ledger_account_for",
    "ledger_view",
    "mining_view",
    "task_attempts",
    "task_views",
]

COMFORT_TOLERANCE_K = 1.0
"""A room further than this from its setpoint is shown as too cold or too hot [K]."""

_J_PER_KWH = 3.6e6


_DONE = (TaskState.COMPLETED, TaskState.VERIFIED)
"""Task states whose result the submitter has (verified, or kept without verification)."""
_RESULT_IN = (*_DONE, TaskState.REPORTED, TaskState.VERIFYING)
"""Task states whose work is all done (the result may still be under verification)."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One heater now: its latest sample, health and what it earned.

    Attributes
    ----------
    room_temp_c, setpoint_c : float or None
        Room air temperature and its setpoint in the latest sample [°C].
    power_w : float or None
        Electric power, all of it heat, in the latest sample [W].
    planned_heat_power_w : float or None
        Heat power the heater's latest heat window plans for now [W].
    health : str
        ``ok``, ``too cold``, ``too hot``, ``no sensor``, ``no data``, ``offline``
        or ``revoked``.
    earnings_eur : float
        What the ledger credited the owner for this heater's work [EUR].
    compute_energy_kwh : float
        Energy this heater burned for settled jobs [kWh].
    """

    device_id: str
    name: str
    kind: str
    owner_id: int
    owner_name: str
    has_room: bool
    online: bool
    revoked: bool
    enrolled_ts: float
    last_seen_ts: float | None
    sample_ts: float | None
    room_temp_c: float | None
    setpoint_c: float | None
    power_w: float | None
    device_temp_c: float | None
    workload: str | None
    hashrate_ths: float | None
    task_id: str | None
    planned_heat_power_w: float | None
    health: str
    earnings_eur: float
    compute_energy_kwh: float


@dataclass(frozen=True, slots=True)
class FleetView:
    """A page of heaters and the totals of every heater the viewer may see.

    Attributes
    ----------
    devices_total, devices_online : int
        Heaters visible to the viewer, and those of them online (not revoked, recent).
    heat_power_w : float
        Power of the online visible heaters, from each one's latest sample [W].
    last_seen_ts : float or None
        The newest heartbeat among the visible heaters [POSIX s]: changes when any arrives.
    """

    now_ts: float
    devices: tuple[DeviceStatus, ...]
    devices_total: int
    devices_online: int
    heat_power_w: float
    last_seen_ts: float | None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of a heater's history: a raw sample, or an hour's means after downsampling."""

    ts: float
    room_temp_c: float | None
    setpoint_c: float | None
    power_w: float
    workload: str | None


@dataclass(frozen=True, slots=True)
class HeatSegment:
    """A segment of a heat window: ``heat_power_w`` [W] from ``start_ts`` for ``duration_s``."""

    start_ts: float
    duration_s: float
    heat_power_w: float


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One lease of a task to a heater, and what came of it (energy in [J])."""

    task_id: str
    task_index: int
    job_id: str
    job_name: str
    attempt: int
    device_id: str
    device_name: str
    outcome: str
    started_ts: float
    ended_ts: float | None
    energy_j: float
    checkpointed_energy_j: float
    error: str | None
    verdict: str | None = None
    """Its result's verification: ``held``, ``verified`` (paid), ``caught`` (forfeited),
    ``void`` (refunded); None when results are not verified."""
    clawed_back: bool = False
    """Paid unchecked, then taken back from its owner when its device was caught (clawback)."""
    clawback_reversed: bool = False
    """Its clawback was reversed: the operator released its device and gave the pay back."""


@dataclass(frozen=True, slots=True)
class TaskAttemptView:
    """One attempt of a task as its submitter sees it in the API: no heater name.

    ``verdict``, ``clawed_back`` and ``clawback_reversed`` as in :class:`AttemptView`.
    """

    attempt: int
    device_id: str
    outcome: str
    verdict: str | None
    clawed_back: bool
    clawback_reversed: bool


@dataclass(frozen=True, slots=True)
class DeviceHistory:
    """A heater: its status, its history since ``since_ts``, its plan and its recent work."""

    status: DeviceStatus
    since_ts: float
    points: tuple[HistoryPoint, ...]
    heat_window: tuple[HeatSegment, ...]
    attempts: tuple[AttemptView, ...]


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job at a glance: what the dashboard's job list and the API's ``JobInfo`` show.

    Attributes
    ----------
    min_vram_gb : float
        As submitted [GB].
    price_eur_per_kwh : float
        Price per kWh burned, fixed at submission [EUR/kWh].
    progress_fraction : float
        Energy of work saved (completed tasks in full, others to their last checkpoint)
        over the energy of all tasks [-].
    energy_j : float
        Energy settled for the job so far [J].
    heat_reused_energy_j : float
        Of ``energy_j``, what heaters burned while warming a room [J].
    cost_eur : float
        What the submitter was charged so far [EUR].
    artifact_sha256 : str or None
        The packed job its tasks run (None: tasks need only their input).
    input_urls : dict
        Named inputs its tasks read.
    verify_quorum : int or None
        Owners that must agree on a checked result, when the job set it.
    verify_rel_l2 : float or None
        Relative L2 within which results' tensors agree, when the job set it.
    """

    job_id: str
    name: str
    submitter_id: int
    submitter_name: str
    state: str
    priority: int
    device_kinds: tuple[str, ...]
    min_vram_gb: float
    max_attempts: int
    price_eur_per_kwh: float
    task_count: int
    tasks_by_state: dict[str, int]
    progress_fraction: float
    energy_j: float
    heat_reused_energy_j: float
    cost_eur: float
    created_ts: float
    ended_ts: float | None
    artifact_sha256: str | None
    input_urls: dict[str, str]
    verify_quorum: int | None = None
    verify_rel_l2: float | None = None

    @property
    def energy_kwh(self) -> float:
        """Energy settled for the job so far [kWh]."""
        return self.energy_j / _J_PER_KWH

    @property
    def tasks_done(self) -> int:
        """Return how many of the job's tasks are done: completed, or verified."""
        return sum(self.tasks_by_state.get(state.value, 0) for state in _DONE)


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task of a job: state, progress [J] and the heater holding its lease."""

    task_id: str
    task_index: int
    state: str
    attempt: int
    energy_j: float
    progress_energy_j: float
    checkpoint_seq: int
    lease_device_id: str | None
    lease_device_name: str | None
    lease_expires_ts: float | None
    result: dict[str, Any] | None
    last_error: str | None

    @property
    def progress_fraction(self) -> float:
        """Share of the task's energy saved by its checkpoints (1 when completed) [-]."""
        if self.state in _RESULT_IN:
            return 1.0
        return min(1.0, self.progress_energy_j / self.energy_j) if self.energy_j > 0 else 0.0


@dataclass(frozen=True, slots=True)
class CheckpointView:
    """A saved state of a task: which heater saved it, at what progress [J], and its size."""

    task_id: str
    task_index: int
    seq: int
    attempt: int
    device_id: str
    device_name: str
    progress_energy_j: float
    size_bytes: int
    created_ts: float


@dataclass(frozen=True, slots=True)
class JobDetailView:
    """A job with its tasks, attempts (which heaters), checkpoints and settled money."""

    summary: JobSummary
    tasks: tuple[TaskView, ...]
    attempts: tuple[AttemptView, ...]
    checkpoints: tuple[CheckpointView, ...]

    @property
    def cost_eur(self) -> float:
        """What the submitter was charged so far [EUR]."""
        return self.summary.cost_eur

    @property
    def heat_reused_kwh(self) -> float:
        """Settled energy burned on heaters that warm a room [kWh]."""
        return self.summary.heat_reused_energy_j / _J_PER_KWH


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """The balance of one ledger account in one unit (``micro_eur`` or ``j``)."""

    account: str
    unit: str
    amount: int

    @property
    def display(self) -> str:
        """The amount in EUR or kWh, as a person reads it."""
        if self.unit == "micro_eur":
            return f"{self.amount / MICRO_EUR_PER_EUR:,.2f} EUR"
        if self.unit == "j":
            return f"{self.amount / _J_PER_KWH:,.3f} kWh"
        return f"{self.amount} {self.unit}"


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One entry on an account: a transaction's ``kind``, its job and heater, and the amount."""

    transaction_id: int
    created_ts: float
    kind: str
    job_id: str | None
    device_id: str | None
    unit: str
    amount: int

    @property
    def display(self) -> str:
        """The amount in EUR or kWh, signed."""
        return AccountBalance(account="", unit=self.unit, amount=self.amount).display


@dataclass(frozen=True, slots=True)
class LedgerView:
    """An account's balances and latest entries; for an operator, every account's balances.

    ``account_names`` maps ledger accounts (``owner:2``) to account names, for an operator.
    """

    account: str
    balances: tuple[AccountBalance, ...]
    lines: tuple[LedgerLine, ...]
    all_balances: tuple[AccountBalance, ...]
    account_names: dict[str, str]


@dataclass(frozen=True, slots=True)
class MiningDevice:
    """What one heater mined over the view's window, from its heartbeat telemetry.

    Attributes
    ----------
    hashrate_ths : float or None
        Hash rate in its latest sample [TH/s] (None: not mining then).
    mean_hashrate_ths : float
        Mean hash rate over the samples taken while mining [TH/s].
    mining_share : float
        Share of its samples in the window taken while mining [-].
    work_ph : float
        Work estimated from the samples: mean hash rate × time spent mining [PH].
    """

    device_id: str
    name: str
    owner_name: str
    hashrate_ths: float | None
    mean_hashrate_ths: float
    mining_share: float
    work_ph: float
    samples: int


@dataclass(frozen=True, slots=True)
class MiningView:
    """The heaters that mined since ``since_ts``, by name, and totals per owner.

    Accepted shares and their earnings come with the coordinator's Stratum proxy; until then
    this is what the heaters report in their telemetry.
    """

    since_ts: float
    devices: tuple[MiningDevice, ...]

    @property
    def hashrate_ths(self) -> float:
        """Hash rate of the heaters now, from their latest samples [TH/s]."""
        return sum(device.hashrate_ths or 0.0 for device in self.devices)

    @property
    def work_ph(self) -> float:
        """Work estimated over the window, all heaters together [PH]."""
        return sum(device.work_ph for device in self.devices)

    @property
    def owners(self) -> tuple[tuple[str, float, float], ...]:
        """``(owner_name, hashrate_ths now, work_ph)`` per owner, by name."""
        totals: dict[str, tuple[float, float]] = {}
        for device in self.devices:
            rate, work = totals.get(device.owner_name, (0.0, 0.0))
            totals[device.owner_name] = (rate + (device.hashrate_ths or 0.0), work + device.work_ph)
        return tuple((name, *totals[name]) for name in sorted(totals))


# --------------------------------------------------------------------------- fleet


def _visible_devices(actor: AccountPrincipal) -> ColumnElement[bool]:
    if actor.is_operator:
        return true()
    return Device.owner_id == actor.account_id


def _latest_sample_ts() -> ColumnElement[float]:
    return (
        select(func.max(TelemetrySampleRow.sample_ts))
        .where(TelemetrySampleRow.device_id == Device.id)
        .correlate(Device)
        .scalar_subquery()
    )


def _online(now_ts: float, online_window_s: float) -> ColumnElement[bool]:
    return and_(Device.revoked_ts.is_(None), Device.last_seen_ts >= now_ts - online_window_s)


def _health(device: Device, sample: TelemetrySampleRow | None, online: bool) -> str:
    if device.revoked_ts is not None or not online or sample is None:
        return (
            "revoked" if device.revoked_ts is not None else "offline" if not online else "no data"
        )
    room_c, setpoint_c = sample.room_temp_c, sample.setpoint_c
    if room_c is None or setpoint_c is None:
        return "no sensor" if device.has_room else "ok"
    if room_c < setpoint_c - COMFORT_TOLERANCE_K:
        return "too cold"
    return "too hot" if room_c > setpoint_c + COMFORT_TOLERANCE_K else "ok"


def _device_statuses(
    session: Session,
    where: ColumnElement[bool],
    *,
    now_ts: float,
    online_window_s: float,
    limit: int | None = None,
    offset: int = 0,
) -> list[DeviceStatus]:
    """Two statements: devices with owner, latest sample and plan; then their ledger sums."""
    planned = (
        select(func.max(HeatWindowSegmentRow.heat_power_w))
        .where(
            HeatWindowSegmentRow.device_id == Device.id,
            HeatWindowSegmentRow.start_ts <= now_ts,
            HeatWindowSegmentRow.start_ts + HeatWindowSegmentRow.duration_s > now_ts,
        )
        .correlate(Device)
        .scalar_subquery()
    )
    query = (
        select(Device, Account.name, TelemetrySampleRow, planned)
        .join(Account, Account.id == Device.owner_id)
        .outerjoin(
            TelemetrySampleRow,
            and_(
                TelemetrySampleRow.device_id == Device.id,
                TelemetrySampleRow.sample_ts == _latest_sample_ts(),
            ),
        )
        .where(where)
        .order_by(Device.name, Device.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    ids = [device.id for device, *_ in rows]
    earnings: dict[str, int] = defaultdict(int)
    energy: dict[str, int] = defaultdict(int)
    if ids:
        sums = session.execute(
            select(LedgerTransaction.device_id, LedgerEntry.unit, func.sum(LedgerEntry.amount))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(
                LedgerTransaction.device_id.in_(ids),
                or_(
                    and_(LedgerEntry.account.startswith("owner:"), LedgerEntry.unit == "micro_eur"),
                    and_(LedgerEntry.account.startswith("device:"), LedgerEntry.unit == "j"),
                ),
            )
            .group_by(LedgerTransaction.device_id, LedgerEntry.unit)
        )
        for device_id, unit, total in sums:
            (earnings if unit == "micro_eur" else energy)[str(device_id)] = int(total)
    statuses = []
    for device, owner_name, sample, planned_w in rows:
        online = (
            device.revoked_ts is None
            and device.last_seen_ts is not None
            and device.last_seen_ts >= now_ts - online_window_s
        )
        statuses.append(
            DeviceStatus(
                device_id=device.id,
                name=device.name,
                kind=device.kind,
                owner_id=device.owner_id,
                owner_name=owner_name,
                has_room=device.has_room,
                online=online,
                revoked=device.revoked_ts is not None,
                enrolled_ts=device.enrolled_ts,
                last_seen_ts=device.last_seen_ts,
                sample_ts=None if sample is None else sample.sample_ts,
                room_temp_c=None if sample is None else sample.room_temp_c,
                setpoint_c=None if sample is None else sample.setpoint_c,
                power_w=None if sample is None else sample.power_w,
                device_temp_c=None if sample is None else sample.device_temp_c,
                workload=None if sample is None else sample.workload,
                hashrate_ths=None if sample is None else sample.hashrate_ths,
                task_id=None if sample is None else sample.task_id,
                planned_heat_power_w=None if planned_w is None else float(planned_w),
                health=_health(device, sample, online),
                earnings_eur=earnings[device.id] / MICRO_EUR_PER_EUR,
                compute_energy_kwh=-energy[device.id] / _J_PER_KWH,
            )
        )
    return statuses


def fleet_view(
    session: Session,
    actor: AccountPrincipal,
    *,
    now_ts: float,
    online_window_s: float,
    limit: int = 200,
    offset: int = 0,
) -> FleetView:
    """Return a page of the heaters ``actor`` may see, by name, with totals.

    Three statements, whatever the page size.

    Parameters
    ----------
    now_ts : float
        The coordinator's clock [POSIX s, UTC].
    online_window_s : float
        A heater heard from within this long is online [s].
    limit, offset : int
        The page: at most ``limit`` heaters after the first ``offset``.
    """
    visible = _visible_devices(actor)
    devices = _device_statuses(
        session,
        visible,
        now_ts=now_ts,
        online_window_s=online_window_s,
        limit=limit,
        offset=offset,
    )
    online = _online(now_ts, online_window_s)
    total, online_count, power_w, last_seen_ts = session.execute(
        select(
            func.count(Device.id),
            func.count(case((online, Device.id))),
            func.coalesce(func.sum(case((online, TelemetrySampleRow.power_w))), 0.0),
            func.max(Device.last_seen_ts),
        )
        .select_from(Device)
        .outerjoin(
            TelemetrySampleRow,
            and_(
                TelemetrySampleRow.device_id == Device.id,
                TelemetrySampleRow.sample_ts == _latest_sample_ts(),
            ),
        )
        .where(visible)
    ).one()
    return FleetView(
        now_ts=now_ts,
        devices=tuple(devices),
        devices_total=int(total or 0),
        devices_online=int(online_count or 0),
        heat_power_w=float(power_w or 0.0),
        last_seen_ts=None if last_seen_ts is None else float(last_seen_ts),
    )


# --------------------------------------------------------------------------- one heater


def _attempts(session: Session, where: ColumnElement[bool], limit: int) -> list[AttemptView]:
    rows = session.execute(
        select(TaskAttempt, Task.task_index, Job.id, Job.name, Device.name)
        .join(Task, Task.id == TaskAttempt.task_id)
        .join(Job, Job.id == Task.job_id)
        .join(Device, Device.id == TaskAttempt.device_id)
        .where(where)
        .order_by(TaskAttempt.started_ts.desc(), TaskAttempt.task_id, TaskAttempt.attempt)
        .limit(limit)
    ).all()
    return [
        AttemptView(
            task_id=attempt.task_id,
            task_index=task_index,
            job_id=job_id,
            job_name=job_name,
            attempt=attempt.attempt,
            device_id=attempt.device_id,
            device_name=device_name,
            outcome=attempt.outcome,
            started_ts=attempt.started_ts,
            ended_ts=attempt.ended_ts,
            energy_j=attempt.energy_j,
            checkpointed_energy_j=attempt.checkpointed_energy_j,
            error=attempt.error,
            verdict=attempt.verdict,
            clawed_back=attempt.clawed_back,
            clawback_reversed=attempt.clawback_reversed_ts is not None,
        )
        for attempt, task_index, job_id, job_name, device_name in rows
    ]


def task_attempts(
    session: Session, job_id: str, tasks: Sequence[TaskView]
) -> dict[str, tuple[TaskAttemptView, ...]]:
    """Return the attempts of ``tasks`` (of job ``job_id``, in index order), per task id.

    One statement of the columns shown (not whole rows: results stay unread), over the tasks'
    range of indexes (a page of the task list), in attempt order.
    """
    found: dict[str, list[TaskAttemptView]] = {task.task_id: [] for task in tasks}
    if tasks:
        rows = session.execute(
            select(
                TaskAttempt.task_id,
                TaskAttempt.attempt,
                TaskAttempt.device_id,
                TaskAttempt.outcome,
                TaskAttempt.verdict,
                TaskAttempt.clawed_back,
                TaskAttempt.clawback_reversed_ts,
            )
            .join(Task, Task.id == TaskAttempt.task_id)
            .where(
                Task.job_id == job_id,
                Task.task_index >= tasks[0].task_index,
                Task.task_index <= tasks[-1].task_index,
            )
            .order_by(Task.task_index, TaskAttempt.attempt)
        )
        for task_id, attempt, device_id, outcome, verdict, clawed, reversed_ts in rows:
            found.setdefault(task_id, []).append(
                TaskAttemptView(
                    attempt=attempt,
                    device_id=device_id,
                    outcome=outcome,
                    verdict=verdict,
                    clawed_back=bool(clawed),
                    clawback_reversed=reversed_ts is not None,
                )
            )
    return {task_id: tuple(runs) for task_id, runs in found.items()}


def device_history(
    session: Session,
    actor: AccountPrincipal,
    device_id: str,
    *,
    now_ts: float,
    online_window_s: float,
    since_ts: float,
    max_points: int = 5000,
    max_attempts: int = 50,
) -> DeviceHistory:
    """Return a heater's status, history since ``since_ts``, heat window and recent attempts.

    Six statements. Raw samples are used where they are kept; before the oldest of them, the
    hourly means left by downsampling.

    Parameters
    ----------
    since_ts : float
        Start of the history [POSIX s].
    max_points : int
        Most raw samples returned (the newest).

    Raises
    ------
    NotFoundError
        The heater does not exist, or ``actor`` may not see it.
    """
    found = _device_statuses(
        session,
        and_(_visible_devices(actor), Device.id == device_id),
        now_ts=now_ts,
        online_window_s=online_window_s,
    )
    if not found:
        raise NotFoundError(f"device_id: no heater {device_id!r} among those you may see")
    samples = list(
        session.scalars(
            select(TelemetrySampleRow)
            .where(
                TelemetrySampleRow.device_id == device_id, TelemetrySampleRow.sample_ts >= since_ts
            )
            .order_by(TelemetrySampleRow.sample_ts.desc())
            .limit(max_points)
        )
    )
    samples.reverse()
    oldest_raw_ts = samples[0].sample_ts if samples else now_ts
    hours = session.scalars(
        select(TelemetryHourly)
        .where(
            TelemetryHourly.device_id == device_id,
            TelemetryHourly.hour_start_ts >= since_ts,
            TelemetryHourly.hour_start_ts < oldest_raw_ts,
        )
        .order_by(TelemetryHourly.hour_start_ts)
    ).all()
    points = [
        HistoryPoint(
            ts=hour.hour_start_ts,
            room_temp_c=hour.mean_room_temp_c,
            setpoint_c=None,
            power_w=hour.mean_power_w,
            workload=None,
        )
        for hour in hours
    ] + [
        HistoryPoint(
            ts=sample.sample_ts,
            room_temp_c=sample.room_temp_c,
            setpoint_c=sample.setpoint_c,
            power_w=sample.power_w,
            workload=sample.workload,
        )
        for sample in samples
    ]
    window = session.scalars(
        select(HeatWindowSegmentRow)
        .where(HeatWindowSegmentRow.device_id == device_id)
        .order_by(HeatWindowSegmentRow.start_ts)
    ).all()
    return DeviceHistory(
        status=found[0],
        since_ts=since_ts,
        points=tuple(points),
        heat_window=tuple(
            HeatSegment(
                start_ts=segment.start_ts,
                duration_s=segment.duration_s,
                heat_power_w=segment.heat_power_w,
            )
            for segment in window
        ),
        attempts=tuple(_attempts(session, TaskAttempt.device_id == device_id, max_attempts)),
    )


def mining_view(
    session: Session, actor: AccountPrincipal, *, now_ts: float, window_s: float = 86_400.0
) -> MiningView:
    """Return what the heaters ``actor`` may see mined over the last ``window_s``; one statement.

    Parameters
    ----------
    now_ts : float
        The coordinator's clock [POSIX s, UTC].
    window_s : float
        How far back the samples are read [s].
    """
    since_ts = now_ts - window_s
    sample = TelemetrySampleRow
    is_mining = sample.workload == "mining"
    latest = aliased(TelemetrySampleRow)
    latest_hashrate = (
        select(latest.hashrate_ths)
        .where(latest.device_id == Device.id)
        .order_by(latest.sample_ts.desc())
        .limit(1)
        .correlate(Device)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Device.id,
            Device.name,
            Account.name,
            func.count(),
            func.sum(case((is_mining, 1), else_=0)),
            func.avg(case((is_mining, sample.hashrate_ths))),
            func.min(sample.sample_ts),
            func.max(sample.sample_ts),
            latest_hashrate,
        )
        .join(Device, Device.id == sample.device_id)
        .join(Account, Account.id == Device.owner_id)
        .where(_visible_devices(actor), sample.sample_ts >= since_ts, sample.sample_ts <= now_ts)
        .group_by(Device.id, Device.name, Account.name)
        .having(func.sum(case((is_mining, 1), else_=0)) > 0)
        .order_by(Device.name, Device.id)
    ).all()
    devices = []
    for device_id, name, owner, count, mining, mean_ths, first_ts, last_ts, now_ths in rows:
        covered_s = (last_ts - first_ts) * count / (count - 1) if count > 1 else 0.0
        share = int(mining) / int(count)
        mean = float(mean_ths or 0.0)
        devices.append(
            MiningDevice(
                device_id=str(device_id),
                name=str(name),
                owner_name=str(owner),
                hashrate_ths=None if now_ths is None else float(now_ths),
                mean_hashrate_ths=mean,
                mining_share=share,
                work_ph=mean * share * covered_s / 1000.0,
                samples=int(count),
            )
        )
    return MiningView(since_ts=since_ts, devices=tuple(devices))


# --------------------------------------------------------------------------- jobs


def _visible_jobs(actor: AccountPrincipal) -> ColumnElement[bool]:
    if actor.is_operator:
        return true()
    return Job.submitter_id == actor.account_id


def _money(session: Session, rows: list[tuple[Job, str]]) -> dict[str, tuple[int, int, int]]:
    """One statement for any number of jobs: (settled J, charged micro-EUR, J that heated rooms).

    Every posting of a task attempt's settlement carries its job and device
    (``leases``): the job's account gets the energy, the submitter's pays, the device's gave it.
    """
    submitters = {job.id: f"submitter:{job.submitter_id}" for job, _ in rows}
    totals: dict[str, list[int]] = {job_id: [0, 0, 0] for job_id in submitters}
    found = session.execute(
        select(
            LedgerTransaction.job_id,
            LedgerEntry.account,
            LedgerEntry.unit,
            Device.has_room,
            func.sum(LedgerEntry.amount),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .outerjoin(Device, Device.id == LedgerTransaction.device_id)
        .where(
            LedgerTransaction.job_id.in_(list(submitters)),
            or_(
                and_(LedgerEntry.account.startswith("job:"), LedgerEntry.unit == "j"),
                and_(LedgerEntry.account.startswith("submitter:"), LedgerEntry.unit == "micro_eur"),
                and_(LedgerEntry.account.startswith("device:"), LedgerEntry.unit == "j"),
            ),
        )
        .group_by(LedgerTransaction.job_id, LedgerEntry.account, LedgerEntry.unit, Device.has_room)
    )
    for job_id, account, unit, has_room, total in found:
        sums = totals[str(job_id)]
        if account == f"job:{job_id}" and unit == "j":
            sums[0] += int(total)
        elif account == submitters[str(job_id)] and unit == "micro_eur":
            sums[1] -= int(total)
        elif str(account).startswith("device:") and unit == "j" and has_room:
            sums[2] -= int(total)
    return {job_id: (a, b, c) for job_id, (a, b, c) in totals.items()}


def _job_summaries(session: Session, rows: list[tuple[Job, str]]) -> list[JobSummary]:
    """Two statements for any number of jobs: task counts and progress, settled money."""
    ids = [job.id for job, _ in rows]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    energy_j: dict[str, float] = defaultdict(float)
    saved_j: dict[str, float] = defaultdict(float)
    money: dict[str, tuple[int, int, int]] = {}
    if ids:
        saved = case(
            (Task.state.in_([state.value for state in _RESULT_IN]), Task.energy_j),
            else_=func.min(Task.progress_energy_j, Task.energy_j)
            if session.get_bind().dialect.name == "sqlite"
            else func.least(Task.progress_energy_j, Task.energy_j),
        )
        for job_id, state, count, total_j, saved_total_j in session.execute(
            select(Task.job_id, Task.state, func.count(), func.sum(Task.energy_j), func.sum(saved))
            .where(Task.job_id.in_(ids))
            .group_by(Task.job_id, Task.state)
        ):
            counts[job_id][str(state)] = int(count)
            energy_j[job_id] += float(total_j or 0.0)
            saved_j[job_id] += float(saved_total_j or 0.0)
        money = _money(session, rows)
    return [
        JobSummary(
            job_id=job.id,
            name=job.name,
            submitter_id=job.submitter_id,
            submitter_name=submitter_name,
            state=job.state,
            priority=job.priority,
            device_kinds=tuple(job.device_kinds),
            min_vram_gb=job.min_vram_gb,
            max_attempts=job.max_attempts,
            price_eur_per_kwh=job.price_eur_per_kwh,
            task_count=job.task_count,
            tasks_by_state=dict(counts[job.id]),
            progress_fraction=saved_j[job.id] / energy_j[job.id] if energy_j[job.id] > 0 else 0.0,
            energy_j=float(money[job.id][0]),
            heat_reused_energy_j=float(money[job.id][2]),
            cost_eur=money[job.id][1] / MICRO_EUR_PER_EUR,
            created_ts=job.created_ts,
            ended_ts=job.ended_ts,
            artifact_sha256=job.artifact_sha256,
            input_urls=dict(job.input_urls or {}),
            verify_quorum=job.verify_quorum,
            verify_rel_l2=job.verify_rel_l2,
        )
        for job, submitter_name in rows
    ]


def job_summaries(session: Session, jobs: Sequence[Job]) -> list[JobSummary]:
    """Return the summaries of ``jobs`` (already chosen and checked), in order; three statements."""
    if not jobs:
        return []
    chosen = select(Account.id, Account.name).where(
        Account.id.in_({job.submitter_id for job in jobs})
    )
    names = {int(account_id): str(name) for account_id, name in session.execute(chosen)}
    return _job_summaries(session, [(job, names[job.submitter_id]) for job in jobs])


def _tasks_query(job_id: str) -> Select[Task, str]:
    return (
        select(Task, Device.name)
        .outerjoin(Device, Device.id == Task.lease_device_id)
        .where(Task.job_id == job_id)
        .order_by(Task.task_index)
    )


def _task_view(task: Task, device_name: str | None) -> TaskView:
    return TaskView(
        task_id=task.id,
        task_index=task.task_index,
        state=task.state,
        attempt=task.attempt,
        energy_j=task.energy_j,
        progress_energy_j=task.progress_energy_j,
        checkpoint_seq=task.checkpoint_seq,
        lease_device_id=task.lease_device_id,
        lease_device_name=device_name,
        lease_expires_ts=task.lease_expires_ts,
        result=task.result,
        last_error=task.last_error,
    )


def task_views(
    session: Session, job_id: str, *, after_index: int | None = None, limit: int | None = None
) -> list[TaskView]:
    """Return a job's tasks in index order, after ``after_index``, at most ``limit``.

    One statement; each task with the name of the heater holding its lease.
    """
    query = _tasks_query(job_id)
    if after_index is not None:
        query = query.where(Task.task_index > after_index)
    if limit is not None:
        query = query.limit(limit)
    return [_task_view(task, device_name) for task, device_name in session.execute(query)]


def jobs_view(
    session: Session, actor: AccountPrincipal, *, limit: int = 100, offset: int = 0
) -> tuple[JobSummary, ...]:
    """Return a page of the jobs ``actor`` may see, newest first; three statements."""
    rows = session.execute(
        select(Job, Account.name)
        .join(Account, Account.id == Job.submitter_id)
        .where(_visible_jobs(actor))
        .order_by(Job.created_ts.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return tuple(_job_summaries(session, [(job, name) for job, name in rows]))


def job_detail_view(
    session: Session, actor: AccountPrincipal, job_id: str, *, max_attempts: int = 500
) -> JobDetailView:
    """Return one job with its tasks, attempts, checkpoints and money; six statements.

    Raises
    ------
    NotFoundError
        The job does not exist, or ``actor`` may not see it.
    """
    row = session.execute(
        select(Job, Account.name)
        .join(Account, Account.id == Job.submitter_id)
        .where(_visible_jobs(actor), Job.id == job_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"job_id: no job {job_id!r} among those you may see")
    job, submitter_name = row
    summary = _job_summaries(session, [(job, submitter_name)])[0]
    tasks = session.execute(_tasks_query(job_id)).all()
    attempts = _attempts(session, Task.job_id == job_id, max_attempts)
    checkpoints = session.execute(
        select(Checkpoint, Task.task_index, Device.name)
        .join(Task, Task.id == Checkpoint.task_id)
        .join(Device, Device.id == Checkpoint.device_id)
        .where(Task.job_id == job_id)
        .order_by(Task.task_index, Checkpoint.seq)
    ).all()
    return JobDetailView(
        summary=summary,
        tasks=tuple(_task_view(task, device_name) for task, device_name in tasks),
        attempts=tuple(attempts),
        checkpoints=tuple(
            CheckpointView(
                task_id=checkpoint.task_id,
                task_index=task_index,
                seq=checkpoint.seq,
                attempt=checkpoint.attempt,
                device_id=checkpoint.device_id,
                device_name=device_name,
                progress_energy_j=checkpoint.progress_energy_j,
                size_bytes=checkpoint.size_bytes,
                created_ts=checkpoint.created_ts,
            )
            for checkpoint, task_index, device_name in checkpoints
        ),
    )


# --------------------------------------------------------------------------- ledger


def ledger_account_for(actor: AccountPrincipal, requested: str | None) -> str:
    """Return the ledger account ``actor`` looks at: its own, or (operator) the one asked for.

    Raises
    ------
    NotFoundError
        A non-operator asked for an account other than its own.
    """
    own = "platform" if actor.is_operator else f"{actor.role}:{actor.account_id}"
    if requested is None or requested == own:
        return own
    if not actor.is_operator:
        raise NotFoundError(f"account: no ledger account {requested!r} among yours")
    return requested


def ledger_view(
    session: Session, actor: AccountPrincipal, account: str, *, max_lines: int = 200
) -> LedgerView:
    """Return an account's balances and newest entries; an operator also gets every balance.

    Two statements (four for an operator). ``account`` comes from :func:`ledger_account_for`.
    """
    balances = session.execute(
        select(LedgerEntry.unit, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account == account)
        .group_by(LedgerEntry.unit)
        .order_by(LedgerEntry.unit)
    ).all()
    lines = session.execute(
        select(LedgerEntry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account == account)
        .order_by(LedgerTransaction.created_ts.desc(), LedgerEntry.id.desc())
        .limit(max_lines)
    ).all()
    everyone: list[AccountBalance] = []
    names: dict[str, str] = {}
    if actor.is_operator:
        names = {
            f"{role}:{account_id}": str(name)
            for account_id, name, role in session.execute(
                select(Account.id, Account.name, Account.role)
            )
        }
        everyone = [
            AccountBalance(account=str(name), unit=str(unit), amount=int(total))
            for name, unit, total in session.execute(
                select(LedgerEntry.account, LedgerEntry.unit, func.sum(LedgerEntry.amount))
                .where(~LedgerEntry.account.startswith("device:"))
                .where(~LedgerEntry.account.startswith("job:"))
                .group_by(LedgerEntry.account, LedgerEntry.unit)
                .order_by(LedgerEntry.account, LedgerEntry.unit)
            )
        ]
    return LedgerView(
        account=account,
        balances=tuple(
            AccountBalance(account=account, unit=str(unit), amount=int(total))
            for unit, total in balances
        ),
        lines=tuple(
            LedgerLine(
                transaction_id=transaction.id,
                created_ts=transaction.created_ts,
                kind=transaction.kind,
                job_id=transaction.job_id,
                device_id=transaction.device_id,
                unit=entry.unit,
                amount=entry.amount,
            )
            for entry, transaction in lines
        ),
        all_balances=tuple(everyone),
        account_names=names,
    )
