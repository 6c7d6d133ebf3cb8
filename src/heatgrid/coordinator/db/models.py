"""The coordinator's tables, as SQLAlchemy 2 ORM models.

Timestamps are POSIX seconds in UTC (``*_ts``, double precision). Secrets (API keys, device
tokens, enrollment codes) are never stored: only the SHA-256 of their random part, under an
identifier that is the token's visible prefix, so that a lookup is one indexed read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from heatgrid.core.leasing import (
    LEASED_STATES,
    STORED_TASK_STATES,
    TERMINAL_STATES,
    AttemptOutcome,
    TaskState,
)

__all__ = [
    "CLAIMABLE_TASK_STATES",
    "HOLDING_TASK_STATES",
    "IDEMPOTENCY_KEY_LENGTH",
    "RESULT_VERDICTS",
    "ROLES",
    "UNFINISHED_TASK_STATES",
    "Account",
    "ApiKey",
    "Artifact",
    "ArtifactOwner",
    "Base",
    "Checkpoint",
    "Device",
    "DeviceChallenge",
    "DeviceReputation",
    "EnrollmentCode",
    "HeatWindowSegmentRow",
    "Job",
    "LedgerEntry",
    "LedgerTransaction",
    "MiningCredential",
    "MiningReject",
    "MiningSettlement",
    "MiningSettlementCredit",
    "MiningShare",
    "PayoutAddress",
    "PayoutBatch",
    "PayoutBatchItem",
    "Task",
    "TaskAttempt",
    "TelemetryHourly",
    "TelemetrySampleRow",
]

ROLES = ("operator", "owner", "submitter")
"""Account roles: runs the coordinator, owns heaters, submits jobs."""

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_HASH_LENGTH = 64  # hex SHA-256
_ID_LENGTH = 32


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names on every database."""

    metadata = MetaData(naming_convention=_NAMING)


class Account(Base):
    """A person or organisation: an operator, a heater owner or a job submitter."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(f"role IN ({_quoted(ROLES)})", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_ts: Mapped[float] = mapped_column(Double)


class ApiKey(Base):
    """An account's API key: ``hgk_<id>_<secret>``; only the secret's SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_ts: Mapped[float] = mapped_column(Double)
    revoked_ts: Mapped[float | None] = mapped_column(Double)


class EnrollmentCode(Base):
    """A one-time code ``hge_<id>_<secret>`` that lets one heater join its owner's fleet."""

    __tablename__ = "enrollment_codes"

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    created_ts: Mapped[float] = mapped_column(Double)
    expires_ts: Mapped[float] = mapped_column(Double)
    used_ts: Mapped[float | None] = mapped_column(Double)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))


