"""Read EnergyPlus weather files (EPW): all 35 hourly fields, the location, UTC timestamps.

An EPW file has 8 header lines (LOCATION, DESIGN CONDITIONS, TYPICAL/EXTREME PERIODS, GROUND
TEMPERATURES, HOLIDAYS/DAYLIGHT SAVINGS, COMMENTS 1, COMMENTS 2, DATA PERIODS) and then one
row of 35 comma-separated fields per hour. The field list, units, missing-value codes and valid
ranges follow the EnergyPlus *Auxiliary Programs* documentation, section "EnergyPlus Weather
File (EPW) Data Dictionary" (see :data:`EPW_FIELDS`).

Conventions applied here:

* A value at or above its field's missing code (99.9 for temperatures, 999 for relative
  humidity, 999999 for pressure, 9999 for radiation, 999900 for illuminance, 999 for wind,
  99 for sky cover, 9999 for visibility, 99999 for ceiling height, ...) becomes NaN, and so
  does an empty measurement field. Other values are kept as written (77777 m is an unlimited
  ceiling); a value outside the dictionary's valid range is an error.
* Hour ``h`` (1–24) of a row is the hour *ending* at ``h``:00 local standard time (hour 1 is
  00:00–01:00). Timestamps are that end instant converted to UTC with the LOCATION time zone.
* The year column is ignored (a typical year mixes months from different years); timestamps
  use a reference year: the ``year`` argument, else 2023 (non-leap) or 2024 when the file has
  a 29 February.

Only hourly files (one record per hour in DATA PERIODS) are read.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from heatgrid.core.errors import InputError
from heatgrid.weather._epw_fields import EPW_FIELDS, EpwField
from heatgrid.weather._epw_header import (
    LEAP_YEAR,
    N_HEADER_LINES,
    EpwDataPeriod,
    EpwLocation,
    check_header,
    parse_data_periods,
    parse_location,
)
from heatgrid.weather._gaps import interpolate_gaps, longest_gap
from heatgrid.weather.year import DEFAULT_YEAR, HOUR_S, WeatherYear

__all__ = [
    "EPW_FIELDS",
    "EpwData",
    "EpwDataPeriod",
    "EpwField",
    "EpwLocation",
    "parse_epw",
    "read_epw",
]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]

_N_FIELDS = len(EPW_FIELDS)
_MAX_FILLED_GAP_H = 24


@dataclass(frozen=True, eq=False)
class EpwData:
    """Everything in an EPW file, typed.

    Each data field is an attribute named as in :data:`EPW_FIELDS` (unit suffix included):
    ``year``, ``month``, ``day``, ``hour``, ``minute`` and ``present_weather_observation`` are
    int64 arrays; ``data_source_flags`` and ``present_weather_codes`` are tuples of str; the
    other 27 fields are float64 arrays with NaN where the file marks the value missing.
    All arrays are read-only and have one value per hour.

    Attributes
    ----------
    source : str
        The file path, or the ``source`` name given to :func:`parse_epw`.
    location : EpwLocation
        The LOCATION header.
    data_periods : tuple of EpwDataPeriod
        The DATA PERIODS header.
    header_lines : tuple of str
        The 8 header lines as written.
    timestamps_ts : numpy.ndarray
        End of each hour, POSIX UTC [s].
    """

    source: str
    location: EpwLocation
    data_periods: tuple[EpwDataPeriod, ...]
    header_lines: tuple[str, ...]
    timestamps_ts: FloatArray
    year: IntArray
    month: IntArray
    day: IntArray
    hour: IntArray
    minute: IntArray
    data_source_flags: tuple[str, ...]
    dry_bulb_temp_c: FloatArray
    dew_point_c: FloatArray
    relative_humidity_pct: FloatArray
    pressure_pa: FloatArray
    extraterrestrial_horizontal_wh_per_m2: FloatArray
    extraterrestrial_direct_normal_wh_per_m2: FloatArray
    horizontal_infrared_wh_per_m2: FloatArray
    global_horizontal_wh_per_m2: FloatArray
    direct_normal_wh_per_m2: FloatArray
    diffuse_horizontal_wh_per_m2: FloatArray
    global_horizontal_illuminance_lux: FloatArray
    direct_normal_illuminance_lux: FloatArray
    diffuse_horizontal_illuminance_lux: FloatArray
    zenith_luminance_cd_per_m2: FloatArray
    wind_direction_deg: FloatArray
    wind_speed_m_per_s: FloatArray
    total_sky_cover_tenths: FloatArray
    opaque_sky_cover_tenths: FloatArray
    visibility_km: FloatArray
    ceiling_height_m: FloatArray
    present_weather_observation: IntArray
    present_weather_codes: tuple[str, ...]
    precipitable_water_mm: FloatArray
    aerosol_optical_depth: FloatArray
    snow_depth_cm: FloatArray
    days_since_last_snowfall_d: FloatArray
    albedo: FloatArray
    liquid_precipitation_depth_mm: FloatArray
    liquid_precipitation_quantity_h: FloatArray

    @property
    def n_hours(self) -> int:
        """Number of hourly rows."""
        return int(self.timestamps_ts.size)

    def field(self, name: str) -> NDArray[Any] | tuple[str, ...]:
        """Return the data field called ``name`` (see :data:`EPW_FIELDS`).

        Raises
        ------
        InputError
            If no field has that name.
        """
        if name not in {spec.name for spec in EPW_FIELDS}:
            known = ", ".join(spec.name for spec in EPW_FIELDS)
            raise InputError(f"no EPW field named {name!r}; the fields are: {known}")
        value: NDArray[Any] | tuple[str, ...] = getattr(self, name)
        return value

    def to_weather_year(self, name: str | None = None) -> WeatherYear:
        """Convert to the project's :class:`~heatgrid.weather.year.WeatherYear`.

        Missing dry-bulb temperature or global horizontal radiation is filled by linear
        interpolation in time, for gaps of at most 24 h.

        Parameters
        ----------
        name : str, optional
            Place name; defaults to the LOCATION city.

        Returns
        -------
        WeatherYear
            Hourly temperature and irradiation with this file's location and timestamps.

        Raises
        ------
        InputError
            If a field is missing for more than 24 consecutive hours.
        """
        series = {}
        for field_name in ("dry_bulb_temp_c", "global_horizontal_wh_per_m2"):
            values: FloatArray = getattr(self, field_name)
            start, length = longest_gap(values)
            if length > _MAX_FILLED_GAP_H:
                raise InputError(
                    f"{self.source}: {field_name} is missing for {length} consecutive hours "
                    f"from line {start + N_HEADER_LINES + 1}; at most {_MAX_FILLED_GAP_H} "
                    "are filled by interpolation"
                )
            series[field_name] = interpolate_gaps(values)
        return WeatherYear(
            name=self.location.city if name is None else name,
            latitude_deg=self.location.latitude_deg,
            longitude_deg=self.location.longitude_deg,
            elevation_m=self.location.elevation_m,
            tz_offset_h=self.location.tz_offset_h,
            timestamps_ts=self.timestamps_ts,
            outdoor_temp_c=series["dry_bulb_temp_c"],
            global_horizontal_wh_per_m2=series["global_horizontal_wh_per_m2"],
            source=self.source,
        )


def read_epw(path: str | Path, *, year: int | None = None) -> EpwData:
    """Read an EPW file.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.epw`` file. UTF-8, with a Latin-1 fallback for older files.
    year : int, optional
        Reference calendar year for the timestamps; see the module docstring.

    Returns
    -------
    EpwData
        The parsed file.

    Raises
    ------
    InputError
        If the file does not exist or cannot be read, or its content is malformed (the message
        names the file, the line and the field).
    """
    file_path = Path(path)
    try:
        raw = file_path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"EPW file not found: {file_path}") from None
    except OSError as error:
        raise InputError(f"cannot read EPW file {file_path}: {error.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_epw(text, source=str(file_path), year=year)


def parse_epw(text: str, source: str = "<string>", *, year: int | None = None) -> EpwData:
    """Parse the text of an EPW file.

    Parameters
    ----------
    text : str
        The whole file.
    source : str
        Name used in error messages and kept in :attr:`EpwData.source`.
    year : int, optional
        Reference calendar year for the timestamps; see the module docstring.

    Returns
    -------
    EpwData
        The parsed file.

    Raises
    ------
    InputError
        If a header line is missing or malformed, a row has the wrong number of fields, a value
        is not a number or out of range, the dates are not consecutive hours, or the number of
        rows does not match DATA PERIODS (or a full year).
    """
    lines = text.removeprefix("\ufeff").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    check_header(lines, source)
    location = parse_location(lines[0], source)
    periods = parse_data_periods(lines[7], source)
    rows = _split_rows(lines[N_HEADER_LINES:], source)
    columns = _parse_columns(rows, source)
    leap = bool(np.any((columns["month"] == 2) & (columns["day"] == 29)))
    _check_row_count(len(rows), periods, leap=leap, source=source)
    ref_year = _reference_year(year, leap=leap, source=source)
    timestamps_ts = _timestamps(columns, ref_year, location.tz_offset_h, periods[0], source)
    return EpwData(
        source=source,
        location=location,
        data_periods=periods,
        header_lines=tuple(lines[:N_HEADER_LINES]),
        timestamps_ts=timestamps_ts,
        **columns,
    )


def _error(source: str, line_no: int, spec: EpwField | None, message: str) -> InputError:
    """Build an InputError naming the source, line and (optionally) the field."""
    where = f"{source} line {line_no}"
    if spec is not None:
        where += f", field {spec.index} {spec.name}"
    return InputError(f"{where}: {message}")


def _split_rows(lines: list[str], source: str) -> list[list[str]]:
    """Split data lines into fields, checking that each has exactly 35."""
    rows = [line.split(",") for line in lines]
    for offset, row in enumerate(rows):
        if len(row) != _N_FIELDS:
            line_no = N_HEADER_LINES + 1 + offset
            if len(row) < _N_FIELDS:
                spec = EPW_FIELDS[len(row)]
                raise _error(
                    source,
                    line_no,
                    None,
                    f"{len(row)} field(s), expected {_N_FIELDS}: field {spec.index} "
                    f"{spec.name} and the ones after it are missing (truncated row?)",
                )
            raise _error(source, line_no, None, f"{len(row)} fields, expected {_N_FIELDS}")
    return rows


def _parse_columns(rows: list[list[str]], source: str) -> dict[str, Any]:
    """Parse every column of the data rows into typed values, keyed by field name."""
    if not rows:
        return {
            spec.name: (
                ()
                if spec.kind == "text"
                else np.empty(0, dtype=np.int64 if spec.kind == "int" else np.float64)
            )
            for spec in EPW_FIELDS
        }
    columns_text = list(zip(*rows, strict=True))
    columns: dict[str, Any] = {}
    for spec in EPW_FIELDS:
        texts = [value.strip() for value in columns_text[spec.index]]
        if spec.kind == "text":
            columns[spec.name] = tuple(texts)
        elif spec.kind == "int":
            columns[spec.name] = _parse_int_column(texts, spec, source)
        else:
            columns[spec.name] = _parse_float_column(texts, spec, source)
    return columns


def _parse_int_column(texts: list[str], spec: EpwField, source: str) -> IntArray:
    """Parse an integer label column and check its range."""
    values = np.empty(len(texts), dtype=np.int64)
    for offset, text in enumerate(texts):
        try:
            values[offset] = int(text)
        except ValueError:
            line_no = N_HEADER_LINES + 1 + offset
            raise _error(source, line_no, spec, f"{text!r} is not an integer") from None
    _check_range(values.astype(np.float64), texts, spec, source)
    values.setflags(write=False)
    return values


def _parse_float_column(texts: list[str], spec: EpwField, source: str) -> FloatArray:
    """Parse a measurement column: blank or missing code → NaN; other values range-checked."""
    cleaned = [text if text else "nan" for text in texts]
    try:
        values = np.array(cleaned, dtype=np.float64)
    except ValueError:
        values = np.empty(len(texts), dtype=np.float64)
        for offset, text in enumerate(cleaned):
            try:
                values[offset] = float(text)
            except ValueError:
                line_no = N_HEADER_LINES + 1 + offset
                raise _error(source, line_no, spec, f"{text!r} is not a number") from None
    written = np.array([bool(text) for text in texts])
    non_finite = written & ~np.isfinite(values)
    if bool(np.any(non_finite)):
        offset = int(np.flatnonzero(non_finite)[0])
        line_no = N_HEADER_LINES + 1 + offset
        raise _error(source, line_no, spec, f"{texts[offset]!r} is not a finite number")
    if spec.missing_at_or_above is not None:
        values[values >= spec.missing_at_or_above] = np.nan
    _check_range(values, texts, spec, source)
    values.setflags(write=False)
    return values


def _check_range(values: FloatArray, texts: list[str], spec: EpwField, source: str) -> None:
    """Raise for the first non-NaN value outside the field's valid range."""
    low = -np.inf if spec.valid_min is None else spec.valid_min
    high = np.inf if spec.valid_max is None else spec.valid_max
    outside = (values < low) | (values > high)
    if bool(np.any(outside)):
        offset = int(np.flatnonzero(outside)[0])
        line_no = N_HEADER_LINES + 1 + offset
        unit = f" {spec.unit}" if spec.unit else ""
        raise _error(
            source,
            line_no,
            spec,
            f"{texts[offset]} is outside the valid range [{low:g}, {high:g}]{unit}",
        )


