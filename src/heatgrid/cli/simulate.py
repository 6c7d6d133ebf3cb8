"""``heatgrid simulate``: a fleet of heated homes on the real control and scheduling code.

Wires weather (cities or EPW files, one region each) and a job-stream spec into a
:class:`heatgrid.sim.scenario.Scenario`, runs it under one or several scheduling policies
(:func:`heatgrid.sim.run.simulate`) with a progress bar, and prints a table, one JSON object
(``--json``) or a Markdown report with plots (``--report DIR``).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from heatgrid.core.errors import InputError
from heatgrid.core.prices import FALLBACK_PRICE_COUNTRY, household_prices
from heatgrid.core.scheduling import POLICIES
from heatgrid.sim.distributed import ENGINES, INSTALL_HINT, ray_available
from heatgrid.sim.jobspec import DEFAULT_RATE_PER_HOME_H, JOBS_SYNTAX, parse_job_stream

if TYPE_CHECKING:
    from heatgrid.sim.run import Simulation
    from heatgrid.sim.scenario import Region, Scenario

__all__ = ["MAX_DAYS", "MAX_HOMES", "MAX_SEED", "MAX_STEP_S", "MIN_STEP_S", "register"]

DEFAULT_WEATHER = "Lyon"
DEFAULT_START = "01-15"
_FALLBACK_COUNTRY = "EU"

MAX_HOMES = 1_000_000
"""Most homes one run simulates: the fleet size the simulator is built for (numpy arrays of
this length per quantity); a larger number is refused before any memory is allocated."""
MAX_DAYS = 366.0
"""Longest run [days]: one weather year."""
MIN_STEP_S = 10.0
"""Shortest control and thermal step [s]."""
MAX_STEP_S = 3600.0
"""Longest step [s]: the weather is hourly."""
MAX_SEED = 2**63 - 1
"""Largest seed; seeds are whole numbers from 0."""

_JOBS_HELP = (
    "Job arrivals and sizes: comma-separated key=value pairs in sections opened by "
    "'section:', e.g. 'poisson:rate_per_h=20, lognormal:mean_kwh=2, sigma=0.8'. Sections and "
    f"keys: {JOBS_SYNTAX}. Default: Poisson at {DEFAULT_RATE_PER_HOME_H:g} jobs per home and hour, "
    "arriving in the first half of the run, log-normal sizes with median 0.5 kWh, sigma 0.8, "
    "capped at 2 kWh."
)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate")(simulate_command)


def simulate_command(
    *,
    homes: Annotated[
        int, typer.Option(help=f"Number of homes, each with one heater (1 to {MAX_HOMES:,}).")
    ] = 100,
    days: Annotated[
        float, typer.Option(help=f"Length of the run in days (more than 0, at most {MAX_DAYS:g}).")
    ] = 2.0,
    step_s: Annotated[
        float,
        typer.Option(
            help=f"Control and thermal step in seconds ({MIN_STEP_S:g} to {MAX_STEP_S:g})."
        ),
    ] = 300.0,
    weather: Annotated[
        list[str] | None,
        typer.Option(
            help="City name or EPW file; repeat for several grid regions (homes are shared "
            f"equally). Default: {DEFAULT_WEATHER}."
        ),
    ] = None,
    start: Annotated[
        str, typer.Option(help="First day, MM-DD in the weather's year (UTC midnight).")
    ] = DEFAULT_START,
    policy: Annotated[
        str | None, typer.Option(help=f"Scheduling policy: {', '.join(POLICIES)}.")
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated policies to run side by side on the same seeded scenario, "
            "or 'all'."
        ),
    ] = None,
    jobs: Annotated[str, typer.Option(help=_JOBS_HELP)] = "",
    seed: Annotated[
        int, typer.Option(help="Seed of every random draw, a whole number from 0 to 2**63 - 1.")
    ] = 0,
    carbon_g_per_kwh: Annotated[
        float | None,
        typer.Option(
            help="Grid carbon intensity for every region, g CO2e per kWh "
            "(default: the city's country; EU mean for EPW files)."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help=f"How policies run: {', '.join(ENGINES)}. 'fused' compiles the thermostat, "
            "arbiter and rooms of every home over the steps where nothing is scheduled (the "
            "same numbers to about 1e-13; a year of 100,000 homes under mining-only in "
            "minutes); 'local' steps the whole fleet in Python; 'ray' runs each policy on Ray."
        ),
    ] = "local",
    verify: Annotated[
        bool,
        typer.Option(
            help="Verify the tasks' results as the coordinator does with verify_results: spot "
            "checks by each device's reputation, replicas on other homes' heaters (quorum 2, "
            "at most 3 results, a 4.5 % floor); the summary gives the energy they cost."
        ),
    ] = False,
    trusted_results: Annotated[
        int,
        typer.Option(
            help="With --verify: verified results in a row each device starts with on every "
            "job kind (0: a new fleet, every first result checked; 213 and more: the floor).",
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write report.md and PNG plots into this directory.")
    ] = None,
) -> None:
    """Simulate a fleet of compute-heated homes and compare scheduling policies."""
    policies = _policies(policy, compare)
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "ray" and not ray_available():
        raise InputError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}")
    _check_bounds(homes=homes, days=days, step_s=step_s, seed=seed)
    if trusted_results < 0:
        raise InputError(f"--trusted-results must be at least 0, got {trusted_results}")
    if trusted_results and not verify:
        raise InputError("--trusted-results needs --verify")
    stream = parse_job_stream(jobs, homes)
    with _progress(quiet=as_json or engine == "ray") as progress:
        preparing = progress.add_task(
            "loading the weather, drawing homes and jobs", total=None, steps=""
        )
        regions = tuple(_region(spec, carbon_g_per_kwh) for spec in (weather or [DEFAULT_WEATHER]))
        scenario = _scenario(
            homes=homes,
            start_ts=_start_ts(start, regions[0]),
            days=days,
            step_s=step_s,
            regions=regions,
            stream=stream,
            seed=seed,
            trusted_results=trusted_results if verify else None,
        )
        progress.remove_task(preparing)
        simulation = _run(scenario, policies, engine, progress)
    if report is not None:
        from heatgrid.sim.report import write_report  # noqa: PLC0415 - slow import

        path = write_report(simulation, report)
        if not as_json:
            typer.echo(f"report written to {path}")
    if as_json:
        from heatgrid.sim.results import json_safe  # noqa: PLC0415 - slow import

        typer.echo(json.dumps(json_safe(_json(simulation)), indent=2, allow_nan=False))
    else:
        _print_table(simulation)


def _check_bounds(*, homes: int, days: float, step_s: float, seed: int) -> None:
    if isinstance(homes, bool) or homes < 1:
        raise InputError(f"--homes must be at least 1, got {homes}")
    if homes > MAX_HOMES:
        raise InputError(f"--homes must be at most {MAX_HOMES:,}, got {homes:,}")
    if not days > 0.0:
        raise InputError(f"--days must be greater than 0, got {days:g}")
    if not days <= MAX_DAYS:
        raise InputError(f"--days must be at most {MAX_DAYS:g} (one weather year), got {days:g}")
    if not (math.isfinite(step_s) and MIN_STEP_S <= step_s <= MAX_STEP_S):
        raise InputError(
            f"--step-s must be from {MIN_STEP_S:g} to {MAX_STEP_S:g} seconds, got {step_s:g}"
        )
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")


def _scenario(
    *,
    homes: int,
    start_ts: float,
    days: float,
    step_s: float,
    regions: tuple[Region, ...],
    stream: Any,
    seed: int,
    trusted_results: int | None,
) -> Scenario:
    """Return the run's scenario; ``trusted_results`` None: results are not verified."""
    from heatgrid.sim.scenario import Scenario, Verification  # noqa: PLC0415 - numpy, when run

    return Scenario(
        n_homes=homes,
        start_ts=start_ts,
        days=days,
        step_s=step_s,
        regions=regions,
        jobs=stream,
        seed=seed,
        verification=None
        if trusted_results is None
        else Verification(trusted_results=trusted_results),
    )


