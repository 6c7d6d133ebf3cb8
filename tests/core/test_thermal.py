"""Tests for the exact RC room models: energy balance, steady state, step invariance, inverse."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.core.thermal import (
    HOUSE_PRESETS,
    Room1R1C,
    Room2R2C,
    RoomModel,
    discretize,
    heat_power_for_target_w,
    simulate,
    simulate_energy,
    steady_state_c,
    step,
    stored_heat_j,
)

# --- strategies --------------------------------------------------------------------------------

room_1r1c = st.builds(
    lambda ua, tau_h: Room1R1C(ua, ua * tau_h * 3600.0),
    st.floats(20.0, 1000.0),
    st.floats(0.5, 200.0),
)
room_2r2c = st.builds(
    Room2R2C,
    st.floats(5.0, 500.0),
    st.floats(20.0, 20_000.0),
    st.floats(5.0, 1000.0),
    st.floats(1e5, 1e7),
    st.floats(1e6, 1e9),
)
rooms = st.one_of(room_1r1c, room_2r2c)
step_sizes = st.floats(1.0, 86_400.0)
temps = st.floats(-30.0, 40.0)
powers = st.floats(-5000.0, 10_000.0)


def _n(model: RoomModel) -> int:
    return 2 if isinstance(model, Room2R2C) else 1


def _expm(matrix: np.ndarray) -> np.ndarray:
    """Reference matrix exponential: scaling and squaring of a Taylor series (independent)."""
    norm = float(np.max(np.sum(np.abs(matrix), axis=1)))
    squarings = max(0, math.ceil(math.log2(max(norm, 1e-300))) + 4)
    scaled = matrix / 2.0**squarings
    result = np.eye(matrix.shape[0])
    term = np.eye(matrix.shape[0])
    for k in range(1, 25):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def _continuous(model: RoomModel) -> tuple[np.ndarray, np.ndarray]:
    """Continuous A_c and B_c built by hand from the model's equations (not from thermal.py)."""
    if isinstance(model, Room1R1C):
        ua, c = float(model.ua_w_per_k), float(model.capacity_j_per_k)
        return np.array([[-ua / c]]), np.array([[1.0 / c, ua / c, 1.0 / c]])
    ao, am, mo = (
        float(model.ua_air_out_w_per_k),
        float(model.ua_air_mass_w_per_k),
        float(model.ua_mass_out_w_per_k),
    )
    ca, cm = float(model.capacity_air_j_per_k), float(model.capacity_mass_j_per_k)
    a_c = np.array([[-(ao + am) / ca, am / ca], [am / cm, -(am + mo) / cm]])
    b_c = np.array([[1.0 / ca, ao / ca, 1.0 / ca], [0.0, mo / cm, 0.0]])
    return a_c, b_c


# --- exactness -----------------------------------------------------------------------------------


@given(rooms, st.floats(10.0, 20_000.0))
def test_discretization_matches_an_independent_matrix_exponential(
    model: RoomModel, step_s: float
) -> None:
    a_c, b_c = _continuous(model)
    n = a_c.shape[0]
    augmented = np.zeros((n + 3, n + 3))
    augmented[:n, :n] = a_c * step_s
    augmented[:n, n:] = b_c * step_s
    reference = _expm(augmented)
    d = discretize(model, step_s)
    np.testing.assert_allclose(d.a, reference[:n, :n], rtol=1e-9, atol=1e-12)
    scale = np.max(np.abs(reference[:n, n:]), axis=0)
    np.testing.assert_allclose(d.b, reference[:n, n:], rtol=0, atol=1e-9 * scale.max())