def _check_row_count(
    n_rows: int, periods: tuple[EpwDataPeriod, ...], *, leap: bool, source: str
) -> None:
    """Check the number of rows against DATA PERIODS (and a full year when it says so)."""
    expected = sum(period.n_days(leap=leap) for period in periods) * 24
    if n_rows == expected:
        return
    spans = "; ".join(
        f"{p.start_month}/{p.start_day} to {p.end_month}/{p.end_day}" for p in periods
    )
    full_year = expected in (8760, 8784)
    what = "8760 hourly rows (8784 in a leap year)" if full_year else f"{expected} hourly rows"
    state = "truncated" if n_rows < expected else "too long"
    raise InputError(
        f"{source}: expected {what} for DATA PERIODS {spans}, found {n_rows} ({state} file?)"
    )


def _reference_year(year: int | None, *, leap: bool, source: str) -> int:
    """Choose the calendar year used for the timestamps."""
    if year is None:
        return LEAP_YEAR if leap else DEFAULT_YEAR
    if leap and not calendar.isleap(year):
        raise InputError(
            f"{source}: the file has rows for 29 February but year {year} is not a leap year"
        )
    if not leap and calendar.isleap(year):
        raise InputError(
            f"{source}: the file has no 29 February but year {year} is a leap year; "
            "pass a non-leap year"
        )
    return year