class Device(Base):
    """An enrolled heater; its token is ``hgd_<id>_<secret>``."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("kind IN ('asic', 'gpu', 'cpu', 'rack')", name="kind"),
        # Keyset pages, oldest first, of every device and of one owner's:
        Index("ix_devices_enrolled", "enrolled_ts", "id"),
        Index("ix_devices_owner_enrolled", "owner_id", "enrolled_ts", "id"),
    )

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON)
    has_room: Mapped[bool] = mapped_column(Boolean)
    energy_price_eur_per_kwh: Mapped[float | None] = mapped_column(Double)
    country_code: Mapped[str | None] = mapped_column(String(2))
    challenge_due_ts: Mapped[float | None] = mapped_column(Double)
    quarantined_ts: Mapped[float | None] = mapped_column(Double)
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    agent_features: Mapped[list[str] | None] = mapped_column(JSON)
    claim_unproven_reason: Mapped[str | None] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    enrolled_ts: Mapped[float] = mapped_column(Double)
    last_seen_ts: Mapped[float | None] = mapped_column(Double, index=True)
    revoked_ts: Mapped[float | None] = mapped_column(Double)


class TelemetrySampleRow(Base):
    """One telemetry sample; the key (device, sample_ts) stores a re-sent sample once."""

    __tablename__ = "telemetry"
    __table_args__ = (
        CheckConstraint("workload IN ('idle', 'mining', 'task', 'boost')", name="workload"),
    )

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    sample_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    received_ts: Mapped[float] = mapped_column(Double)
    room_temp_c: Mapped[float | None] = mapped_column(Double)
    setpoint_c: Mapped[float | None] = mapped_column(Double)
    power_w: Mapped[float] = mapped_column(Double)
    device_temp_c: Mapped[float | None] = mapped_column(Double)
    workload: Mapped[str] = mapped_column(String(8))
    hashrate_ths: Mapped[float | None] = mapped_column(Double)
    task_id: Mapped[str | None] = mapped_column(String(_ID_LENGTH), index=True)


class TelemetryHourly(Base):
    """Telemetry of one device over one UTC hour, kept after the raw samples are dropped."""

    __tablename__ = "telemetry_hourly"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    hour_start_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    sample_count: Mapped[int] = mapped_column(Integer)
    mean_power_w: Mapped[float] = mapped_column(Double)
    max_power_w: Mapped[float] = mapped_column(Double)
    room_temp_count: Mapped[int] = mapped_column(Integer)
    mean_room_temp_c: Mapped[float | None] = mapped_column(Double)
    min_room_temp_c: Mapped[float | None] = mapped_column(Double)
    max_room_temp_c: Mapped[float | None] = mapped_column(Double)


class HeatWindowSegmentRow(Base):
    """One segment of a device's latest heat window; a new heartbeat replaces them all."""

    __tablename__ = "heat_windows"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    start_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    duration_s: Mapped[float] = mapped_column(Double)
    heat_power_w: Mapped[float] = mapped_column(Double)
    received_ts: Mapped[float] = mapped_column(Double)


JOB_STATES = ("running", "completed", "failed", "cancelled")
"""A job runs until each task is completed (``completed``), dead (``failed``) or cancelled."""

TASK_STATES = STORED_TASK_STATES
"""Task states (:class:`heatgrid.core.leasing.TaskState`); ``dead`` is the dead letter."""

CLAIMABLE_TASK_STATES = (TaskState.QUEUED.value, TaskState.REPORTED.value)
"""States a claim takes tasks from: queued, or reported (a replica, where results are verified)."""

HOLDING_TASK_STATES = tuple(sorted(state.value for state in LEASED_STATES))
"""States in which an attempt of the task holds a lease (:data:`core.leasing.LEASED_STATES`)."""

UNFINISHED_TASK_STATES = tuple(
    sorted(state for state in STORED_TASK_STATES if state not in TERMINAL_STATES)
)
"""The stored states a task leaves again: looked up by ``IN``, a few seeks of the
``(job_id, state)`` index, where ``NOT IN`` the terminal ones walked every finished task."""

ATTEMPT_OUTCOMES = tuple(outcome.value for outcome in AttemptOutcome)
"""How an attempt ended (``running`` while its lease holds)."""

RESULT_VERDICTS = ("held", "verified", "caught", "void")
"""What became of a verified attempt's result: credit held, paid, forfeited, or refunded."""


IDEMPOTENCY_KEY_LENGTH = 200
"""Longest ``Idempotency-Key`` a submission may carry [characters]."""


class Artifact(Base):
    """A packed job (:mod:`heatgrid.jobs.artifact`), named by the SHA-256 of its bytes.

    The blob is in the blob store under ``blob_key``; it is written once, whoever uploads it.
    """

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(_HASH_LENGTH), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(200))
    created_ts: Mapped[float] = mapped_column(Double)


class ArtifactOwner(Base):
    """An account that uploaded an artifact's bytes: it may read it and submit jobs on it."""

    __tablename__ = "artifact_owners"

    sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    created_ts: Mapped[float] = mapped_column(Double)


