"""Which electricity and gas prices ``heatgrid economics`` uses, and where they come from.

A price the user gives wins (``--tariff-eur-per-kwh``, ``--tariff-usd-per-kwh``,
``--tariff-csv``, ``--gas-eur-per-kwh``); otherwise the country's default household prices
(:mod:`heatgrid.core.prices`) are used, the country being ``--country``, the built-in city's, or
the EU-27 for a weather file. Every choice is echoed with its source and period.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heatgrid.core.economics import FlatTariff, Tariff, parse_tariff_csv
from heatgrid.core.errors import InputError
from heatgrid.core.prices import (
    FALLBACK_PRICE_COUNTRY,
    HouseholdPrices,
    household_prices,
    load_household_prices,
)
from heatgrid.weather import find_city

__all__ = ["price_country", "resolve_prices"]


def price_country(country: str | None, weather_spec: str) -> str:
    """Return the country whose default prices apply: ``--country``, the city's, or EU-27."""
    if country is not None:
        return country.strip().upper()
    city = find_city(weather_spec)
    return city.country if city is not None else FALLBACK_PRICE_COUNTRY


def _row(country: str) -> tuple[HouseholdPrices, str | None]:
    """Return the country's row, or the EU-27 row and a note saying why."""
    code = "GB" if country == "UK" else country
    if code in load_household_prices():
        return household_prices(code), None
    note = f"no default prices for {country}: EU-27 prices used"
    return household_prices(FALLBACK_PRICE_COUNTRY), note


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"--tariff-csv: file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"--tariff-csv: cannot read {path}: {error}") from None


def resolve_prices(
    options: dict[str, Any], country: str, usd_per_eur: float
) -> tuple[Tariff, float, dict[str, Any]]:
    """Return the electricity tariff, the gas price [EUR/kWh] and what to echo about both.

    Parameters
    ----------
    options : dict
        The command's options (``tariff_eur_per_kwh``, ``tariff_usd_per_kwh``, ``tariff_csv``,
        ``gas_eur_per_kwh``).
    country : str
        Upper-case country code for the defaults.
    usd_per_eur : float
        Exchange rate for a tariff given in USD [USD/EUR].
    """
    eur, usd, path = (
        options["tariff_eur_per_kwh"],
        options["tariff_usd_per_kwh"],
        options["tariff_csv"],
    )
    if eur is not None and usd is not None:
        raise InputError("give --tariff-eur-per-kwh or --tariff-usd-per-kwh, not both")
    row, note = _row(country)
    echo: dict[str, Any] = {"price_country": row.country, "price_note": note}
    tariff: Tariff
    if path is not None:
        tariff = parse_tariff_csv(_read(path), str(path))
        echo |= {"tariff": str(path), "tariff_eur_per_kwh": None, "tariff_source": str(path)}
    elif eur is not None:
        tariff = FlatTariff(float(eur))
        echo |= {"tariff": "flat", "tariff_eur_per_kwh": float(eur)}
        echo["tariff_source"] = "your --tariff-eur-per-kwh"
    elif usd is not None:
        rate = float(usd) / usd_per_eur
        tariff = FlatTariff(rate)
        echo |= {"tariff": "flat", "tariff_eur_per_kwh": rate, "tariff_usd_per_kwh": float(usd)}
        echo["tariff_source"] = f"your --tariff-usd-per-kwh at {usd_per_eur:g} USD/EUR"
    else:
        tariff = FlatTariff(row.electricity_eur_per_kwh)
        echo |= {
            "tariff": "flat",
            "tariff_eur_per_kwh": row.electricity_eur_per_kwh,
            "tariff_source": _describe(row, row.electricity_per_kwh),
            "tariff_period": row.period,
            "tariff_accuracy": row.accuracy,
        }
    gas = options["gas_eur_per_kwh"]
    if gas is not None:
        echo |= {"gas_price_eur_per_kwh": float(gas), "gas_price_source": "your --gas-eur-per-kwh"}
        return tariff, float(gas), echo
    gas_row = row if row.gas_per_kwh is not None else household_prices(FALLBACK_PRICE_COUNTRY)
    gas_eur = gas_row.gas_eur_per_kwh
    if gas_eur is None:  # the EU-27 row always has one; parse_household_prices checks the row
        raise InputError("the household price table has no EU-27 gas price")
    source = _describe(gas_row, gas_row.gas_per_kwh or 0.0)
    if gas_row is not row:
        source = f"no gas price for {row.country}; {source}"
    echo |= {"gas_price_eur_per_kwh": gas_eur, "gas_price_source": source}
    return tariff, gas_eur, echo


def _describe(row: HouseholdPrices, price_per_kwh: float) -> str:
    """One line: price, country, period, accuracy and publication."""
    converted = ""
    if row.currency != "EUR":
        converted = (
            f" = {price_per_kwh / row.currency_per_eur:.3f} EUR/kWh at "
            f"{row.currency_per_eur:g} {row.currency}/EUR"
        )
    return (
        f"{price_per_kwh:g} {row.currency}/kWh{converted}, {row.country} households, "
        f"{row.period} ({row.accuracy}, transcribed by hand): {row.source}"
    )
