"""A synthetic typical year of hourly weather, built from a city's monthly climate normals.

The year is deterministic: the same city and year give the same series, bit for bit (the
random generator is seeded from the city's name). Hour ``k`` ends at ``k + 1`` h local standard
time after 1 January 00:00, as in :mod:`heatgrid.weather.year`.

Temperature is the sum of three parts:

1. **Seasonal curve.** A periodic Fourier series (constant, harmonics 1–5, and the cosine of
   harmonic 6: twelve coefficients) solved so that its mean over each calendar month's hours
   equals the month's normal exactly: smooth through the year, and mean-preserving.
2. **Weather.** Day-to-day anomalies from an AR(1) process (lag-one correlation 0.75, standard
   deviation larger in winter and in continental climates), interpolated linearly between local
   noons. Each month's sample mean of the anomalies is removed as a Hann-window bump (zero at
   the month's ends), so monthly means stay exact and no steps appear at month boundaries. (A
   Fourier fit to these noisy monthly means would ring by several kelvin.)
3. **Diurnal cycle.** A two-piece cosine rising from the minimum at sunrise to the maximum at
   14:30 solar time and falling back to the next sunrise, scaled to the day's normal range
   (interpolated as in 1) and shifted to a zero daily mean.

Global horizontal irradiation is a clear-sky curve (Haurwitz 1945, from the solar geometry of
each hour, equation of time neglected) times a day-to-day clearness factor (AR(1), lag-one
correlation 0.5), scaled so that each month's total equals its normal exactly.

Monthly normals come from :mod:`heatgrid.weather.cities` (station normals of the national
meteorological services; each city names its source).
"""

from __future__ import annotations

import calendar
import zlib
from datetime import UTC, datetime
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from heatgrid.core.errors import InputError
from heatgrid.weather.cities import CITIES, City, find_city
from heatgrid.weather.year import DEFAULT_YEAR, HOUR_S, WeatherYear

__all__ = ["CITIES", "City", "find_city", "synthetic_year"]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]

_TEMP_LAG1_CORRELATION = 0.75
_CLEARNESS_LAG1_CORRELATION = 0.5
_CLEARNESS_SPREAD = 0.35
_MIN_CLEARNESS = 0.05
_MAX_TEMP_SOLAR_H = 14.5
_SEED_PREFIX = "heatgrid-synthetic-v1:"


def synthetic_year(city_name: str, *, year: int = DEFAULT_YEAR) -> WeatherYear:
    """Build the synthetic typical year of a built-in city.

    Parameters
    ----------
    city_name : str
        A name or alias from :data:`CITIES` (case, accents and spaces are ignored).
    year : int
        Calendar year of the timestamps; a leap year gives 8784 hours, others 8760.

    Returns
    -------
    WeatherYear
        Hourly temperature [°C] and global horizontal irradiation [Wh/m²].

    Raises
    ------
    InputError
        If the city is not built in.
    """
    city = find_city(city_name)
    if city is None:
        known = ", ".join(sorted(CITIES))
        raise InputError(f"no built-in climate for {city_name!r}; the cities are: {known}")
    grid = _HourGrid(year, city)
    rng = np.random.default_rng(zlib.crc32((_SEED_PREFIX + city.name).encode("utf-8")))
    outdoor_temp_c = (
        grid.mean_preserving_curve(np.array(city.monthly_mean_temp_c))
        + _weather_anomaly_k(grid, city, rng)
        + _diurnal_cycle_k(grid, city)
    )
    global_horizontal_wh_per_m2 = _irradiation_wh_per_m2(grid, city, rng)
    return WeatherYear(
        name=city.name,
        latitude_deg=city.latitude_deg,
        longitude_deg=city.longitude_deg,
        elevation_m=city.elevation_m,
        tz_offset_h=city.tz_offset_h,
        timestamps_ts=grid.timestamps_ts,
        outdoor_temp_c=outdoor_temp_c,
        global_horizontal_wh_per_m2=global_horizontal_wh_per_m2,
        source=(
            f"synthetic: monthly normals of {city.station} ({city.country}), year {year}; "
            f"{city.source}"
        ),
    )