class Job(Base):
    """A submitter's job: a set of tasks with shared hardware needs, priority and price.

    ``idempotency_key`` (the submission's ``Idempotency-Key`` header, unique per submitter) and
    ``request_sha256`` (of the submission's canonical JSON) let a retried submission find the
    job it created instead of creating another. ``artifact_sha256`` names the packed job its
    tasks run (None: tasks whose ``task_input`` is all they need); ``input_urls`` its inputs
    that stay where they are (name -> fsspec URL).
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"state IN ({_quoted(JOB_STATES)})", name="state"),
        Index("uq_jobs_submitter_idempotency", "submitter_id", "idempotency_key", unique=True),
        # Keyset pages, newest first, of every job and of one submitter's:
        Index("ix_jobs_created", "created_ts", "id"),
        Index("ix_jobs_submitter_created", "submitter_id", "created_ts", "id"),
    )

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(12))
    priority: Mapped[int] = mapped_column(Integer)
    device_kinds: Mapped[list[str]] = mapped_column(JSON)
    min_vram_gb: Mapped[float] = mapped_column(Double)
    max_attempts: Mapped[int] = mapped_column(Integer)
    price_eur_per_kwh: Mapped[float] = mapped_column(Double)
    owner_share: Mapped[float] = mapped_column(Double)
    task_count: Mapped[int] = mapped_column(Integer)
    created_ts: Mapped[float] = mapped_column(Double)
    ended_ts: Mapped[float | None] = mapped_column(Double)
    idempotency_key: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_KEY_LENGTH))
    request_sha256: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    artifact_sha256: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"), index=True)
    input_urls: Mapped[dict[str, str] | None] = mapped_column(JSON)
    verify_quorum: Mapped[int | None] = mapped_column(Integer)
    verify_rel_l2: Mapped[float | None] = mapped_column(Double)


class Task(Base):
    """One unit of a job, leased to one device at a time.

    ``progress_energy_j`` is the energy of work saved by the newest checkpoint; an attempt
    resumes from there. ``attempt`` counts attempts started.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"state IN ({_quoted(TASK_STATES)})", name="state"),
        UniqueConstraint("job_id", "task_index"),
        # The claim query's two orders (heat-aware by priority, fifo), read in index order.
        # On PostgreSQL these three and the lease holder's index are partial: they hold only
        # the rows in the states their queries read (claimable; holding a lease), so a task
        # that is leased or ends is not written into the claim indexes, nor an ended one into
        # the lease indexes (see docs/performance.md, "Claims, sixth pass"). The queries name
        # those states as literals (``leases.state_in``), for prepared statements' generic
        # plans to prove the predicate. SQLite's planner matches a partial index's predicate
        # only to the same literal terms, so it keeps full indexes.
        Index(
            "ix_tasks_queue",
            "state",
            text("priority DESC"),
            "queued_ts",
            "id",
            postgresql_where=text(f"state IN ({_quoted(CLAIMABLE_TASK_STATES)})"),
        ),
        Index(
            "ix_tasks_fifo",
            "state",
            "queued_ts",
            "id",
            postgresql_where=text(f"state IN ({_quoted(CLAIMABLE_TASK_STATES)})"),
        ),
        Index(
            "ix_tasks_lease",
            "state",
            "lease_expires_ts",
            postgresql_where=text(f"state IN ({_quoted(HOLDING_TASK_STATES)})"),
        ),
        Index(
            "ix_tasks_lease_device_id",
            "lease_device_id",
            postgresql_where=text("lease_device_id IS NOT NULL"),
        ),
        Index("ix_tasks_job_state", "job_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    task_index: Mapped[int] = mapped_column(Integer)
    submitter_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12))
    priority: Mapped[int] = mapped_column(Integer)
    runs_on_gpu: Mapped[bool] = mapped_column(Boolean)
    runs_on_cpu: Mapped[bool] = mapped_column(Boolean)
    min_vram_gb: Mapped[float] = mapped_column(Double)
    task_input: Mapped[dict[str, Any]] = mapped_column(JSON)
    energy_j: Mapped[float] = mapped_column(Double)
    checkpoint_every_j: Mapped[float] = mapped_column(Double)
    progress_energy_j: Mapped[float] = mapped_column(Double)
    checkpoint_seq: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    queued_ts: Mapped[float] = mapped_column(Double)
    not_before_ts: Mapped[float] = mapped_column(Double)
    lease_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    lease_expires_ts: Mapped[float | None] = mapped_column(Double)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_sha256: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    last_error: Mapped[str | None] = mapped_column(Text)
    ended_ts: Mapped[float | None] = mapped_column(Double)
    quorum: Mapped[int | None] = mapped_column(Integer)
    replay_of_attempt: Mapped[int | None] = mapped_column(Integer)
    """The attempt whose training segment this round replays (None: whole replicas)."""
    replay_start_seq: Mapped[int | None] = mapped_column(Integer)
    """The original attempt's checkpoint a replay resumes from (None: the task's beginning)."""
    replay_end_seq: Mapped[int | None] = mapped_column(Integer)
    """The original's checkpoint whose fingerprint a replay must reach (None: its result's)."""
    replay_stop_step: Mapped[int | None] = mapped_column(BigInteger)
    """The step a replay stops at, its end checkpoint's [steps] (None: run to the end)."""
    spent_checkpoint_seq: Mapped[int | None] = mapped_column(Integer)
    """Its checkpoints up to this number serve no attempt any more (its result was verified,
    refuted or voided): the sweeper removes their blobs and rows. None: all may still serve."""


