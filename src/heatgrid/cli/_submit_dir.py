"""``heatgrid jobs submit DIR``: turn a job directory and options into an artifact and a job.

The directory and its local input files are packed into the job's artifact (content-addressed,
:func:`heatgrid.jobs.artifact.pack_job`) in a temporary directory that lives as long as the
process; inputs given as ``http(s)://`` URLs are recorded for the heaters to fetch where they
are, and inputs at other fsspec URLs (``s3://…``) are read here and packed
(:mod:`heatgrid.cli._url_inputs`). The job's tasks run that artifact, one per point of the
parameter grid.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from heatgrid.cli._url_inputs import fetched_by_heaters, read_for_packing, split_by_reader
from heatgrid.core.errors import InputError
from heatgrid.jobs.artifact import artifact_path, pack_job
from heatgrid.jobs.manifest import load_manifest
from heatgrid.jobs.params import load_grid
from heatgrid.protocol.jobs import INPUT_NAME_PATTERN, is_input_url, split_input_url

__all__ = ["MAX_TASKS", "DirectorySubmission", "split_inputs"]

MAX_TASKS: Final = 10_000
"""Most tasks in one job (the coordinator's limit)."""

_J_PER_KWH = 3.6e6
_DEVICE_KINDS = {"cpu": ["cpu"], "gpu": ["gpu"], "any": ["gpu", "cpu"]}


def _requirements(pairs: list[str], default_gpu_memory_gb: float) -> tuple[list[str], float]:
    """Return (device kinds, GPU memory [GB]) from ``--requires KEY=VALUE`` pairs."""
    gpu_memory_gb = default_gpu_memory_gb
    device: str | None = None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise InputError(f"--requires: {pair!r} is not KEY=VALUE (gpu_memory_gb=24)")
        if key == "gpu_memory_gb":
            try:
                gpu_memory_gb = float(value)
            except ValueError:
                raise InputError(f"--requires: gpu_memory_gb={value!r} is not a number") from None
            if not 0.0 <= gpu_memory_gb <= 1.0e5:
                raise InputError(f"--requires: gpu_memory_gb={value} is not within 0 to 100000")
        elif key == "device":
            if value not in _DEVICE_KINDS:
                raise InputError(f"--requires: device={value!r}; use cpu, gpu or any")
            device = value
        else:
            raise InputError(f"--requires: unknown key {key!r} (known: gpu_memory_gb, device)")
    if device is None:
        device = "gpu" if gpu_memory_gb > 0 else "any"
    if device == "cpu" and gpu_memory_gb > 0:
        raise InputError(f"--requires: device=cpu, but gpu_memory_gb={gpu_memory_gb:g} asks a GPU")
    return _DEVICE_KINDS[device], gpu_memory_gb


def split_inputs(
    pairs: list[str], manifest_inputs: dict[str, str]
) -> tuple[dict[str, Path], dict[str, str]]:
    """Return (local files to pack, URLs) by name from ``--input`` and job.toml."""
    urls = {name: value for name, value in manifest_inputs.items() if is_input_url(value)}
    local: dict[str, Path] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise InputError(f"--input: {pair!r} is not NAME=PATH or NAME=URL")
        if re.fullmatch(INPUT_NAME_PATTERN, name) is None:
            raise InputError(
                f"--input: the name {name!r} may hold only letters, digits, '_', '.' and '-' "
                "(at most 100, starting with a letter or digit)"
            )
        if is_input_url(value):
            urls[name] = value
            local.pop(name, None)
        elif "://" in value:
            raise InputError(f"--input: {value!r} is not a URL an fsspec store can read")
        else:
            local[name] = Path(value)
            urls.pop(name, None)
    for name, url in urls.items():  # checked here too, before anything is read or uploaded
        if not fetched_by_heaters(url):
            continue  # read here and packed
        try:
            split_input_url(url)
        except ValueError as error:
            raise InputError(f"input {name!r}: {error}") from None
    return local, urls


def _grid(param_grid: Path | None, tasks: int | None) -> list[dict[str, object]]:
    if param_grid is None:
        return [{} for _ in range(tasks or 1)]
    grid = load_grid(param_grid)
    if tasks is not None and tasks != len(grid):
        raise InputError(
            f"--tasks {tasks}: the grid {param_grid} has {len(grid)} points, one per task; "
            "leave --tasks out or make them agree"
        )
    if len(grid) > MAX_TASKS:
        raise InputError(f"--param-grid: {len(grid)} tasks, more than {MAX_TASKS} in one job")
    return grid


@dataclass(frozen=True)
class DirectorySubmission:
    """A packed job directory and the body of its ``POST /v1/jobs``.

    Attributes
    ----------
    artifact_file : Path
        The packed artifact (in a temporary directory removed when the process exits).
    body : dict
        The job submission, naming the artifact (``artifact``: sha256 and size_bytes).
    """

    artifact_file: Path
    body: dict[str, Any]

    @classmethod
    def build(
        cls,
        job_dir: Path,
        *,
        tasks: int | None,
        requires: list[str],
        param_grid: Path | None,
        inputs: list[str],
        name: str | None,
        energy_kwh: float,
        priority: int,
    ) -> DirectorySubmission:
        """Pack ``job_dir`` and describe its job; InputError names the option at fault."""
        manifest = load_manifest(job_dir)
        device_kinds, gpu_memory_gb = _requirements(requires, manifest.resources.gpu_memory_gb)
        local, urls = split_inputs(inputs, dict(manifest.inputs))
        grid = _grid(param_grid, tasks)
        store = Path(tempfile.mkdtemp(prefix="heatgrid-submit-"))
        atexit.register(shutil.rmtree, store, ignore_errors=True)
        read_here, fetched = split_by_reader(urls)
        local |= read_for_packing(read_here, store / "inputs")
        ref = pack_job(job_dir, store, inputs=local, unpacked=set(urls))
        energy_j = energy_kwh * _J_PER_KWH
        body: dict[str, Any] = {
            "name": (name or job_dir.resolve().name)[:100] or "job",
            "priority": priority,
            "device_kinds": device_kinds,
            "min_vram_gb": gpu_memory_gb,
            "checkpoint_every_j": min(energy_j, 3.6e6),
            "artifact": ref.model_dump(),
            "input_urls": fetched,
            "tasks": [{"task_input": params, "energy_j": energy_j} for params in grid],
        }
        if manifest.verify_rel_l2 is not None:
            body["verify_rel_l2"] = manifest.verify_rel_l2
        return cls(artifact_path(store, ref.sha256), body)
