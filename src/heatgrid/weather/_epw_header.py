"""The header lines of an EPW file: LOCATION, DATA PERIODS and the order of the 8 lines (private).

Field definitions follow the EnergyPlus *Auxiliary Programs* documentation, "EnergyPlus Weather
File (EPW) Data Dictionary".
"""

from __future__ import annotations

import calendar
import csv
from dataclasses import dataclass

import numpy as np

from heatgrid.core.errors import InputError

__all__: list[str] = []

#: Calendars for date arithmetic: a non-leap and a leap year.
NON_LEAP_YEAR = 2023
LEAP_YEAR = 2024

HEADER_KEYWORDS = (
    "LOCATION",
    "DESIGN CONDITIONS",
    "TYPICAL/EXTREME PERIODS",
    "GROUND TEMPERATURES",
    "HOLIDAYS/DAYLIGHT SAVING",
    "COMMENTS 1",
    "COMMENTS 2",
    "DATA PERIODS",
)
N_HEADER_LINES = len(HEADER_KEYWORDS)


@dataclass(frozen=True)
class EpwLocation:
    """The LOCATION header of an EPW file.

    Parameters
    ----------
    city, state_region, country, source, wmo : str
        Text fields as written (``wmo`` is the station number, kept as text).
    latitude_deg : float
        Latitude [°], north positive.
    longitude_deg : float
        Longitude [°], east positive.
    tz_offset_h : float
        Local standard time minus UTC [h].
    elevation_m : float
        Elevation above sea level [m].
    """

    city: str
    state_region: str
    country: str
    source: str
    wmo: str
    latitude_deg: float
    longitude_deg: float
    tz_offset_h: float
    elevation_m: float


@dataclass(frozen=True)
class EpwDataPeriod:
    """One period of the DATA PERIODS header.

    Parameters
    ----------
    name : str
        Period name, e.g. ``"Data"``.
    start_day_of_week : str
        Weekday of the first day, e.g. ``"Sunday"``.
    start_month, start_day, end_month, end_day : int
        First and last calendar day of the period (inclusive).
    """

    name: str
    start_day_of_week: str
    start_month: int
    start_day: int
    end_month: int
    end_day: int

    def n_days(self, *, leap: bool) -> int:
        """Return the number of days in the period [d], in a leap or non-leap year."""
        year = LEAP_YEAR if leap else NON_LEAP_YEAR
        start = _day_of_year(year, self.start_month, self.start_day)
        end = _day_of_year(year, self.end_month, self.end_day)
        days_in_year = 366 if leap else 365
        return (end - start) % days_in_year + 1


def check_header(lines: list[str], source: str) -> None:
    """Check that the 8 header lines are present and in order."""
    for index, keyword in enumerate(HEADER_KEYWORDS):
        if index >= len(lines):
            raise InputError(
                f"{source}: truncated EPW file: it has {len(lines)} line(s), the header alone "
                f"needs {N_HEADER_LINES} (line {index + 1} should start with {keyword!r})"
            )
        if not lines[index].upper().startswith(keyword):
            found = lines[index][:40]
            raise InputError(
                f"{source} line {index + 1}: expected the {keyword!r} header, found {found!r}"
            )


def _csv_fields(line: str) -> list[str]:
    """Split a header line on commas, honouring double quotes."""
    return next(csv.reader([line]))


def _header_number(
    fields: list[str],
    index: int,
    name: str,
    line_no: int,
    source: str,
    *,
    bounds: tuple[float, float],
) -> float:
    """Parse header field ``index`` as a number within ``bounds``."""
    if index >= len(fields):
        raise InputError(f"{source} line {line_no}, field {index} {name}: missing")
    text = fields[index].strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"{source} line {line_no}, field {index} {name}: {text!r} is not a number"
        ) from None
    low, high = bounds
    if not (np.isfinite(value) and low <= value <= high):
        raise InputError(
            f"{source} line {line_no}, field {index} {name}: {text} is outside [{low:g}, {high:g}]"
        )
    return value


def parse_location(line: str, source: str) -> EpwLocation:
    """Parse the LOCATION header (line 1)."""
    fields = _csv_fields(line)
    texts = [fields[i].strip() if i < len(fields) else "" for i in range(1, 6)]
    return EpwLocation(
        city=texts[0],
        state_region=texts[1],
        country=texts[2],
        source=texts[3],
        wmo=texts[4],
        latitude_deg=_header_number(fields, 6, "latitude_deg", 1, source, bounds=(-90.0, 90.0)),
        longitude_deg=_header_number(fields, 7, "longitude_deg", 1, source, bounds=(-180.0, 180.0)),
        tz_offset_h=_header_number(fields, 8, "tz_offset_h", 1, source, bounds=(-12.0, 14.0)),
        elevation_m=_header_number(fields, 9, "elevation_m", 1, source, bounds=(-1000.0, 9999.9)),
    )


def _parse_period_day(text: str, field_index: int, source: str) -> tuple[int, int]:
    """Parse a DATA PERIODS date, ``month/day`` or a day of the year, to (month, day)."""
    cleaned = text.replace(" ", "")
    parts = cleaned.split("/")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1 and 1 <= numbers[0] <= 365:
        day_of_year = np.datetime64(f"{NON_LEAP_YEAR}-01-01") + np.timedelta64(numbers[0] - 1, "D")
        month_text, day_text = str(day_of_year)[5:].split("-")
        return int(month_text), int(day_text)
    if len(numbers) == 2 and _valid_day(numbers[0], numbers[1]):
        return numbers[0], numbers[1]
    raise InputError(
        f"{source} line 8, field {field_index}: {text!r} is not a date this reader understands "
        "(month/day, or a day of the year)"
    )


def _day_of_year(year: int, month: int, day: int) -> int:
    """Day of the year (1 for 1 January) of ``month``/``day`` in ``year``."""
    return sum(calendar.monthrange(year, m)[1] for m in range(1, month)) + day


def _valid_day(month: int, day: int) -> bool:
    """Whether ``month``/``day`` exists in a leap year."""
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(LEAP_YEAR, month)[1]


def parse_data_periods(line: str, source: str) -> tuple[EpwDataPeriod, ...]:
    """Parse the DATA PERIODS header (line 8)."""
    fields = _csv_fields(line)
    n_periods = int(_header_number(fields, 1, "number of data periods", 8, source, bounds=(1, 366)))
    per_hour = int(_header_number(fields, 2, "records per hour", 8, source, bounds=(1, 60)))
    if per_hour != 1:
        raise InputError(
            f"{source} line 8, field 2 records per hour: {per_hour} records per hour; "
            "only hourly EPW files (1 record per hour) are supported"
        )
    periods = []
    for number in range(n_periods):
        first = 3 + 4 * number
        if len(fields) < first + 4:
            raise InputError(
                f"{source} line 8: DATA PERIODS announces {n_periods} period(s) but period "
                f"{number + 1} lacks its name, weekday, start or end day"
            )
        start = _parse_period_day(fields[first + 2], first + 2, source)
        end = _parse_period_day(fields[first + 3], first + 3, source)
        periods.append(
            EpwDataPeriod(fields[first].strip(), fields[first + 1].strip(), *start, *end)
        )
    return tuple(periods)
