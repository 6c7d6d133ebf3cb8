"""The Python packages a job's ``job.toml`` requires, checked against what a heater has.

heatgrid does not install packages into a heater: a task runs on the Python packages
installed beside heatgrid (the sandbox mounts them read-only). So ``requirements`` (pip
requirement strings, ``"torch==2.13.0"``, ``"scikit-learn>=1.4"``) are checked: each must
parse (when the job is read: ``submit`` and ``run-local`` refuse a bad one), and before a task
runs the runner checks each against the installed distributions of the interpreter the
sandbox runs (the runner's own), so that a job missing a package ends at once with the
packages named, not with an ``ImportError`` somewhere in its code.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from heatgrid.core.errors import InputError

__all__ = ["RequirementsNotMetError", "check_requirements", "parse_requirements"]


class RequirementsNotMetError(InputError):
    """A package, or a version of one, that the job requires is not where its tasks run."""


def parse_requirements(lines: Iterable[str], source: str = "job.toml") -> list[Requirement]:
    """Return each pip requirement string parsed.

    Raises
    ------
    InputError
        A string is not a pip requirement; the message names it and what is wrong.
    """
    parsed: list[Requirement] = []
    for line in lines:
        try:
            parsed.append(Requirement(line))
        except InvalidRequirement as error:
            problem = str(error).splitlines()[0]
            raise InputError(
                f"{source}: requirements: {line!r} is not a pip requirement "
                f"(such as 'numpy' or 'torch==2.13.0'): {problem}"
            ) from None
    return parsed


def _unmet(requirement: Requirement) -> str | None:
    """Return how this Python falls short of ``requirement``, or None when it meets it."""
    if requirement.marker is not None and not requirement.marker.evaluate():
        return None  # not for this platform or Python
    try:
        installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return f"{requirement} (not installed)"
    if not requirement.specifier:
        return None
    try:
        meets = requirement.specifier.contains(Version(installed), prereleases=True)
    except InvalidVersion:
        meets = False
    return None if meets else f"{requirement} ({requirement.name} {installed} is installed)"


def check_requirements(lines: Iterable[str], source: str = "job.toml") -> None:
    """Check that this Python has every required package, at a version the job accepts.

    Raises
    ------
    InputError
        A string is not a pip requirement.
    RequirementsNotMetError
        A package is missing or at another version; the message names each one.
    """
    unmet = [
        problem for problem in map(_unmet, parse_requirements(lines, source)) if problem is not None
    ]
    if unmet:
        raise RequirementsNotMetError(
            f"the Python that runs tasks here lacks what {source} requires: {'; '.join(unmet)}. "
            "heatgrid installs no packages: a task runs on those installed beside heatgrid "
            "(pip install them there)"
        )
