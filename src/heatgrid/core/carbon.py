"""Carbon: grid electricity intensity per country and the CO2 of an energy use.

Intensities are grams of CO2-equivalent per kWh of electricity *generated*, life-cycle basis,
annual averages. Pass an hourly series instead (e.g. from Electricity Maps or a national grid
operator) where one is available: hourly intensity can differ from the annual mean by a factor
of two or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import overload

from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, FloatOrArray, checked_array, scalar_or_array
from heatgrid.core.errors import InputError

__all__ = [
    "GAS_CARBON_G_PER_KWH",
    "GRID_CARBON_G_PER_KWH",
    "GRID_CARBON_SOURCE",
    "co2_kg",
    "grid_carbon_g_per_kwh",
]

GRID_CARBON_SOURCE = (
    "Ember, Yearly Electricity Data (European Electricity Review / Global Electricity Review "
    "2024), carbon intensity of electricity generation, year 2023, gCO2e/kWh, life-cycle; "
    "https://ember-energy.org/data/yearly-electricity-data/ . Values rounded to 10 g and "
    "transcribed by hand: check the source before quoting one."
)
"""Where :data:`GRID_CARBON_G_PER_KWH` comes from, and how exact it is."""

GRID_CARBON_G_PER_KWH: Mapping[str, float] = MappingProxyType(
    {
        # European Union member states, plus GB, NO, CH (ISO 3166-1 alpha-2; GB for the UK).
        "AT": 90.0,
        "BE": 120.0,
        "BG": 370.0,
        "CH": 40.0,
        "CZ": 420.0,
        "DE": 380.0,
        "DK": 150.0,
        "EE": 420.0,
        "ES": 150.0,
        "FI": 80.0,
        "FR": 60.0,
        "GB": 240.0,
        "GR": 340.0,
        "HR": 200.0,
        "HU": 200.0,
        "IE": 280.0,
        "IT": 290.0,
        "LT": 160.0,
        "LV": 120.0,
        "NL": 270.0,
        "NO": 30.0,
        "PL": 660.0,
        "PT": 140.0,
        "RO": 250.0,
        "SE": 40.0,
        "SI": 240.0,
        "SK": 110.0,
        "EU": 240.0,  # EU-27 aggregate
        # Elsewhere.
        "AU": 500.0,
        "BR": 100.0,
        "CA": 170.0,
        "CN": 580.0,
        "IN": 710.0,
        "JP": 480.0,
        "KR": 440.0,
        "US": 370.0,
    }
)
"""Annual mean carbon intensity of grid electricity by country code [g CO2e/kWh].

Keys are ISO 3166-1 alpha-2 codes (``"GB"`` for the United Kingdom) and ``"EU"`` for the
EU-27; see :data:`GRID_CARBON_SOURCE`.
"""

GAS_CARBON_G_PER_KWH = 202.0
"""CO2 from burning natural gas, per kWh of fuel energy (net calorific value) [g CO2/kWh].

IPCC 2006 Guidelines for National Greenhouse Gas Inventories, Vol. 2 (Energy), Table 2.2:
56,100 kg CO2/TJ for natural gas; 56.1 kg/GJ · 3.6 MJ/kWh = 202 g/kWh. Combustion only
(no upstream methane leakage).
"""


def grid_carbon_g_per_kwh(country_code: str) -> float:
    """Return the annual mean grid carbon intensity of a country [g CO2e/kWh].

    Parameters
    ----------
    country_code : str
        ISO 3166-1 alpha-2 code, any case (``"fr"``, ``"DE"``); ``"UK"`` is read as ``"GB"``.

    Returns
    -------
    float
        Intensity [g CO2e/kWh] from :data:`GRID_CARBON_G_PER_KWH`.
    """
    code = country_code.strip().upper()
    if code == "UK":
        code = "GB"
    try:
        return GRID_CARBON_G_PER_KWH[code]
    except KeyError:
        known = ", ".join(sorted(GRID_CARBON_G_PER_KWH))
        raise InputError(
            f"country_code {country_code!r} has no grid carbon intensity; known codes: {known}. "
            "Pass carbon_g_per_kwh explicitly for other grids."
        ) from None


@overload
def co2_kg(energy_kwh: float, carbon_g_per_kwh: float) -> float: ...
@overload
def co2_kg(energy_kwh: ArrayLike, carbon_g_per_kwh: ArrayLike) -> FloatArray: ...
def co2_kg(energy_kwh: ArrayLike, carbon_g_per_kwh: ArrayLike) -> FloatOrArray:
    """Return the CO2 emitted by an energy use [kg CO2e].

    ``energy_kwh · carbon_g_per_kwh / 1000``, element-wise: pass hourly energy with an hourly
    intensity series, or any energy with one annual intensity.

    Parameters
    ----------
    energy_kwh : float or array_like
        Energy used [kWh], >= 0.
    carbon_g_per_kwh : float or array_like
        Carbon intensity of that energy [g CO2e/kWh], >= 0; broadcast against ``energy_kwh``.

    Returns
    -------
    float or numpy.ndarray
        Emissions [kg CO2e], element-wise (sum it for a total).
    """
    energy = checked_array("energy_kwh", energy_kwh, minimum=0.0)
    intensity = checked_array("carbon_g_per_kwh", carbon_g_per_kwh, minimum=0.0)
    if energy.ndim and intensity.ndim and energy.shape != intensity.shape:
        raise InputError(
            f"energy_kwh and carbon_g_per_kwh must have the same shape, "
            f"got {energy.shape} and {intensity.shape}"
        )
    return scalar_or_array(energy * intensity / 1000.0)
