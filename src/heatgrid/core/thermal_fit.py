"""Identification: a heater learns its room's UA and capacity from what it measured.

Data are room air temperatures at step boundaries, ``room_temp_c[k]`` at ``k · step_s``
(T + 1 samples), and the inputs held over each step (T values): heater power, outdoor
temperature and, optionally, other gains.

* :func:`fit_1r1c` first solves the exact discrete 1R1C form
  ``T[k+1] − T_out[k] = a (T[k] − T_out[k]) + β (P[k] + gains[k])`` by linear least squares
  (``a = e^(−UA h / C)``, ``β = (1 − a) / UA``), then refines ``UA``, ``C`` and the initial
  temperature on the output error (the simulated minus the measured temperatures) with
  Levenberg–Marquardt. The output error is unbiased under sensor noise, where the regression is
  not (noise on the regressor ``T[k]`` biases ``a`` towards 0).
* :func:`fit_2r2c` starts from the 1R1C fit and minimises the output error over the five 2R2C
  parameters (in log space, so they stay positive) and both initial temperatures.

Jacobians are central differences evaluated as one batched simulation (the model fields are
arrays over the perturbed parameter sets), so each iteration costs two vectorized runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from heatgrid.core._arrays import FloatArray, checked_array
from heatgrid.core.errors import InputError, require_positive
from heatgrid.core.thermal import Room1R1C, Room2R2C, simulate

__all__ = ["fit_1r1c", "fit_2r2c"]

_MIN_STEPS_1R1C = 10
_MIN_STEPS_2R2C = 50
_MIN_RELATIVE_SINGULAR_VALUE = 1e-6
_MIN_TEMP_SPREAD_K = 1e-6
_FD_STEP = 1e-6
_MAX_ITERATIONS = 200
_COST_RTOL = 1e-12
_DAMPING_FACTORS = np.array([0.1, 1.0, 10.0, 100.0])
_START_CAPACITY_FACTORS = (1.0, 3.0)

Residuals = Callable[[FloatArray], FloatArray]


def _data(
    room_temp_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    gains_w: ArrayLike | None,
    min_steps: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate the series; return room (T+1,), heat injected (T,), outdoor (T,)."""
    room = checked_array("room_temp_c", room_temp_c)
    if room.ndim != 1 or room.size < min_steps + 1:
        raise InputError(
            f"room_temp_c must be a series of at least {min_steps + 1} samples, got shape "
            f"{room.shape}"
        )
    n_steps = room.size - 1
    series = []
    for name, value in (
        ("heat_power_w", heat_power_w),
        ("outdoor_temp_c", outdoor_temp_c),
        ("gains_w", 0.0 if gains_w is None else gains_w),
    ):
        array = checked_array(name, value)
        if array.ndim > 1 or (array.ndim == 1 and array.size != n_steps):
            raise InputError(
                f"{name} must be one value or one per step ({n_steps}: len(room_temp_c) − 1), "
                f"got shape {array.shape}"
            )
        series.append(np.broadcast_to(array, (n_steps,)))
    power, outdoor, gains = series
    if float(np.ptp(room)) < _MIN_TEMP_SPREAD_K:
        raise InputError("room_temp_c is constant: the data are not excited enough to fit a room")
    return room, power + gains, outdoor


def _regression_1r1c(
    room: FloatArray, injected: FloatArray, outdoor: FloatArray, step_s: float
) -> tuple[float, float]:
    """Equation-error estimate of (UA [W/K], C [J/K]) from the exact discrete form."""
    design = np.column_stack([room[:-1] - outdoor, injected])
    target = room[1:] - outdoor
    scale = np.linalg.norm(design, axis=0)
    if not bool(np.all(scale > 0.0)):
        raise InputError(
            "the data are not excited enough to fit a room: the heat injected or the "
            "room-outdoor difference is zero throughout"
        )
    singular = np.linalg.svd(design / scale, compute_uv=False)
    if singular[-1] < _MIN_RELATIVE_SINGULAR_VALUE * singular[0]:
        raise InputError(
            "the data are not excited enough to fit a room: heat input and room-outdoor "
            "difference move together (vary the heater power or wait for the room to settle)"
        )
    (a, beta), *_ = np.linalg.lstsq(design, target, rcond=None)
    if not (0.0 < a < 1.0 and beta > 0.0):
        raise InputError(
            f"the data do not fit a passive room (discrete pole {a:.6g}, power gain "
            f"{beta:.6g} K/W): check units, signs and that the inputs line up with the samples"
        )
    ua = (1.0 - a) / beta
    return float(ua), float(-ua * step_s / np.log(a))


def _levenberg_marquardt(residuals: Residuals, theta: FloatArray) -> FloatArray:
    """Minimise ``‖r(θ)‖²``; ``residuals`` maps (m, p) parameter sets to (m, n) residuals."""
    p = theta.size
    r = residuals(theta[None, :])[0]
    cost = float(r @ r)
    damping = 1e-3
    for _ in range(_MAX_ITERATIONS):
        probes = np.concatenate([theta + _FD_STEP * np.eye(p), theta - _FD_STEP * np.eye(p)])
        diff = residuals(probes)
        jac = ((diff[:p] - diff[p:]) / (2.0 * _FD_STEP)).T
        normal = jac.T @ jac
        gradient = jac.T @ r
        diagonal = np.maximum(np.diag(normal), 1e-12 * np.max(np.diag(normal)))
        trials = np.array(
            [
                theta - np.linalg.solve(normal + damping * f * np.diag(diagonal), gradient)
                for f in _DAMPING_FACTORS
            ]
        )
        trial_r = residuals(trials)
        costs = np.einsum("ij,ij->i", trial_r, trial_r)
        best = int(np.argmin(costs))
        if not costs[best] < cost:
            damping *= 1000.0
            if damping > 1e12:
                break
            continue
        improvement = cost - float(costs[best])
        theta, r, cost = trials[best], trial_r[best], float(costs[best])
        damping *= float(_DAMPING_FACTORS[best])
        if improvement <= _COST_RTOL * cost:
            break
    return theta


