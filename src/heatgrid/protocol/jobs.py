"""Wire models of compute jobs: the manifest a job ships, artifacts, task runs and their outcome.

A job's artifact (its directory and input files, packed by :mod:`heatgrid.jobs.artifact`) is
named by the SHA-256 of its bytes: :class:`ArtifactRef`. ``job.toml`` in the job directory is a
:class:`JobManifest`. A heater runs one task of a job as a :class:`TaskRun` and reports a
:class:`TaskRunOutcome`; while it runs, the task reports :class:`TaskRunProgress`.

Every model is strict: unknown fields are refused, numbers must be finite and in range (an
agent reads them in the coordinator's answers leniently: :mod:`heatgrid.protocol.wire`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from heatgrid.core import fingerprint
from heatgrid.core.errors import InputError
from heatgrid.core.task_energy import EnergyMethod

__all__ = [
    "FINGERPRINT_KEY",
    "INPUT_NAME_PATTERN",
    "MAX_ARTIFACT_BYTES",
    "MAX_PARAMS_BYTES",
    "REPLAY_STEP_KEY",
    "ArtifactRef",
    "CheckpointMark",
    "InputName",
    "InputUrl",
    "JobManifest",
    "JobResources",
    "OutputFile",
    "RunState",
    "TaskRun",
    "TaskRunOutcome",
    "TaskRunProgress",
    "TensorFingerprintBody",
    "VerifyRelL2",
    "is_input_url",
    "result_fingerprint",
    "split_input_url",
]

MAX_ARTIFACT_BYTES: Final = 1 << 30
"""Largest artifact any heater accepts [bytes] (1 GiB); a job may ask for less."""

MAX_PARAMS_BYTES: Final = 64 * 1024
"""Largest JSON text of one task's parameters [bytes]."""

FINGERPRINT_KEY: Final = "tensor_fingerprint"
"""Key of a result that holds its tensor fingerprint (``ctx.tensor_fingerprint(...)``)."""

REPLAY_STEP_KEY: Final = "replay_step"
"""Key of a segment replay's result: the step it stopped at; the result's
:data:`FINGERPRINT_KEY` is then the fingerprint of its checkpoint at that step."""

VerifyRelL2 = Annotated[float, Field(ge=0.0, le=fingerprint.MAX_VERIFY_REL_L2, allow_inf_nan=False)]
"""A job's tolerance: largest relative L2 between a result's tensors and a replica's [1]."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_EntryPoint = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_]\w*$"),
]
INPUT_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
"""What an input's name may be."""
_InputName = Annotated[str, StringConstraints(pattern=INPUT_NAME_PATTERN)]
InputName = _InputName
"""The name of a job's input file (``ctx.inputs[name]``): letters, digits, ``_.-``, 1 to 100."""

_URL_PATTERN = r"^[a-z][a-z0-9+.\-]*://[^\x00-\x20\x7f]+$"
InputUrl = Annotated[str, StringConstraints(max_length=2000, pattern=_URL_PATTERN)]
"""An input left where it is, as an fsspec URL (``s3://bucket/key``, ``https://host/file``)."""


def is_input_url(text: str) -> bool:
    """Return True if ``text`` is an input URL (``scheme://…``), not a local path."""
    return len(text) <= 2000 and re.fullmatch(_URL_PATTERN, text) is not None


_HASH_FRAGMENT = re.compile(r"^sha256=([0-9a-f]{64})$")


def split_input_url(url: str) -> tuple[str, str]:
    """Return (the URL a heater fetches, without its fragment; the SHA-256 it names).

    Heaters fetch ``http://`` and ``https://`` URLs that end in ``#sha256=`` and the file's
    SHA-256 (64 lower-case hex digits): every heater checks it gets the same file.

    Raises
    ------
    ValueError
        Another scheme, or no hash; the message says what to write instead.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"{url} is not fetched by heaters (only http:// and https:// URLs are); pack the "
            "file with the job instead"
        )
    found = _HASH_FRAGMENT.fullmatch(parts.fragment)
    if found is None:
        raise ValueError(
            f"{url} names no content hash; end the URL with #sha256=<64 lower-case hex digits> "
            "of the file, so that every heater checks it"
        )
    return parts._replace(fragment="").geturl(), found.group(1)


_Requirement = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]

RunState = Literal[
    "completed", "paused", "failed", "out_of_memory", "out_of_time", "out_of_disk", "killed"
]
"""How a task run ended.

