"""The room's 1R1C parameters learned from the agent's own recorded samples.

The agent records one sample a minute (room temperature, outdoor temperature when known, the
power its devices delivered) and, once a day, fits a 1R1C room to the last days of them with
:func:`heatgrid.core.thermal_fit.fit_1r1c`. The samples are averaged onto a uniform grid of
``step_s`` over the most recent run without gaps (consecutive samples less than ``step_s``
apart, outdoor temperature known).

A fit is **accepted** only when all of these hold, else the parameters in use stay:

* the run spans at least ``min_span_h`` (24 h by default): a day of weather and schedule;
* :func:`~heatgrid.core.thermal_fit.fit_1r1c` succeeds (the data are excited and passive);
* it is physically plausible: ``UA`` within [20, 2000] W/K and the time constant within
  [2, 300] h (homes are 100–500 W/K and 10–60 h; the bounds leave room for odd ones);
* it fits well: the RMS difference between the fitted room simulated over the run (from the
  first measured temperature) and the measured temperatures is at most 0.3 K.

Everything here is pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core.errors import InputError
from heatgrid.core.thermal import simulate
from heatgrid.core.thermal_fit import fit_1r1c

__all__ = [
    "MAX_RMS_ERROR_K",
    "TIME_CONSTANT_RANGE_H",
    "UA_RANGE_W_PER_K",
    "FitOutcome",
    "RoomParameters",
    "fit_room",
]

UA_RANGE_W_PER_K = (20.0, 2000.0)
"""Plausible heat-loss coefficients [W/K]; a fit outside is rejected."""
TIME_CONSTANT_RANGE_H = (2.0, 300.0)
"""Plausible time constants [h]; a fit outside is rejected."""
MAX_RMS_ERROR_K = 0.3
"""Largest RMS error of an accepted fit over its data [K]."""
_S_PER_H = 3600.0


@dataclass(frozen=True, kw_only=True)
class RoomParameters:
    """The room's 1R1C parameters in use.

    Attributes
    ----------
    ua_w_per_k : float
        Heat-loss coefficient [W/K].
    time_constant_h : float
        Time constant ``C / UA`` [h].
    fitted_ts : float or None
        When they were learned, POSIX UTC [s]; None for the configured values.
    rms_error_k : float or None
        RMS error of the fit over its data [K]; None for the configured values.
    """

    ua_w_per_k: float
    time_constant_h: float
    fitted_ts: float | None = None
    rms_error_k: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the parameters as a JSON-serialisable dict."""
        return {
            "ua_w_per_k": self.ua_w_per_k,
            "time_constant_h": self.time_constant_h,
            "fitted_ts": self.fitted_ts,
            "rms_error_k": self.rms_error_k,
        }

    @classmethod
    def from_json(cls, value: Any) -> RoomParameters | None:
        """Return the parameters stored by :meth:`to_json`, or None if unreadable."""
        try:
            parameters = cls(
                ua_w_per_k=float(value["ua_w_per_k"]),
                time_constant_h=float(value["time_constant_h"]),
                fitted_ts=None if value["fitted_ts"] is None else float(value["fitted_ts"]),
                rms_error_k=None if value["rms_error_k"] is None else float(value["rms_error_k"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return parameters if _plausible(parameters) is None else None


@dataclass(frozen=True)
class FitOutcome:
    """What a fit attempt gave.

    Attributes
    ----------
    parameters : RoomParameters or None
        The accepted parameters; None when the fit was rejected.
    reason : str
        Why it was accepted or rejected (for the log).
    """

    parameters: RoomParameters | None
    reason: str


def _plausible(parameters: RoomParameters) -> str | None:
    """Return why ``parameters`` are implausible, or None if they are plausible."""
    ua, tau = parameters.ua_w_per_k, parameters.time_constant_h
    if not UA_RANGE_W_PER_K[0] <= ua <= UA_RANGE_W_PER_K[1]:
        return f"UA {ua:.4g} W/K is outside {UA_RANGE_W_PER_K} W/K"
    if not TIME_CONSTANT_RANGE_H[0] <= tau <= TIME_CONSTANT_RANGE_H[1]:
        return f"time constant {tau:.4g} h is outside {TIME_CONSTANT_RANGE_H} h"
    return None


def _latest_run(
    sample_ts: NDArray[np.float64], outdoor_c: NDArray[np.float64], step_s: float
) -> slice:
    """Return the most recent run of samples with outdoor known and gaps below ``step_s``."""
    usable = np.isfinite(outdoor_c)
    end = int(np.flatnonzero(usable)[-1]) + 1 if usable.any() else 0
    start = end
    while (
        start > 0
        and usable[start - 1]
        and (start == end or sample_ts[start] - sample_ts[start - 1] < step_s)
    ):
        start -= 1
    return slice(start, end)


def _grid(
    sample_ts: NDArray[np.float64],
    room_c: NDArray[np.float64],
    outdoor_c: NDArray[np.float64],
    power_w: NDArray[np.float64],
    step_s: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Room at grid points (T+1,), mean power and outdoor over each step (T,)."""
    n_steps = int((sample_ts[-1] - sample_ts[0]) // step_s)
    edges_ts = sample_ts[0] + step_s * np.arange(n_steps + 1)
    room = np.interp(edges_ts, sample_ts, room_c)
    inside = sample_ts < edges_ts[-1]
    index = ((sample_ts[inside] - sample_ts[0]) // step_s).astype(np.int64)
    counts = np.bincount(index, minlength=n_steps).astype(np.float64)
    counts = np.maximum(counts, 1.0)  # cannot be 0: gaps are shorter than a step
    power = np.bincount(index, weights=power_w[inside], minlength=n_steps) / counts
    outdoor = np.bincount(index, weights=outdoor_c[inside], minlength=n_steps) / counts
    return room, power, outdoor


def fit_room(
    sample_ts: ArrayLike,
    room_temp_c: ArrayLike,
    outdoor_temp_c: ArrayLike,
    power_w: ArrayLike,
    *,
    now_ts: float,
    step_s: float = 600.0,
    min_span_h: float = 24.0,
) -> FitOutcome:
    """Fit the room's 1R1C parameters to recorded samples; accept only a good, plausible fit.

    Parameters
    ----------
    sample_ts : array_like
        When each sample was taken, increasing, POSIX UTC [s].
    room_temp_c : array_like
        Room temperature of each sample [°C].
    outdoor_temp_c : array_like
        Outdoor temperature of each sample [°C]; NaN where unknown (such samples break runs).
    power_w : array_like
        Heat power the devices delivered at each sample [W].
    now_ts : float
        The present, POSIX UTC [s]; stored as ``fitted_ts``.
    step_s : float
        Grid step the samples are averaged onto [s], > 0.
    min_span_h : float
        Shortest run of samples a fit is made from [h].

    Returns
    -------
    FitOutcome
        The accepted parameters, or None with the reason for the rejection.

    Raises
    ------
    InputError
        If the series are not one-dimensional, of one length, with increasing timestamps.
    """
    series = [
        np.asarray(values, dtype=np.float64)
        for values in (sample_ts, room_temp_c, outdoor_temp_c, power_w)
    ]
    ts, room_c, outdoor_c, power = series
    if any(s.ndim != 1 or s.size != ts.size for s in series):
        raise InputError("sample_ts, room_temp_c, outdoor_temp_c and power_w must be 1-D, alike")
    if ts.size > 1 and not bool(np.all(np.diff(ts) > 0.0)):
        raise InputError("sample_ts must increase")
    run = _latest_run(ts, outdoor_c, step_s)
    span_h = float(ts[run][-1] - ts[run][0]) / _S_PER_H if run.stop - run.start > 1 else 0.0
    if span_h < min_span_h:
        return FitOutcome(None, f"too little data: {span_h:.1f} h without gaps < {min_span_h} h")
    if not bool(np.all(np.isfinite(room_c[run]) & np.isfinite(power[run]))):
        return FitOutcome(None, "the samples hold non-finite room temperatures or powers")
    room, injected, outdoor = _grid(ts[run], room_c[run], outdoor_c[run], power[run], step_s)
    try:
        model = fit_1r1c(room, injected, outdoor, step_s)
    except InputError as error:
        return FitOutcome(None, f"no fit: {error}")
    simulated = simulate(model, [room[0]], injected, outdoor, step_s)[:, 0]
    rms_error_k = float(np.sqrt(np.mean((simulated - room) ** 2)))
    parameters = RoomParameters(
        ua_w_per_k=float(model.ua_w_per_k),
        time_constant_h=float(model.time_constant_h),
        fitted_ts=float(now_ts),
        rms_error_k=rms_error_k,
    )
    problem = _plausible(parameters)
    if problem is not None:
        return FitOutcome(None, f"implausible fit: {problem}")
    if not rms_error_k <= MAX_RMS_ERROR_K:
        return FitOutcome(None, f"poor fit: RMS error {rms_error_k:.3g} K > {MAX_RMS_ERROR_K} K")
    return FitOutcome(
        parameters,
        f"UA {parameters.ua_w_per_k:.4g} W/K, time constant {parameters.time_constant_h:.4g} h, "
        f"RMS error {rms_error_k:.3g} K over {span_h:.1f} h",
    )
