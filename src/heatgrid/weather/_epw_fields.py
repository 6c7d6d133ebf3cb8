r"""The 35 fields of an EPW data row: names, units, missing-value codes, valid ranges (private).

Source: EnergyPlus *Auxiliary Programs*, "Weather Converter Program" → "EnergyPlus Weather File
(EPW) Data Dictionary" (NREL/EnergyPlus, ``doc/auxiliary-programs/src/weather-converter-program/
energyplus-weather-file-epw-data-dictionary.tex``). There, ``\missing X`` means "a value ≥ X is
missing", and ``\minimum`` / ``\maximum`` give the valid range. Names here carry heatgrid's
unit suffixes; the original field titles are in ``title``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__: list[str] = []

FieldKind = Literal["int", "float", "text"]


@dataclass(frozen=True)
class EpwField:
    """One column of an EPW data row.

    Parameters
    ----------
    index : int
        Position in the row, counting from 0.
    name : str
        heatgrid's attribute name, with its unit suffix.
    title : str
        The field's title in the EnergyPlus data dictionary.
    unit : str
        Unit as written in the data dictionary ("" for a label or dimensionless number).
    kind : {"int", "float", "text"}
        How the field is parsed: integer label, float measurement (missing → NaN), or text.
    missing_at_or_above : float or None
        Values at or above this are missing (become NaN); ``None`` if the field has no code.
    valid_min, valid_max : float or None
        Valid range (inclusive) of a non-missing value; ``None`` where the dictionary gives none.
    """

    index: int
    name: str
    title: str
    unit: str
    kind: FieldKind
    missing_at_or_above: float | None = None
    valid_min: float | None = None
    valid_max: float | None = None


def _fields() -> tuple[EpwField, ...]:
    """Build the table; one line per field keeps it readable."""
    f = EpwField
    table = (
        f(0, "year", "Year", "", "int"),
        f(1, "month", "Month", "", "int", None, 1, 12),
        f(2, "day", "Day", "", "int", None, 1, 31),
        f(3, "hour", "Hour (1-24, hour 1 is 00:01 to 01:00)", "", "int", None, 1, 24),
        f(4, "minute", "Minute", "", "int", None, 0, 60),
        f(5, "data_source_flags", "Data Source and Uncertainty Flags", "", "text"),
        f(6, "dry_bulb_temp_c", "Dry Bulb Temperature", "C", "float", 99.9, -70, 70),
        f(7, "dew_point_c", "Dew Point Temperature", "C", "float", 99.9, -70, 70),
        f(8, "relative_humidity_pct", "Relative Humidity", "%", "float", 999, 0, 110),
        f(9, "pressure_pa", "Atmospheric Station Pressure", "Pa", "float", 999999, 31000, 120000),
        f(
            10,
            "extraterrestrial_horizontal_wh_per_m2",
            "Extraterrestrial Horizontal Radiation",
            "Wh/m2",
            "float",
            9999,
            0,
        ),
        f(
            11,
            "extraterrestrial_direct_normal_wh_per_m2",
            "Extraterrestrial Direct Normal Radiation",
            "Wh/m2",
            "float",
            9999,
            0,
        ),
        f(
            12,
            "horizontal_infrared_wh_per_m2",
            "Horizontal Infrared Radiation Intensity",
            "Wh/m2",
            "float",
            9999,
            0,
        ),
        f(
            13,
            "global_horizontal_wh_per_m2",
            "Global Horizontal Radiation",
            "Wh/m2",
            "float",
            9999,
            0,
        ),
        f(14, "direct_normal_wh_per_m2", "Direct Normal Radiation", "Wh/m2", "float", 9999, 0),
        f(
            15,
            "diffuse_horizontal_wh_per_m2",
            "Diffuse Horizontal Radiation",
            "Wh/m2",
            "float",
            9999,
            0,
        ),
        f(
            16,
            "global_horizontal_illuminance_lux",
            "Global Horizontal Illuminance",
            "lux",
            "float",
            999900,
            0,
        ),
        f(
            17,
            "direct_normal_illuminance_lux",
            "Direct Normal Illuminance",
            "lux",
            "float",
            999900,
            0,
        ),
        f(
            18,
            "diffuse_horizontal_illuminance_lux",
            "Diffuse Horizontal Illuminance",
            "lux",
            "float",
            999900,
            0,
        ),
        f(19, "zenith_luminance_cd_per_m2", "Zenith Luminance", "Cd/m2", "float", 9999, 0),
        f(20, "wind_direction_deg", "Wind Direction", "degrees", "float", 999, 0, 360),
        f(21, "wind_speed_m_per_s", "Wind Speed", "m/s", "float", 999, 0, 40),
        f(22, "total_sky_cover_tenths", "Total Sky Cover", "tenths", "float", 99, 0, 10),
        f(23, "opaque_sky_cover_tenths", "Opaque Sky Cover", "tenths", "float", 99, 0, 10),
        f(24, "visibility_km", "Visibility", "km", "float", 9999),
        f(25, "ceiling_height_m", "Ceiling Height (77777 unlimited)", "m", "float", 99999),
        f(26, "present_weather_observation", "Present Weather Observation", "", "int"),
        f(27, "present_weather_codes", "Present Weather Codes", "", "text"),
        f(28, "precipitable_water_mm", "Precipitable Water", "mm", "float", 999),
        f(29, "aerosol_optical_depth", "Aerosol Optical Depth", "", "float", 0.999),
        f(30, "snow_depth_cm", "Snow Depth", "cm", "float", 999),
        f(31, "days_since_last_snowfall_d", "Days Since Last Snowfall", "d", "float", 99),
        f(32, "albedo", "Albedo", "", "float", 999),
        f(
            33,
            "liquid_precipitation_depth_mm",
            "Liquid Precipitation Depth",
            "mm",
            "float",
            999,
        ),
        f(
            34,
            "liquid_precipitation_quantity_h",
            "Liquid Precipitation Quantity",
            "hr",
            "float",
            99,
        ),
    )
    assert [field.index for field in table] == list(range(35))
    return table


EPW_FIELDS: tuple[EpwField, ...] = _fields()
