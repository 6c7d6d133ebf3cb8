"""Run ``heatgrid economics``: a year of one home heated by a compute heater.

Its options live in :mod:`heatgrid.cli.economics`. Wires the catalog, the weather, a tariff,
the market and a room model into :func:`heatgrid.core.homeyear.simulate_home_year`, then
prints a table and a verdict, one JSON object (``--json``) or a monthly plot (``--plot``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from heatgrid.cli._economics_explain import hours_lines, hours_report, year_lines
from heatgrid.cli._economics_prices import price_country, resolve_prices
from heatgrid.core.catalog import Catalog, Device, load_catalog, parse_catalog
from heatgrid.core.economics import (
    MarketSnapshot,
    SeriesTariff,
    Tariff,
    grid_carbon_g_per_kwh,
)
from heatgrid.core.errors import InputError, require_finite, require_non_negative, require_positive
from heatgrid.core.homeyear import (
    HomeYearInputs,
    HomeYearResult,
    simulate_home_year,
)
from heatgrid.core.thermal import HOUSE_PRESETS, Room1R1C, Room2R2C
from heatgrid.weather import WeatherYear, find_city, load_weather

__all__ = ["run"]

_FALLBACK_COUNTRY = "EU"
_NIGHT_START_LOCAL_H = 22
_NIGHT_END_LOCAL_H = 6
_HDH_BASE_C = 18.0


_ALTERNATIVES = ("resistive", "heat-pump", "gas")
_BACKUPS = ("displaced", "resistive", "heat-pump", "gas", "none")


_ALT_LABELS = {"resistive": "resistive heaters", "heat-pump": "heat pump", "gas": "gas boiler"}


@dataclass(frozen=True)
class _Scenario:
    """The wired inputs, plus what is echoed back to the user."""

    inputs: HomeYearInputs
    weather: WeatherYear
    device: Device
    echo: dict[str, Any]


def run(options: dict[str, Any]) -> None:
    """Run ``heatgrid economics`` with its parsed options, by parameter name."""
    if options["list_devices"]:
        _print_devices(_catalog(options["catalog"]))
        return
    _check_numbers(options)
    if options["hours"] is not None:
        _run_hours(options)
        return
    if options["power_w"] is not None or options["hashrate_ths"] is not None:
        raise InputError("--power-w and --hashrate-ths apply to a run of --hours only")
    plot: Path | None = options["plot"]
    displaced: str = options["displaced"]
    if plot is not None:
        _check_plot_path(plot)
    scenario = _build(options)
    result = _simulate(scenario, quiet=options["as_json"])
    report = _report(scenario, result, displaced)
    if plot is not None:
        _write_plot(plot, result, scenario)
        report["inputs"]["plot"] = str(plot)
    if options["as_json"]:
        typer.echo(json.dumps(report, allow_nan=False))
        return
    _print_table(report, displaced)
    _print_lines(
        "How this was computed", year_lines(report["inputs"], report["results"], _market(options))
    )


def _simulate(scenario: _Scenario, *, quiet: bool) -> HomeYearResult:
    """Run the year with a progress bar on stderr (none with ``--json``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415

    steps = int(scenario.inputs.timestamps_ts.size)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} hours"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as bar:
        task = bar.add_task(f"{scenario.device.name} in {scenario.weather.name}", total=steps)

        def advance(done: int) -> None:
            bar.update(task, completed=done)

        return simulate_home_year(scenario.inputs, progress=advance)