@given(
    rooms,
    step_sizes,
    st.lists(st.tuples(powers, temps, st.floats(0.0, 2000.0)), min_size=1, max_size=25),
    temps,
    temps,
)
def test_energy_balance_closes(
    model: RoomModel,
    step_s: float,
    inputs: list[tuple[float, float, float]],
    start_c: float,
    reference_c: float,
) -> None:
    power, outdoor, gains = (np.array(column) for column in zip(*inputs, strict=True))
    start = np.linspace(start_c, start_c - 3.0, _n(model))
    run = simulate_energy(model, start, power, outdoor, step_s, gains)
    change = stored_heat_j(model, run.state_c[-1], reference_c) - stored_heat_j(
        model, run.state_c[0], reference_c
    )
    balance = np.sum(run.heat_input_j) + np.sum(run.gains_j) - np.sum(run.loss_j)
    scale = (
        np.sum(np.abs(run.heat_input_j))
        + np.sum(np.abs(run.gains_j))
        + np.sum(np.abs(run.loss_j))
        + abs(stored_heat_j(model, run.state_c[0], reference_c))
        + abs(stored_heat_j(model, run.state_c[-1], reference_c))
    )
    assert abs(balance - change) <= 1e-9 * scale
    np.testing.assert_allclose(
        run.state_c, simulate(model, start, power, outdoor, step_s, gains), rtol=0, atol=0
    )


@given(rooms, powers, temps, st.floats(0.0, 1000.0))
def test_steady_state_is_outdoor_plus_power_over_ua(
    model: RoomModel, power_w: float, outdoor_c: float, gains_w: float
) -> None:
    steady = steady_state_c(model, power_w, outdoor_c, gains_w)
    expected = outdoor_c + (power_w + gains_w) / float(model.ua_w_per_k)
    assert steady[0] == pytest.approx(expected, rel=1e-12, abs=1e-9)
    # a fixed point of the exact step, for short and very long steps alike
    for step_s in (60.0, 3600.0, 1e7):
        after = step(model, steady, power_w, outdoor_c, step_s, gains_w)
        np.testing.assert_allclose(
            after, steady, rtol=0, atol=1e-9 * (1.0 + np.max(np.abs(steady)))
        )


@given(rooms, st.floats(1e6, 1e9), temps, powers, temps)
def test_long_steps_converge_to_steady_state_without_blowing_up(
    model: RoomModel, step_s: float, start_c: float, power_w: float, outdoor_c: float
) -> None:
    after = step(model, np.full(_n(model), start_c), power_w, outdoor_c, step_s)
    steady = steady_state_c(model, power_w, outdoor_c)
    if float(np.max(np.abs(discretize(model, step_s).a))) < 1e-12:  # every mode has decayed
        np.testing.assert_allclose(after, steady, rtol=0, atol=1e-6 * (1.0 + np.abs(steady).max()))
    # after − steady = e^(A·t)·(start − steady), and e^(A·t) is non-negative with row sums
    # at most 1 (heat only flows down temperature differences, some of it out): each node's
    # deviation stays between the smallest and largest initial deviation and zero. (A node
    # may pass its own start: a warm mass keeps the air above it for a while.)
    deviation = start_c - steady
    low = steady + min(0.0, float(np.min(deviation)))
    high = steady + max(0.0, float(np.max(deviation)))
    tolerance = 1e-9 * (1.0 + float(np.max(np.abs(high))))
    assert np.all(after >= low - tolerance)
    assert np.all(after <= high + tolerance)


@given(rooms, temps, powers, temps, st.floats(0.0, 500.0), st.sampled_from([2, 3, 4, 12, 60]))
def test_result_does_not_depend_on_step_size(  # noqa: PLR0917
    model: RoomModel, start_c: float, power_w: float, outdoor_c: float, gains_w: float, parts: int
) -> None:
    start = np.linspace(start_c, start_c + 2.0, _n(model))
    one = step(model, start, power_w, outdoor_c, 3600.0, gains_w)
    many = simulate(model, start, np.full(parts, power_w), outdoor_c, 3600.0 / parts, gains_w)
    np.testing.assert_allclose(many[-1], one, rtol=1e-9, atol=1e-9)
    energy_one = simulate_energy(model, start, [power_w], outdoor_c, 3600.0, gains_w)
    energy_many = simulate_energy(
        model, start, np.full(parts, power_w), outdoor_c, 3600.0 / parts, gains_w
    )
    assert np.sum(energy_many.loss_j) == pytest.approx(
        float(energy_one.loss_j[0]), rel=1e-9, abs=1e-6
    )


