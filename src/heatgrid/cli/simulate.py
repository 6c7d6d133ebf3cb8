"""``heatgrid simulate``: a fleet of heated homes on the real control and scheduling code.

Wires weather (cities or EPW files, one region each) and a job-stream spec into a
:class:`heatgrid.sim.scenario.Scenario`, runs it under one or several scheduling policies
(:func:`heatgrid.sim.run.simulate`) with a progress bar, and prints a table, one JSON object
(``--json``) or a Markdown report with plots (``--report DIR``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from heatgrid.core.economics import grid_carbon_g_per_kwh
from heatgrid.core.errors import InputError
from heatgrid.core.prices import FALLBACK_PRICE_COUNTRY, household_prices
from heatgrid.core.scheduling import POLICIES
from heatgrid.sim.distributed import INSTALL_HINT, ray_available
from heatgrid.sim.jobspec import DEFAULT_RATE_PER_HOME_H, JOBS_SYNTAX, parse_job_stream
from heatgrid.sim.report import SUMMARY_ROWS, format_cell, write_report
from heatgrid.sim.results import json_safe
from heatgrid.sim.run import ENGINES, Simulation, simulate
from heatgrid.sim.scenario import Region, Scenario
from heatgrid.weather import find_city, load_weather

__all__ = ["register"]

DEFAULT_WEATHER = "Lyon"
DEFAULT_START = "01-15"
_FALLBACK_COUNTRY = "EU"

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
    homes: Annotated[int, typer.Option(help="Number of homes, each with one heater.")] = 100,
    days: Annotated[float, typer.Option(help="Length of the run in days.")] = 2.0,
    step_s: Annotated[float, typer.Option(help="Control and thermal step in seconds.")] = 300.0,
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
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    carbon_g_per_kwh: Annotated[
        float | None,
        typer.Option(
            help="Grid carbon intensity for every region, g CO2e per kWh "
            "(default: the city's country; EU mean for EPW files)."
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option(help=f"Where policies run: {', '.join(ENGINES)}.")
    ] = "local",
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
    if isinstance(homes, bool) or homes < 1:
        raise InputError(f"--homes must be at least 1, got {homes}")
    if not days > 0.0:
        raise InputError(f"--days must be greater than 0, got {days:g}")
    stream = parse_job_stream(jobs, homes)
    regions = tuple(_region(spec, carbon_g_per_kwh) for spec in (weather or [DEFAULT_WEATHER]))
    scenario = Scenario(
        n_homes=homes,
        start_ts=_start_ts(start, regions[0]),
        days=days,
        step_s=step_s,
        regions=regions,
        jobs=stream,
        seed=seed,
    )
    simulation = _run(scenario, policies, engine, quiet=as_json)
    if report is not None:
        path = write_report(simulation, report)
        if not as_json:
            typer.echo(f"report written to {path}")
    if as_json:
        typer.echo(json.dumps(json_safe(_json(simulation)), indent=2, allow_nan=False))
    else:
        _print_table(simulation)


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


def _run(scenario: Scenario, policies: list[str], engine: str, *, quiet: bool) -> Simulation:
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=quiet or engine != "local") as progress:
        bars = {name: progress.add_task(name, total=scenario.n_steps) for name in policies}

        def advance(name: str, steps: int) -> None:
            progress.update(bars[name], completed=steps)

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
    scenario, summaries = simulation.scenario, simulation.summaries
    table = Table(
        title=f"{scenario.n_homes} homes, {scenario.n_steps * scenario.step_s / 86_400.0:g} days, "
        f"seed {scenario.seed}"
    )
    table.add_column("")
    for name in summaries:
        table.add_column(name, justify="right")
    for key, label in SUMMARY_ROWS:
        table.add_row(label, *(format_cell(summaries[name][key]) for name in summaries))
    Console().print(table)