def _run_hours(options: dict[str, Any]) -> None:
    """Run the device at one power for ``--hours`` and print or echo the figures."""
    device = _find_device(options["device"], options["catalog"])
    market = _market(options)
    country = price_country(options["country"], options["weather"])
    if options["tariff_csv"] is not None:
        raise InputError("--tariff-csv needs a weather year; give a flat tariff with --hours")
    tariff, _, price_echo = resolve_prices(options, country, market.usd_per_eur)
    rate = float(tariff.price_eur_per_kwh(0.0))
    results = hours_report(
        device,
        hours_h=float(options["hours"]),
        power_w=options["power_w"],
        hashrate_ths=options["hashrate_ths"],
        market=market,
        quoted_hashprice_usd_per_ph_day=options["hashprice_usd_per_ph_day"],
        tariff_eur_per_kwh=rate,
    )
    inputs = {
        "device": device.name,
        "device_max_power_w": device.max_power_w,
        "device_hashrate_ths": device.hashrate_ths,
        **price_echo,
        "btc_price_usd": market.btc_price_usd,
        "difficulty": market.difficulty,
        "fees_btc_per_block": market.fees_btc_per_block,
        "subsidy_btc": market.subsidy_btc,
        "usd_per_eur": market.usd_per_eur,
        "market_as_of": market.as_of,
    }
    if options["as_json"]:
        typer.echo(json.dumps({"inputs": inputs, "results": results}, allow_nan=False))
        return
    usd = price_echo.get("tariff_usd_per_kwh")
    tariff_line = f"{rate:.4f} EUR/kWh" + (f" ({usd:g} USD/kWh)" if usd is not None else "")
    title = f"{device.name} running {results['hours_h']:,.1f} h at {results['power_w']:,.0f} W"
    lines = hours_lines(results, market, options["hashprice_usd_per_ph_day"], tariff_line)
    _print_lines(title, [*lines, f"Prices: electricity {price_echo['tariff_source']}"])


def _print_lines(title: str, lines: list[str]) -> None:
    console = Console()
    console.print(f"\n[bold]{title}[/bold]")
    for line in lines:
        console.print(f"  {line}", highlight=False, markup=False)


_POSITIVE = (
    "ua_w_per_k",
    "capacity_j_per_k",
    "btc_price_usd",
    "difficulty",
    "usd_per_eur",
    "hours",
    "power_w",
    "hashrate_ths",
)
_NON_NEGATIVE = (
    "tolerance_k",
    "cold_tolerance_k",
    "hot_tolerance_k",
    "tariff_eur_per_kwh",
    "tariff_usd_per_kwh",
    "fees_btc_per_block",
    "subsidy_btc",
    "hashprice_usd_per_ph_day",
    "gas_eur_per_kwh",
    "carbon_g_per_kwh",
)
_FINITE = ("setpoint_c", "night_setback_c", "flow_temp_c")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_numbers(options: dict[str, Any]) -> None:
    """Reject non-finite, negative or zero numbers, naming the option."""
    for name in _POSITIVE:
        if options[name] is not None:
            require_positive(_option(name), options[name])
    for name in _NON_NEGATIVE:
        if options[name] is not None:
            require_non_negative(_option(name), options[name])
    for name in _FINITE:
        if options[name] is not None:
            require_finite(_option(name), options[name])
    efficiency = require_positive("--boiler-efficiency", options["boiler_efficiency"])
    if efficiency > 1.1:
        raise InputError(f"--boiler-efficiency must be at most 1.1, got {efficiency!r}")
    if (options["ua_w_per_k"] is None) != (options["capacity_j_per_k"] is None):
        raise InputError("--ua-w-per-k and --capacity-j-per-k must be given together (1R1C room)")
    for name, allowed in (("displaced", _ALTERNATIVES), ("backup", _BACKUPS)):
        if options[name] not in allowed:
            raise InputError(
                f"{_option(name)} must be one of {', '.join(allowed)}, got {options[name]!r}"
            )