def _policies(policy: str | None, compare: str | None) -> list[str]:
    if policy is not None and compare is not None:
        raise InputError("give --policy or --compare, not both")
    if compare is not None:
        names = (
            list(POLICIES)
            if compare.strip() == "all"
            else [name.strip() for name in compare.split(",") if name.strip()]
        )
        if not names:
            raise InputError("--compare must name at least one policy")
    else:
        names = [policy or POLICIES[0]]
    for name in names:
        if name not in POLICIES:
            raise InputError(f"unknown policy {name!r}; policies are {', '.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise InputError(f"--compare names a policy twice: {', '.join(names)}")
    return names


def _region(spec: str, carbon_g_per_kwh: float | None) -> Region:
    from heatgrid.core.economics import grid_carbon_g_per_kwh  # noqa: PLC0415 - slow imports
    from heatgrid.sim.scenario import Region  # noqa: PLC0415
    from heatgrid.weather import find_city, load_weather  # noqa: PLC0415

    year = load_weather(spec)
    if carbon_g_per_kwh is None:
        city = find_city(spec)
        carbon_g_per_kwh = grid_carbon_g_per_kwh(
            city.country if city is not None else _FALLBACK_COUNTRY
        )
    city = find_city(spec)
    prices = household_prices(city.country if city is not None else FALLBACK_PRICE_COUNTRY)
    return Region(
        name=year.name,
        timestamps_ts=year.timestamps_ts,
        outdoor_temp_c=year.outdoor_temp_c,
        carbon_g_per_kwh=carbon_g_per_kwh,
        tz_offset_h=year.tz_offset_h,
        tariff_eur_per_kwh=prices.electricity_eur_per_kwh,
    )


def _start_ts(text: str, region: Region) -> float:
    year = datetime.fromtimestamp(float(region.timestamps_ts[0]), UTC).year
    try:
        month, day = (int(part) for part in text.split("-"))
        return datetime(year, month, day, tzinfo=UTC).timestamp()
    except ValueError:
        raise InputError(f"--start must be a date MM-DD such as 01-15, got {text!r}") from None


def _progress(*, quiet: bool) -> Progress:
    """Return the progress display on stderr: a spinner and the elapsed time from the start.

    It shows only when stderr is a terminal, and never with
    ``--json`` or a remote engine. The first step of a policy can take long: on the first run
    after an install, numba compiles the kernels (cached afterwards), so the step counter waits
    while the spinner and the clock keep moving.
    """
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[steps]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    # Rich would print the finished bars once into a redirected stderr (a log file): not there.
    return Progress(*columns, console=console, disable=quiet or not console.is_terminal)


_FIRST_STEP = "(first step; the first run after an install compiles the kernels)"


def _run(scenario: Scenario, policies: list[str], engine: str, progress: Progress) -> Simulation:
    from heatgrid.sim.run import simulate  # noqa: PLC0415 - numba kernels, only when running

    total = scenario.n_steps
    bars = {
        name: progress.add_task(f"{name} {_FIRST_STEP}", total=total, steps=f"0/{total} steps")
        for name in policies
    }

    def advance(name: str, steps: int) -> None:
        progress.update(
            bars[name], completed=steps, description=name, steps=f"{steps}/{total} steps"
        )

    return simulate(scenario, policies, engine=engine, progress=advance)


def _json(simulation: Simulation) -> dict[str, Any]:
    scenario = simulation.scenario
    return {
        "scenario": {
            "homes": scenario.n_homes,
            "racks": scenario.n_racks,
            "days": scenario.n_steps * scenario.step_s / 86_400.0,
            "step_s": scenario.step_s,
            "start_ts": scenario.start_ts,
            "seed": scenario.seed,
            "regions": [
                {
                    "name": region.name,
                    "carbon_g_per_kwh": region.carbon_g_per_kwh,
                    "tariff_eur_per_kwh": region.tariff_eur_per_kwh,
                }
                for region in scenario.regions
            ],
            "jobs_rate_per_h": scenario.jobs.rate_per_h,
            "jobs_median_kwh": scenario.jobs.median_j / 3.6e6,
            "jobs_sigma": scenario.jobs.sigma,
        },
        "policies": simulation.summaries,
    }


def _print_table(simulation: Simulation) -> None:
    from heatgrid.sim.report import SUMMARY_ROWS, format_cell  # noqa: PLC0415 - slow import

    scenario, summaries = simulation.scenario, simulation.summaries
    table = Table(
        title=f"{scenario.n_homes} homes, {scenario.n_steps * scenario.step_s / 86_400.0:g} days, "
        f"seed {scenario.seed}"
    )
    table.add_column("")
    for name in summaries:
        table.add_column(name, justify="right")
    for key, label in SUMMARY_ROWS:
        row = (format_cell(summaries[name][key]) for name in summaries)
        table.add_row(escape(label), *row)  # "[kWh]" is not Rich markup
    console = Console()
    console.print(table)
    for name, summary in summaries.items():
        console.print(_per_home_table(name, summary))


def _per_home_table(policy: str, summary: dict[str, Any]) -> Table:
    from heatgrid.sim.report import PER_HOME_ROWS, PER_HOME_STATISTICS, format_cell  # noqa: PLC0415

    table = Table(title=f"per home, {policy}: mean and percentiles over homes")
    table.add_column("")
    for statistic in PER_HOME_STATISTICS:
        table.add_column(statistic, justify="right")
    for key, label in PER_HOME_ROWS:
        values = summary["per_home"][key]
        table.add_row(escape(label), *(format_cell(values[s]) for s in PER_HOME_STATISTICS))
    return table
