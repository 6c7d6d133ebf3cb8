"""The heat window as the agent sends it: :mod:`heatgrid.core.forecast`'s rule in wire messages.

Each segment asks for ``clip(UA · (setpoint_c − outdoor_c) − gains_w, 0, max_power_w)``, all
taken at the segment's middle (:func:`heatgrid.core.forecast.heat_window_w`, the rule the
simulator runs too): the power that holds the room at the setpoint in force then against the
outdoor temperature forecast for then, net of the home's internal gains.

:class:`HourlyOutdoorForecast` turns a blocking fetch of an hourly outdoor temperature series
(Open-Meteo, wired by the CLI: this package does not import :mod:`heatgrid.weather`) into the
daemon's ``outdoor_forecast`` hook: refreshed at most every ``refresh_s``, a failed fetch logged
as a warning and retried after ``retry_s``, the last good series used while it covers the window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core.control import ThermostatConfig, setpoint_at
from heatgrid.core.errors import InputError, require_finite, require_positive
from heatgrid.core.forecast import heat_window_w, window_instants_ts, window_starts_ts
from heatgrid.protocol.v1 import MAX_HEAT_WINDOW_SEGMENTS, HeatWindowSegment

__all__ = ["HourlyOutdoorForecast", "HourlySeries", "heat_window", "segment_count"]

_log = logging.getLogger(__name__)
HourlySeries = tuple[ArrayLike, ArrayLike]
"""``(timestamps_ts [POSIX s], outdoor_temp_c [°C])`` as a forecast fetch returns it."""


def heat_window(
    now_ts: float,
    outdoor_temp_c: ArrayLike,
    *,
    ua_w_per_k: float,
    thermostat: ThermostatConfig,
    segment_s: float,
    gains_w: float = 0.0,
    heating_allowed: bool = True,
) -> list[HeatWindowSegment]:
    """Return the heat window from ``now_ts`` on, one segment per outdoor value.

    Parameters
    ----------
    now_ts : float
        Start of the first segment, POSIX UTC [s].
    outdoor_temp_c : array_like
        Outdoor temperature forecast for each segment [°C], finite; its length is the number of
        segments (at most ``MAX_HEAT_WINDOW_SEGMENTS``).
    ua_w_per_k : float
        Heat-loss coefficient of the room [W/K], > 0.
    thermostat : ThermostatConfig
        The schedule (setpoints) and ``max_power_w`` [W].
    segment_s : float
        Length of each segment [s], > 0.
    gains_w : float
        Internal gains of the home [W], >= 0.
    heating_allowed : bool
        False in the user's off mode: every segment then wants 0 W.

    Returns
    -------
    list of HeatWindowSegment
        Consecutive segments from ``now_ts``.

    Raises
    ------
    InputError
        If a number is not finite or out of range.
    """
    start_ts = require_finite("now_ts", now_ts)
    step_s = require_positive("segment_s", segment_s)
    ua = require_positive("ua_w_per_k", ua_w_per_k)
    outdoor_c = np.asarray(outdoor_temp_c, dtype=np.float64)
    if outdoor_c.ndim != 1 or not 0 < outdoor_c.size <= MAX_HEAT_WINDOW_SEGMENTS:
        raise InputError(
            f"outdoor_temp_c must hold 1 to {MAX_HEAT_WINDOW_SEGMENTS} values, "
            f"got shape {outdoor_c.shape}"
        )
    if not bool(np.all(np.isfinite(outdoor_c))):
        raise InputError("outdoor_temp_c must be finite")
    starts_ts = window_starts_ts(start_ts, outdoor_c.size, step_s)
    instants_ts = window_instants_ts(start_ts, outdoor_c.size, step_s)
    setpoints_c = setpoint_at(thermostat.schedule, instants_ts)
    power_w = heat_window_w(ua, setpoints_c, outdoor_c, gains_w, thermostat.max_power_w)
    if not heating_allowed:
        power_w = np.zeros_like(power_w)
    return [
        HeatWindowSegment(start_ts=float(ts), duration_s=step_s, heat_power_w=float(p))
        for ts, p in zip(starts_ts, power_w, strict=True)
    ]


def segment_count(horizon_s: float, segment_s: float) -> int:
    """Return how many segments of ``segment_s`` [s] cover ``horizon_s`` [s] (at least 1)."""
    horizon = require_positive("horizon_s", horizon_s)
    count = math.ceil(horizon / require_positive("segment_s", segment_s))
    return max(1, min(count, MAX_HEAT_WINDOW_SEGMENTS))


class HourlyOutdoorForecast:
    """The daemon's ``outdoor_forecast`` hook over a blocking fetch of a temperature series.

    Calls may block while fetching (HTTP): the daemon calls it off the event loop.

    Parameters
    ----------
    fetch : callable
        ``fetch() -> (timestamps_ts, outdoor_temp_c)``: instants, increasing, POSIX UTC [s], and
        the outdoor temperature at each [°C]. May raise on failure.
    refresh_s : float
        Age of the series after which it is fetched again [s].
    retry_s : float
        Wait after a failed fetch before the next try [s].
    """

    def __init__(
        self,
        fetch: Callable[[], HourlySeries],
        *,
        refresh_s: float = 3600.0,
        retry_s: float = 600.0,
    ) -> None:
        self._fetch = fetch
        self._refresh_s = require_positive("refresh_s", refresh_s)
        self._retry_s = require_positive("retry_s", retry_s)
        self._series: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        self._fetched_ts = -math.inf
        self._tried_ts = -math.inf
        self.fetches = 0
        """How many fetches were tried."""

    def _refresh(self, now_ts: float) -> None:
        if now_ts - self._fetched_ts < self._refresh_s or now_ts - self._tried_ts < self._retry_s:
            return
        self._tried_ts = now_ts
        self.fetches += 1
        try:
            times, temps = self._fetch()
            times_ts = np.asarray(times, dtype=np.float64)
            temps_c = np.asarray(temps, dtype=np.float64)
            if times_ts.ndim != 1 or times_ts.shape != temps_c.shape or times_ts.size < 2:
                raise InputError(
                    f"the forecast holds {times_ts.shape} times, {temps_c.shape} values"
                )
            if not (np.all(np.isfinite(temps_c)) and np.all(np.diff(times_ts) > 0.0)):
                raise InputError("the forecast holds non-finite values or unordered times")
        except Exception as error:  # any failure falls back; the room is never at stake
            _log.warning("weather forecast unavailable (%s: %s)", type(error).__name__, error)
            return
        self._series, self._fetched_ts = (times_ts, temps_c), now_ts

    def __call__(self, start_ts: float, count: int, segment_s: float) -> list[float] | None:
        """Return the outdoor temperature at the middle of each segment [°C], or None.

        Parameters
        ----------
        start_ts : float
            Start of the first segment, the present, POSIX UTC [s].
        count : int
            Number of segments.
        segment_s : float
            Length of each segment [s].

        Returns
        -------
        list of float or None
            Interpolated from the series; None when there is none or it does not cover every
            segment's middle.
        """
        self._refresh(start_ts)
        if self._series is None:
            return None
        times_ts, temps_c = self._series
        middles_ts = start_ts + segment_s * (np.arange(count) + 0.5)
        if middles_ts[0] < times_ts[0] or middles_ts[-1] > times_ts[-1]:
            return None
        return [float(value) for value in np.interp(middles_ts, times_ts, temps_c)]
