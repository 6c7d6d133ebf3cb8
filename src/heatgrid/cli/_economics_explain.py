"""``heatgrid economics``: the "how this was computed" lines, and a run of a few hours.

The lines spell out every figure an owner can hold against a bill or a pool statement:
energy = power × hours, electricity = energy × tariff, mining revenue = hashrate × hashprice ×
days, hashprice from difficulty, subsidy, fees and the Bitcoin price. ``--hours`` runs the device
at one power for a number of hours (no weather, no room), the shape of a published user test
("it ran 24 hours a day for a month"), and prints the same lines.
"""

from __future__ import annotations

from typing import Any

from heatgrid.core.catalog import Device
from heatgrid.core.economics import (
    MarketSnapshot,
    hashprice_usd_per_ph_day,
    mining_revenue_from_hashprice_usd,
)
from heatgrid.core.errors import InputError, require_positive

__all__ = ["hours_lines", "hours_report", "year_lines"]

_H_PER_DAY = 24.0
_S_PER_H = 3600.0
_SATS_PER_BTC = 1e8
_TH_PER_PH = 1000.0


def _hashprice_line(market: MarketSnapshot, quoted: float | None) -> str:
    if quoted is not None:
        return f"Hashprice: {quoted:.2f} USD/(PH/s·day), as you gave it"
    value = hashprice_usd_per_ph_day(
        market.difficulty, market.btc_price_usd, market.subsidy_btc, market.fees_btc_per_block
    )
    return (
        f"Hashprice: {value:.2f} USD/(PH/s·day) = 1e15 H/s × 86,400 s / (difficulty "
        f"{market.difficulty:.4g} × 2^32) × (subsidy {market.subsidy_btc:g} + fees "
        f"{market.fees_btc_per_block:g} BTC/block) × {market.btc_price_usd:,.0f} USD/BTC"
    )


def hours_report(
    device: Device,
    *,
    hours_h: float,
    power_w: float | None,
    hashrate_ths: float | None,
    market: MarketSnapshot,
    quoted_hashprice_usd_per_ph_day: float | None,
    tariff_eur_per_kwh: float,
) -> dict[str, Any]:
    """Return the inputs and results of running ``device`` at one power for ``hours_h``.

    Parameters
    ----------
    device : Device
        The catalog device.
    hours_h : float
        Hours it runs [h], > 0.
    power_w : float, optional
        Its power as run [W]; the device's ``max_power_w`` if omitted.
    hashrate_ths : float, optional
        Its hashrate as run [TH/s]; ``hashrate_ths · power / max_power_w`` if omitted.
    market : MarketSnapshot
        Difficulty, subsidy, fees, BTC price and exchange rate.
    quoted_hashprice_usd_per_ph_day : float, optional
        A quoted hashprice [USD/(PH/s·day)]; overrides the market's for revenue.
    tariff_eur_per_kwh : float
        Electricity price [EUR/kWh].
    """
    require_positive("--hours", hours_h)
    power = device.max_power_w if power_w is None else require_positive("--power-w", power_w)
    try:
        rated_ths = float(device.hashrate_at_power_ths(power))
    except InputError as error:
        raise InputError(f"--power-w: {error}") from None
    hashrate = (
        rated_ths if hashrate_ths is None else require_positive("--hashrate-ths", hashrate_ths)
    )
    hashprice = (
        market.hashprice_usd_per_ph_day
        if quoted_hashprice_usd_per_ph_day is None
        else float(quoted_hashprice_usd_per_ph_day)
    )
    energy_kwh = power * hours_h / 1000.0
    revenue_usd = float(mining_revenue_from_hashprice_usd(hashrate, hours_h * _S_PER_H, hashprice))
    revenue_btc = revenue_usd / market.btc_price_usd
    cost_eur = energy_kwh * tariff_eur_per_kwh
    revenue_eur = revenue_usd / market.usd_per_eur
    return {
        "hours_h": hours_h,
        "power_w": power,
        "hashrate_ths": hashrate,
        "energy_kwh": energy_kwh,
        "heat_kwh": energy_kwh,
        "hashprice_usd_per_ph_day": hashprice,
        "mining_revenue_btc": revenue_btc,
        "mining_revenue_sat": revenue_btc * _SATS_PER_BTC,
        "mining_revenue_usd": revenue_usd,
        "mining_revenue_eur": revenue_eur,
        "electricity_cost_eur": cost_eur,
        "electricity_cost_usd": cost_eur * market.usd_per_eur,
        "net_cost_eur": cost_eur - revenue_eur,
        "net_cost_usd": (cost_eur - revenue_eur) * market.usd_per_eur,
    }


