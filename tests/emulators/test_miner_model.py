"""Properties of the emulated miner's physics (a pure function of state and time)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.emulators import miner_model as mm

PARAMS = mm.MinerParams()
T0 = 1_700_000_000.0

_targets = st.floats(min_value=PARAMS.min_power_w, max_value=PARAMS.max_power_w)
_steps = st.floats(min_value=0.0, max_value=120.0)
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("target"), _targets),
        st.tuples(st.just("pause"), st.just(0.0)),
        st.tuples(st.just("resume"), st.just(0.0)),
        st.tuples(st.just("restart"), st.just(0.0)),
        st.tuples(st.just("wait"), _steps),
    ),
    max_size=30,
)


def _apply(state: mm.MinerState, operation: str, value: float) -> mm.MinerState:
    if operation == "target":
        return mm.set_power_target(state, value, PARAMS)
    if operation == "pause":
        return mm.pause(state)
    if operation == "resume":
        return mm.resume(state, PARAMS)
    if operation == "restart":
        return mm.restart(state, PARAMS)
    return mm.advance(state, state.now_ts + value, PARAMS)


def _trajectory(operations: list[tuple[str, float]]) -> list[mm.MinerState]:
    state = mm.initial_state(T0, PARAMS)
    states = [state]
    for operation, value in operations:
        state = _apply(state, operation, value)
        states.append(state)
    return states


@given(_operations)
def test_power_stays_between_zero_and_max(operations: list[tuple[str, float]]) -> None:
    for state in _trajectory(operations):
        assert 0.0 <= state.power_w <= PARAMS.max_power_w + 1e-9


@given(_operations)
def test_hashrate_is_power_over_efficiency_while_hashing(
    operations: list[tuple[str, float]],
) -> None:
    for state in _trajectory(operations):
        if mm.is_hashing(state):
            expected_ths = state.power_w / PARAMS.efficiency_j_per_th
            assert mm.hashrate_ths(state, PARAMS) == pytest.approx(expected_ths)
        else:
            assert mm.hashrate_ths(state, PARAMS) == 0.0


@given(_operations)
def test_temperatures_stay_between_ambient_and_full_power_equilibrium(
    operations: list[tuple[str, float]],
) -> None:
    chip_max_c = PARAMS.ambient_temp_c + PARAMS.chip_temp_rise_k_per_w * PARAMS.max_power_w
    board_max_c = PARAMS.ambient_temp_c + PARAMS.board_temp_rise_k_per_w * PARAMS.max_power_w
    for state in _trajectory(operations):
        assert PARAMS.ambient_temp_c - 1e-9 <= state.chip_temp_c <= chip_max_c + 1e-9
        assert PARAMS.ambient_temp_c - 1e-9 <= state.board_temp_c <= board_max_c + 1e-9
        assert PARAMS.fan_min_rpm <= mm.fan_rpm(state, PARAMS) <= PARAMS.fan_max_rpm


@given(_operations, _targets, st.lists(_steps, min_size=1, max_size=20))
def test_power_ramps_monotonically_toward_the_target(
    operations: list[tuple[str, float]], target_w: float, steps_s: list[float]
) -> None:
    state = mm.set_power_target(_trajectory(operations)[-1], target_w, PARAMS)
    state = mm.advance(state, state.hashing_start_ts + 1.0, PARAMS)
    state = mm.resume(state, PARAMS)
    state = mm.advance(state, state.hashing_start_ts, PARAMS)
    sign = math.copysign(1.0, target_w - state.power_w)
    gap_w = abs(target_w - state.power_w)
    for step_s in steps_s:
        state = mm.advance(state, state.now_ts + step_s, PARAMS)
        new_gap_w = abs(target_w - state.power_w)
        assert new_gap_w <= gap_w + 1e-9
        if new_gap_w > 1e-9:
            assert math.copysign(1.0, target_w - state.power_w) == sign
        gap_w = new_gap_w
    full_ramp_s = PARAMS.max_power_w / min(PARAMS.ramp_up_w_per_s, PARAMS.ramp_down_w_per_s)
    settled = mm.advance(state, state.now_ts + full_ramp_s, PARAMS)
    assert settled.power_w == pytest.approx(target_w)


@given(_operations, st.floats(min_value=0.0, max_value=PARAMS.restart_delay_s * 0.999))
def test_no_hash_during_the_restart_delay(
    operations: list[tuple[str, float]], into_delay_s: float
) -> None:
    state = mm.pause(_trajectory(operations)[-1])
    resumed = mm.resume(state, PARAMS)
    during = mm.advance(resumed, resumed.now_ts + into_delay_s, PARAMS)
    assert mm.hashrate_ths(during, PARAMS) == 0.0
    assert during.power_w <= max(state.power_w, PARAMS.idle_power_w) + 1e-9
    after = mm.advance(resumed, resumed.now_ts + PARAMS.restart_delay_s + 1.0, PARAMS)
    assert mm.hashrate_ths(after, PARAMS) > 0.0


@given(_operations, _steps, _steps)
def test_advancing_in_two_steps_equals_one_step(
    operations: list[tuple[str, float]], first_s: float, second_s: float
) -> None:
    state = _trajectory(operations)[-1]
    direct = mm.advance(state, state.now_ts + first_s + second_s, PARAMS)
    halfway = mm.advance(state, state.now_ts + first_s, PARAMS)
    stepped = mm.advance(halfway, state.now_ts + first_s + second_s, PARAMS)
    for name in ("power_w", "chip_temp_c", "board_temp_c", "energy_wh", "work_th"):
        assert getattr(stepped, name) == pytest.approx(getattr(direct, name), abs=1e-6)


def test_energy_and_work_at_steady_full_power() -> None:
    state = mm.initial_state(T0, PARAMS)
    state = mm.advance(state, T0 + 600.0, PARAMS)
    assert state.power_w == PARAMS.max_power_w
    later = mm.advance(state, state.now_ts + 3600.0, PARAMS)
    assert later.energy_wh - state.energy_wh == pytest.approx(PARAMS.max_power_w)
    expected_th = PARAMS.max_power_w * 3600.0 / PARAMS.efficiency_j_per_th
    assert later.work_th - state.work_th == pytest.approx(expected_th)


def test_a_paused_miner_draws_idle_power_and_hashes_nothing() -> None:
    state = mm.advance(mm.initial_state(T0, PARAMS), T0 + 600.0, PARAMS)
    paused = mm.advance(mm.pause(state), state.now_ts + 60.0, PARAMS)
    assert paused.power_w == PARAMS.idle_power_w
    assert mm.hashrate_ths(paused, PARAMS) == 0.0


@pytest.mark.parametrize("target_w", [PARAMS.min_power_w - 1.0, PARAMS.max_power_w + 1.0, math.nan])
def test_a_target_outside_the_range_is_refused(target_w: float) -> None:
    state = mm.initial_state(T0, PARAMS)
    with pytest.raises(InputError, match="power_target_w"):
        mm.set_power_target(state, target_w, PARAMS)


def test_time_never_runs_backward() -> None:
    state = mm.advance(mm.initial_state(T0, PARAMS), T0 + 100.0, PARAMS)
    assert mm.advance(state, T0 + 50.0, PARAMS) == state


def test_fixed_fan_percentage_overrides_temperature_control() -> None:
    state = mm.set_fan_percent(mm.initial_state(T0, PARAMS), 50.0)
    assert mm.fan_rpm(state, PARAMS) == PARAMS.fan_max_rpm / 2
    with pytest.raises(InputError, match="fan_percent"):
        mm.set_fan_percent(state, 101.0)


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"min_power_w": 1300.0}, "min_power_w"),
        ({"min_power_w": -1.0}, "min_power_w"),
        ({"efficiency_j_per_th": 0.0}, "efficiency_j_per_th"),
        ({"max_power_w": math.inf}, "max_power_w"),
    ],
)
def test_bad_parameters_are_refused_by_name(changes: dict[str, float], name: str) -> None:
    with pytest.raises(InputError, match=name):
        replace(PARAMS, **changes)


_AGENT_DEVICE_LIMIT_C = 90.0
"""The agent's default ``thermostat.device_limit_c``: a miner at rated power stays below it."""


