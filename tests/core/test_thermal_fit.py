"""Tests for room identification: noisy simulated data recover the room; bad data are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heatgrid.core.errors import InputError
from heatgrid.core.thermal import Room1R1C, Room2R2C, RoomModel, simulate
from heatgrid.core.thermal_fit import fit_1r1c, fit_2r2c

STEP_S = 600.0


def _measured(
    model: RoomModel, days: float, seed: int, noise_k: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A heater cycling 2 kW on and off for 0.5-5 h at a time, a winter outdoor temperature
    (daily swing plus a random walk), and a room sensor with seeded Gaussian noise."""
    rng = np.random.default_rng(seed)
    n_steps = int(days * 86_400.0 / STEP_S)
    time_h = np.arange(n_steps) * STEP_S / 3600.0
    outdoor = (
        4.0
        + 4.0 * np.sin(2.0 * np.pi * (time_h - 9.0) / 24.0)
        + np.cumsum(rng.normal(0.0, 0.05, n_steps))
    )
    power = np.empty(n_steps)
    k, on = 0, True
    while k < n_steps:
        length = int(rng.uniform(0.5, 5.0) * 3600.0 / STEP_S) + 1
        power[k : k + length] = 2000.0 if on else 0.0
        on, k = not on, k + length
    n_nodes = 2 if isinstance(model, Room2R2C) else 1
    truth = simulate(model, np.full(n_nodes, 19.0), power, outdoor, STEP_S)[:, 0]
    return truth + rng.normal(0.0, noise_k, n_steps + 1), power, outdoor


@pytest.mark.parametrize(
    ("ua_w_per_k", "tau_h", "seed"), [(150.0, 20.0, 1), (400.0, 12.0, 2), (60.0, 50.0, 3)]
)
def test_fit_1r1c_recovers_ua_and_capacity(ua_w_per_k: float, tau_h: float, seed: int) -> None:
    truth = Room1R1C(ua_w_per_k, ua_w_per_k * tau_h * 3600.0)
    room, power, outdoor = _measured(truth, days=10, seed=seed)
    fitted = fit_1r1c(room, power, outdoor, STEP_S)
    assert float(fitted.ua_w_per_k) == pytest.approx(ua_w_per_k, rel=0.05)
    assert float(fitted.capacity_j_per_k) == pytest.approx(float(truth.capacity_j_per_k), rel=0.05)


def test_fit_1r1c_with_known_gains() -> None:
    truth = Room1R1C(200.0, 200.0 * 25.0 * 3600.0)
    rng = np.random.default_rng(9)
    room, power, outdoor = _measured(truth, days=8, seed=4, noise_k=0.0)
    gains = rng.uniform(0.0, 400.0, power.size)
    room = simulate(truth, [19.0], power, outdoor, STEP_S, gains)[:, 0]
    fitted = fit_1r1c(room + rng.normal(0, 0.03, room.size), power, outdoor, STEP_S, gains)
    assert float(fitted.ua_w_per_k) == pytest.approx(200.0, rel=0.05)
    assert float(fitted.time_constant_h) == pytest.approx(25.0, rel=0.05)


def test_fit_2r2c_recovers_ua_and_capacity() -> None:
    # splits unlike the defaults that fit_2r2c starts from
    truth = Room2R2C(80.0, 600.0, 250.0, 4e6, 3e7)
    room, power, outdoor = _measured(truth, days=21, seed=5)
    fitted = fit_2r2c(room, power, outdoor, STEP_S)
    assert float(fitted.ua_w_per_k) == pytest.approx(float(truth.ua_w_per_k), rel=0.05)
    assert float(fitted.capacity_j_per_k) == pytest.approx(float(truth.capacity_j_per_k), rel=0.05)
    assert float(fitted.capacity_air_j_per_k) == pytest.approx(4e6, rel=0.2)
    # and the fitted room predicts a fresh run as well as the truth (to the noise level)
    fresh, power2, outdoor2 = _measured(truth, days=5, seed=6, noise_k=0.0)
    start = [19.0, 19.0]
    predicted = simulate(fitted, start, power2, outdoor2, STEP_S)[:, 0]
    assert float(np.max(np.abs(predicted - fresh))) < 0.3


def test_fit_1r1c_on_2r2c_data_gives_the_steady_state_ua() -> None:
    truth = Room2R2C(80.0, 600.0, 250.0, 4e6, 3e7)
    room, power, outdoor = _measured(truth, days=21, seed=7)
    fitted = fit_1r1c(room, power, outdoor, STEP_S)
    assert float(fitted.ua_w_per_k) == pytest.approx(float(truth.ua_w_per_k), rel=0.25)


def test_bad_data_raise_clear_errors() -> None:
    truth = Room1R1C(150.0, 150.0 * 20 * 3600.0)
    room, power, outdoor = _measured(truth, days=3, seed=8)
    with pytest.raises(InputError, match="at least 11 samples"):
        fit_1r1c(room[:5], power[:4], outdoor[:4], STEP_S)
    with pytest.raises(InputError, match="at least 51 samples"):
        fit_2r2c(room[:30], power[:29], outdoor[:29], STEP_S)
    broken = room.copy()
    broken[10] = math.nan
    with pytest.raises(InputError, match="room_temp_c must be finite"):
        fit_1r1c(broken, power, outdoor, STEP_S)
    with pytest.raises(InputError, match="heat_power_w"):
        fit_1r1c(room, power[:-1], outdoor, STEP_S)
    with pytest.raises(InputError, match="step_s"):
        fit_1r1c(room, power, outdoor, -STEP_S)
    with pytest.raises(InputError, match="not excited"):
        fit_1r1c(np.full(100, 20.0), 1000.0, 10.0, STEP_S)
    # a room held at 2 K above outdoor by a constant 200 W: UA and C cannot be told apart
    settled = 5.0 + np.linspace(0.0, 1.0, 101)
    with pytest.raises(InputError, match="not excited"):
        fit_1r1c(settled + 2.0, 200.0, settled[:-1], STEP_S)
    # warming with no heat while it is colder outside is not a passive room
    with pytest.raises(InputError, match="passive room"):
        fit_1r1c(np.linspace(15.0, 25.0, 101), np.linspace(0.0, 50.0, 100), 0.0, STEP_S)
