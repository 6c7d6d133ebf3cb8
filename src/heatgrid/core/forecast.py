"""The heat window: the heat a room will want over the next hours (the one rule, pure).

A heater offers the coordinator a heat window with each heartbeat; the simulator builds the
same window for its simulated heaters. Both call this module:

* Segment ``j`` of a window starting at ``start_ts`` covers ``[start_ts + j·segment_s,
  start_ts + (j+1)·segment_s)`` and is **evaluated at its middle**
  (:func:`window_instants_ts`): the setpoint of the schedule in force then, the outdoor
  temperature forecast for then and the internal gains expected then. A schedule change in the
  window is followed, as the thermostat will follow it.
* Each segment asks for the steady-state power that holds the room at the setpoint,
  **net of internal gains** (people, appliances, sun): ``clip(UA · (setpoint_c − outdoor_c) −
  gains_w, 0, max_power_w)`` (:func:`heat_window_w`). Gains heat the room whatever the heater
  does, so a window without them overstates the heat wanted and places work the room will not
  burn.

Everything is vectorized: arrays of any broadcastable shapes, segments usually on the last axis
(one row per home).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray
from heatgrid.core.errors import InputError, require_finite, require_positive

__all__ = ["heat_window_w", "window_instants_ts", "window_starts_ts"]


def window_starts_ts(start_ts: float, count: int, segment_s: float) -> FloatArray:
    """Return the start of each of ``count`` segments of ``segment_s`` from ``start_ts``.

    Parameters
    ----------
    start_ts : float
        Start of the first segment, POSIX UTC [s].
    count : int
        Number of segments, >= 1.
    segment_s : float
        Length of a segment [s], > 0.

    Returns
    -------
    numpy.ndarray
        ``start_ts + segment_s · j`` [POSIX s, UTC], shape ``(count,)``.
    """
    start = require_finite("start_ts", start_ts)
    step_s = require_positive("segment_s", segment_s)
    if count < 1:
        raise InputError(f"count must be at least 1, got {count}")
    starts: FloatArray = start + step_s * np.arange(count, dtype=np.float64)
    return starts


def window_instants_ts(start_ts: float, count: int, segment_s: float) -> FloatArray:
    """Return the instant each segment is evaluated at: its middle [POSIX s, UTC], ``(count,)``.

    The setpoint, outdoor temperature and gains passed to :func:`heat_window_w` are taken at
    these instants.
    """
    instants: FloatArray = window_starts_ts(start_ts, count, segment_s) + segment_s / 2.0
    return instants


def heat_window_w(
    ua_w_per_k: ArrayLike,
    setpoint_c: ArrayLike,
    outdoor_temp_c: ArrayLike,
    gains_w: ArrayLike,
    max_power_w: ArrayLike,
) -> FloatArray:
    """Return the heat power each segment wants [W].

    Parameters
    ----------
    ua_w_per_k : float or array_like
        Heat-loss coefficient of the room [W/K], > 0.
    setpoint_c : float or array_like
        Setpoint in force at each segment's middle [°C].
    outdoor_temp_c : float or array_like
        Outdoor temperature at each segment's middle [°C].
    gains_w : float or array_like
        Internal gains at each segment's middle [W], >= 0.
    max_power_w : float or array_like
        Highest power the heater burns [W], > 0.

    Returns
    -------
    numpy.ndarray
        ``clip(UA · (setpoint_c − outdoor_temp_c) − gains_w, 0, max_power_w)`` [W], in the
        arguments' broadcast shape.

    Raises
    ------
    InputError
        If a value is not finite or out of range.
    """
    ua = np.asarray(ua_w_per_k, dtype=np.float64)
    setpoint = np.asarray(setpoint_c, dtype=np.float64)
    outdoor = np.asarray(outdoor_temp_c, dtype=np.float64)
    gains = np.asarray(gains_w, dtype=np.float64)
    most = np.asarray(max_power_w, dtype=np.float64)
    for name, values in (
        ("ua_w_per_k", ua),
        ("setpoint_c", setpoint),
        ("outdoor_temp_c", outdoor),
        ("gains_w", gains),
        ("max_power_w", most),
    ):
        if not bool(np.all(np.isfinite(values))):
            raise InputError(f"{name} must be finite")
    if bool(np.any(ua <= 0.0)) or bool(np.any(most <= 0.0)) or bool(np.any(gains < 0.0)):
        raise InputError("ua_w_per_k and max_power_w must be > 0 and gains_w >= 0")
    power_w: FloatArray = np.clip(ua * (setpoint - outdoor) - gains, 0.0, most)
    return power_w
