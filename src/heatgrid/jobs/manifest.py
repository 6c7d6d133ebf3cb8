"""Read a job directory: ``job.py`` and its optional ``job.toml`` (a :class:`JobManifest`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from heatgrid.core.errors import InputError
from heatgrid.jobs.requirements import parse_requirements
from heatgrid.protocol.jobs import JobManifest

__all__ = ["MANIFEST_NAME", "load_manifest", "manifest_errors"]

MANIFEST_NAME = "job.toml"
"""The optional file, in a job directory, that says how to run the job."""


def manifest_errors(error: ValidationError, source: str) -> str:
    """Return a pydantic error as one line per field: ``source: field: what is wrong``."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {item['msg']}")
    return "\n".join(lines)


def load_manifest(job_dir: Path) -> JobManifest:
    """Return the manifest of the job in ``job_dir`` (defaults where there is no ``job.toml``).

    Raises
    ------
    InputError
        When ``job_dir`` is not a directory, lacks the entry point's module, or its ``job.toml``
        is not TOML or names an unknown key or a bad value (a requirement that is not a pip
        requirement string too).
    """
    if not job_dir.is_dir():
        raise InputError(f"{job_dir} is not a directory (a job is a directory with job.py)")
    path = job_dir / MANIFEST_NAME
    data: dict[str, object] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: not valid TOML: {error}") from None
    try:
        manifest = JobManifest.model_validate(data)
    except ValidationError as error:
        raise InputError(manifest_errors(error, str(path))) from None
    parse_requirements(manifest.requirements, str(path))
    module = manifest.entry_point.partition(":")[0]
    module_file = job_dir / (module.replace(".", "/") + ".py")
    if not module_file.is_file():
        raise InputError(
            f"{job_dir}: no {module_file.relative_to(job_dir)} (the entry point "
            f"{manifest.entry_point!r}); a job is a directory whose job.py defines main(ctx)"
        )
    return manifest
