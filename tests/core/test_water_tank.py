"""Tests for the hot-water tank: exact steps, energy balance with draws, the daily draw profile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.core.water_tank import (
    WATER_HEAT_CAPACITY_J_PER_L_K,
    WaterTank,
    household_draw_l_per_s,
    simulate_tank,
    tank_step,
)

tanks = st.builds(WaterTank, st.floats(30.0, 500.0), st.floats(0.5, 10.0), st.floats(5.0, 30.0))
step_input = st.tuples(st.floats(0.0, 6000.0), st.floats(0.0, 0.3), st.floats(2.0, 20.0))


@given(
    tanks,
    st.floats(10.0, 7200.0),
    st.lists(step_input, min_size=1, max_size=30),
    st.floats(10.0, 90.0),
)
def test_energy_balance_closes(
    tank: WaterTank, step_s: float, inputs: list[tuple[float, float, float]], start_c: float
) -> None:
    power, draw, mains = (np.array(column) for column in zip(*inputs, strict=True))
    run = simulate_tank(tank, start_c, power, draw, mains, step_s=step_s)
    change = float(tank.capacity_j_per_k) * (run.tank_temp_c[-1] - run.tank_temp_c[0])
    net = np.sum(run.heat_input_j) - np.sum(run.standby_loss_j) - np.sum(run.draw_loss_j)
    scale = (
        np.sum(np.abs(run.heat_input_j))
        + np.sum(np.abs(run.standby_loss_j))
        + np.sum(np.abs(run.draw_loss_j))
        + float(tank.capacity_j_per_k) * (abs(run.tank_temp_c[0]) + abs(run.tank_temp_c[-1]))
    )
    assert abs(net - change) <= 1e-9 * scale
    assert np.all(run.draw_loss_j[draw == 0.0] == 0.0)


@given(tanks, st.floats(10.0, 90.0), step_input, st.sampled_from([2, 4, 10, 60]))
def test_result_does_not_depend_on_step_size(
    tank: WaterTank, start_c: float, inputs: tuple[float, float, float], parts: int
) -> None:
    power, draw, mains = inputs
    one = simulate_tank(tank, start_c, [power], draw, mains, step_s=3600.0)
    many = simulate_tank(tank, start_c, np.full(parts, power), draw, mains, step_s=3600.0 / parts)
    assert many.tank_temp_c[-1] == pytest.approx(one.tank_temp_c[-1], rel=1e-9)
    assert np.sum(many.draw_loss_j) == pytest.approx(float(one.draw_loss_j[0]), rel=1e-9, abs=1e-6)
    assert np.sum(many.standby_loss_j) == pytest.approx(
        float(one.standby_loss_j[0]), rel=1e-9, abs=1e-6
    )


def test_standby_decay_is_the_exact_exponential() -> None:
    tank = WaterTank(200.0, 2.0, 20.0)
    after = tank_step(tank, 60.0, 0.0, 0.0, 10.0, step_s=86_400.0)
    tau_s = WATER_HEAT_CAPACITY_J_PER_L_K * 200.0 / 2.0
    assert after == pytest.approx(20.0 + 40.0 * math.exp(-86_400.0 / tau_s), rel=1e-14)


def test_a_long_draw_brings_the_tank_to_the_mixed_equilibrium() -> None:
    tank = WaterTank(150.0, 2.0, 20.0)
    flow_w_per_k = WATER_HEAT_CAPACITY_J_PER_L_K * 0.1
    after = tank_step(tank, 60.0, 3000.0, 0.1, 10.0, step_s=1e6)
    expected = (3000.0 + 2.0 * 20.0 + flow_w_per_k * 10.0) / (2.0 + flow_w_per_k)
    assert after == pytest.approx(expected, rel=1e-12)


def test_fleet_of_tanks_equals_tanks_one_by_one() -> None:
    fleet = WaterTank(np.array([100.0, 200.0, 300.0]), np.array([1.5, 2.0, 2.5]), 18.0)
    draw = household_draw_l_per_s(900.0)
    power = np.where(np.arange(draw.size) % 8 < 2, 3000.0, 0.0)
    together = simulate_tank(fleet, 55.0, power[:, None], draw[:, None], 10.0, step_s=900.0)
    for i, volume in enumerate([100.0, 200.0, 300.0]):
        alone = simulate_tank(
            WaterTank(volume, [1.5, 2.0, 2.5][i], 18.0), 55.0, power, draw, 10.0, step_s=900.0
        )
        np.testing.assert_allclose(together.tank_temp_c[:, i], alone.tank_temp_c, rtol=1e-14)


@pytest.mark.parametrize("step_s", [60.0, 900.0, 3600.0, 21_600.0])
def test_draw_profile_delivers_the_daily_energy(step_s: float) -> None:
    draw = household_draw_l_per_s(step_s, hot_water_temp_c=55.0, mains_temp_c=10.0)
    assert draw.shape == (round(86_400.0 / step_s),)
    energy_kwh = np.sum(draw) * step_s * WATER_HEAT_CAPACITY_J_PER_L_K * 45.0 / 3.6e6
    assert energy_kwh == pytest.approx(5.845, rel=1e-12)
    assert np.all(draw >= 0.0)
    before_seven = draw[: int(7 * 3600 // step_s)]
    assert np.all(before_seven == 0.0)


def test_draw_profile_scales_and_shapes() -> None:
    small = household_draw_l_per_s(3600.0, daily_energy_kwh=2.1)
    medium = household_draw_l_per_s(3600.0)
    np.testing.assert_allclose(small, medium * 2.1 / 5.845, rtol=1e-12)
    # the morning shower hour (07:00-08:00) is the busiest of the morning
    assert np.argmax(medium[:12]) == 7
    # hotter delivery water means fewer litres for the same energy
    assert np.sum(household_draw_l_per_s(3600.0, hot_water_temp_c=60.0)) < np.sum(medium)


def test_bad_inputs_raise_naming_the_parameter() -> None:
    for name, kwargs in [
        ("volume_l", {"volume_l": 0.0, "ua_w_per_k": 2.0, "ambient_temp_c": 20.0}),
        ("ua_w_per_k", {"volume_l": 100.0, "ua_w_per_k": -2.0, "ambient_temp_c": 20.0}),
        ("ambient_temp_c", {"volume_l": 100.0, "ua_w_per_k": 2.0, "ambient_temp_c": math.nan}),
    ]:
        with pytest.raises(InputError, match=name):
            WaterTank(**kwargs)
    tank = WaterTank(100.0, 2.0, 20.0)
    with pytest.raises(InputError, match="draw_l_per_s"):
        tank_step(tank, 50.0, 0.0, -0.1, 10.0, step_s=60.0)
    with pytest.raises(InputError, match="step_s"):
        tank_step(tank, 50.0, 0.0, 0.1, 10.0, step_s=0.0)
    with pytest.raises(InputError, match="time axis"):
        simulate_tank(tank, 50.0, 0.0, 0.1, 10.0, step_s=60.0)
    with pytest.raises(InputError, match="step_s"):
        household_draw_l_per_s(7000.0)
    with pytest.raises(InputError, match="hot_water_temp_c"):
        household_draw_l_per_s(3600.0, hot_water_temp_c=8.0)