``completed``: ``main`` returned. ``paused``: it stopped when asked to (it checkpointed, or was
terminated after the grace period). ``failed``: the job's code failed (an exception, a syntax
error, a non-zero exit). ``out_of_memory``, ``out_of_time``, ``out_of_disk``: over a limit, and
killed. ``killed``: the runner stopped it for another reason (too many processes, a broken
report); the message says which.
"""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ArtifactRef(_Model):
    """A packed job, named by its content.

    Attributes
    ----------
    sha256 : str
        SHA-256 of the artifact's bytes, 64 lower-case hex digits.
    size_bytes : int
        Size of the artifact [bytes], at most :data:`MAX_ARTIFACT_BYTES`.
    """

    sha256: Sha256
    size_bytes: Annotated[int, Field(ge=1, le=MAX_ARTIFACT_BYTES)]


class JobResources(_Model):
    """What each task of a job needs (``[resources]`` of ``job.toml``).

    Attributes
    ----------
    memory_mb : int
        Memory a task may use [MiB]; the sandbox kills it beyond.
    disk_mb : int
        Space its job directory may take [MiB]: outputs, checkpoints, scratch files.
    max_processes : int
        Processes and threads a task may have at once.
    gpu_memory_gb : float
        GPU memory a task needs [GB]; 0: it runs on a CPU.
    """

    memory_mb: Annotated[int, Field(ge=16, le=1 << 20)] = 1024
    disk_mb: Annotated[int, Field(ge=1, le=1 << 20)] = 1024
    max_processes: Annotated[int, Field(ge=4, le=4096)] = 256
    gpu_memory_gb: Annotated[float, Field(ge=0.0, le=1.0e5)] = 0.0


class JobManifest(_Model):
    """``job.toml``: how to run a job. Every key is optional.

    Attributes
    ----------
    entry_point : str
        ``module:function`` called with the task's context; default ``job:main``.
    requirements : list of str
        Python packages the job imports (pip requirement strings); the heater must have them.
    resources : JobResources
        What each task needs.
    inputs : dict
        Input files packed with the job: name -> path, relative to the job directory or absolute.
    verify_rel_l2 : float or None
        Where results are verified: the largest relative L2 distance between the tensors of a
        result and of its replica (compared by the ``tensor_fingerprint`` each result carries),
        0 to 0.1 [dimensionless]; 0 asks for bit-for-bit equal values. None: results agree
        only when their JSON is identical.
    """

    entry_point: _EntryPoint = "job:main"
    verify_rel_l2: VerifyRelL2 | None = None
    requirements: Annotated[list[_Requirement], Field(max_length=100)] = []
    resources: JobResources = JobResources()
    inputs: Annotated[
        dict[_InputName, Annotated[str, Field(min_length=1)]], Field(max_length=100)
    ] = {}


class TaskRun(_Model):
    """One task of a job, as a heater runs it.

    Attributes
    ----------
    artifact : ArtifactRef
        The job's artifact.
    task_index : int
        The task's number within its job, from 0.
    params : dict
        The task's parameters (one point of a sweep), a JSON object.
    device : str
        ``cpu``, or ``cuda`` when the lease gives the task a GPU.
    stop_step : int or None
        The training step to stop at (a segment replay: the job checkpoints at that step and
        pauses, ``ctx.stop_step``); None: run to the end.
    """

    artifact: ArtifactRef
    task_index: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    params: dict[str, object] = {}
    device: Literal["cpu", "cuda"] = "cpu"
    stop_step: Annotated[int, Field(ge=1, le=1 << 53)] | None = None

    @field_validator("params")
    @classmethod
    def _small_params(cls, params: dict[str, object]) -> dict[str, object]:
        try:
            text = json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"params must be JSON: {error}") from None
        if len(text.encode()) > MAX_PARAMS_BYTES:
            raise ValueError(f"params take more than {MAX_PARAMS_BYTES} bytes as JSON")
        return params


class TaskRunProgress(_Model):
    """A running task's report.

    Attributes
    ----------
    fraction : float
        Share of the task done, 0 to 1.
    metrics : dict
        The job's own numbers (loss, accuracy …), name -> value.
    """

    fraction: Annotated[float, Field(ge=0.0, le=1.0)]
    metrics: Annotated[dict[str, float], Field(max_length=64)] = {}


class OutputFile(_Model):
    """A file a task wrote to its output directory.

    Attributes
    ----------
    path : str
        Path relative to the output directory, ``/``-separated.
    size_bytes : int
        Size [bytes].
    sha256 : str
        SHA-256 of its content, hex.
    """

    path: str
    size_bytes: Annotated[int, Field(ge=0)]
    sha256: Sha256


class TaskRunOutcome(_Model):
    """How a task run ended, and what it left.

    Attributes
    ----------
    state : RunState
        How it ended.
    message : str
        What happened, for people; names the limit or the error.
    result : dict or None
        What ``main`` returned (JSON object), when it completed.
    fraction : float
        The last progress reported, 0 to 1.
    metrics : dict
        The last metrics reported.
    checkpoint_seq : int or None
        Number of the newest checkpoint (from 1 over the task's life); None: none.
    checkpoint_count : int
        Checkpoints this run saved.
    outputs : list of OutputFile
        Files in the output directory.
    cpu_s : float
        CPU time of every process of the task [s].
    wall_s : float
        Time it ran, not counting time it was frozen [s].
    energy_j : float
        Electric energy burned [J], metered or estimated (see ``energy_method``).
    energy_method : EnergyMethod
        How ``energy_j`` was found: ``rapl`` (the CPU packages' counters, shared by CPU
        time), ``nvml`` (the GPU's counter, plus the CPU part) or ``cpu_time_estimate``
        (CPU time times a stated power per core).
    """

    state: RunState
    message: str
    result: dict[str, object] | None = None
    fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    metrics: dict[str, float] = {}
    checkpoint_seq: Annotated[int, Field(ge=1)] | None = None
    checkpoint_count: Annotated[int, Field(ge=0)] = 0
    outputs: list[OutputFile] = []
    cpu_s: Annotated[float, Field(ge=0.0)] = 0.0
    wall_s: Annotated[float, Field(ge=0.0)] = 0.0
    energy_j: Annotated[float, Field(ge=0.0)] = 0.0
    energy_method: EnergyMethod = "cpu_time_estimate"


class TensorFingerprintBody(_Model):
    """A result's tensor fingerprint, as sent (see :mod:`heatgrid.core.fingerprint`).

    Attributes
    ----------
    values_sha256 : str
        SHA-256 over the tensors' names, dtypes, shapes and bytes, hex.
    count : int
        Number of values, 0 to 2**53.
    norm : float
        L2 norm of the values, finite, >= 0.
    sketch : list of float
        Exactly :data:`heatgrid.core.fingerprint.SKETCH_SIZE` finite numbers.
    """

    model_config = ConfigDict(strict=False)

    values_sha256: Sha256
    count: Annotated[int, Field(ge=0, le=1 << 53, strict=True)]
    norm: Annotated[float, Field(ge=0.0)]
    sketch: Annotated[
        list[float],
        Field(min_length=fingerprint.SKETCH_SIZE, max_length=fingerprint.SKETCH_SIZE),
    ]

    def core(self) -> fingerprint.TensorFingerprint:
        """Return it as :class:`heatgrid.core.fingerprint.TensorFingerprint`."""
        return fingerprint.TensorFingerprint(
            self.values_sha256, self.count, self.norm, tuple(self.sketch)
        )


class CheckpointMark(_Model):
    """What a checkpoint says of the training it saves, for the replay of a segment.

    Attributes
    ----------
    step : int or None
        The training step the checkpoint was taken after [steps], 0 to 2**53.
    fingerprint : TensorFingerprintBody or None
        The fingerprint of the tensors it saves (``ctx.tensor_fingerprint(...)``).
    """

    step: Annotated[int, Field(ge=0, le=1 << 53)] | None = None
    fingerprint: TensorFingerprintBody | None = None


def result_fingerprint(result: dict[str, object]) -> fingerprint.TensorFingerprint | None:
    """Return the tensor fingerprint a result carries under :data:`FINGERPRINT_KEY`, or None.

    Raises
    ------
    ValueError
        The result carries one that is malformed; the message names the field at fault.
    """
    if FINGERPRINT_KEY not in result:
        return None
    try:
        return TensorFingerprintBody.model_validate(result[FINGERPRINT_KEY]).core()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        place = f"{FINGERPRINT_KEY}.{where}" if where else FINGERPRINT_KEY
        raise ValueError(f"result.{place}: {first['msg']}") from None
    except InputError as error:
        raise ValueError(f"result.{FINGERPRINT_KEY}: {error}") from None
