"""``heatgrid jobs report``: print and plot a job's energy report as the coordinator answers it.

Works on the JSON of ``GET /v1/jobs/{id}/report`` (energies [J], emissions [kg CO2e]) and
shows every figure the comparison is made of, so that a reader can redo the sum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from heatgrid.cli._tables import print_table

__all__ = ["plot_report", "print_report"]

_J_PER_KWH = 3.6e6


def _kwh(value_j: float) -> str:
    return f"{value_j / _J_PER_KWH:.3f}"


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole > 0 else "-"


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print the report: a table per device, the totals, and the CO2 comparison."""
    rows = [
        (
            device["device_id"],
            "home" if device["in_home"] else "rack",
            device["country_code"] + (" (assumed)" if device["country_assumed"] else ""),
            _kwh(device["energy_j"]),
            _kwh(device["useful_heat_j"]),
            _kwh(device["unwanted_heat_j"])
            + ("" if device["room_telemetry"] or not device["in_home"] else " (no room data)"),
            _kwh(device["heat_outside_homes_j"]),
            f"{device['co2_kg']:.3f}",
        )
        for device in report["devices"]
    ]
    headers = (
        "device",
        "where",
        "grid",
        "energy kWh",
        "useful heat kWh",
        "unwanted heat kWh",
        "outside homes kWh",
        "CO2 kg",
    )
    print_table(headers, rows, ids={"device"}, title=f"job {report['job_id']}", console=console)
    energy = report["energy_j"]
    console.print(
        f"energy {_kwh(energy)} kWh; heat into homes {_kwh(report['heat_into_homes_j'])} kWh "
        f"({_share(report['heat_into_homes_j'], energy)}): useful "
        f"{_kwh(report['useful_heat_j'])} kWh, unwanted {_kwh(report['unwanted_heat_j'])} kWh; "
        f"outside homes {_kwh(report['heat_outside_homes_j'])} kWh",
        highlight=False,
    )
    console.print(
        f"CO2: heatgrid {report['co2_kg']:.3f} kg, against a data centre "
        f"{report['data_centre_co2_kg']:.3f} kg (PUE {report['pue']:.2f}: "
        f"{_kwh(report['data_centre_energy_j'])} kWh at "
        f"{report['data_centre_carbon_g_per_kwh']:.0f} g/kWh, heat wasted) plus the homes' "
        f"{report['alternative']} heating for the useful heat "
        f"{report['displaced_heating_co2_kg']:.3f} kg: saved {report['co2_saved_kg']:.3f} kg",
        highlight=False,
    )
    if report.get("clawed_back_results"):
        console.print(
            f"clawed back: {report['clawed_back_results']} result(s) paid unchecked and taken "
            f"back when their device was caught cheating; refunded "
            f"{report['clawed_back_refund_eur']:.6f} EUR",
            highlight=False,
        )
    if report.get("clawback_reversed_results"):
        console.print(
            f"clawback reversed: {report['clawback_reversed_results']} result(s) whose device "
            "the operator released, their pay given back to its owner",
            highlight=False,
        )
    console.print(
        f"A room wanted heat while at most {report['hot_tolerance_k']} K over its setpoint. "
        f"PUE: {report['pue_source']}. Grid intensity: {report['carbon_source']}",
        highlight=False,
        style="dim",
    )


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Write a PNG: where the energy went, and the CO2 against a data centre; return the path."""
    import matplotlib  # noqa: PLC0415 (slow import, only for plots)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (energy_axis, co2_axis) = plt.subplots(1, 2, figsize=(10.0, 3.6))
    parts = (
        ("useful heat in homes", report["useful_heat_j"], "#d95f02"),
        ("unwanted heat in homes", report["unwanted_heat_j"], "#fdb863"),
        ("heat outside homes", report["heat_outside_homes_j"], "#999999"),
    )
    left = 0.0
    for label, value_j, color in parts:
        energy_axis.barh([0], [value_j / _J_PER_KWH], left=left, color=color, label=label)
        left += value_j / _J_PER_KWH
    energy_axis.set_yticks([])
    energy_axis.set_xlabel("energy [kWh]")
    energy_axis.set_title(f"Where job {report['job_id'][:8]}'s energy went")
    energy_axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=8)
    co2_axis.barh([1], [report["co2_kg"]], color="#1b9e77", label="heatgrid")
    co2_axis.barh(
        [0], [report["data_centre_co2_kg"]], color="#7570b3", label="data centre (heat wasted)"
    )
    co2_axis.barh(
        [0],
        [report["displaced_heating_co2_kg"]],
        left=[report["data_centre_co2_kg"]],
        color="#e7298a",
        label=f"homes' {report['alternative']} heating",
    )
    co2_axis.set_yticks([0, 1], ["data centre\n+ home heating", "heatgrid"])
    co2_axis.set_xlabel("CO2 [kg CO2e]")
    co2_axis.set_title(f"CO2: saved {report['co2_saved_kg']:.2f} kg")
    co2_axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