class TaskAttempt(Base):
    """One lease of a task to a device, and what came of it.

    Where results are verified, a completed attempt keeps its ``result`` and its
    ``result_sha256``, and ``verdict`` says what became of its credit (``RESULT_VERDICTS``;
    None: not a verified result).
    """

    __tablename__ = "task_attempts"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_quoted(ATTEMPT_OUTCOMES)})", name="outcome"),
        CheckConstraint(f"verdict IN ({_quoted(RESULT_VERDICTS)})", name="verdict"),
    )

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(12))
    started_ts: Mapped[float] = mapped_column(Double)
    ended_ts: Mapped[float | None] = mapped_column(Double)
    start_progress_energy_j: Mapped[float] = mapped_column(Double)
    energy_j: Mapped[float] = mapped_column(Double)
    checkpointed_energy_j: Mapped[float] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_sha256: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    verdict: Mapped[str | None] = mapped_column(String(12))
    start_mark: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The step and fingerprint of the state its job restored at its start, as reported with
    its result (:class:`heatgrid.protocol.jobs.CheckpointMark`); None: none reported."""
    paid_unchecked_ts: Mapped[float | None] = mapped_column(Double)
    """When its held credit was paid to its owner by a later passed spot check of its device,
    the result itself never checked [s, POSIX]; None: paid as checked, or not paid. Such a
    result may be taken back when its device is caught
    (:func:`heatgrid.core.trust.clawback_due`)."""
    clawed_back: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """What it was paid was taken back from its owner and refunded to the submitter (clawback,
    ``Settings.clawback_window_s``)."""
    clawback_reversed_ts: Mapped[float | None] = mapped_column(Double)
    """When its clawback was reversed by the operator's release of its device, what was taken
    given back [s, POSIX]; None: not reversed (``clawed_back`` stays true either way)."""


class Checkpoint(Base):
    """A task's saved state: metadata here, the blob in the checkpoint store (fsspec).

    Only a task's newest checkpoints keep their blob; ``pruned_ts`` says when an older one's
    blob was removed.
    """

    __tablename__ = "checkpoints"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    progress_energy_j: Mapped[float] = mapped_column(Double)
    blob_key: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    created_ts: Mapped[float] = mapped_column(Double)
    pruned_ts: Mapped[float | None] = mapped_column(Double)
    step: Mapped[int | None] = mapped_column(BigInteger)
    """The training step it was saved after, when the task said [steps]."""
    fingerprint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The fingerprint of its tensors (:class:`heatgrid.protocol.jobs.TensorFingerprintBody`)."""
    replay_rank: Mapped[float | None] = mapped_column(Double)
    """A secret uniform draw in [0, 1): the older checkpoints of lowest rank are the ones kept
    for segment replay (``Settings.replay_keep``); never shown to devices."""