@given(rooms, step_sizes, temps, temps, temps, st.floats(0.0, 1000.0))
def test_heat_power_for_target_hits_the_target(  # noqa: PLR0917
    model: RoomModel,
    step_s: float,
    start_c: float,
    target_c: float,
    outdoor_c: float,
    gains_w: float,
) -> None:
    start = np.linspace(start_c, start_c - 1.0, _n(model))
    power = heat_power_for_target_w(model, start, target_c, outdoor_c, step_s, gains_w)
    after = step(model, start, power, outdoor_c, step_s, gains_w)
    assert after[0] == pytest.approx(target_c, abs=1e-8 * (1.0 + abs(power) * 1e-3))
    # more power, warmer room: the step is increasing in power
    warmer = step(model, start, float(power) + 100.0, outdoor_c, step_s, gains_w)
    assert warmer[0] > after[0]


def test_discrete_model_can_be_reused_and_must_match_the_step() -> None:
    model = HOUSE_PRESETS["terraced"]
    d = discretize(model, 900.0)
    state = np.array([20.0, 18.5])
    np.testing.assert_array_equal(
        step(d, state, 800.0, -2.0, 900.0, 50.0), step(model, state, 800.0, -2.0, 900.0, 50.0)
    )
    assert heat_power_for_target_w(d, state, 21.0, -2.0, 900.0) == heat_power_for_target_w(
        model, state, 21.0, -2.0, 900.0
    )
    with pytest.raises(InputError, match="step_s"):
        step(d, state, 800.0, -2.0, 600.0)


def test_fleet_results_equal_per_home_results() -> None:
    rng = np.random.default_rng(3)
    homes = 6
    fleet = Room2R2C(
        rng.uniform(20, 200, homes),
        rng.uniform(500, 5000, homes),
        rng.uniform(50, 300, homes),
        rng.uniform(1e6, 5e6, homes),
        rng.uniform(1e7, 5e7, homes),
    )
    start = rng.uniform(15, 22, (homes, 2))
    power = rng.uniform(0, 3000, (48, homes))
    outdoor = rng.uniform(-5, 10, (48, 1))
    gains = rng.uniform(0, 300, (48, homes))
    together = simulate_energy(fleet, start, power, outdoor, 1800.0, gains)
    targets = heat_power_for_target_w(fleet, start, 21.0, outdoor[0], 1800.0)
    assert isinstance(targets, np.ndarray)
    for i in range(homes):
        home = Room2R2C(*(float(np.asarray(getattr(fleet, f.name))[i]) for f in fields(fleet)))
        alone = simulate_energy(home, start[i], power[:, i], outdoor[:, 0], 1800.0, gains[:, i])
        np.testing.assert_allclose(together.state_c[:, i], alone.state_c, rtol=1e-13, atol=0)
        np.testing.assert_allclose(together.loss_j[:, i], alone.loss_j, rtol=1e-12, atol=1e-6)
        assert targets[i] == pytest.approx(
            heat_power_for_target_w(home, start[i], 21.0, outdoor[0, 0], 1800.0), rel=1e-12
        )


def test_gains_act_like_heater_power() -> None:
    model = HOUSE_PRESETS["apartment"]
    start = np.array([19.0, 18.0])
    np.testing.assert_allclose(
        simulate(model, start, np.full(10, 500.0), 0.0, 600.0, 200.0),
        simulate(model, start, np.full(10, 700.0), 0.0, 600.0),
        rtol=1e-14,
    )


def test_1r1c_step_is_the_exact_exponential() -> None:
    model = Room1R1C(150.0, 150.0 * 20 * 3600.0)
    after = step(model, [20.0], 1500.0, 0.0, 7200.0)
    equilibrium = 1500.0 / 150.0
    expected = equilibrium + (20.0 - equilibrium) * math.exp(-7200.0 / (20 * 3600.0))
    assert after[0] == pytest.approx(expected, rel=1e-14)
    assert model.time_constant_h == pytest.approx(20.0)