class _HourGrid:
    """The hours of one year in local standard time, with their months, days and a fit basis."""

    def __init__(self, year: int, city: City) -> None:
        self.n_days = 366 if calendar.isleap(year) else 365
        self.n_hours = 24 * self.n_days
        hour_index = np.arange(self.n_hours)
        #: End of each hour, in days since 1 January 00:00 local standard time.
        self.end_day: FloatArray = (hour_index + 1).astype(np.float64) / 24.0
        self.day = hour_index // 24
        days_per_month = np.array([calendar.monthrange(year, m)[1] for m in range(1, 13)])
        self.month = np.repeat(np.arange(12), 24 * days_per_month)
        start_ts = datetime(year, 1, 1, tzinfo=UTC).timestamp() - city.tz_offset_h * HOUR_S
        self.timestamps_ts: FloatArray = start_ts + (hour_index + 1).astype(np.float64) * HOUR_S
        self.local_clock_h = np.mod(hour_index + 1, 24).astype(np.float64)
        # Solar time minus local standard clock time [h] (equation of time neglected).
        self.solar_minus_clock_h = (city.longitude_deg - 15.0 * city.tz_offset_h) / 15.0
        phase = 2.0 * np.pi * self.end_day / self.n_days
        columns = [np.ones(self.n_hours)]
        for harmonic in range(1, 6):
            columns += [np.cos(harmonic * phase), np.sin(harmonic * phase)]
        columns.append(np.cos(6 * phase))
        self.basis = np.stack(columns, axis=1)
        self.month_means_of_basis = np.stack(
            [self.basis[self.month == m].mean(axis=0) for m in range(12)]
        )

    @property
    def month_bump(self) -> FloatArray:
        """A Hann window over each month: 0 at its boundaries, mean 1 over its hours."""
        month_start = np.searchsorted(self.month, np.arange(12))
        hours_in_month = np.bincount(self.month, minlength=12)
        position = np.arange(self.n_hours) - month_start[self.month] + 0.5
        window = np.sin(np.pi * position / hours_in_month[self.month]) ** 2
        bump: FloatArray = window / self.monthly_means(window)[self.month]
        return bump

    def mean_preserving_curve(self, monthly_values: FloatArray) -> FloatArray:
        """Smooth periodic hourly curve whose mean over each month is ``monthly_values``."""
        coefficients = np.linalg.solve(self.month_means_of_basis, monthly_values)
        curve: FloatArray = self.basis @ coefficients
        return curve

    def monthly_means(self, hourly: FloatArray) -> FloatArray:
        """Mean of ``hourly`` over each month's hours."""
        totals = np.bincount(self.month, weights=hourly, minlength=12)
        means: FloatArray = totals / np.bincount(self.month, minlength=12)
        return means

    def daily_means(self, hourly: FloatArray) -> FloatArray:
        """Mean of ``hourly`` over each day's 24 hours."""
        means: FloatArray = hourly.reshape(self.n_days, 24).mean(axis=1)
        return means


def _ar1(rng: np.random.Generator, n: int, lag1: float) -> FloatArray:
    """Stationary AR(1) series of unit variance."""
    shocks = rng.standard_normal(n)
    series = np.empty(n)
    series[0] = shocks[0]
    innovation = np.sqrt(1.0 - lag1 * lag1)
    for index in range(1, n):
        series[index] = lag1 * series[index - 1] + innovation * shocks[index]
    return series


def _weather_anomaly_k(grid: _HourGrid, city: City, rng: np.random.Generator) -> FloatArray:
    """Day-to-day weather anomalies [K], zero mean over every month."""
    monthly_c = np.array(city.monthly_mean_temp_c)
    half_annual_range_k = (monthly_c.max() - monthly_c.min()) / 2.0
    day_centre = np.arange(grid.n_days) + 0.5
    coldest_day = 15.0 + 30.4 * float(np.argmin(monthly_c))
    seasonal = np.cos(2.0 * np.pi * (day_centre - coldest_day) / grid.n_days)
    spread_k = (1.9 + 0.07 * half_annual_range_k) + (0.3 + 0.06 * half_annual_range_k) * seasonal
    daily_k = spread_k * _ar1(rng, grid.n_days, _TEMP_LAG1_CORRELATION)
    hourly_k: FloatArray = np.interp(grid.end_day, day_centre, daily_k)
    return hourly_k - grid.monthly_means(hourly_k)[grid.month] * grid.month_bump


def _declination_rad(day_of_year: FloatArray) -> FloatArray:
    """Solar declination (Cooper 1969) [rad] for a (fractional) day of the year."""
    declination: FloatArray = np.radians(23.45) * np.sin(2.0 * np.pi * (284.0 + day_of_year) / 365)
    return declination


