"""``heatgrid economics``: a year of one home heated by a compute heater, in money and CO2.

This module holds the command's options only, so that ``heatgrid economics --help`` loads
neither numpy nor the models; :mod:`heatgrid.cli._economics_run` wires the catalog, the
weather, a tariff, the market and a room model into
:func:`heatgrid.core.homeyear.simulate_home_year` and prints a table and a verdict, one JSON
object (``--json``) or a monthly plot (``--plot``). Runs on built-in defaults with no file and
no network: ``heatgrid economics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from heatgrid.core.defaults import (
    DEFAULT_BOILER_EFFICIENCY,
    DEFAULT_FLOW_TEMP_C,
    HOUSE_PRESET_PARAMS,
)

__all__ = ["DEFAULT_DEVICE", "DEFAULT_HOUSE", "DEFAULT_WEATHER", "register"]

DEFAULT_DEVICE = "Avalon Q"
DEFAULT_WEATHER = "Lyon"
DEFAULT_HOUSE = "terraced"


def register(app: typer.Typer) -> None:
    """Add the ``economics`` command to ``app``."""
    app.command("economics")(economics)


def economics(
    *,
    device: Annotated[str, typer.Option(help="Device name from the catalog.")] = DEFAULT_DEVICE,
    list_devices: Annotated[
        bool, typer.Option("--list-devices", help="List the catalog's devices and exit.")
    ] = False,
    catalog: Annotated[
        Path | None, typer.Option(help="Your catalog (CSV or TOML), merged over the shipped one.")
    ] = None,
    weather: Annotated[
        str, typer.Option(help="An EPW weather file, or a built-in city name.")
    ] = DEFAULT_WEATHER,
    house: Annotated[
        str, typer.Option(help=f"House preset: {', '.join(HOUSE_PRESET_PARAMS)}.")
    ] = DEFAULT_HOUSE,
    ua_w_per_k: Annotated[
        float | None, typer.Option(help="Heat-loss coefficient [W/K] (1R1C, with capacity).")
    ] = None,
    capacity_j_per_k: Annotated[
        float | None, typer.Option(help="Heat capacity [J/K] (1R1C, with UA).")
    ] = None,
    setpoint_c: Annotated[float, typer.Option(help="Room setpoint [°C].")] = 20.0,
    night_setback_c: Annotated[
        float | None, typer.Option(help="Night setpoint from 22:00 to 06:00 local time [°C].")
    ] = None,
    schedule_c: Annotated[
        str | None, typer.Option(help="24 comma-separated setpoints by local hour [°C].")
    ] = None,
    tolerance_k: Annotated[
        float | None, typer.Option(help="Sets both the cold and the hot tolerance [K].")
    ] = None,
    cold_tolerance_k: Annotated[
        float, typer.Option(help="Room may end an hour this far below setpoint [K].")
    ] = 0.5,
    hot_tolerance_k: Annotated[
        float, typer.Option(help="A cycling heater may push the room this far above [K].")
    ] = 1.0,
    tariff_eur_per_kwh: Annotated[
        float | None,
        typer.Option(
            help="Flat electricity price [EUR/kWh] (default: the country's household price, "
            "with its source, from heatgrid's price table)."
        ),
    ] = None,
    tariff_usd_per_kwh: Annotated[
        float | None,
        typer.Option(help="Flat electricity price [USD/kWh], converted with --usd-per-eur."),
    ] = None,
    tariff_csv: Annotated[
        Path | None, typer.Option(help="Price series CSV: timestamp,price_eur_per_kwh.")
    ] = None,
    btc_price_usd: Annotated[float | None, typer.Option(help="Bitcoin price [USD].")] = None,
    difficulty: Annotated[float | None, typer.Option(help="Network difficulty.")] = None,
    fees_btc_per_block: Annotated[
        float | None, typer.Option(help="Mean fees per block [BTC].")
    ] = None,
    subsidy_btc: Annotated[float | None, typer.Option(help="Block subsidy [BTC].")] = None,
    hashprice_usd_per_ph_day: Annotated[
        float | None,
        typer.Option(help="Hashprice [USD/(PH/s·day)]; overrides difficulty, fees, subsidy."),
    ] = None,
    usd_per_eur: Annotated[float | None, typer.Option(help="Exchange rate [USD/EUR].")] = None,
    displaced: Annotated[
        str,
        typer.Option(help="Heating to compare with: resistive, heat-pump or gas (all computed)."),
    ] = "heat-pump",
    backup: Annotated[
        str,
        typer.Option(
            help="Heating above the device's power: displaced (the same), resistive, "
            "heat-pump, gas or none."
        ),
    ] = "displaced",
    flow_temp_c: Annotated[
        float, typer.Option(help="Heat-pump flow temperature [°C].")
    ] = DEFAULT_FLOW_TEMP_C,
    gas_eur_per_kwh: Annotated[
        float | None,
        typer.Option(
            help="Gas price per kWh of fuel [EUR/kWh] (default: the country's household price)."
        ),
    ] = None,
    boiler_efficiency: Annotated[
        float, typer.Option(help="Gas boiler efficiency (0-1.1).")
    ] = DEFAULT_BOILER_EFFICIENCY,
    country: Annotated[
        str | None,
        typer.Option(help="Country code for grid carbon and default prices (default: the city's)."),
    ] = None,
    carbon_g_per_kwh: Annotated[
        float | None, typer.Option(help="Grid carbon intensity, g CO2e per kWh.")
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(
            help="Run the device at one power for this many hours instead of a weather year "
            "(e.g. 720 for a month around the clock) and show how each figure is computed."
        ),
    ] = None,
    power_w: Annotated[
        float | None, typer.Option(help="With --hours: the device's power as run [W].")
    ] = None,
    hashrate_ths: Annotated[
        float | None,
        typer.Option(help="With --hours: the device's hashrate as run [TH/s] (default: rated)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the table.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write a monthly plot to this .png file.")
    ] = None,
) -> None:
    """Estimate a year of heating a home with a compute heater: heat, money and CO2."""
    options = dict(locals())
    from heatgrid.cli._economics_run import run  # noqa: PLC0415 - numpy and models load to run

    run(options)