@given(
    max_power_w=st.floats(min_value=100.0, max_value=12_000.0),
    ambient_temp_c=st.floats(min_value=15.0, max_value=25.0),
    load=st.floats(min_value=0.0, max_value=1.0),
)
def test_chips_settle_at_the_same_temperature_at_rated_power_in_every_power_class(
    max_power_w: float, ambient_temp_c: float, load: float
) -> None:
    """A 3 kW miner's chips settled near 170 °C and tripped the agent's 90 °C limit."""
    params = mm.MinerParams(
        max_power_w=max_power_w,
        min_power_w=max_power_w / 4.0,
        idle_power_w=min(15.0, max_power_w / 4.0),
        ambient_temp_c=ambient_temp_c,
    )
    target_w = params.min_power_w + load * (params.max_power_w - params.min_power_w)
    state = mm.initial_state(T0, params, power_target_w=target_w)
    settled = mm.advance(state, T0 + 3600.0, params)  # many chip and board time constants
    rise_k = settled.chip_temp_c - ambient_temp_c
    assert rise_k == pytest.approx(params.chip_rise_at_max_power_k * target_w / max_power_w)
    if target_w == params.max_power_w:
        assert 60.0 <= settled.chip_temp_c <= 85.0
    assert settled.chip_temp_c < _AGENT_DEVICE_LIMIT_C
    assert ambient_temp_c < settled.board_temp_c < settled.chip_temp_c


def test_a_3_kw_miner_runs_as_cool_as_a_1_2_kw_one() -> None:
    small = mm.MinerParams()
    large = mm.MinerParams(max_power_w=3000.0, min_power_w=750.0)
    chips_c = []
    for params in (small, large):
        state = mm.initial_state(T0, params)
        chips_c.append(mm.advance(state, T0 + 3600.0, params).chip_temp_c)
    assert chips_c[1] == pytest.approx(chips_c[0])
    assert chips_c[0] == pytest.approx(80.0)
