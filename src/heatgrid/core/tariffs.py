"""Electricity tariffs: flat, time-of-use and series prices, looked up at UTC timestamps.

Every tariff answers ``price_eur_per_kwh(timestamps_ts)`` with an array of the shape of
``timestamps_ts``. Time inside heatgrid is UTC (POSIX seconds); a time-of-use tariff converts
to local clock time with a fixed offset or an IANA time zone to find its period.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core._arrays import FloatArray, checked_array
from heatgrid.core.errors import InputError, require_finite, require_non_negative

__all__ = [
    "FlatTariff",
    "SeriesTariff",
    "Tariff",
    "TimeOfUseTariff",
    "TouPeriod",
    "parse_tariff_csv",
]

_MINUTES_PER_DAY = 1440
_SECONDS_PER_DAY = 86_400.0
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0
_ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
_OFFSET_BUCKET_S = 900.0  # time-zone offsets change on quarter hours at the finest


@runtime_checkable
class Tariff(Protocol):
    """Anything that prices electricity at UTC timestamps."""

    def price_eur_per_kwh(self, timestamps_ts: ArrayLike) -> FloatArray:
        """Return the price at each timestamp [EUR/kWh], shaped like ``timestamps_ts``."""
        ...


@dataclass(frozen=True)
class FlatTariff:
    """One price at all times.

    Parameters
    ----------
    rate_eur_per_kwh : float
        Price of electricity [EUR/kWh], finite and >= 0.
    """

    rate_eur_per_kwh: float

    def __post_init__(self) -> None:
        require_non_negative("rate_eur_per_kwh", self.rate_eur_per_kwh)

    def price_eur_per_kwh(self, timestamps_ts: ArrayLike) -> FloatArray:
        """Return the price at each timestamp [EUR/kWh].

        Parameters
        ----------
        timestamps_ts : float or array_like
            POSIX timestamps, UTC [s].

        Returns
        -------
        numpy.ndarray
            ``rate_eur_per_kwh`` broadcast to the shape of ``timestamps_ts``.
        """
        timestamps = checked_array("timestamps_ts", timestamps_ts)
        return np.full(timestamps.shape, self.rate_eur_per_kwh, dtype=np.float64)


@dataclass(frozen=True)
class TouPeriod:
    """One priced period of a time-of-use tariff, in local clock time.

    The period covers local times of day in ``[start_local_h, end_local_h)``; it wraps past
    midnight when ``start_local_h > end_local_h`` (e.g. 22 → 6). ``weekdays`` is tested against
    the weekday of each instant, so a Friday 22 → 6 night period with weekdays Mon–Fri covers
    Friday 22:00–24:00 but not Saturday 00:00–06:00.

    Parameters
    ----------
    price_eur_per_kwh : float
        Price in this period [EUR/kWh], finite and >= 0.
    start_local_h : float
        Local clock time the period starts [h], in [0, 24), whole minutes.
    end_local_h : float
        Local clock time the period ends [h], in (0, 24], whole minutes.
    weekdays : tuple of int
        Days it applies on, Monday = 0 … Sunday = 6; all days by default.
    """

    price_eur_per_kwh: float
    start_local_h: float
    end_local_h: float
    weekdays: tuple[int, ...] = _ALL_DAYS

    def __post_init__(self) -> None:
        require_non_negative("price_eur_per_kwh", self.price_eur_per_kwh)
        start = _whole_minute("start_local_h", self.start_local_h)
        end = _whole_minute("end_local_h", self.end_local_h)
        if start == end:
            raise InputError(
                f"start_local_h and end_local_h must differ, both are {self.start_local_h!r}"
            )
        if start == _MINUTES_PER_DAY:
            raise InputError("start_local_h must be below 24; use 0 for midnight")
        if not self.weekdays or any(
            isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6
            for day in self.weekdays
        ):
            raise InputError(
                f"weekdays must be a non-empty tuple of integers 0 (Monday) to 6 (Sunday), "
                f"got {self.weekdays!r}"
            )

    def minutes(self) -> list[int]:
        """Return the local minutes of the day the period covers, 0 … 1439."""
        start = _whole_minute("start_local_h", self.start_local_h)
        end = _whole_minute("end_local_h", self.end_local_h)
        if start < end:
            return list(range(start, end))
        return list(range(start, _MINUTES_PER_DAY)) + list(range(end))


@dataclass(frozen=True, eq=False)
class TimeOfUseTariff:
    """Prices by local weekday and time of day (e.g. peak / off-peak).

    Times not covered by any period cost ``base_price_eur_per_kwh``. Periods must not overlap.
    Local time is UTC plus ``utc_offset_h``, or, if ``tz_name`` is given, the IANA time zone's
    offset at each instant (daylight saving included; needs the system's time-zone database).

    Parameters
    ----------
    periods : sequence of TouPeriod
        Priced periods.
    base_price_eur_per_kwh : float
        Price outside every period [EUR/kWh], finite and >= 0.
    utc_offset_h : float
        Fixed offset of local time from UTC [h], e.g. 1.0 for CET; ignored if ``tz_name`` is set.
    tz_name : str, optional
        IANA time zone, e.g. ``"Europe/Paris"``.
    """

    periods: tuple[TouPeriod, ...]
    base_price_eur_per_kwh: float
    utc_offset_h: float = 0.0
    tz_name: str | None = None
    _table: FloatArray = field(init=False, repr=False)
    _zone: ZoneInfo | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "periods", tuple(self.periods))
        base = require_non_negative("base_price_eur_per_kwh", self.base_price_eur_per_kwh)
        offset_h = require_finite("utc_offset_h", self.utc_offset_h)
        if not -14.0 <= offset_h <= 14.0:
            raise InputError(f"utc_offset_h must be within ±14 h, got {self.utc_offset_h!r}")
        zone = None
        if self.tz_name is not None:
            try:
                zone = ZoneInfo(self.tz_name)
            except (ZoneInfoNotFoundError, ValueError):
                message = f"tz_name {self.tz_name!r} is not a known IANA time zone"
                raise InputError(message) from None
        table = np.full((7, _MINUTES_PER_DAY), base, dtype=np.float64)
        owner = np.full((7, _MINUTES_PER_DAY), -1, dtype=np.int64)
        for index, period in enumerate(self.periods):
            if not isinstance(period, TouPeriod):
                raise InputError(f"periods[{index}] must be a TouPeriod, got {period!r}")
            minutes = np.asarray(period.minutes(), dtype=np.int64)
            for day in period.weekdays:
                taken = owner[day, minutes]
                if bool(np.any(taken >= 0)):
                    other = int(taken[taken >= 0][0])
                    raise InputError(
                        f"periods[{index}] overlaps periods[{other}] on weekday {day} (Monday = 0)"
                    )
                owner[day, minutes] = index
                table[day, minutes] = period.price_eur_per_kwh
        table.setflags(write=False)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_zone", zone)

    def price_eur_per_kwh(self, timestamps_ts: ArrayLike) -> FloatArray:
        """Return the price at each timestamp [EUR/kWh].

        Parameters
        ----------
        timestamps_ts : float or array_like
            POSIX timestamps, UTC [s].

        Returns
        -------
        numpy.ndarray
            Price of the period each instant falls in, shaped like ``timestamps_ts``.
        """
        timestamps = checked_array("timestamps_ts", timestamps_ts)
        local_s = timestamps + self._offsets_s(timestamps)
        day = np.floor(local_s / _SECONDS_PER_DAY)
        weekday = ((day + _EPOCH_WEEKDAY) % 7).astype(np.int64)
        minute = np.floor((local_s - day * _SECONDS_PER_DAY) / 60.0).astype(np.int64)
        minute = np.clip(minute, 0, _MINUTES_PER_DAY - 1)  # guards float rounding at 24:00
        prices: FloatArray = self._table[weekday, minute]
        return prices

    def _offsets_s(self, timestamps: FloatArray) -> FloatArray:
        if self._zone is None:
            return np.full(timestamps.shape, self.utc_offset_h * 3600.0)
        buckets = np.floor(timestamps / _OFFSET_BUCKET_S)
        unique, inverse = np.unique(buckets, return_inverse=True)
        offsets = np.empty(unique.shape, dtype=np.float64)
        for i, bucket in enumerate(unique):
            instant = datetime.fromtimestamp(float(bucket) * _OFFSET_BUCKET_S, self._zone)
            offset = instant.utcoffset() or timedelta(0)
            offsets[i] = offset.total_seconds()
        result: FloatArray = offsets[inverse].reshape(timestamps.shape)
        return result


@dataclass(frozen=True, eq=False)
class SeriesTariff:
    """Prices from a time series, e.g. hourly day-ahead prices.

    The price at ``timestamps_ts[i]`` holds until ``timestamps_ts[i + 1]``; the last one holds for
    ``interval_s``. Looking up a time outside ``[timestamps_ts[0], timestamps_ts[-1] +
    interval_s)`` raises :class:`InputError`. Prices may be negative (wholesale markets do clear
    below zero); they must be finite.

    Parameters
    ----------
    timestamps_ts : array_like
        Start of each price interval, POSIX UTC [s], strictly increasing.
    prices_eur_per_kwh : array_like
        Price of each interval [EUR/kWh], same length.
    interval_s : float
        Length of the last interval [s], > 0; 3600 for an hourly series.
    """

    timestamps_ts: NDArray[np.floating[Any]]
    prices_eur_per_kwh: NDArray[np.floating[Any]]
    interval_s: float = 3600.0

    def __post_init__(self) -> None:
        timestamps = checked_array("timestamps_ts", self.timestamps_ts).copy()
        prices = checked_array("prices_eur_per_kwh", self.prices_eur_per_kwh).copy()
        interval = require_finite("interval_s", self.interval_s)
        if interval <= 0.0:
            raise InputError(f"interval_s must be greater than 0, got {self.interval_s!r}")
        if timestamps.ndim != 1 or timestamps.size == 0:
            raise InputError("timestamps_ts must be a non-empty one-dimensional array")
        if prices.shape != timestamps.shape:
            raise InputError(
                f"prices_eur_per_kwh has {prices.size} values but timestamps_ts has "
                f"{timestamps.size}"
            )
        steps = np.diff(timestamps)
        if bool(np.any(steps <= 0.0)):
            index = int(np.argmax(steps <= 0.0)) + 1
            raise InputError(
                f"timestamps_ts must be strictly increasing; element {index} "
                f"({timestamps[index]!r}) is not after element {index - 1}"
            )
        timestamps.setflags(write=False)
        prices.setflags(write=False)
        object.__setattr__(self, "timestamps_ts", timestamps)
        object.__setattr__(self, "prices_eur_per_kwh", prices)
        object.__setattr__(self, "interval_s", interval)

    def price_eur_per_kwh(self, timestamps_ts: ArrayLike) -> FloatArray:
        """Return the price at each timestamp [EUR/kWh].

        Parameters
        ----------
        timestamps_ts : float or array_like
            POSIX timestamps, UTC [s], inside the series' span.

        Returns
        -------
        numpy.ndarray
            Price of the interval each instant falls in, shaped like ``timestamps_ts``.
        """
        query = checked_array("timestamps_ts", timestamps_ts)
        first = float(self.timestamps_ts[0])
        end = float(self.timestamps_ts[-1]) + self.interval_s
        outside = (query < first) | (query >= end)
        if bool(np.any(outside)):
            bad = float(query[outside].flat[0])
            raise InputError(
                f"timestamps_ts {bad!r} is outside the tariff series, which covers "
                f"[{first!r}, {end!r}) ({_iso(first)} to {_iso(end)})"
            )
        index = np.searchsorted(self.timestamps_ts, query, side="right") - 1
        return np.asarray(self.prices_eur_per_kwh[index], dtype=np.float64)


def parse_tariff_csv(text: str, source: str, *, interval_s: float = 3600.0) -> SeriesTariff:
    """Parse a price series from CSV text into a :class:`SeriesTariff`.

    The header is ``timestamp,price_eur_per_kwh`` (``timestamp_ts`` is accepted for the first
    column). A timestamp is POSIX seconds (UTC) or ISO-8601 with a UTC offset
    (``2025-01-01T00:00:00Z``, ``2025-01-01 01:00+01:00``); ISO times without an offset are
    rejected as ambiguous. Blank lines and lines starting with ``#`` are skipped.

    Parameters
    ----------
    text : str
        File contents; the caller reads the file.
    source : str
        Name of the file (or other origin), used in error messages.
    interval_s : float
        Length of the last price interval [s].

    Returns
    -------
    SeriesTariff
        The series, rows sorted as given (they must be strictly increasing in time).
    """
    rows = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    timestamps: list[float] = []
    prices: list[float] = []
    previous: float | None = None
    for record in rows:
        line = rows.line_num
        if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in record]
            if len(header) != 2 or header[0] not in {"timestamp", "timestamp_ts"}:
                raise InputError(
                    f"{source}, line {line}: header must be 'timestamp,price_eur_per_kwh', "
                    f"got {','.join(record)!r}"
                )
            if header[1] != "price_eur_per_kwh":
                raise InputError(
                    f"{source}, line {line}, column 2: the price column must be named "
                    f"'price_eur_per_kwh' (unit in the name), got {record[1].strip()!r}"
                )
            continue
        if len(record) != 2:
            raise InputError(
                f"{source}, line {line}: expected 2 columns (timestamp, price_eur_per_kwh), "
                f"got {len(record)}"
            )
        stamp = _parse_timestamp(record[0].strip(), f"{source}, line {line}, column 1")
        price = _parse_float(record[1].strip(), f"{source}, line {line}, column 2")
        if previous is not None and stamp <= previous:
            raise InputError(
                f"{source}, line {line}, column 1: timestamp {record[0].strip()!r} is not after "
                "the previous row's; rows must be in strictly increasing time order"
            )
        previous = stamp
        timestamps.append(stamp)
        prices.append(price)
    if header is None:
        raise InputError(f"{source}: empty file; expected a 'timestamp,price_eur_per_kwh' header")
    if not timestamps:
        raise InputError(f"{source}: no price rows after the header")
    return SeriesTariff(
        np.asarray(timestamps, dtype=np.float64),
        np.asarray(prices, dtype=np.float64),
        interval_s=interval_s,
    )


def _whole_minute(name: str, hours: float) -> int:
    value = require_finite(name, hours)
    if not 0.0 <= value <= 24.0:
        raise InputError(f"{name} must be within [0, 24] hours, got {hours!r}")
    minutes = value * 60.0
    rounded = round(minutes)
    if abs(minutes - rounded) > 1e-6:
        raise InputError(f"{name} must fall on a whole minute, got {hours!r} h")
    return int(rounded)


def _parse_float(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise InputError(f"{where}: expected a number, got {cell!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: expected a finite number, got {cell!r}")
    return value


def _parse_timestamp(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise InputError(f"{where}: timestamp must be finite, got {cell!r}")
        return value
    try:
        moment = datetime.fromisoformat(cell)
    except ValueError:
        raise InputError(
            f"{where}: expected POSIX seconds or an ISO-8601 timestamp, got {cell!r}"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(
            f"{where}: ISO-8601 timestamp {cell!r} has no UTC offset; add 'Z' or '+01:00'"
        )
    return moment.timestamp()


def _iso(timestamp_ts: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp_ts, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return "?"