def _check_plot_path(path: Path) -> None:
    """Refuse a plot path that is not a .png in an existing, writable directory."""
    if path.suffix.lower() != ".png":
        raise InputError(f"--plot must name a .png file, got {str(path)!r}")
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise InputError(f"--plot: directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"--plot: directory {str(folder)!r} is not writable")


def _read_text(option: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{option}: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{option}: cannot read {path}: {error}") from None


def _catalog(catalog_path: Path | None) -> Catalog:
    catalog: Catalog = load_catalog()
    if catalog_path is not None:
        catalog = catalog.merged(
            parse_catalog(_read_text("--catalog", catalog_path), str(catalog_path))
        )
    return catalog


def _print_devices(catalog: Catalog) -> None:
    table = Table(title="Devices in the catalog")
    for column in ("name", "kind", "max_power_w", "min_power_w", "hashrate_ths", "vram_gb"):
        table.add_column(column, justify="left" if column in ("name", "kind") else "right")
    for item in catalog:
        table.add_row(
            item.name,
            item.kind,
            f"{item.max_power_w:g}",
            f"{item.min_power_w:g}",
            f"{item.hashrate_ths:g}",
            f"{item.vram_gb:g}",
        )
    Console().print(table)


def _find_device(name: str, catalog_path: Path | None) -> Device:
    try:
        return _catalog(catalog_path).find(
            name, list_hint="list every device with 'heatgrid economics --list-devices'"
        )
    except InputError as error:
        raise InputError(f"--device: {error}") from None


def _room(options: dict[str, Any]) -> tuple[Room1R1C | Room2R2C, dict[str, Any]]:
    ua, capacity = options["ua_w_per_k"], options["capacity_j_per_k"]
    if ua is not None:
        model = Room1R1C(ua_w_per_k=ua, capacity_j_per_k=capacity)
        return model, {"house": None, "ua_w_per_k": ua, "capacity_j_per_k": capacity}
    name = options["house"]
    if name not in HOUSE_PRESETS:
        raise InputError(
            f"--house must be one of {', '.join(HOUSE_PRESETS)}, got {name!r}; "
            "or give --ua-w-per-k and --capacity-j-per-k"
        )
    preset = HOUSE_PRESETS[name]
    return preset, {
        "house": name,
        "ua_w_per_k": float(preset.ua_w_per_k),
        "capacity_j_per_k": float(preset.capacity_j_per_k),
    }


def _setpoints(options: dict[str, Any]) -> tuple[float | np.ndarray[Any, Any], dict[str, Any]]:
    setpoint = float(options["setpoint_c"])
    if options["schedule_c"] is not None:
        cells = [cell.strip() for cell in str(options["schedule_c"]).split(",")]
        if len(cells) != 24:
            raise InputError(f"--schedule-c needs 24 comma-separated values, got {len(cells)}")
        values = []
        for hour, cell in enumerate(cells):
            try:
                number = float(cell)
            except ValueError:
                raise InputError(f"--schedule-c value {hour} is not a number: {cell!r}") from None
            values.append(require_finite(f"--schedule-c value {hour}", number))
        return np.asarray(values), {"schedule_c": values}
    night = options["night_setback_c"]
    if night is None:
        return setpoint, {"setpoint_c": setpoint}
    hours = np.full(24, setpoint)
    hours[_NIGHT_START_LOCAL_H:] = night
    hours[:_NIGHT_END_LOCAL_H] = night
    return hours, {"setpoint_c": setpoint, "night_setback_c": float(night)}


def _check_tariff_span(tariff: Tariff, weather: WeatherYear, path: Path | None) -> None:
    """Refuse a price series that does not cover every hour of the weather year."""
    if not isinstance(tariff, SeriesTariff):
        return
    first_ts = float(weather.timestamps_ts[0]) - 3600.0
    last_ts = float(weather.timestamps_ts[-1])
    start_ts = float(tariff.timestamps_ts[0])
    end_ts = float(tariff.timestamps_ts[-1]) + tariff.interval_s
    if start_ts <= first_ts and end_ts >= last_ts:
        return
    raise InputError(
        f"--tariff-csv {path}: prices cover {_utc(start_ts)} to {_utc(end_ts)}, but the weather "
        f"{weather.name!r} needs prices from {_utc(first_ts)} to {_utc(last_ts)} (UTC; its "
        f"hours are local standard time, UTC{weather.tz_offset_h:+g} h)"
    )


def _utc(timestamp_ts: float) -> str:
    return datetime.fromtimestamp(timestamp_ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _market(options: dict[str, Any]) -> MarketSnapshot:
    defaults = MarketSnapshot()
    return MarketSnapshot(
        btc_price_usd=_or(options["btc_price_usd"], defaults.btc_price_usd),
        difficulty=_or(options["difficulty"], defaults.difficulty),
        fees_btc_per_block=_or(options["fees_btc_per_block"], defaults.fees_btc_per_block),
        subsidy_btc=_or(options["subsidy_btc"], defaults.subsidy_btc),
        usd_per_eur=_or(options["usd_per_eur"], defaults.usd_per_eur),
        as_of=defaults.as_of if _market_is_default(options) else "user",
    )


def _market_is_default(options: dict[str, Any]) -> bool:
    names = ("btc_price_usd", "difficulty", "fees_btc_per_block", "subsidy_btc", "usd_per_eur")
    return all(options[name] is None for name in names)


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _carbon(options: dict[str, Any], weather_spec: str) -> tuple[float, str | None]:
    if options["carbon_g_per_kwh"] is not None:
        return float(options["carbon_g_per_kwh"]), None
    code = options["country"]
    if code is None:
        city = find_city(weather_spec)
        code = city.country if city is not None else _FALLBACK_COUNTRY
    try:
        return grid_carbon_g_per_kwh(code), code.strip().upper()
    except InputError as error:
        raise InputError(f"--country: {error}") from None


def _build(options: dict[str, Any]) -> _Scenario:
    """Read files and wire every input; nothing is simulated yet."""
    device = _find_device(options["device"], options["catalog"])
    weather = load_weather(options["weather"])
    model, room_echo = _room(options)
    setpoint, setpoint_echo = _setpoints(options)
    market = _market(options)
    carbon, country = _carbon(options, options["weather"])
    tariff, gas_eur_per_kwh, tariff_echo = resolve_prices(
        options, price_country(options["country"], options["weather"]), market.usd_per_eur
    )
    _check_tariff_span(tariff, weather, options["tariff_csv"])
    cold_k, hot_k = options["cold_tolerance_k"], options["hot_tolerance_k"]
    if options["tolerance_k"] is not None:
        cold_k = hot_k = options["tolerance_k"]
    displaced_kind = options["displaced"]
    backup_kind = options["backup"]
    if backup_kind == "displaced":
        backup_kind = displaced_kind
    inputs = HomeYearInputs(
        model=model,
        timestamps_ts=weather.timestamps_ts,
        outdoor_temp_c=weather.outdoor_temp_c,
        device=device,
        tariff=tariff,
        setpoint_c=setpoint,
        tz_offset_h=weather.tz_offset_h,
        cold_tolerance_k=cold_k,
        hot_tolerance_k=hot_k,
        backup=backup_kind,
        market=market,
        hashprice_usd_per_ph_day=options["hashprice_usd_per_ph_day"],
        flow_temp_c=options["flow_temp_c"],
        gas_price_eur_per_kwh=gas_eur_per_kwh,
        boiler_efficiency=options["boiler_efficiency"],
        carbon_g_per_kwh=carbon,
    )
    echo: dict[str, Any] = {
        "device": device.name,
        "device_kind": device.kind,
        "device_max_power_w": device.max_power_w,
        "device_min_power_w": device.min_power_w,
        "device_hashrate_ths": device.hashrate_ths,
        "weather": weather.name,
        "weather_source": weather.source,
        "latitude_deg": weather.latitude_deg,
        "longitude_deg": weather.longitude_deg,
        "tz_offset_h": weather.tz_offset_h,
        **room_echo,
        "time_constant_h": room_echo["capacity_j_per_k"] / room_echo["ua_w_per_k"] / 3600.0,
        **setpoint_echo,
        "cold_tolerance_k": float(cold_k),
        "hot_tolerance_k": float(hot_k),
        **tariff_echo,
        "btc_price_usd": market.btc_price_usd,
        "difficulty": market.difficulty,
        "fees_btc_per_block": market.fees_btc_per_block,
        "subsidy_btc": market.subsidy_btc,
        "usd_per_eur": market.usd_per_eur,
        "market_as_of": market.as_of,
        "hashprice_usd_per_ph_day": options["hashprice_usd_per_ph_day"],
        "displaced": displaced_kind,
        "backup": backup_kind,
        "flow_temp_c": float(options["flow_temp_c"]),
        "boiler_efficiency": float(options["boiler_efficiency"]),
        "country": country,
        "carbon_g_per_kwh": carbon,
    }
    return _Scenario(inputs=inputs, weather=weather, device=device, echo=echo)


def _report(scenario: _Scenario, result: HomeYearResult, displaced: str) -> dict[str, Any]:
    """Build the one JSON-able report: inputs echoed, results, monthly series."""
    summary = result.summary()
    key = displaced.replace("-", "_")
    results: dict[str, Any] = {
        "heating_degree_hours_k_h": scenario.weather.heating_degree_hours_k_h(_HDH_BASE_C),
        **summary,
        "displaced_cost_eur": summary[f"displaced_cost_eur_{key}"],
        "savings_eur": summary[f"savings_eur_{key}"],
        "co2_saved_kg": summary[f"co2_saved_kg_{key}"],
    }
    monthly = {name: values.tolist() for name, values in result.monthly().items()}
    return {
        "inputs": scenario.echo,
        "results": {name: _json_number(value) for name, value in results.items()},
        "monthly": monthly,
    }


def _json_number(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _kwh(value: float) -> str:
    return f"{value:,.0f} kWh"


def _money(value: float) -> str:
    return f"{value:,.0f} €"


def _print_table(report: dict[str, Any], displaced: str) -> None:
    inputs, results = report["inputs"], report["results"]
    console = Console()
    where = inputs["house"] or "1R1C room"
    table = Table(
        title=f"{inputs['device']} heating a {where} home in {inputs['weather']} for a year",
        title_justify="left",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in _table_rows(results, inputs):
        table.add_row(label, value)
    console.print(table)
    console.print(_verdict(report, displaced), highlight=False)


def _table_rows(results: dict[str, Any], inputs: dict[str, Any]) -> list[tuple[str, str]]:
    demand = results["heat_demand_kwh"]
    above = results["heat_above_demand_kwh"]
    rows = [
        ("Heating degree-hours (base 18 °C)", f"{results['heating_degree_hours_k_h']:,.0f} K·h"),
        ("Heat demand (to hold the setpoint)", _kwh(demand)),
        ("Heat delivered (compute heater + backup)", _kwh(results["heat_delivered_kwh"])),
        (
            "  from the compute heater",
            f"{_kwh(results['heat_from_device_kwh'])} · "
            f"{results['device_heat_share_pct']:.1f} % of delivered",
        ),
        (
            "  from the backup",
            f"{_kwh(results['backup_heat_kwh'])} · "
            f"{results['backup_heat_share_pct']:.1f} % of delivered",
        ),
        (
            "  above demand: on/off overshoot" if above >= 0.0 else "  short of demand (no backup)",
            f"{_kwh(abs(above))} · {100.0 * abs(above) / demand if demand > 0 else 0.0:.1f} % "
            "of demand",
        ),
        ("Compute heater running", f"{results['device_hours_on_h']:,.0f} h"),
        ("Hashprice", f"{results['hashprice_usd_per_ph_day']:.1f} USD/(PH/s·day)"),
        ("Mining revenue", f"{results['mining_revenue_btc']:.5f} BTC"),
        ("Mining revenue", _money(results["mining_revenue_eur"])),
        ("Electricity cost (heater and backup)", _money(results["electricity_cost_eur"])),
        ("Energy cost of heating", _money(results["heating_cost_eur"])),
        ("Net heating cost (cost − revenue)", _money(results["net_heating_cost_eur"])),
    ]
    for alternative, label in _ALT_LABELS.items():
        key = alternative.replace("-", "_")
        rows.append((f"Same heat from {label}", _money(results[f"displaced_cost_eur_{key}"])))
        rows.append((f"Saving against {label}", _money(results[f"savings_eur_{key}"])))
    rows += [
        ("CO2 of heater and backup", f"{results['co2_kg']:,.0f} kg"),
        (
            f"CO2 of the same heat from {_ALT_LABELS[inputs['displaced']]}",
            f"{results[_co2_key(inputs)]:,.0f} kg",
        ),
        ("Mean room temperature", f"{results['mean_room_temp_c']:.1f} °C"),
        ("Lowest room temperature", f"{results['min_room_temp_c']:.1f} °C"),
        ("Too cold (below setpoint − tolerance)", f"{results['comfort_deficit_k_h']:,.1f} K·h"),
    ]
    return rows


def _co2_key(inputs: dict[str, Any]) -> str:
    return "displaced_co2_kg_" + str(inputs["displaced"]).replace("-", "_")


def _verdict(report: dict[str, Any], displaced: str) -> str:
    inputs, results = report["inputs"], report["results"]
    saving = results["savings_eur"]
    label = _ALT_LABELS[displaced]
    comparison = (
        f"cost {_money(saving)} less than your {label}"
        if saving >= 0
        else f"cost {_money(-saving)} more than your {label}"
    )
    cold = ""
    if results["comfort_deficit_k_h"] > 0.0:
        cold = (
            f" Without enough backup the home is too cold for "
            f"{results['comfort_deficit_k_h']:,.0f} degree-hours (lowest "
            f"{results['min_room_temp_c']:.1f} °C)."
        )
    return (
        f"Over a typical year in {inputs['weather']}, this home needs "
        f"{results['heat_demand_kwh']:,.0f} kWh of heat. The {inputs['device']} would cover "
        f"{results['device_heat_share_pct']:.0f} % of the heat delivered, earn "
        f"{_money(results['mining_revenue_eur'])} a year by mining, and {comparison} "
        f"(net {_money(results['net_heating_cost_eur'])} a year against "
        f"{_money(results['displaced_cost_eur'])}).{cold} These are expected values at "
        f"{_market_words(inputs)} and a simple model of the home, not a promise."
    )


def _market_words(inputs: dict[str, Any]) -> str:
    if inputs["market_as_of"] == "user":
        return "the market values you gave"
    return f"the market values of {inputs['market_as_of']}"


def _write_plot(path: Path, result: HomeYearResult, scenario: _Scenario) -> None:
    """Write the monthly heat, revenue and net cost as a PNG (Agg, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    monthly = result.monthly()
    months = np.arange(1, 13)
    names = ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"]
    figure = Figure(figsize=(9.0, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    heat, money = figure.subplots(2, 1, sharex=True)
    device_kwh = monthly["heat_from_device_kwh"]
    heat.bar(months, device_kwh, label=f"{scenario.device.name}", color="#d95f02")
    heat.bar(months, monthly["backup_heat_kwh"], bottom=device_kwh, label="backup", color="#7570b3")
    heat.set_ylabel("heat [kWh]")
    heat.set_title(f"{scenario.device.name} in {scenario.weather.name}: monthly heat and money")
    heat.legend()
    width = 0.4
    money.bar(
        months - width / 2,
        monthly["mining_revenue_eur"],
        width,
        label="mining revenue",
        color="#1b9e77",
    )
    money.bar(
        months + width / 2,
        monthly["net_heating_cost_eur"],
        width,
        label="net heating cost",
        color="#e7298a",
    )
    displaced = str(scenario.echo["displaced"])
    money.plot(
        months,
        monthly["displaced_cost_eur_" + displaced.replace("-", "_")],
        "o-",
        color="black",
        label=f"same heat from {_ALT_LABELS[displaced]}",
    )
    money.axhline(0.0, color="black", linewidth=0.8)
    money.set_ylabel("money [EUR]")
    money.set_xticks(months, names)
    money.legend()
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as error:
        raise InputError(f"--plot: cannot write {path}: {error.strerror or error}") from None