def _timestamps(
    columns: dict[str, Any],
    ref_year: int,
    tz_offset_h: float,
    first_period: EpwDataPeriod,
    source: str,
) -> FloatArray:
    """Build end-of-hour UTC timestamps from month/day/hour and check they are consecutive."""
    months: IntArray = columns["month"]
    days: IntArray = columns["day"]
    hours: IntArray = columns["hour"]
    if months.size == 0:
        return np.empty(0, dtype=np.float64)
    days_in_month = np.array(
        [calendar.monthrange(ref_year, m)[1] for m in range(1, 13)], dtype=np.int64
    )
    bad_day = days > days_in_month[months - 1]
    if bool(np.any(bad_day)):
        offset = int(np.flatnonzero(bad_day)[0])
        raise _error(
            source,
            N_HEADER_LINES + 1 + offset,
            EPW_FIELDS[2],
            f"day {days[offset]} does not exist in month {months[offset]} of {ref_year}",
        )
    wraps = np.concatenate(([0], np.cumsum(np.diff(months) < 0)))
    month_index = (ref_year + wraps - 1970) * 12 + (months - 1)
    day_number = month_index.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    day_number = day_number + days - 1
    timestamps_ts = (day_number * 24 + hours).astype(np.float64) * HOUR_S - tz_offset_h * HOUR_S
    if (int(months[0]), int(days[0])) != (first_period.start_month, first_period.start_day):
        raise _error(
            source,
            N_HEADER_LINES + 1,
            None,
            f"the first row is {months[0]}/{days[0]} but DATA PERIODS starts on "
            f"{first_period.start_month}/{first_period.start_day}",
        )
    steps = np.diff(timestamps_ts)
    if bool(np.any(steps != HOUR_S)):
        offset = int(np.flatnonzero(steps != HOUR_S)[0]) + 1
        raise _error(
            source,
            N_HEADER_LINES + 1 + offset,
            None,
            f"{months[offset]}/{days[offset]} hour {hours[offset]} does not follow the previous "
            f"row ({months[offset - 1]}/{days[offset - 1]} hour {hours[offset - 1]}); rows must "
            "be consecutive hours",
        )
    timestamps_ts.setflags(write=False)
    return timestamps_ts
