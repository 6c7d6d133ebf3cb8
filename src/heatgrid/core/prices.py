"""Default household electricity and gas prices per country, with their source and period.

The table ships as package data (``heatgrid/core/data/household_prices.csv``): one row per
ISO 3166-1 alpha-2 country code (``"EU"`` for the EU-27), prices per kWh in the currency of the
publication, the rate used to convert them to euros, the period they describe, how exact they
are and where they come from. The figures were transcribed by hand and rounded; the file's
header says so, and so does every report that uses them. They are defaults for a first
estimate: a home owner's own tariff always wins.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

from heatgrid.core.errors import InputError

__all__ = [
    "FALLBACK_PRICE_COUNTRY",
    "HouseholdPrices",
    "household_prices",
    "load_household_prices",
    "parse_household_prices",
]

FALLBACK_PRICE_COUNTRY = "EU"
"""Row used where a country has no row, or no gas price [country code]."""

_COLUMNS = (
    "country",
    "electricity_per_kwh",
    "gas_per_kwh",
    "currency",
    "currency_per_eur",
    "period",
    "accuracy",
    "source",
)
_ACCURACY = ("published", "approximate")


@dataclass(frozen=True)
class HouseholdPrices:
    """Household energy prices of one country.

    Parameters
    ----------
    country : str
        ISO 3166-1 alpha-2 code, upper case (``"EU"`` for the EU-27).
    electricity_per_kwh : float
        Electricity price, all taxes included [currency/kWh], >= 0.
    gas_per_kwh : float or None
        Natural gas price per kWh of fuel [currency/kWh], >= 0; None where the table has none.
    currency : str
        ISO 4217 code of both prices, e.g. ``"EUR"``, ``"USD"``.
    currency_per_eur : float
        Units of ``currency`` per euro used to convert [currency/EUR], > 0.
    period : str
        Period the prices describe, e.g. ``"2024-H2"``.
    accuracy : {"published", "approximate"}
        ``published``: as reported in the publication's release, rounded to the cent;
        ``approximate``: read from its tables by hand, good to about ±0.03 per kWh.
    source : str
        The publication.
    """

    country: str
    electricity_per_kwh: float
    gas_per_kwh: float | None
    currency: str
    currency_per_eur: float
    period: str
    accuracy: str
    source: str

    @property
    def electricity_eur_per_kwh(self) -> float:
        """Electricity price converted to euros [EUR/kWh]."""
        return self.electricity_per_kwh / self.currency_per_eur

    @property
    def gas_eur_per_kwh(self) -> float | None:
        """Gas price converted to euros [EUR/kWh], or None."""
        if self.gas_per_kwh is None:
            return None
        return self.gas_per_kwh / self.currency_per_eur


def parse_household_prices(text: str, source: str) -> Mapping[str, HouseholdPrices]:
    """Parse a household price table (CSV, ``#`` comment lines) into rows by country code.

    Parameters
    ----------
    text : str
        File contents.
    source : str
        Where the text comes from, for error messages.

    Returns
    -------
    Mapping of str to HouseholdPrices
        Read-only, by upper-case country code.
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise InputError(f"{source}: header must be {','.join(_COLUMNS)}")
    rows: dict[str, HouseholdPrices] = {}
    for number, record in enumerate(reader, start=2):
        where = f"{source}, data row {number - 1}"
        country = (record["country"] or "").strip().upper()
        if not country or country in rows:
            raise InputError(f"{where}: country code missing or repeated: {country!r}")
        accuracy = (record["accuracy"] or "").strip()
        if accuracy not in _ACCURACY:
            raise InputError(f"{where}: accuracy must be one of {', '.join(_ACCURACY)}")
        gas_text = (record["gas_per_kwh"] or "").strip()
        rows[country] = HouseholdPrices(
            country=country,
            electricity_per_kwh=_number(
                where, "electricity_per_kwh", record["electricity_per_kwh"]
            ),
            gas_per_kwh=_number(where, "gas_per_kwh", gas_text) if gas_text else None,
            currency=(record["currency"] or "").strip().upper(),
            currency_per_eur=_number(where, "currency_per_eur", record["currency_per_eur"], 1e-9),
            period=(record["period"] or "").strip(),
            accuracy=accuracy,
            source=(record["source"] or "").strip(),
        )
    if FALLBACK_PRICE_COUNTRY not in rows:
        raise InputError(f"{source}: needs a row for {FALLBACK_PRICE_COUNTRY}")
    return MappingProxyType(rows)


def _number(where: str, column: str, text: str | None, minimum: float = 0.0) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise InputError(f"{where}: {column} is not a number: {text!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise InputError(f"{where}: {column} must be a finite number >= {minimum:g}, got {text!r}")
    return value


@cache
def load_household_prices() -> Mapping[str, HouseholdPrices]:
    """Return the shipped household price table (package data, constant), by country code."""
    text = resources.files("heatgrid.core").joinpath("data", "household_prices.csv")
    return parse_household_prices(
        text.read_text("utf-8"), "heatgrid/core/data/household_prices.csv"
    )


def household_prices(country_code: str) -> HouseholdPrices:
    """Return the default household prices of a country.

    Parameters
    ----------
    country_code : str
        ISO 3166-1 alpha-2 code, any case; ``"UK"`` is read as ``"GB"``, ``"EU"`` is the EU-27.

    Returns
    -------
    HouseholdPrices
        The country's row.

    Raises
    ------
    InputError
        If the table has no row for the country (the message lists the codes it has).
    """
    table = load_household_prices()
    code = country_code.strip().upper()
    code = "GB" if code == "UK" else code
    if code not in table:
        raise InputError(
            f"no default household prices for country {country_code!r}; known: "
            f"{', '.join(sorted(table))}. Give your tariff with --tariff-eur-per-kwh."
        )
    return table[code]
