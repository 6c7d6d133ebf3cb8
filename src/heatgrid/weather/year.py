"""The hourly weather series the rest of heatgrid consumes, and heating degree-hours.

A :class:`WeatherYear` is what every weather source turns into: an EPW file
(:meth:`heatgrid.weather.epw.EpwData.to_weather_year`), the built-in synthetic typical year
(:func:`heatgrid.weather.synthetic.synthetic_year`) and Open-Meteo
(:class:`heatgrid.weather.openmeteo.OpenMeteoClient`).

Time convention: ``timestamps_ts[i]`` is the instant (UTC) at which hour ``i`` *ends*. The
temperature is the value observed at that instant and the irradiation is the total over the
hour ending then. This is how EPW files (hour 1 = 00:00–01:00) and Open-Meteo (radiation is
"the average of the preceding hour") stamp their data, so neither needs shifting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core.errors import InputError

__all__ = [
    "DEFAULT_YEAR",
    "HOUR_S",
    "WeatherYear",
    "heating_degree_hours_k_h",
]

FloatArray: TypeAlias = NDArray[np.float64]

#: Reference calendar year used where a source has no meaningful year (typical years): a
#: non-leap year, so a typical year has 8760 hours.
DEFAULT_YEAR = 2023

#: One hour [s].
HOUR_S = 3600.0


def heating_degree_hours_k_h(
    outdoor_temp_c: ArrayLike, base_c: float = 18.0, *, step_h: float = 1.0
) -> float:
    """Heating degree-hours: the sum over time steps of ``max(0, base_c − T) · step_h``.

    Each value is used as it is (no daily averaging first), which is how the figure for the Lyon
    EPW in ``shared/weather/README.md`` was obtained: the 8760 hourly dry-bulb temperatures of
    the file give 56,475.9 K·h below 18 °C, the README's 56,476 K·h.

    Parameters
    ----------
    outdoor_temp_c : array_like
        Outdoor air temperatures, one per time step [°C]. Must be finite.
    base_c : float
        Base (balance-point) temperature [°C]; hours at or above it count zero.
    step_h : float
        Length of one time step [h].

    Returns
    -------
    float
        Heating degree-hours [K·h].

    Raises
    ------
    InputError
        If a temperature is not finite, or ``base_c`` / ``step_h`` is not a valid number.
    """
    temps_c = np.asarray(outdoor_temp_c, dtype=np.float64)
    if not bool(np.all(np.isfinite(temps_c))):
        bad = int(np.flatnonzero(~np.isfinite(temps_c.ravel()))[0])
        raise InputError(f"outdoor_temp_c must be finite, value {bad} is {temps_c.ravel()[bad]}")
    if not np.isfinite(base_c):
        raise InputError(f"base_c must be a finite number, got {base_c!r}")
    if not (np.isfinite(step_h) and step_h > 0.0):
        raise InputError(f"step_h must be a positive number, got {step_h!r}")
    return float(np.sum(np.maximum(0.0, base_c - temps_c)) * step_h)


def _readonly(name: str, values: ArrayLike) -> FloatArray:
    """Return a read-only one-dimensional float64 copy of ``values``."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an array of numbers") from None
    if array.ndim != 1:
        raise InputError(f"{name} must be one-dimensional, got shape {array.shape}")
    array.setflags(write=False)
    return array


