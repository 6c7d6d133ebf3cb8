"""Request and answer bodies of the jobs API, for the people who submit work."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from heatgrid.core.leasing import DEFAULT_MAX_ATTEMPTS
from heatgrid.protocol.jobs import (
    ArtifactRef,
    InputName,
    InputUrl,
    VerifyRelL2,
    split_input_url,
)
from heatgrid.protocol.values import JsonObject, Text

__all__ = [
    "MAX_TASKS_PER_JOB",
    "AttemptInfo",
    "DeviceEnergy",
    "JobDetail",
    "JobInfo",
    "JobPage",
    "JobReport",
    "JobSubmission",
    "TaskInfo",
    "TaskPage",
    "TaskSpec",
]

MAX_TASKS_PER_JOB = 10_000
"""Most tasks in one job."""

_MAX_ENERGY_J = 3.6e12  # a megawatt-hour


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class TaskSpec(_Body):
    """One task of a job.

    Attributes
    ----------
    task_input : dict
        Input handed to the task (JSON object), as is; checked at the door for depth, size,
        finite numbers and storable text (:mod:`heatgrid.protocol.values`).
    energy_j : float
        Estimated electric energy the task burns from start to end [J], > 0.
    checkpoint_every_j : float or None
        Energy between the task's checkpoints [J]; None: the job's value.
    """

    task_input: JsonObject = {}
    energy_j: Annotated[float, Field(gt=0.0, le=_MAX_ENERGY_J)]
    checkpoint_every_j: Annotated[float, Field(gt=0.0, le=_MAX_ENERGY_J)] | None = None


class JobSubmission(_Body):
    """A job: tasks that share hardware needs, a priority and an attempt limit.

    Attributes
    ----------
    name : str
        A name for people, 1 to 100 printable characters.
    priority : int
        -100 to 100; larger runs first.
    device_kinds : list of str
        ``"gpu"`` and/or ``"cpu"``: what the tasks run on.
    min_vram_gb : float
        GPU memory each task needs [GB].
    max_attempts : int
        Attempts per task before it goes to the dead letter, 1 to 20.
    checkpoint_every_j : float
        Energy between checkpoints of tasks that do not say [J].
    tasks : list of TaskSpec
        1 to :data:`MAX_TASKS_PER_JOB` tasks.
    artifact : ArtifactRef or None
        The packed job the tasks run, uploaded by this account (``PUT /v1/artifacts/…``);
        each task's ``task_input`` is then its parameters. None: tasks need only their input.
    input_urls : dict
        Inputs left where they are (name -> ``https://…#sha256=HEX``), fetched and checked by
        every task's heater.
    verify_quorum : int or None
        Where the coordinator verifies results: owners whose devices must return the same
        result of a checked task, 2 to 10 (None: the coordinator's ``verify_quorum``).
    verify_rel_l2 : float or None
        Where the coordinator verifies results: results agree when the tensors behind their
        ``tensor_fingerprint`` are within this relative L2 distance, 0 to 0.1 (0: bit-for-bit
        equal values); None: only when their JSON is identical.
    """

    name: Annotated[
        Text,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"
        ),
    ]
    priority: Annotated[int, Field(ge=-100, le=100)] = 0
    device_kinds: Annotated[list[Literal["gpu", "cpu"]], Field(min_length=1, max_length=2)] = [
        "gpu"
    ]
    min_vram_gb: Annotated[float, Field(ge=0.0, le=1.0e5)] = 0.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = DEFAULT_MAX_ATTEMPTS
    checkpoint_every_j: Annotated[float, Field(gt=0.0, le=_MAX_ENERGY_J)] = 3.6e6
    tasks: Annotated[list[TaskSpec], Field(min_length=1, max_length=MAX_TASKS_PER_JOB)]
    artifact: ArtifactRef | None = None
    input_urls: Annotated[dict[InputName, InputUrl], Field(max_length=100)] = {}
    verify_quorum: Annotated[int, Field(ge=2, le=10)] | None = None
    verify_rel_l2: VerifyRelL2 | None = None

    @model_validator(mode="after")
    def _distinct_kinds(self) -> JobSubmission:
        if len(set(self.device_kinds)) != len(self.device_kinds):
            raise ValueError(f"device_kinds {self.device_kinds} repeats a kind")
        if self.input_urls and self.artifact is None:
            raise ValueError("input_urls: only a job with an artifact reads inputs")
        for name, url in self.input_urls.items():
            try:
                split_input_url(url)
            except ValueError as error:
                raise ValueError(f"input_urls.{name}: {error}") from None
        return self


class JobInfo(_Body):
    """A job as its submitter sees it.

    Attributes
    ----------
    job_id, name, submitter_name, state : str
        Identity and state (``running``, ``completed``, ``failed``, ``cancelled``).
    priority, max_attempts, task_count : int
        As submitted.
    device_kinds : list of str
        As submitted.
    min_vram_gb : float
        As submitted [GB].
    price_eur_per_kwh : float
        Price per kWh burned, fixed at submission [EUR/kWh].
    tasks_by_state : dict
        Number of tasks in each state.
    energy_j : float
        Energy settled so far [J].
    heat_reused_energy_j : float
        Of ``energy_j``, what heaters burned while warming a room [J]; the rest ran on devices
        without a room (racks, farms), whose heat was not used.
    cost_eur : float
        Charged so far [EUR].
    created_ts, ended_ts : float
        When it was submitted and ended [POSIX s, UTC].
    artifact_sha256 : str or None
        The packed job its tasks run.
    input_urls : dict
        Its inputs read where they are.
    verify_quorum : int or None
        Owners that must agree on a checked result, when the job set it.
    verify_rel_l2 : float or None
        Relative L2 within which results' tensors agree, when the job set it.
    """

    job_id: str
    name: str
    submitter_name: str
    state: str
    priority: int
    device_kinds: list[str]
    min_vram_gb: float
    max_attempts: int
    price_eur_per_kwh: float
    task_count: int
    tasks_by_state: dict[str, int]
    energy_j: float
    heat_reused_energy_j: float
    cost_eur: float
    created_ts: float
    ended_ts: float | None
    artifact_sha256: str | None = None
    input_urls: dict[str, str] = {}
    verify_quorum: int | None = None
    verify_rel_l2: float | None = None


class AttemptInfo(_Body):
    """One attempt of a task: which device ran it and what came of its result.

    Attributes
    ----------
    attempt : int
        Its number, from 1.
    device_id : str
        The device that ran it (its owner and name stay private).
    outcome : str
        ``running``, ``completed``, ``failed``, ``expired``, ``cancelled`` or ``handed_back``
        (:class:`heatgrid.core.leasing.AttemptOutcome`).
    verdict : str or None
        Where results are verified: ``held``, ``verified`` (paid), ``caught`` (forfeited,
        refunded to you), ``void`` (refunded); None otherwise.
    clawed_back : bool
        It was paid unchecked and its pay was taken back from its owner, and refunded to you,
        when its device was later caught cheating (clawback).
    clawback_reversed : bool
        That clawback was reversed: the operator released the device, judging its catch
        wrong, and the pay went back to its owner (the refund charged to you again, as for
        any task).
    """

    attempt: int
    device_id: str
    outcome: str
    verdict: str | None
    clawed_back: bool
    clawback_reversed: bool


class TaskInfo(_Body):
    """One task of a job, with its result once completed.

    Attributes
    ----------
    task_id : str
        Identifier.
    task_index : int
        Position in the submission, from 0.
    state : str
        ``queued``, ``leased``, ``completed``, ``dead`` or ``cancelled``; where results are
        verified also ``reported`` (its result is held until a device of another owner
        agrees), ``verifying`` (such a replica runs) and ``verified``.
    attempt : int
        Attempts started.
    energy_j, progress_energy_j : float
        Estimated energy, and energy of work saved by the newest checkpoint [J].
    checkpoint_seq : int
        Checkpoints stored.
    lease_device_id : str or None
        Device holding its lease.
    lease_expires_ts : float or None
        When that lease lapses [POSIX s, UTC].
    result : dict or None
        The result (where results are verified: only once verified).
    last_error : str or None
        Why the last attempt failed or expired.
    attempts : list of AttemptInfo
        Its attempts, in order.
    """

    task_id: str
    task_index: int
    state: str
    attempt: int
    energy_j: float
    progress_energy_j: float
    checkpoint_seq: int
    lease_device_id: str | None
    lease_expires_ts: float | None
    result: dict[str, object] | None
    last_error: str | None
    attempts: list[AttemptInfo] = []


class JobDetail(JobInfo):
    """A job with its tasks."""

    tasks: list[TaskInfo]


class JobPage(_Body):
    """A page of jobs, newest first.

    Attributes
    ----------
    items : list of JobInfo
        At most the ``limit`` asked for.
    next_cursor : str or None
        Pass it as ``?cursor=`` for the next page; None on the last page.
    """

    items: list[JobInfo]
    next_cursor: str | None


class TaskPage(_Body):
    """A page of a job's tasks in index order; ``next_cursor`` None on the last page."""

    items: list[TaskInfo]
    next_cursor: str | None


class DeviceEnergy(BaseModel):
    """One device's part of a job's energy report.

    Attributes
    ----------
    device_id : str
        The device (its owner and name stay private).
    in_home : bool
        It heats a room in a home; else its heat is outside homes (a rack).
    country_code : str
        Grid it draws from; ``country_assumed`` when the device did not say (the default).
    grid_carbon_g_per_kwh : float
        That grid's intensity [g CO2e/kWh].
    energy_j, useful_heat_j, unwanted_heat_j, heat_outside_homes_j : float
        Energy it drew for the job, and that energy as heat: useful (its room wanted heat),
        unwanted (the room did not, or no room temperature was reported: ``room_telemetry``
        false), outside homes [J].
    co2_kg : float
        Emissions of that energy [kg CO2e].
    """

    device_id: str
    in_home: bool
    country_code: str
    country_assumed: bool
    grid_carbon_g_per_kwh: float
    energy_j: float
    useful_heat_j: float
    unwanted_heat_j: float
    heat_outside_homes_j: float
    room_telemetry: bool
    co2_kg: float


class JobReport(BaseModel):
    """Where a job's energy went, and its CO2 against the same compute in a data centre.

    Totals add up: ``energy_j = heat_into_homes_j + heat_outside_homes_j`` and
    ``heat_into_homes_j = useful_heat_j + unwanted_heat_j``; ``co2_saved_kg =
    data_centre_co2_kg + displaced_heating_co2_kg - co2_kg``, where the data centre draws
    ``pue`` times the energy at ``data_centre_carbon_g_per_kwh`` (the devices' energy-weighted
    grid) and wastes its heat, so the homes' ``alternative`` heating makes the useful heat
    (``displaced_heating_co2_kg``). A room wanted heat while it was at most ``hot_tolerance_k``
    over its setpoint. Energies [J], emissions [kg CO2e]. ``clawed_back_results`` counts the
    job's results that were paid unchecked and taken back when their device was later caught
    cheating (clawback, on by default), and ``clawed_back_refund_eur`` what that refunded to
    the submitter and the submitter still keeps [EUR]; ``clawback_reversed_results`` counts
    those of them whose clawback the operator reversed by releasing their device (no longer
    in ``clawed_back_results``; their refund is charged to the submitter again, so it is not
    in ``clawed_back_refund_eur``).
    """

    job_id: str
    state: str
    devices: list[DeviceEnergy]
    energy_j: float
    heat_into_homes_j: float
    useful_heat_j: float
    unwanted_heat_j: float
    heat_outside_homes_j: float
    co2_kg: float
    pue: float
    pue_source: str
    data_centre_carbon_g_per_kwh: float
    data_centre_energy_j: float
    data_centre_co2_kg: float
    alternative: str
    displaced_heating_co2_kg: float
    co2_saved_kg: float
    hot_tolerance_k: float
    carbon_source: str
    clawed_back_results: int = 0
    clawed_back_refund_eur: float = 0.0
    clawback_reversed_results: int = 0
