"""The comfort rule: how far a room's air is outside the band around its setpoint.

A room is comfortable within ``setpoint_c ± comfort_band_k``. :func:`band_excess_k` gives, for one
reading, the kelvins below the band (the room is too cold: its heating fell short) and above it
(too warm: a summer day, or a heater that overshot); a heater can only answer the first. The
simulator's two engines sum both, per home and step, into degree-hours
(:func:`add_band_excess` for the step-by-step engine, :func:`band_excess_k` inside the fused
loop), so their comfort is one rule.

NaN follows NumPy (``np.maximum``): a NaN reading or setpoint gives NaN.
"""

from __future__ import annotations

from typing import Any

from numba import njit

from heatgrid.core._kernel_math import maximum

__all__ = ["add_band_excess", "band_excess_k"]


@njit(cache=True, inline="always")
def band_excess_k(room_temp_c: float, setpoint_c: float, comfort_band_k: float) -> Any:
    """Return how far the room is below and above ``setpoint_c ± comfort_band_k`` [K].

    Parameters
    ----------
    room_temp_c : float
        Room air temperature [°C].
    setpoint_c : float
        Setpoint in force [°C].
    comfort_band_k : float
        Half-width of the comfort band [K].

    Returns
    -------
    below_k, above_k : float
        Kelvins below the band's floor and above its ceiling (each 0 inside the band).
    """
    below_k = maximum(setpoint_c - comfort_band_k - room_temp_c, 0.0)
    above_k = maximum(room_temp_c - setpoint_c - comfort_band_k, 0.0)
    return below_k, above_k


@njit(cache=True)
def add_band_excess(  # noqa: PLR0917
    room_temp_c: Any,
    setpoint_c: Any,
    comfort_band_k: float,
    step_h: float,
    comfort_k_h: Any,
    cold_k_h: Any,
) -> None:
    """Add one step of :func:`band_excess_k` per home to degree-hour totals, in place.

    Parameters
    ----------
    room_temp_c, setpoint_c : numpy.ndarray
        Each home's room air at the step's end and the setpoint in force [°C], (N,).
    comfort_band_k : float
        Half-width of the comfort band [K].
    step_h : float
        Length of the step [h].
    comfort_k_h : numpy.ndarray
        Degree-hours outside the band per home [K·h], (N,): gets ``(below + above) · step_h``.
    cold_k_h : numpy.ndarray
        Degree-hours below the band (too cold) per home [K·h], (N,): gets ``below · step_h``.
    """
    for i in range(room_temp_c.shape[0]):
        below_k, above_k = band_excess_k(room_temp_c[i], setpoint_c[i], comfort_band_k)
        comfort_k_h[i] += (below_k + above_k) * step_h
        cold_k_h[i] += below_k * step_h