class LedgerTransaction(Base):
    """A balanced set of ledger entries; ``key`` makes posting it twice impossible."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(_ID_LENGTH))
    device_id: Mapped[str | None] = mapped_column(String(_ID_LENGTH))
    created_ts: Mapped[float] = mapped_column(Double)


class LedgerEntry(Base):
    """One side of a transaction: ``amount`` (integer, signed) of ``unit`` on ``account``.

    Units: ``"micro_eur"`` (1e-6 EUR), ``"j"`` (joules) and ``"sat"`` (satoshi, mining).
    Within a transaction the amounts of each unit sum to zero. Accounts read
    ``submitter:<id>``, ``owner:<id>``, ``platform``, ``device:<id>``, ``job:<id>``, and for
    mining ``pool`` and ``paid_out``.
    """

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(BigInteger)


_ROW_ID = BigInteger().with_variant(Integer, "sqlite")
"""A 64-bit row id that SQLite still treats as its ``rowid`` (``INTEGER PRIMARY KEY``)."""


class MiningCredential(Base):
    """A device's Stratum password for the coordinator's proxy (not its API token).

    Miners authorize with the device id as user name (a ``.worker`` suffix allowed) and this
    password; only the SHA-256 of its random part is kept.
    """

    __tablename__ = "mining_credentials"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    created_ts: Mapped[float] = mapped_column(Double)


class MiningSettlement(Base):
    """One payout run: the accepted work it covers, what it earned and the operator's fee.

    ``scheme`` is ``"fpps"`` (at ``hashprice``) or ``"pro_rata"`` (on what the pool paid);
    amounts are satoshi.
    """

    __tablename__ = "mining_settlements"
    __table_args__ = (CheckConstraint("scheme IN ('fpps', 'pro_rata')", name="scheme"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scheme: Mapped[str] = mapped_column(String(12))
    created_ts: Mapped[float] = mapped_column(Double)
    until_ts: Mapped[float] = mapped_column(Double)
    work_diff1: Mapped[float] = mapped_column(Double)
    gross_sat: Mapped[int] = mapped_column(BigInteger)
    fee_sat: Mapped[int] = mapped_column(BigInteger)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)


class MiningShare(Base):
    """A share the proxy accepted, recorded once and durably before the miner hears so.

    ``share_key`` is the SHA-256 of what makes the work unique (upstream job, extranonce1,
    extranonce2, ntime, nonce, version), so a share sent twice, to any proxy, is stored once.
    ``difficulty`` is the share target's difficulty [difficulty-1 shares]; ``block_hash`` is
    set when the share also met the network target. ``settlement_id`` is set when a payout run
    has credited it.
    """

    __tablename__ = "mining_shares"
    __table_args__ = (Index("ix_mining_shares_device_accepted", "device_id", "accepted_ts"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    share_key: Mapped[str] = mapped_column(String(_HASH_LENGTH), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    worker: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(64))
    difficulty: Mapped[float] = mapped_column(Double)
    accepted_ts: Mapped[float] = mapped_column(Double)
    block_hash: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    upstream_accepted: Mapped[bool | None] = mapped_column(Boolean)
    settlement_id: Mapped[int | None] = mapped_column(
        ForeignKey("mining_settlements.id"), index=True
    )


class MiningReject(Base):
    """Shares the proxy rejected, counted per device, reason and hour."""

    __tablename__ = "mining_rejects"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    hour_start_ts: Mapped[float] = mapped_column(Double, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class PayoutAddress(Base):
    """Where an owner's mining earnings are paid: a Bitcoin address checked for its network."""

    __tablename__ = "payout_addresses"

    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(100))
    network: Mapped[str] = mapped_column(String(16))
    updated_ts: Mapped[float] = mapped_column(Double)


CHALLENGE_STATES = ("issued", "committed", "passed", "failed")
"""A challenge is issued, committed to by the device, then passed or failed."""


