"""Protocol version 1: the messages a heater's agent and the coordinator exchange over HTTP.

Every message is strict: numbers must be finite and in range, strings are not coerced into
numbers, unknown fields are refused, and lists have a maximum length. (An agent reads the
coordinator's answers with :func:`heatgrid.protocol.wire.parse_response`, which ignores
unknown fields, so a coordinator may add a field to an answer.) Each request carries
``protocol_version`` so that a coordinator can refuse a message it does not understand with
a clear answer instead of misreading it.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from heatgrid.core.carbon import GRID_CARBON_G_PER_KWH
from heatgrid.core.task_energy import EnergyMethod
from heatgrid.protocol.challenge import ChallengeOrder
from heatgrid.protocol.features import MAX_FEATURES, FeatureName
from heatgrid.protocol.jobs import (
    ArtifactRef,
    CheckpointMark,
    InputName,
    InputUrl,
    TensorFingerprintBody,
    result_fingerprint,
)
from heatgrid.protocol.values import JsonObject, Text

__all__ = [
    "MAX_ATTEMPT",
    "MAX_BATCHED_COMPLETIONS",
    "MAX_CHECKPOINT_CHUNKS",
    "MAX_CLAIM_SLOTS",
    "MAX_HEAT_WINDOW_SEGMENTS",
    "MAX_SAMPLES_PER_HEARTBEAT",
    "PROTOCOL_VERSION",
    "BatchedCompletion",
    "CheckpointChunkQuery",
    "CheckpointChunkReceipt",
    "CheckpointChunksMissing",
    "CheckpointCommit",
    "CheckpointReceipt",
    "ClaimRequest",
    "ClaimResponse",
    "CompletionBatch",
    "CompletionBatchResponse",
    "CompletionOutcome",
    "CountryCode",
    "DeviceKind",
    "DeviceMining",
    "EnrollRequest",
    "EnrollResponse",
    "Hardware",
    "Heartbeat",
    "HeartbeatResponse",
    "HeatWindowSegment",
    "MiningCredentials",
    "TaskCompletion",
    "TaskFailure",
    "TaskHandBack",
    "TaskLease",
    "TaskProgress",
    "TaskStatus",
    "TelemetrySample",
    "Workload",
]

PROTOCOL_VERSION: Final = 1
"""The version of the messages in this module."""

MAX_SAMPLES_PER_HEARTBEAT = 2000
"""Most telemetry samples in one heartbeat (a day and more at one sample a minute)."""

MAX_CLAIM_SLOTS = 64
"""Most tasks one claim may ask for (a heater with many slots, e.g. one task per core of a
64-core CPU heater, claims them in one call)."""

MAX_HEAT_WINDOW_SEGMENTS = 288
"""Most segments in one heat window (a day in 5-minute steps)."""

MAX_CHECKPOINT_CHUNKS = 65_536
"""Most chunks in one checkpoint."""

_Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

DeviceKind = Literal["asic", "gpu", "cpu", "rack"]
"""What burns the power: a Bitcoin ASIC, a GPU, a CPU, or a rack of several."""


def _known_country(code: str) -> str:
    if code not in GRID_CARBON_G_PER_KWH:
        known = ", ".join(sorted(GRID_CARBON_G_PER_KWH))
        raise ValueError(f"no grid carbon intensity for country {code!r}; known: {known}")
    return code


CountryCode = Annotated[
    str,
    StringConstraints(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$"),
    AfterValidator(_known_country),
]
"""Where a device draws its power: ISO 3166-1 alpha-2 (``GB`` for the UK) or ``EU``, one with
a grid carbon intensity in :data:`heatgrid.core.carbon.GRID_CARBON_G_PER_KWH`."""

Workload = Literal["idle", "mining", "task", "boost"]
"""What the power computes: nothing, Bitcoin mining, a job's task, or heat only (boost)."""

_EARLIEST_TS = 946_684_800.0  # 2000-01-01T00:00:00Z
_LATEST_TS = 4_102_444_800.0  # 2100-01-01T00:00:00Z
_MAX_POWER_W = 1_000_000.0  # a rack of heaters, generously
_MAX_WINDOW_DURATION_S = 7 * 86_400.0

