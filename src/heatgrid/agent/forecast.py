"""The heat window: the heat the room will want over the next hours (steady-state heat loss).

Each segment asks for ``clip(UA · (setpoint_c − outdoor_c), 0, max_power_w)``: the power that
holds the room at the setpoint in force at the segment's middle against the outdoor temperature
forecast for it. Simple, but it follows the schedule and the weather, which is what the
coordinator needs to place tasks where heat is wanted long enough.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core.control import ThermostatConfig, setpoint_at
from heatgrid.core.errors import InputError, require_finite, require_positive
from heatgrid.protocol.v1 import MAX_HEAT_WINDOW_SEGMENTS, HeatWindowSegment

__all__ = ["heat_window", "segment_count"]


def heat_window(
    now_ts: float,
    outdoor_temp_c: ArrayLike,
    *,
    ua_w_per_k: float,
    thermostat: ThermostatConfig,
    segment_s: float,
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
    starts_ts = start_ts + step_s * np.arange(outdoor_c.size)
    setpoints_c = np.asarray(setpoint_at(thermostat.schedule, starts_ts + step_s / 2.0))
    power_w = np.clip(ua * (setpoints_c - outdoor_c), 0.0, thermostat.max_power_w)
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
