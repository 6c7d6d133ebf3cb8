"""Parse a job-stream spec such as ``"poisson:rate_per_h=20,lognormal:mean_kwh=2,sigma=0.8"``.

Syntax: comma-separated ``key=value`` pairs, grouped in sections; a pair written
``section:key=value`` opens a section, and the pairs after it belong to it until the next one.

``poisson`` (arrivals)
    ``rate_per_h`` (jobs per hour for the fleet) or ``rate_per_home_h`` (per home and hour);
    ``end_fraction``: jobs arrive during this leading share of the run, the rest drains (0–1].
``lognormal`` (sizes, in electric energy to finish a job)
    ``median_kwh`` or ``mean_kwh`` (mean of the uncapped distribution:
    ``median = mean · exp(−σ²/2)``); ``sigma``: standard deviation of ``ln(size)``;
    ``max_factor``: sizes are capped at this multiple of the median.
``checkpoint``
    ``every_kwh``: a task checkpoints each time it has burned this much more energy.
``mix``
    ``priority_share``: share of high-priority jobs; ``cpu_share``: share that also runs on a
    CPU; ``submitters``: number of submitters.

Keys left out keep the :class:`~heatgrid.sim.scenario.JobStream` defaults; the rate defaults to
:data:`DEFAULT_RATE_PER_HOME_H` per home.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from heatgrid.sim.scenario import JobStream

__all__ = ["DEFAULT_RATE_PER_HOME_H", "JOBS_SYNTAX", "parse_job_stream"]

DEFAULT_RATE_PER_HOME_H = 0.15
"""Jobs per home and hour when the spec gives no rate [1/h]."""

JOBS_SYNTAX = (
    "poisson: rate_per_h or rate_per_home_h, end_fraction; "
    "lognormal: median_kwh or mean_kwh, sigma, max_factor; "
    "checkpoint: every_kwh; mix: priority_share, cpu_share, submitters"
)
"""Every key the spec accepts, for help texts."""

_J_PER_KWH = 3.6e6
_KEYS = {
    "poisson": ("rate_per_h", "rate_per_home_h", "end_fraction"),
    "lognormal": ("median_kwh", "mean_kwh", "sigma", "max_factor"),
    "checkpoint": ("every_kwh",),
    "mix": ("priority_share", "cpu_share", "submitters"),
}


def parse_job_stream(spec: str, n_homes: int) -> JobStream:
    """Return the job stream that ``spec`` describes (see the module docstring).

    Parameters
    ----------
    spec : str
        The spec; empty for the defaults.
    n_homes : int
        Homes of the fleet, for per-home rates.

    Returns
    -------
    JobStream
        The arrivals and sizes.

    Raises
    ------
    InputError
        Naming the part of ``spec`` that is wrong.
    """
    # Imported here: the scenario needs numpy, and help texts only need this module's constants.
    from heatgrid.sim.scenario import JobStream  # noqa: PLC0415

    values = _sections(spec)
    poisson, sizes = values.get("poisson", {}), values.get("lognormal", {})
    if "rate_per_h" in poisson and "rate_per_home_h" in poisson:
        raise InputError("--jobs: give poisson rate_per_h or rate_per_home_h, not both")
    if "median_kwh" in sizes and "mean_kwh" in sizes:
        raise InputError("--jobs: give lognormal median_kwh or mean_kwh, not both")
    rate = poisson.get("rate_per_h", poisson.get("rate_per_home_h", DEFAULT_RATE_PER_HOME_H))
    if "rate_per_h" not in poisson:
        rate *= n_homes
    fields: dict[str, Any] = {"rate_per_h": rate}
    stream = JobStream()
    sigma = sizes.get("sigma", stream.sigma)
    fields["sigma"] = sigma
    if "median_kwh" in sizes:
        fields["median_j"] = sizes["median_kwh"] * _J_PER_KWH
    elif "mean_kwh" in sizes:
        fields["median_j"] = sizes["mean_kwh"] * _J_PER_KWH * math.exp(-0.5 * sigma**2)
    renames = {
        ("poisson", "end_fraction"): ("arrivals_end_fraction", 1.0),
        ("lognormal", "max_factor"): ("max_size_factor", 1.0),
        ("checkpoint", "every_kwh"): ("checkpoint_every_j", _J_PER_KWH),
        ("mix", "priority_share"): ("high_priority_share", 1.0),
        ("mix", "cpu_share"): ("cpu_ok_share", 1.0),
    }
    for (section, key), (name, scale) in renames.items():
        if key in values.get(section, {}):
            fields[name] = values[section][key] * scale
    submitters = values.get("mix", {}).get("submitters")
    if submitters is not None:
        if submitters != int(submitters):
            raise InputError(f"--jobs: mix submitters must be a whole number, got {submitters:g}")
        fields["submitters"] = int(submitters)
    try:
        return replace(stream, **fields)
    except InputError as error:
        raise InputError(f"--jobs: {error}") from None


def _sections(spec: str) -> dict[str, dict[str, float]]:
    """Split ``spec`` into ``{section: {key: value}}``, checking names and numbers."""
    values: dict[str, dict[str, float]] = {}
    section: str | None = None
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            continue
        if ":" in part:
            section, _, part = (text.strip() for text in part.partition(":"))
            if section not in _KEYS:
                raise InputError(
                    f"--jobs: unknown section {section!r}; sections are {', '.join(_KEYS)} "
                    f"(syntax: {JOBS_SYNTAX})"
                )
        if section is None:
            raise InputError(f"--jobs: {part!r} comes before any section such as 'poisson:'")
        key, equals, text = (item.strip() for item in part.partition("="))
        if not equals or key not in _KEYS[section]:
            raise InputError(
                f"--jobs: {part!r} is not a key=value of {section}; its keys are "
                f"{', '.join(_KEYS[section])}"
            )
        try:
            number = float(text)
        except ValueError:
            raise InputError(f"--jobs: {section} {key} must be a number, got {text!r}") from None
        if not math.isfinite(number) or number < 0.0:
            raise InputError(f"--jobs: {section} {key} must be a finite number >= 0, got {text!r}")
        if key in values.setdefault(section, {}):
            raise InputError(f"--jobs: {section} {key} is given twice")
        values[section][key] = number
    return values