# --- presets and construction --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["apartment", "terraced", "detached-1970s", "detached-modern", "passive-house"]
)
def test_presets_are_realistic(name: str) -> None:
    preset = HOUSE_PRESETS[name]
    assert 40.0 <= float(preset.ua_w_per_k) <= 500.0
    assert 10.0 <= float(preset.time_constant_h) <= 60.0
    assert float(preset.capacity_air_j_per_k) < float(preset.capacity_mass_j_per_k)


def test_from_ua_and_time_constant_keeps_ua_and_time_constant() -> None:
    ua = np.array([60.0, 200.0, 450.0])
    tau_h = np.array([12.0, 30.0, 55.0])
    model = Room2R2C.from_ua_and_time_constant(ua, tau_h, air_out_fraction=0.2)
    np.testing.assert_allclose(model.ua_w_per_k, ua, rtol=1e-13)
    np.testing.assert_allclose(model.time_constant_h, tau_h, rtol=1e-13)
    np.testing.assert_allclose(model.ua_air_out_w_per_k, 0.2 * ua, rtol=1e-13)
    with pytest.raises(InputError, match="air_mass_coupling"):
        Room2R2C.from_ua_and_time_constant(100.0, 20.0, air_mass_coupling=0.5)
    with pytest.raises(InputError, match="air_capacity_fraction"):
        Room2R2C.from_ua_and_time_constant(100.0, 20.0, air_capacity_fraction=1.0)
    with pytest.raises(InputError, match="time_constant_h"):
        Room2R2C.from_ua_and_time_constant(100.0, -1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, "warm"])
@pytest.mark.parametrize(
    ("cls", "good"),
    [
        (Room1R1C, {"ua_w_per_k": 100.0, "capacity_j_per_k": 1e7}),
        (
            Room2R2C,
            {
                "ua_air_out_w_per_k": 50.0,
                "ua_air_mass_w_per_k": 1000.0,
                "ua_mass_out_w_per_k": 100.0,
                "capacity_air_j_per_k": 1e6,
                "capacity_mass_j_per_k": 1e7,
            },
        ),
    ],
)
def test_bad_parameters_raise_naming_the_field(
    cls: type, good: dict[str, float], bad: object
) -> None:
    for name in good:
        with pytest.raises(InputError, match=name):
            cls(**{**good, name: bad})


def test_array_fields_are_validated_and_frozen() -> None:
    with pytest.raises(InputError, match="capacity_j_per_k"):
        Room1R1C(np.array([100.0, 200.0]), np.array([1e7, -1.0]))
    with pytest.raises(InputError, match="broadcast"):
        Room1R1C(np.ones(2), np.ones(3))
    model = Room1R1C(np.array([100.0, 200.0]), 1e7)
    assert isinstance(model.ua_w_per_k, np.ndarray)
    with pytest.raises(ValueError, match="read-only"):
        model.ua_w_per_k[0] = 5.0


def test_bad_states_and_inputs_raise() -> None:
    model = HOUSE_PRESETS["terraced"]
    with pytest.raises(InputError, match="state_c"):
        step(model, [20.0], 0.0, 0.0, 600.0)
    with pytest.raises(InputError, match="outdoor_temp_c"):
        step(model, [20.0, 19.0], 0.0, math.nan, 600.0)
    with pytest.raises(InputError, match="step_s"):
        step(model, [20.0, 19.0], 0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="time axis"):
        simulate(model, [20.0, 19.0], 100.0, 0.0, 600.0)
    with pytest.raises(InputError, match="broadcast"):
        simulate(model, [20.0, 19.0], np.ones(3), np.ones(4), 600.0)
    with pytest.raises(InputError, match="model"):
        discretize("house", 600.0)  # type: ignore[arg-type]
