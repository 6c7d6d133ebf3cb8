"""Write a simulation report: Markdown with PNG plots, one figure per question, policies overlaid.

Figures: room temperature bands (fleet 5–95 % range and mean, against the mean setpoint),
fleet heat power against the thermostats' demand, job latency CDF, revenue (mining and compute)
and CO2 (the fleet against the data-centre-plus-home-heating baseline).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from heatgrid.core._arrays import FloatArray
from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from heatgrid.sim.run import Simulation

__all__ = [
    "PER_HOME_ROWS",
    "PER_HOME_STATISTICS",
    "SUMMARY_ROWS",
    "format_cell",
    "per_home_lines",
    "write_report",
]

SUMMARY_ROWS: tuple[tuple[str, str], ...] = (
    ("comfort_mean_k_h", "comfort: degree-hours outside the band per home, mean [K·h]"),
    ("comfort_p95_k_h", "comfort: degree-hours per home, 95th percentile [K·h]"),
    ("cold_mean_k_h", "of which below the band (too cold) per home, mean [K·h]"),
    ("cold_p95_k_h", "of which below the band per home, 95th percentile [K·h]"),
    ("jobs_submitted", "jobs submitted"),
    ("jobs_completed", "jobs completed"),
    ("jobs_dead", "jobs dead-lettered (attempts spent)"),
    ("job_latency_p50_h", "job completion time p50 [h]"),
    ("job_latency_p95_h", "job completion time p95 [h]"),
    ("job_latency_p99_h", "job completion time p99 [h]"),
    ("goodput_kwh_per_h", "goodput: task energy kept per hour [kWh/h]"),
    ("goodput_pct", "goodput: task energy kept [%]"),
    ("useful_heat_pct", "useful heat: task energy burned in heated rooms [%]"),
    ("spot_check_share_pct", "verification: results spot-checked [%]"),
    ("verification_overhead_pct", "verification: task energy beyond one run of each task [%]"),
    ("heat_delivered_kwh", "heat delivered by the heaters [kWh]"),
    ("backup_heat_kwh", "heat from the homes' own heating [kWh]"),
    ("compute_heat_share_pct", "compute share of the homes' heat [%]"),
    ("mining_revenue_eur", "mining revenue [EUR]"),
    ("compute_revenue_eur", "compute revenue [EUR]"),
    ("owner_revenue_eur", "owners' revenue [EUR]"),
    ("co2_kg", "CO2 of the fleet [kg]"),
    ("baseline_co2_kg", "CO2 of data centre + home heating [kg]"),
    ("co2_saved_kg", "CO2 saved [kg]"),
    ("co2_saved_vs_gas_kg", "CO2 saved against gas boilers [kg]"),
    ("co2_saved_vs_heat_pump_kg", "CO2 saved against heat pumps [kg]"),
    ("mining_revenue_per_home_eur", "mining revenue per home, mean [EUR]"),
    ("owner_revenue_per_home_eur", "owners' revenue per home, mean [EUR]"),
)
"""Summary keys shown in tables, with their labels (units in brackets)."""

PER_HOME_ROWS: tuple[tuple[str, str], ...] = (
    ("heat_delivered_kwh", "heat delivered by the heater [kWh]"),
    ("backup_heat_kwh", "heat from the home's own heating [kWh]"),
    ("mining_revenue_eur", "mining revenue [EUR]"),
    ("owner_revenue_eur", "owner's revenue: mining and compute [EUR]"),
    ("electricity_cost_eur", "electricity bill of the heater [EUR]"),
    ("net_cost_eur", "net cost: bill − revenue [EUR]"),
    ("comfort_k_h", "comfort: degree-hours outside the band [K·h]"),
    ("cold_k_h", "of which below the band (too cold) [K·h]"),
)
"""Per-home distributions (``summary["per_home"]``) shown in the investor tables."""
PER_HOME_STATISTICS = ("mean", "p05", "p25", "p50", "p75", "p95")
"""Columns of the per-home tables."""
_S_PER_H = 3600.0


def format_cell(value: Any) -> str:
    """Return a summary value as table text: two decimals for floats, a dash for None."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def write_report(simulation: Simulation, directory: Path) -> Path:
    """Write ``report.md`` and its PNG figures into ``directory`` (created if missing).

    Parameters
    ----------
    simulation : Simulation
        What :func:`heatgrid.sim.run.simulate` returned.
    directory : pathlib.Path
        Where to write.

    Returns
    -------
    pathlib.Path
        The Markdown file.

    Raises
    ------
    InputError
        If ``directory`` cannot be created or written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        figures = _figures(simulation, directory)
        path = directory / "report.md"
        path.write_text(_markdown(simulation, figures), encoding="utf-8")
    except OSError as error:
        raise InputError(f"--report {directory}: cannot write there ({error.strerror})") from None
    return path


def _markdown(simulation: Simulation, figures: list[tuple[str, str]]) -> str:
    scenario, summaries = simulation.scenario, simulation.summaries
    policies = list(summaries)
    regions = ", ".join(region.name for region in scenario.regions)
    lines = [
        "# heatgrid fleet simulation",
        "",
        f"{scenario.n_homes} homes and {scenario.n_racks} racks in {regions}, "
        f"{scenario.n_steps * scenario.step_s / 86_400.0:g} days in steps of "
        f"{scenario.step_s:g} s, seed {scenario.seed}; every policy ran the same homes, "
        "weather and jobs.",
        "",
        "| | " + " | ".join(policies) + " |",
        "|---|" + "---:|" * len(policies),
    ]
    for key, label in SUMMARY_ROWS:
        cells = " | ".join(format_cell(summaries[policy][key]) for policy in policies)
        lines.append(f"| {label} | {cells} |")
    lines.append("")
    for policy in policies:
        lines += per_home_lines(summaries[policy], f"Per home, {policy}")
    for file_name, caption in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file_name})", ""]
    return "\n".join(lines)


def per_home_lines(summary: dict[str, Any], title: str) -> list[str]:
    """Return a Markdown section: the per-home distributions of one policy's summary.

    Fleet totals are in the summary table; this is what one home of the fleet can expect: the
    mean and the 5th to 95th percentiles over homes.
    """
    per_home = summary["per_home"]
    lines = [
        f"## {title}",
        "",
        f"Distribution over the {summary['homes']:,} homes: mean and percentiles "
        f"(p05 … p95) over {summary['days']:g} days.",
        "",
        "| | " + " | ".join(PER_HOME_STATISTICS) + " |",
        "|---|" + "---:|" * len(PER_HOME_STATISTICS),
    ]
    for key, label in PER_HOME_ROWS:
        cells = " | ".join(format_cell(per_home[key][name]) for name in PER_HOME_STATISTICS)
        lines.append(f"| {label} | {cells} |")
    lines.append("")
    return lines


def _figures(simulation: Simulation, directory: Path) -> list[tuple[str, str]]:
    import matplotlib  # noqa: PLC0415 (slow import, only for reports)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written = []
    for name, caption, draw in (
        ("room_temperature.png", "Room temperature bands", _room_temperature),
        ("heat_power.png", "Fleet heat power against demand", _heat_power),
        ("job_latency_cdf.png", "Job latency CDF", _latency_cdf),
        ("revenue.png", "Revenue", _revenue),
        ("co2.png", "CO2 against the baseline", _co2),
        ("net_cost_per_home.png", "Net cost per home (bill − revenue)", _net_cost_per_home),
    ):
        figure, axis = plt.subplots(figsize=(9, 4))
        draw(simulation, axis)
        axis.legend(fontsize="small")
        figure.tight_layout()
        figure.savefig(directory / name, dpi=100)
        plt.close(figure)
        written.append((name, caption))
    return written


def _hours(simulation: Simulation) -> FloatArray:
    first = next(iter(simulation.runs.values()))
    hours: FloatArray = (first.time_ts - first.time_ts[0]) / _S_PER_H
    return hours


def _room_temperature(simulation: Simulation, axis: Any) -> None:
    hours = _hours(simulation)
    for policy, run in simulation.runs.items():
        (line,) = axis.plot(hours, run.room_mean_c, label=f"{policy} mean")
        axis.fill_between(hours, run.room_p05_c, run.room_p95_c, alpha=0.2, color=line.get_color())
    setpoint_c = next(iter(simulation.runs.values())).setpoint_mean_c
    axis.plot(hours, setpoint_c, "k--", label="mean setpoint")
    axis.set(xlabel="time [h]", ylabel="room temperature [°C]", title="Room temperature, 5–95 %")


def _heat_power(simulation: Simulation, axis: Any) -> None:
    hours = _hours(simulation)
    for policy, run in simulation.runs.items():
        axis.plot(hours, run.heat_w / 1000.0, label=f"{policy} heat")
        axis.plot(hours, run.demand_w / 1000.0, ":", label=f"{policy} demand")
    axis.set(xlabel="time [h]", ylabel="fleet power [kW]", title="Fleet heat power and demand")


def _latency_cdf(simulation: Simulation, axis: Any) -> None:
    for policy, run in simulation.runs.items():
        done = ~np.isnan(run.done_ts)
        latency_h = np.sort(run.done_ts[done] - run.arrival_ts[done]) / _S_PER_H
        share = np.arange(1, latency_h.size + 1) / max(run.arrival_ts.size, 1)
        axis.step(latency_h, share, where="post", label=policy)
    axis.set(xlabel="completion time [h]", ylabel="share of jobs submitted", title="Job latency")


def _revenue(simulation: Simulation, axis: Any) -> None:
    summaries = simulation.summaries
    policies = list(summaries)
    mining = [summaries[p]["mining_revenue_eur"] for p in policies]
    compute = [summaries[p]["compute_revenue_eur"] for p in policies]
    axis.bar(policies, mining, label="mining")
    axis.bar(policies, compute, bottom=mining, label="compute")
    axis.set(ylabel="revenue [EUR]", title="Revenue")


def _co2(simulation: Simulation, axis: Any) -> None:
    summaries = simulation.summaries
    policies = list(summaries)
    x = np.arange(len(policies))
    axis.bar(x - 0.2, [summaries[p]["co2_kg"] for p in policies], 0.4, label="fleet")
    baseline = [summaries[p]["baseline_co2_kg"] for p in policies]
    axis.bar(x + 0.2, baseline, 0.4, label="data centre + home heating")
    axis.set_xticks(x, policies)
    axis.set(ylabel="CO2 [kg]", title="CO2")


def _net_cost_per_home(simulation: Simulation, axis: Any) -> None:
    from heatgrid.sim.results import per_home_net_cost_eur  # noqa: PLC0415

    for policy, run in simulation.runs.items():
        net_eur = np.sort(per_home_net_cost_eur(simulation.scenario, run))
        share = np.arange(1, net_eur.size + 1) / net_eur.size
        axis.step(net_eur, share, where="post", label=policy)
    axis.set(
        xlabel="net cost of the heater's electricity per home [EUR]",
        ylabel="share of homes",
        title="Net cost per home (electricity − mining and compute revenue)",
    )