class DeviceChallenge(Base):
    """A hardware challenge handed to a device (:mod:`heatgrid.core.challenge`).

    ``root_hex`` is the device's commitment; ``places`` the (link, row) pairs drawn after it.
    ``memory_bytes`` is the working set asked for, ``memory_root_hex`` the commitment to it,
    ``blocks`` its blocks drawn after it, and ``seal_hex`` (received at ``sealed_ts``) the
    digest of the blocks the device will show.
    """

    __tablename__ = "device_challenges"
    __table_args__ = (
        CheckConstraint(f"state IN ({_quoted(CHALLENGE_STATES)})", name="state"),
        Index("ix_device_challenges_device_issued", "device_id", "issued_ts"),
    )

    id: Mapped[str] = mapped_column(String(_ID_LENGTH), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    seed: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer)
    links: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deadline_s: Mapped[float] = mapped_column(Double)
    claimed_flops_per_s: Mapped[float] = mapped_column(Double)
    issued_ts: Mapped[float] = mapped_column(Double)
    committed_ts: Mapped[float | None] = mapped_column(Double)
    root_hex: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    places: Mapped[list[list[int]] | None] = mapped_column(JSON)
    memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    memory_root_hex: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    blocks: Mapped[list[int] | None] = mapped_column(JSON)
    sealed_ts: Mapped[float | None] = mapped_column(Double)
    seal_hex: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    ended_ts: Mapped[float | None] = mapped_column(Double)


class MiningSettlementCredit(Base):
    """What one payout run credited for one device's work: its part of the net, after the fee.

    The owner's ledger account is credited the sum over their devices; this row keeps the
    per-device figure for the mining report.
    """

    __tablename__ = "mining_settlement_credits"

    settlement_id: Mapped[int] = mapped_column(
        ForeignKey("mining_settlements.id"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True, index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    share_count: Mapped[int] = mapped_column(BigInteger)
    work_diff1: Mapped[float] = mapped_column(Double)
    credited_sat: Mapped[int] = mapped_column(BigInteger)


PAYOUT_BATCH_STATES = ("pending", "paid", "cancelled")
"""A payout batch is ``pending`` until the operator records its transaction id (``paid``) or
drops it unpaid (``cancelled``)."""


class PayoutBatch(Base):
    """A set of owner payouts that one wallet transaction pays (``bitcoin-cli sendmany``).

    At most one batch is pending at a time (a partial unique index), so an owner's balance is
    never put in two batches.
    """

    __tablename__ = "payout_batches"
    __table_args__ = (
        CheckConstraint(f"state IN ({_quoted(PAYOUT_BATCH_STATES)})", name="state"),
        Index(
            "uq_payout_batches_pending",
            "state",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network: Mapped[str] = mapped_column(String(16))
    min_sat: Mapped[int] = mapped_column(BigInteger)
    total_sat: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(12))
    created_ts: Mapped[float] = mapped_column(Double)
    txid: Mapped[str | None] = mapped_column(String(_HASH_LENGTH))
    paid_ts: Mapped[float | None] = mapped_column(Double)


class PayoutBatchItem(Base):
    """One owner's payout in a batch: ``amount_sat`` to ``address``."""

    __tablename__ = "payout_batch_items"

    batch_id: Mapped[int] = mapped_column(ForeignKey("payout_batches.id"), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True, index=True)
    address: Mapped[str] = mapped_column(String(100))
    amount_sat: Mapped[int] = mapped_column(BigInteger)


class DeviceReputation(Base):
    """A device's record on one job kind (:class:`heatgrid.core.trust.Reputation`).

    ``consecutive_verified`` counts its own results in a row whose drawn spot checks devices
    of other owners agreed with (a replica it ran for another device adds nothing:
    :func:`heatgrid.core.trust.after_check`); a disagreement resets it to zero. ``job_kind``
    is the SHA-256 of the job's artifact (``inline`` for jobs without one).
    """

    __tablename__ = "device_reputations"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    job_kind: Mapped[str] = mapped_column(String(_HASH_LENGTH), primary_key=True)
    consecutive_verified: Mapped[int] = mapped_column(Integer)
    updated_ts: Mapped[float] = mapped_column(Double)