def _require_finite_array(name: str, values: FloatArray) -> None:
    """Raise :class:`InputError` naming ``name`` and the first non-finite index."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise InputError(
            f"{name} must be finite; {bad.size} value(s) are not, the first at index {bad[0]}"
        )


@dataclass(frozen=True, eq=False)
class WeatherYear:
    """An hourly outdoor weather series for one place, in UTC.

    Despite the name it may cover any whole number of consecutive hours (a typical year has
    8760; an Open-Meteo forecast a few days). Arrays are read-only copies.

    Parameters
    ----------
    name : str
        Human-readable place name, e.g. ``"Lyon"``.
    latitude_deg : float
        Latitude [°], north positive, in [−90, 90].
    longitude_deg : float
        Longitude [°], east positive, in [−180, 180].
    elevation_m : float
        Elevation above sea level [m].
    tz_offset_h : float
        Local standard time minus UTC [h], in [−12, 14]. Metadata for local-time views; the
        timestamps are UTC regardless.
    timestamps_ts : array_like
        End of each hour, POSIX UTC [s]; strictly increasing in steps of exactly 3600 s.
    outdoor_temp_c : array_like
        Outdoor (dry-bulb) air temperature at each timestamp [°C]; finite.
    global_horizontal_wh_per_m2 : array_like
        Global horizontal irradiation over the hour ending at each timestamp [Wh/m²]; finite
        and ≥ 0.
    source : str
        Where the data came from (file path, URL, or "synthetic: ...").

    Raises
    ------
    InputError
        If the arrays differ in length, are empty, not finite, not hourly, or a coordinate is
        out of range.
    """

    name: str
    latitude_deg: float
    longitude_deg: float
    elevation_m: float
    tz_offset_h: float
    timestamps_ts: FloatArray
    outdoor_temp_c: FloatArray
    global_horizontal_wh_per_m2: FloatArray
    source: str

    def __post_init__(self) -> None:
        for field_name, low, high in (
            ("latitude_deg", -90.0, 90.0),
            ("longitude_deg", -180.0, 180.0),
            ("tz_offset_h", -12.0, 14.0),
            ("elevation_m", -1000.0, 9999.9),
        ):
            value = float(getattr(self, field_name))
            if not (np.isfinite(value) and low <= value <= high):
                raise InputError(f"{field_name} must be within [{low:g}, {high:g}], got {value!r}")
            object.__setattr__(self, field_name, value)
        for field_name in ("timestamps_ts", "outdoor_temp_c", "global_horizontal_wh_per_m2"):
            array = _readonly(field_name, getattr(self, field_name))
            _require_finite_array(field_name, array)
            object.__setattr__(self, field_name, array)
        n_hours = self.timestamps_ts.size
        if n_hours == 0:
            raise InputError("timestamps_ts must hold at least one hour")
        for field_name in ("outdoor_temp_c", "global_horizontal_wh_per_m2"):
            size = getattr(self, field_name).size
            if size != n_hours:
                raise InputError(f"{field_name} has {size} values, timestamps_ts has {n_hours}")
        steps_s = np.diff(self.timestamps_ts)
        if steps_s.size and not bool(np.all(steps_s == HOUR_S)):
            first = int(np.flatnonzero(steps_s != HOUR_S)[0])
            raise InputError(
                f"timestamps_ts must step by exactly 3600 s; step {first} is {steps_s[first]:g} s"
            )
        if bool(np.any(self.global_horizontal_wh_per_m2 < 0.0)):
            raise InputError("global_horizontal_wh_per_m2 must not be negative")

    @property
    def n_hours(self) -> int:
        """Number of hours in the series."""
        return int(self.timestamps_ts.size)

    def heating_degree_hours_k_h(self, base_c: float = 18.0) -> float:
        """Heating degree-hours of :attr:`outdoor_temp_c` below ``base_c`` [K·h].

        See :func:`heating_degree_hours_k_h`.
        """
        return heating_degree_hours_k_h(self.outdoor_temp_c, base_c)

    def local_months(self) -> NDArray[np.int64]:
        """Calendar month (1–12) of each hour in local standard time.

        An hour belongs to the month holding its middle (``timestamp − 1800 s``), so the hour
        ending at midnight on 31 January counts in January.

        Returns
        -------
        numpy.ndarray of int64
            Month numbers, one per hour.
        """
        middle_local_s = self.timestamps_ts - HOUR_S / 2.0 + self.tz_offset_h * HOUR_S
        months_since_1970 = (
            np.floor(middle_local_s)
            .astype(np.int64)
            .astype("datetime64[s]")
            .astype("datetime64[M]")
        ).astype(np.int64)
        return months_since_1970 % 12 + 1

    def monthly_mean_temp_c(self) -> FloatArray:
        """Mean outdoor temperature of each local calendar month [°C].

        Returns
        -------
        numpy.ndarray
            Twelve values, January first; NaN for a month with no hours in the series.
        """
        months = self.local_months()
        means = np.full(12, np.nan)
        for month in range(1, 13):
            mask = months == month
            if bool(np.any(mask)):
                means[month - 1] = float(np.mean(self.outdoor_temp_c[mask]))
        return means