def _diurnal_cycle_k(grid: _HourGrid, city: City) -> FloatArray:
    """Diurnal temperature cycle [K]: minimum at sunrise, maximum mid-afternoon, zero daily mean."""
    range_k = grid.daily_means(grid.mean_preserving_curve(np.array(city.monthly_diurnal_range_k)))
    declination = _declination_rad(np.arange(grid.n_days, dtype=np.float64) + 1.0)
    latitude = np.radians(city.latitude_deg)
    cos_sunset_angle = np.clip(-np.tan(latitude) * np.tan(declination), -1.0, 1.0)
    sunrise_solar_h = 12.0 - np.degrees(np.arccos(cos_sunset_angle)) / 15.0
    sunrise_solar_h = np.minimum(sunrise_solar_h, _MAX_TEMP_SOLAR_H - 2.0)
    sunrise_h = np.repeat(sunrise_solar_h, 24)
    solar_h = grid.local_clock_h + grid.solar_minus_clock_h
    rise_length_h = _MAX_TEMP_SOLAR_H - sunrise_h
    since_sunrise_h = np.mod(solar_h - sunrise_h, 24.0)
    rising = since_sunrise_h <= rise_length_h
    since_max_h = np.mod(solar_h - _MAX_TEMP_SOLAR_H, 24.0)
    shape = np.where(
        rising,
        0.5 * (1.0 - np.cos(np.pi * since_sunrise_h / rise_length_h)),
        0.5 * (1.0 + np.cos(np.pi * since_max_h / (24.0 - rise_length_h))),
    )
    shape_per_day = shape.reshape(grid.n_days, 24)
    centred = shape_per_day - shape_per_day.mean(axis=1, keepdims=True)
    cycle: FloatArray = (centred * range_k[:, None]).ravel()
    return cycle


def _clear_sky_wh_per_m2(grid: _HourGrid, city: City) -> FloatArray:
    """Haurwitz clear-sky global horizontal irradiation of each hour [Wh/m²]."""
    substeps = (np.arange(6) + 0.5) / 6.0 - 1.0  # six instants inside each hour [h from its end]
    solar_h = (grid.local_clock_h + grid.solar_minus_clock_h)[:, None] + substeps[None, :]
    day_of_year = (grid.end_day[:, None] + substeps[None, :] / 24.0) + 1.0
    declination = _declination_rad(day_of_year)
    latitude = np.radians(city.latitude_deg)
    hour_angle = np.radians(15.0 * (solar_h - 12.0))
    cos_zenith = np.sin(latitude) * np.sin(declination) + np.cos(latitude) * np.cos(
        declination
    ) * np.cos(hour_angle)
    safe = np.maximum(cos_zenith, 1e-3)
    irradiance_w_per_m2 = np.where(cos_zenith > 0.0, 1098.0 * safe * np.exp(-0.057 / safe), 0.0)
    hourly: FloatArray = irradiance_w_per_m2.mean(axis=1)  # W/m² over 1 h = Wh/m²
    return hourly


def _irradiation_wh_per_m2(grid: _HourGrid, city: City, rng: np.random.Generator) -> FloatArray:
    """Hourly global horizontal irradiation [Wh/m²] matching each month's normal total.

    Each day's clearness (irradiation over clear-sky irradiation) is ``s_m · (1 + 0.35 z_d)``
    clipped to [0.05, 1] (never brighter than clear sky, unless the month's normal itself is),
    with ``z_d`` an AR(1) series and ``s_m`` found by bisection so that the month's total is
    its normal.
    """
    clear_wh = _clear_sky_wh_per_m2(grid, city)
    clear_daily_wh = clear_wh.reshape(grid.n_days, 24).sum(axis=1)
    day_month = grid.month[::24]
    days_per_month = np.bincount(day_month, minlength=12)
    normals = np.array(city.monthly_daily_global_horizontal_kwh_per_m2)
    target_wh = normals * 1000.0 * days_per_month
    clear_total_wh = np.bincount(day_month, weights=clear_daily_wh, minlength=12)
    cap = np.maximum(1.0, target_wh / clear_total_wh)[day_month]
    raw = np.maximum(
        0.0, 1.0 + _CLEARNESS_SPREAD * _ar1(rng, grid.n_days, _CLEARNESS_LAG1_CORRELATION)
    )
    low, high = np.zeros(12), np.full(12, 1.0 / _MIN_CLEARNESS)
    for _ in range(60):
        middle = (low + high) / 2.0
        clearness = np.clip(middle[day_month] * raw, _MIN_CLEARNESS, cap)
        total_wh = np.bincount(day_month, weights=clearness * clear_daily_wh, minlength=12)
        too_bright = total_wh > target_wh
        high = np.where(too_bright, middle, high)
        low = np.where(too_bright, low, middle)
    clearness = np.clip(((low + high) / 2.0)[day_month] * raw, _MIN_CLEARNESS, cap)
    shaped_wh = clear_wh * np.repeat(clearness, 24)
    shaped_total_wh = np.bincount(grid.month, weights=shaped_wh, minlength=12)
    irradiation: FloatArray = shaped_wh * (target_wh / shaped_total_wh)[grid.month]
    return irradiation