def _output_error_1r1c(
    room: FloatArray, injected: FloatArray, outdoor: FloatArray, step_s: float
) -> Residuals:
    def residuals(theta: FloatArray) -> FloatArray:
        model = Room1R1C(np.exp(theta[:, 0]), np.exp(theta[:, 1]))
        states = simulate(model, theta[:, 2:3], injected[:, None], outdoor[:, None], step_s)
        return np.asarray(states[..., 0].T - room)

    return residuals


def fit_1r1c(
    room_temp_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike | None = None,
) -> Room1R1C:
    """Fit a one-node room to measured data by least squares.

    Parameters
    ----------
    room_temp_c : array_like
        Room air temperature at each step boundary, shape (T + 1,) [°C]; T >= 10.
    heat_power_w : float or array_like
        Heater power held over each step, shape (T,) or one value [W].
    outdoor_temp_c : float or array_like
        Outdoor temperature over each step, shape (T,) or one value [°C].
    step_s : float
        Time between samples [s], > 0.
    gains_w : float or array_like, optional
        Other known gains over each step [W]; none by default.

    Returns
    -------
    Room1R1C
        The room whose exact simulation best matches ``room_temp_c``.

    Raises
    ------
    InputError
        If the data are too short, not finite, not excited (constant temperature, or inputs
        that cannot separate UA from C) or do not fit a passive room.
    """
    h = require_positive("step_s", step_s)
    room, injected, outdoor = _data(
        room_temp_c, heat_power_w, outdoor_temp_c, gains_w, _MIN_STEPS_1R1C
    )
    ua, capacity = _regression_1r1c(room, injected, outdoor, h)
    start = np.array([np.log(ua), np.log(capacity), room[0]])
    theta = _levenberg_marquardt(_output_error_1r1c(room, injected, outdoor, h), start)
    return Room1R1C(float(np.exp(theta[0])), float(np.exp(theta[1])))


def _room_2r2c(theta: FloatArray) -> Room2R2C:
    values = np.exp(theta[:, :5])
    return Room2R2C(*(values[:, i] for i in range(5)))


def _output_error_2r2c(
    room: FloatArray, injected: FloatArray, outdoor: FloatArray, step_s: float
) -> Residuals:
    def residuals(theta: FloatArray) -> FloatArray:
        states = simulate(
            _room_2r2c(theta), theta[:, 5:7], injected[:, None], outdoor[:, None], step_s
        )
        return np.asarray(states[..., 0].T - room)

    return residuals


def fit_2r2c(
    room_temp_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    step_s: float,
    gains_w: ArrayLike | None = None,
) -> Room2R2C:
    """Fit a two-node (air and mass) room to measured air temperatures by least squares.

    Starts from :func:`fit_1r1c` (split into air and mass as
    :meth:`Room2R2C.from_ua_and_time_constant` does, with two guesses for the total
    capacity) and minimises the output error with Levenberg–Marquardt over the five
    parameters and the initial air and mass temperatures; the best of the starts wins.

    Parameters
    ----------
    room_temp_c : array_like
        Room air temperature at each step boundary, shape (T + 1,) [°C]; T >= 50. The
        slow (mass) mode is only identifiable from data spanning a good part of it: days.
    heat_power_w : float or array_like
        Heater power held over each step, shape (T,) or one value [W].
    outdoor_temp_c : float or array_like
        Outdoor temperature over each step, shape (T,) or one value [°C].
    step_s : float
        Time between samples [s], > 0.
    gains_w : float or array_like, optional
        Other known gains into the air over each step [W].

    Returns
    -------
    Room2R2C
        The room whose exact simulation best matches ``room_temp_c``.

    Raises
    ------
    InputError
        If the data are too short, not finite or not excited, or do not fit a passive room.
    """
    h = require_positive("step_s", step_s)
    room, injected, outdoor = _data(
        room_temp_c, heat_power_w, outdoor_temp_c, gains_w, _MIN_STEPS_2R2C
    )
    first = fit_1r1c(room, injected, outdoor, h)
    residuals = _output_error_2r2c(room, injected, outdoor, h)
    best_theta, best_cost = np.empty(0), np.inf
    for factor in _START_CAPACITY_FACTORS:
        guess = Room2R2C.from_ua_and_time_constant(
            first.ua_w_per_k, factor * np.asarray(first.time_constant_h)
        )
        start = np.array(
            [
                np.log(guess.ua_air_out_w_per_k),
                np.log(guess.ua_air_mass_w_per_k),
                np.log(guess.ua_mass_out_w_per_k),
                np.log(guess.capacity_air_j_per_k),
                np.log(guess.capacity_mass_j_per_k),
                room[0],
                room[0],
            ]
        )
        theta = _levenberg_marquardt(residuals, start)
        r = residuals(theta[None, :])[0]
        if float(r @ r) < best_cost:
            best_theta, best_cost = theta, float(r @ r)
    values = np.exp(best_theta[:5])
    return Room2R2C(*(float(v) for v in values))