def hours_lines(
    results: dict[str, Any], market: MarketSnapshot, quoted: float | None, tariff_line: str
) -> list[str]:
    """How each figure of an ``--hours`` run was computed, one line each."""
    rate = market.usd_per_eur
    days = results["hours_h"] / _H_PER_DAY
    return [
        f"Energy: {results['power_w']:,.0f} W × {results['hours_h']:,.1f} h = "
        f"{results['energy_kwh']:,.2f} kWh, all of it heat in the room",
        f"Electricity: {results['energy_kwh']:,.2f} kWh × {tariff_line} = "
        f"{results['electricity_cost_eur']:,.2f} EUR = {results['electricity_cost_usd']:,.2f} USD "
        f"at {rate:g} USD/EUR",
        _hashprice_line(market, quoted),
        f"Mining: {results['hashrate_ths']:g} TH/s ÷ {_TH_PER_PH:g} TH/PH × "
        f"{results['hashprice_usd_per_ph_day']:.2f} USD/(PH/s·day) × {days:,.3g} days = "
        f"{results['mining_revenue_usd']:,.2f} USD = {results['mining_revenue_eur']:,.2f} EUR = "
        f"{results['mining_revenue_btc']:.8f} BTC ({results['mining_revenue_sat']:,.0f} sat) at "
        f"{market.btc_price_usd:,.0f} USD/BTC",
        f"Net: {results['electricity_cost_eur']:,.2f} − {results['mining_revenue_eur']:,.2f} = "
        f"{results['net_cost_eur']:,.2f} EUR ({results['net_cost_usd']:,.2f} USD) for the heat",
        "Expected values (full pay per share, before pool fees): a pool pays about this on "
        "average; any one day varies.",
    ]


def _displaced_line(inputs: dict[str, Any], results: dict[str, Any], tariff_text: str) -> str:
    """How the same heat is priced with each alternative."""
    demand = results["heat_demand_kwh"]
    cop = results["heat_pump_seasonal_cop"]
    cop_text = f"{cop:.2f}" if cop is not None else "–"
    return (
        f"Same heat ({demand:,.0f} kWh of demand): resistive {demand:,.0f} kWh × {tariff_text} = "
        f"{results['displaced_cost_eur_resistive']:,.0f} EUR; heat pump ÷ seasonal COP "
        f"{cop_text} (Staffell 2012, flow {inputs['flow_temp_c']:g} °C) × tariff = "
        f"{results['displaced_cost_eur_heat_pump']:,.0f} EUR; gas ÷ boiler efficiency "
        f"{inputs['boiler_efficiency']:g} × {inputs['gas_price_eur_per_kwh']:.3f} EUR/kWh = "
        f"{results['displaced_cost_eur_gas']:,.0f} EUR"
    )


def year_lines(
    inputs: dict[str, Any], results: dict[str, Any], market: MarketSnapshot
) -> list[str]:
    """How the year's money figures were computed, one line each."""
    device_kwh = results["heat_from_device_kwh"]
    max_kw = inputs["device_max_power_w"] / 1000.0
    full_h = device_kwh / max_kw if max_kw > 0 else 0.0
    tariff = inputs["tariff_eur_per_kwh"]
    tariff_text = f"{tariff:.3f} EUR/kWh" if tariff is not None else "the --tariff-csv prices"
    lines = [
        f"Compute heater energy: {device_kwh:,.0f} kWh = {full_h:,.0f} full-power hours at "
        f"{max_kw:g} kW (it ran {results['device_hours_on_h']:,.0f} h, often below full power)",
        f"Electricity: {device_kwh:,.0f} kWh × {tariff_text} = "
        f"{results['device_electricity_cost_eur']:,.0f} EUR for the compute heater; backup "
        f"({inputs['backup']}): {results['backup_energy_kwh']:,.0f} kWh bought, "
        f"{results['backup_cost_eur']:,.0f} EUR",
        _hashprice_line(market, inputs["hashprice_usd_per_ph_day"]),
        f"Mining: {inputs['device_hashrate_ths']:g} TH/s × {full_h:,.0f} full-power h ÷ 24 h/day "
        f"÷ {_TH_PER_PH:g} TH/PH × {results['hashprice_usd_per_ph_day']:.2f} USD/(PH/s·day) = "
        f"{results['mining_revenue_usd']:,.0f} USD = {results['mining_revenue_eur']:,.0f} EUR "
        f"at {market.usd_per_eur:g} USD/EUR = {results['mining_revenue_btc']:.5f} BTC",
        _displaced_line(inputs, results, tariff_text),
        f"Net heating cost: {results['heating_cost_eur']:,.0f} − "
        f"{results['mining_revenue_eur']:,.0f} = {results['net_heating_cost_eur']:,.0f} EUR",
        f"Prices: electricity {inputs['tariff_source']}",
        f"Prices: gas {inputs['gas_price_source']}",
    ]
    if inputs.get("price_note"):
        lines.append(f"Note: {inputs['price_note']}")
    return lines
