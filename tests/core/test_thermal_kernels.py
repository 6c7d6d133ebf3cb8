"""Tests for the fleet kernels: the fused numba 2R2C kernel and the NumPy 1R1C baseline agree
with the exact reference simulation."""

from __future__ import annotations

import numpy as np
import pytest

from heatgrid.core.errors import InputError
from heatgrid.core.thermal import HOUSE_PRESETS, Room1R1C, Room2R2C, simulate
from heatgrid.core.thermal_kernels import (
    advance_fleet_1r1c_numpy,
    advance_fleet_2r2c,
    coefficients_1r1c,
    coefficients_2r2c,
    room_temp_trajectory_2r2c,
)

STEP_S = 900.0
HOMES = 700  # not a multiple of the kernel's block of homes: the tail block is exercised


def _fleet(homes: int, seed: int) -> Room2R2C:
    rng = np.random.default_rng(seed)
    return Room2R2C(
        rng.uniform(10.0, 200.0, homes),
        rng.uniform(300.0, 6000.0, homes),
        rng.uniform(20.0, 400.0, homes),
        rng.uniform(5e5, 8e6, homes),
        rng.uniform(5e6, 8e7, homes),
    )


def _start(homes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(14.0, 23.0, homes), rng.uniform(12.0, 21.0, homes)])


def test_fused_kernel_equals_simulate_shared_weather_constant_power() -> None:
    fleet, start = _fleet(HOMES, 1), _start(HOMES, 2)
    rng = np.random.default_rng(3)
    power = rng.uniform(0.0, 3000.0, HOMES)
    outdoor = rng.uniform(-10.0, 12.0, 96)
    end = advance_fleet_2r2c(coefficients_2r2c(fleet, STEP_S), start, power, outdoor)
    reference = simulate(fleet, start, power[None, :], outdoor[:, None], STEP_S)
    np.testing.assert_allclose(end, reference[-1], rtol=1e-9)
    assert end.dtype == np.float64


def test_fused_kernel_equals_simulate_per_step_power_and_regions() -> None:
    fleet, start = _fleet(HOMES, 4), _start(HOMES, 5)
    rng = np.random.default_rng(6)
    power = rng.uniform(0.0, 3000.0, (40, HOMES))
    regional = rng.uniform(-10.0, 12.0, (40, 3))
    region = rng.integers(0, 3, HOMES)
    coef = coefficients_2r2c(fleet, STEP_S)
    rooms = room_temp_trajectory_2r2c(coef, start, power, regional, region)
    end = advance_fleet_2r2c(coef, start, power, regional, region)
    reference = simulate(fleet, start, power, regional[:, region], STEP_S)
    np.testing.assert_allclose(rooms, reference[..., 0], rtol=1e-9)
    np.testing.assert_allclose(end, reference[-1], rtol=1e-9)


def test_trajectory_with_shared_weather_equals_simulate() -> None:
    fleet, start = _fleet(300, 7), _start(300, 8)
    outdoor = np.linspace(-5.0, 5.0, 30)
    coef = coefficients_2r2c(fleet, STEP_S)
    rooms = room_temp_trajectory_2r2c(coef, start, 1500.0, outdoor)
    reference = simulate(fleet, start, 1500.0 * np.ones((1, 1)), outdoor[:, None], STEP_S)
    np.testing.assert_allclose(rooms, reference[..., 0], rtol=1e-9)
    np.testing.assert_allclose(
        rooms[-1], advance_fleet_2r2c(coef, start, 1500.0, outdoor)[:, 0], rtol=1e-12
    )


def test_float32_kernel_stays_close_to_float64() -> None:
    fleet, start = _fleet(HOMES, 9), _start(HOMES, 10)
    rng = np.random.default_rng(11)
    power = rng.uniform(0.0, 3000.0, HOMES)
    outdoor = 3.0 + 5.0 * np.sin(np.arange(500) * 2 * np.pi / 96)
    coef = coefficients_2r2c(fleet, 600.0)
    end64 = advance_fleet_2r2c(coef, start, power, outdoor)
    end32 = advance_fleet_2r2c(coefficients_2r2c(fleet, 600.0, np.float32), start, power, outdoor)
    assert end32.dtype == np.float32
    assert float(np.max(np.abs(end32 - end64))) < 5e-3


def test_numpy_1r1c_baseline_equals_simulate() -> None:
    rng = np.random.default_rng(12)
    ua = rng.uniform(40.0, 500.0, HOMES)
    fleet = Room1R1C(ua, ua * rng.uniform(10.0, 60.0, HOMES) * 3600.0)
    start = rng.uniform(15.0, 22.0, HOMES)
    power = rng.uniform(0.0, 3000.0, HOMES)
    outdoor = rng.uniform(-10.0, 10.0, 50)
    end = advance_fleet_1r1c_numpy(coefficients_1r1c(fleet, STEP_S), start, power, outdoor)
    reference = simulate(fleet, start[:, None], power[None, :], outdoor[:, None], STEP_S)
    np.testing.assert_allclose(end, reference[-1, :, 0], rtol=1e-12)


def test_scalar_model_packs_one_home() -> None:
    coef = coefficients_2r2c(HOUSE_PRESETS["terraced"], STEP_S)
    assert coef.shape == (8, 1)
    end = advance_fleet_2r2c(coef, [[20.0, 19.0]], 1000.0, np.zeros(10))
    reference = simulate(HOUSE_PRESETS["terraced"], [20.0, 19.0], np.full(10, 1000.0), 0.0, STEP_S)
    np.testing.assert_allclose(end[0], reference[-1], rtol=1e-12)


def test_bad_kernel_inputs_raise() -> None:
    fleet = _fleet(10, 13)
    coef = coefficients_2r2c(fleet, STEP_S)
    start = _start(10, 14)
    with pytest.raises(InputError, match="Room2R2C"):
        coefficients_2r2c(Room1R1C(100.0, 1e7), STEP_S)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Room1R1C"):
        coefficients_1r1c(fleet, STEP_S)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="dtype"):
        coefficients_2r2c(fleet, STEP_S, np.int32)
    with pytest.raises(InputError, match="coefficients"):
        advance_fleet_2r2c(coef[:5], start, 0.0, np.zeros(3))
    with pytest.raises(InputError, match="state_c"):
        advance_fleet_2r2c(coef, start[:5], 0.0, np.zeros(3))
    with pytest.raises(InputError, match="heat_power_w"):
        advance_fleet_2r2c(coef, start, np.zeros((4, 10)), np.zeros(3))
    with pytest.raises(InputError, match="region_index is required"):
        advance_fleet_2r2c(coef, start, 0.0, np.zeros((3, 2)))
    with pytest.raises(InputError, match="region_index"):
        advance_fleet_2r2c(coef, start, 0.0, np.zeros((3, 2)), np.full(10, 2))
    with pytest.raises(InputError, match="outdoor_temp_c"):
        advance_fleet_2r2c(coef, start, 0.0, np.array([0.0, np.nan]))