Timestamp = Annotated[float, Field(ge=_EARLIEST_TS, le=_LATEST_TS)]
Power = Annotated[float, Field(ge=0.0, le=_MAX_POWER_W)]
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Name = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_PRINTABLE)
]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9]+$")]
Energy = Annotated[float, Field(ge=0.0, le=1.0e15)]
MAX_ATTEMPT = 1_000_000
Attempt = Annotated[int, Field(ge=1, le=MAX_ATTEMPT)]
"""An attempt's number as leased: 1 to :data:`MAX_ATTEMPT` (a database integer either way)."""
Secret = Annotated[
    str, StringConstraints(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")
]


class _Message(BaseModel):
    """Base of every wire message: strict, frozen, finite numbers, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Hardware(_Message):
    """What a heater is made of, as its agent reports it at enrollment and in heartbeats.

    Attributes
    ----------
    model : str or None
        Maker and model, free text (e.g. ``"Antminer S9"``).
    max_power_w : float
        Most electric power the heater can draw [W]; all of it becomes heat.
    min_power_w : float
        Least power while computing [W] (an ASIC's floor); below it the heater cycles on/off.
    hashrate_ths : float or None
        Hash rate at full power [TH/s], for ASICs.
    vram_gb : float or None
        GPU memory [GB], for GPUs.
    cpu_cores : int or None
        Number of CPU cores offered to tasks.
    """

    model: Annotated[Text, StringConstraints(max_length=100)] | None = None
    max_power_w: Annotated[float, Field(gt=0.0, le=_MAX_POWER_W)]
    min_power_w: Power = 0.0
    hashrate_ths: Annotated[float, Field(ge=0.0, le=1.0e6)] | None = None
    vram_gb: Annotated[float, Field(ge=0.0, le=1.0e5)] | None = None
    cpu_cores: Annotated[int, Field(ge=1, le=100_000)] | None = None

    @model_validator(mode="after")
    def _min_below_max(self) -> Hardware:
        if self.min_power_w > self.max_power_w:
            raise ValueError(
                f"min_power_w ({self.min_power_w}) must not exceed max_power_w ({self.max_power_w})"
            )
        return self


class EnrollRequest(_Message):
    """A heater asks to join, with the one-time code its owner got from the coordinator.

    Attributes
    ----------
    protocol_version : int
        Always ``1`` for this module.
    enrollment_code : str
        The one-time code.
    device_name : str
        A name the owner recognises (``"living room"``), 1 to 100 printable characters.
    device_kind : str
        ``"asic"``, ``"gpu"``, ``"cpu"`` or ``"rack"``.
    hardware : Hardware
        What the heater is made of.
    has_room : bool
        True when the heater warms a room whose temperature it measures (it is a heater, not
        only a compute node).
    energy_price_eur_per_kwh : float or None
        What the device's electricity costs [EUR/kWh], 0 to 10: a rack or a mining farm buys
        its own; None when not said (a home heater pays its home's tariff).
    country_code : str or None
        Country whose grid powers the device (:data:`CountryCode`); the job report takes its
        carbon intensity from it. None when not said (the coordinator's default is used).
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    enrollment_code: Secret
    device_name: Name
    device_kind: DeviceKind
    hardware: Hardware
    has_room: bool
    energy_price_eur_per_kwh: Annotated[float, Field(ge=0.0, le=10.0)] | None = None
    country_code: CountryCode | None = None


class EnrollResponse(_Message):
    """The coordinator's answer to an enrollment: the device's identity and its secret token.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    device_id : str
        The device's identifier, used in the paths of later requests.
    device_token : str
        The device's bearer token; the coordinator keeps only its hash, so it is shown once.
    heartbeat_interval_s : float
        How often the coordinator expects a heartbeat [s].
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    device_id: str
    device_token: str
    heartbeat_interval_s: Annotated[float, Field(gt=0.0)]


class TelemetrySample(_Message):
    """One measurement taken by the agent.

    Attributes
    ----------
    sample_ts : float
        When it was taken [POSIX s, UTC]; a sample is stored once per device and timestamp.
    room_temp_c : float or None
        Room air temperature [°C]; None when the heater has no room sensor or it failed.
    setpoint_c : float or None
        The room's setpoint [°C].
    power_w : float
        Electric power drawn, which is also the heat delivered [W].
    device_temp_c : float or None
        Hottest temperature on the device (chip or board) [°C].
    workload : str
        ``"idle"``, ``"mining"``, ``"task"`` or ``"boost"``.
    hashrate_ths : float or None
        Measured hash rate [TH/s], when mining.
    task_id : str or None
        The leased task the power ran, when ``workload`` is ``"task"``.
    """

    sample_ts: Timestamp
    room_temp_c: Annotated[float, Field(ge=-50.0, le=80.0)] | None = None
    setpoint_c: Annotated[float, Field(ge=0.0, le=40.0)] | None = None
    power_w: Power
    device_temp_c: Annotated[float, Field(ge=-50.0, le=150.0)] | None = None
    workload: Workload
    hashrate_ths: Annotated[float, Field(ge=0.0, le=1.0e6)] | None = None
    task_id: Identifier | None = None


class HeatWindowSegment(_Message):
    """A stretch of time over which the heater expects to burn a given power.

    Attributes
    ----------
    start_ts : float
        Start of the segment [POSIX s, UTC].
    duration_s : float
        Its length [s], more than 0 and at most 7 days.
    heat_power_w : float
        Heat the room wants over the segment, which is the power the heater may burn [W].
    """

    start_ts: Timestamp
    duration_s: Annotated[float, Field(gt=0.0, le=_MAX_WINDOW_DURATION_S)]
    heat_power_w: Power


class Heartbeat(_Message):
    """What a heater's agent sends periodically: recent telemetry and its heat window.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    sent_ts : float
        When the agent sent it [POSIX s, UTC], by the agent's clock.
    telemetry : list of TelemetrySample
        Samples not yet acknowledged, each with a distinct ``sample_ts``; a re-sent sample is
        stored once. At most :data:`MAX_SAMPLES_PER_HEARTBEAT`.
    heat_window : list of HeatWindowSegment
        The heat the room expects to want from now on, in time order and without overlap;
        it replaces the window sent before. At most :data:`MAX_HEAT_WINDOW_SEGMENTS`.
    device_kind : str or None
        What the heater computes on now, when the agent says (its configuration may have
        changed since enrollment); None: unchanged. Agents older than this field omit it.
    hardware : Hardware or None
        The heater's hardware now (power range, GPU memory, …); it replaces what the
        coordinator knew, which its scheduler uses from then on. None: unchanged.
    features : list of str
        The features this agent understands (:mod:`heatgrid.protocol.features`), each once:
        the coordinator sends a meaning-changing field's value only to an agent that declares
        its feature. Every heartbeat says them all (an agent may have been updated, or rolled
        back, since the last); agents older than this field send none. Names the coordinator
        does not know are ignored.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    sent_ts: Timestamp
    telemetry: Annotated[list[TelemetrySample], Field(max_length=MAX_SAMPLES_PER_HEARTBEAT)] = []
    heat_window: Annotated[list[HeatWindowSegment], Field(max_length=MAX_HEAT_WINDOW_SEGMENTS)] = []
    device_kind: DeviceKind | None = None
    hardware: Hardware | None = None
    features: Annotated[list[FeatureName], Field(max_length=MAX_FEATURES)] = []

    @model_validator(mode="after")
    def _consistent(self) -> Heartbeat:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features: a feature is declared twice")
        seen: set[float] = set()
        for index, sample in enumerate(self.telemetry):
            if sample.sample_ts in seen:
                raise ValueError(
                    f"telemetry[{index}].sample_ts {sample.sample_ts} repeats an earlier sample"
                )
            seen.add(sample.sample_ts)
        for index in range(1, len(self.heat_window)):
            before, segment = self.heat_window[index - 1], self.heat_window[index]
            if segment.start_ts < before.start_ts + before.duration_s:
                raise ValueError(
                    f"heat_window[{index}].start_ts {segment.start_ts} overlaps or precedes "
                    f"heat_window[{index - 1}], which ends at {before.start_ts + before.duration_s}"
                )
        return self


class HeartbeatResponse(_Message):
    """The coordinator's answer to a heartbeat.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    server_ts : float
        The coordinator's clock when it answered [POSIX s, UTC]; agents use it to see skew.
    next_heartbeat_s : float
        When to send the next heartbeat, from now [s].
    stored_samples : int
        Samples of this heartbeat stored now.
    duplicate_samples : int
        Samples already stored before (re-sent); the agent may forget them too.
    leased_task_ids : list of str
        Tasks whose lease the device holds, renewed by this heartbeat; an attempt of a task
        not listed has lost its lease and must stop.
    lease_expires_ts : float or None
        When those leases lapse without further news [POSIX s, UTC].
    challenge : ChallengeOrder or None
        A hardware challenge to compute now (:mod:`heatgrid.protocol.challenge`).
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    server_ts: float
    next_heartbeat_s: Annotated[float, Field(gt=0.0)]
    stored_samples: Annotated[int, Field(ge=0)]
    duplicate_samples: Annotated[int, Field(ge=0)]
    leased_task_ids: list[str] = []
    lease_expires_ts: float | None = None
    challenge: ChallengeOrder | None = None


class ClaimRequest(_Message):
    """A device asks for tasks to run on the heat its room wants.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    slots : int
        How many more tasks it can run now, 1 to :data:`MAX_CLAIM_SLOTS`.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    slots: Annotated[int, Field(ge=1, le=MAX_CLAIM_SLOTS)] = 1


class TaskLease(_Message):
    """A task leased to the device until ``lease_expires_ts`` (renewed by heartbeats).

    Attributes
    ----------
    task_id, job_id : str
        Identifiers.
    attempt : int
        This attempt's number (1 for the first); every report names it.
    lease_expires_ts : float
        When the lease lapses unless renewed [POSIX s, UTC].
    task_input : dict
        The task's input, as the submitter gave it (checked JSON, see :mod:`.values`).
    energy_j : float
        The submitter's estimate of the task's whole energy [J].
    checkpoint_every_j : float
        Energy between checkpoints the coordinator expects [J].
    progress_energy_j : float
        Energy of the work saved by the newest checkpoint [J]; resume from there.
    checkpoint_seq : int or None
        The newest checkpoint's number, to download; None: start from the beginning.
    task_index : int
        The task's number within its job, from 0.
    artifact : ArtifactRef or None
        The packed job the task runs (download it from ``GET /v1/artifacts/{sha256}`` and
        check its hash); its ``task_input`` is then the task's parameters (``ctx.params``).
        None: a task whose ``task_input`` is all it needs.
    input_urls : dict
        Inputs the job reads where they are: name -> fsspec URL.
    stop_step : int or None
        A segment replay (verification): resume from ``checkpoint_seq`` (another attempt's),
        stop at this training step and complete with the fingerprint reached there (a result
        of ``replay_step`` and ``tensor_fingerprint``); None: run the task to its end.
    """

    task_id: str
    job_id: str
    attempt: int
    lease_expires_ts: float
    task_input: JsonObject
    energy_j: float
    checkpoint_every_j: float
    progress_energy_j: float
    checkpoint_seq: int | None
    task_index: int = 0
    artifact: ArtifactRef | None = None
    input_urls: dict[InputName, InputUrl] = {}
    stop_step: Annotated[int, Field(ge=1, le=1 << 53)] | None = None


class ClaimResponse(_Message):
    """The tasks granted to a claim (possibly none: then the device mines)."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    server_ts: float
    leases: list[TaskLease]


class TaskProgress(_Message):
    """A running attempt reports the energy it has burned; it renews the lease.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    attempt : int
        The attempt, as leased.
    energy_j : float
        Energy burned by this attempt so far [J], never decreasing.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    attempt: Attempt
    energy_j: Energy


class TaskCompletion(_Message):
    """An attempt finished; the same completion sent twice is accepted once.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    attempt : int
        The attempt, as leased.
    energy_j : float
        Energy burned by this attempt in all [J].
    energy_method : str
        How ``energy_j`` was found: ``rapl``, ``nvml`` or ``cpu_time_estimate`` (see
        :data:`heatgrid.core.task_energy.EnergyMethod`); anything else is refused.
    result : dict
        The task's result: a JSON object of at most :data:`~.values.MAX_JSON_BYTES` nested
        at most :data:`~.values.MAX_JSON_DEPTH` deep, finite numbers, no NUL, valid Unicode.
        A ``tensor_fingerprint`` in it must be well formed
        (:class:`~heatgrid.protocol.jobs.TensorFingerprintBody`).
    start_mark : CheckpointMark or None
        The step and tensor fingerprint of the state the job restored from the lease's
        ``checkpoint_seq`` (``ctx.restored``), both given; None: the attempt started afresh,
        or its job does not say (an agent before it was sent sends none). A segment replay's
        start is checked by it: the state another heater's checkpoint holds must be the one
        that heater's mark claims.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    attempt: Attempt
    energy_j: Energy
    energy_method: EnergyMethod = "cpu_time_estimate"
    result: JsonObject
    start_mark: CheckpointMark | None = None

    @field_validator("result")
    @classmethod
    def _fingerprint_well_formed(cls, result: dict[str, object]) -> dict[str, object]:
        result_fingerprint(result)  # a malformed fingerprint is refused here, not read later
        return result

    @field_validator("start_mark")
    @classmethod
    def _start_mark_whole(cls, mark: CheckpointMark | None) -> CheckpointMark | None:
        if mark is not None and (mark.step is None or mark.fingerprint is None):
            raise ValueError("a start mark needs both its step and its fingerprint")
        return mark


class TaskFailure(_Message):
    """An attempt failed; the task is retried with backoff until its attempts run out.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    attempt : int
        The attempt, as leased.
    energy_j : float
        Energy burned by this attempt in all [J].
    energy_method : str
        How ``energy_j`` was found: ``rapl``, ``nvml`` or ``cpu_time_estimate`` (see
        :data:`heatgrid.core.task_energy.EnergyMethod`); anything else is refused.
    error : str
        What went wrong, 1 to 2000 characters.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    attempt: Attempt
    energy_j: Energy
    energy_method: EnergyMethod = "cpu_time_estimate"
    error: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]


class TaskHandBack(_Message):
    """An attempt gives its task back on purpose, after its last checkpoint.

    The heater's room is warm, or the heater is stopping: the task resumes on another heater
    from its newest checkpoint, at once, and the attempt does not count against the job's
    attempts (unlike :class:`TaskFailure`).

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    attempt : int
        The attempt, as leased.
    energy_j : float
        Energy burned by this attempt in all [J].
    energy_method : str
        How ``energy_j`` was found: ``rapl``, ``nvml`` or ``cpu_time_estimate`` (see
        :data:`heatgrid.core.task_energy.EnergyMethod`); anything else is refused.
    reason : str
        Why it is handed back, 1 to 2000 characters.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    attempt: Attempt
    energy_j: Energy
    energy_method: EnergyMethod = "cpu_time_estimate"
    reason: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]


class TaskStatus(_Message):
    """The coordinator's answer to a task report.

    Attributes
    ----------
    task_id : str
        The task.
    attempt : int
        The attempt reported on.
    state : str
        The task's state now (``queued``, ``leased``, ``completed``, ``dead``, ``cancelled``).
    lease_expires_ts : float or None
        The renewed lease's expiry while the attempt holds it [POSIX s, UTC].
    stop : bool
        True when the device must stop the attempt (the job was cancelled or the lease lost).
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    task_id: str
    attempt: int
    state: str
    lease_expires_ts: float | None
    stop: bool


MAX_BATCHED_COMPLETIONS = 64
"""Most completions one batch may carry (as many as one claim may lease)."""


class BatchedCompletion(TaskCompletion):
    """One completion of a :class:`CompletionBatch`: a :class:`TaskCompletion` and its task.

    Attributes
    ----------
    task_id : str
        The task this attempt ran.
    """

    task_id: Annotated[Text, StringConstraints(min_length=1, max_length=64)]


class CompletionBatch(_Message):
    """Several finished attempts of one device, acknowledged together.

    Each is handled as a single completion would be, exactly once (the same completion sent
    again is accepted again and counted once), and on its own: one refused leaves the others.

    Attributes
    ----------
    protocol_version : int
        Always ``1``.
    completions : list of BatchedCompletion
        1 to :data:`MAX_BATCHED_COMPLETIONS` completions.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    completions: Annotated[
        list[BatchedCompletion], Field(min_length=1, max_length=MAX_BATCHED_COMPLETIONS)
    ]


class CompletionOutcome(_Message):
    """What became of one completion of a batch.

    Attributes
    ----------
    task_id : str
        The task.
    attempt : int
        The attempt reported on.
    status_code : int
        The HTTP status a single completion would have had: 200 accepted, 404 not this
        device's attempt, 409 the lease is lost or another result was accepted, 422 bad energy.
    status : TaskStatus or None
        The task's status when accepted.
    detail : str or None
        Why it was refused.
    """

    task_id: str
    attempt: int
    status_code: int
    status: TaskStatus | None = None
    detail: str | None = None


class CompletionBatchResponse(_Message):
    """The outcome of each completion of a batch, in the order sent."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    outcomes: list[CompletionOutcome]


class CheckpointReceipt(_Message):
    """A checkpoint was stored.

    Attributes
    ----------
    task_id : str
        The task.
    seq : int
        The checkpoint's number, counting from 1 over the task's life.
    size_bytes : int
        Size of the blob [bytes].
    sha256 : str
        SHA-256 of the blob, hex.
    progress_energy_j : float
        Energy of work the checkpoint saves [J].
    lease_expires_ts : float
        The renewed lease's expiry [POSIX s, UTC].
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    task_id: str
    seq: int
    size_bytes: int
    sha256: str
    progress_energy_j: float
    lease_expires_ts: float


class DeviceMining(_Message):
    """A device's mining as the coordinator's Stratum proxy counted it (for its agent).

    Attributes
    ----------
    accepted_shares : int
        Shares accepted since the device first mined through the proxy.
    accepted_work_diff1 : float
        Their work [difficulty-1 shares]; only grows.
    hashrate_hs : float
        Accepted work times ``2**32`` over the last ``window_s`` [H/s].
    window_s : float
        The window of ``hashrate_hs`` [s].
    blocks_found : int
        Accepted shares that were also blocks.
    credited_sat : int
        What settlements credited the owner for this device's work, after the operator's fee
        [sat]; only grows.
    as_of_ts : float
        The coordinator's clock when counted [POSIX s, UTC].
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    accepted_shares: Annotated[int, Field(ge=0)]
    accepted_work_diff1: Annotated[float, Field(ge=0.0)]
    hashrate_hs: Annotated[float, Field(ge=0.0)]
    window_s: Annotated[float, Field(gt=0.0)]
    blocks_found: Annotated[int, Field(ge=0)]
    credited_sat: Annotated[int, Field(ge=0)]
    as_of_ts: float


class CheckpointChunkQuery(_Message):
    """Ask which of these chunks of a checkpoint the coordinator lacks (to resume an upload).

    Attributes
    ----------
    attempt : int
        The attempt, as leased.
    chunks : list of str
        SHA-256 of each chunk, hex.
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    attempt: Annotated[int, Field(ge=1, le=1_000_000)]
    chunks: Annotated[list[_Sha256], Field(max_length=MAX_CHECKPOINT_CHUNKS)]


class CheckpointChunksMissing(_Message):
    """The chunks asked about that the coordinator does not hold: upload only these."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    missing: list[str]


class CheckpointChunkReceipt(_Message):
    """A chunk of a checkpoint is stored (or was already): its SHA-256 and size [bytes]."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    sha256: str
    size_bytes: int


class CheckpointCommit(_Message):
    """A checkpoint made of chunks uploaded before, in order; the coordinator joins them.

    Attributes
    ----------
    attempt : int
        The attempt, as leased.
    energy_j : float
        Energy the attempt burned when the checkpoint was taken [J].
    chunks : list of str
        SHA-256 of each chunk, in the checkpoint's order (a chunk may repeat).
    sha256 : str
        SHA-256 of the whole checkpoint (the chunks joined), hex.
    size_bytes : int
        Size of the whole checkpoint [bytes].
    step : int or None
        The training step the checkpoint was taken after, when the task said [steps].
    fingerprint : TensorFingerprintBody or None
        The fingerprint of the tensors it saves, when the task gave one (a replay of the
        segment that ends here is compared with it).
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    attempt: Annotated[int, Field(ge=1, le=1_000_000)]
    energy_j: Energy
    chunks: Annotated[list[_Sha256], Field(min_length=1, max_length=MAX_CHECKPOINT_CHUNKS)]
    sha256: _Sha256
    size_bytes: Annotated[int, Field(ge=1, le=1 << 40)]
    step: Annotated[int, Field(ge=0, le=1 << 53)] | None = None
    fingerprint: TensorFingerprintBody | None = None


class MiningCredentials(_Message):
    """Where and as whom a device's miner mines: the coordinator's Stratum proxy.

    Attributes
    ----------
    device_id : str
        The device.
    pool_url : str or None
        The proxy's address, ``stratum+tcp://HOST:PORT`` (None: the coordinator runs none).
    user : str
        The Stratum user name: the device id (a miner may add ``.worker``).
    password : str or None
        The mining password, shown only when it was just issued; only its hash is stored.
    created_ts : float or None
        When the password in force was issued (None: never) [POSIX s, UTC].
    """

    protocol_version: Literal[1] = PROTOCOL_VERSION
    device_id: str
    pool_url: str | None
    user: str
    password: str | None
    created_ts: float | None
