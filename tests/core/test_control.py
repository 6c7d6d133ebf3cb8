"""Tests for the thermostat: safety, tolerances, minimum times, PI with anti-windup, schedule."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core.control import (
    Alarm,
    HeatCommand,
    Mode,
    Observation,
    ObservationArrays,
    Reason,
    ThermostatConfig,
    ThermostatConfigArrays,
    ThermostatState,
    ThermostatStateArrays,
    WeeklySchedule,
    decide,
    decide_many,
    next_change_ts,
    setpoint_at,
    tune_pi,
    tune_pi_many,
)
from heatgrid.core.errors import InputError

NOW_TS = datetime(2025, 1, 15, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday
SETPOINT_C = 20.0
GAINS = tune_pi(ua_w_per_k=150.0, time_constant_s=20 * 3600.0, max_power_w=3000.0)
CONFIG = ThermostatConfig(
    max_power_w=3000.0,
    kp_w_per_k=GAINS.kp_w_per_k,
    ki_w_per_k_s=GAINS.ki_w_per_k_s,
    schedule=WeeklySchedule.constant(SETPOINT_C),
)
SAFETY_REASONS = (Reason.ALARM, Reason.USER_OFF)


def _obs(
    room_temp_c: float,
    now_ts: float = NOW_TS,
    *,
    device_temp_c: float = math.nan,
    mode: Mode = Mode.AUTO,
) -> Observation:
    return Observation(room_temp_c, now_ts, device_temp_c=device_temp_c, mode=mode)


# --- strategies --------------------------------------------------------------------------------

finite_temps = st.floats(-40.0, 80.0)
any_temps = st.one_of(finite_temps, st.sampled_from([math.nan, math.inf, -math.inf]))
past = st.one_of(st.just(-math.inf), st.floats(0.0, 200_000.0).map(lambda ago: NOW_TS - ago))

schedules = st.builds(
    WeeklySchedule,
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 1439), st.floats(5.0, 28.0)),
        min_size=1,
        max_size=6,
        unique_by=lambda point: point[:2],
    ).map(tuple),
    st.floats(-12.0, 14.0),
)


@st.composite
def configs(draw: st.DrawFn) -> ThermostatConfig:
    max_power_w = draw(st.floats(100.0, 5000.0))
    return ThermostatConfig(
        max_power_w=max_power_w,
        kp_w_per_k=draw(st.floats(0.0, 5000.0)),
        ki_w_per_k_s=draw(st.floats(0.0, 1.0)),
        schedule=draw(schedules),
        away_setpoint_c=draw(st.floats(5.0, 20.0)),
        cold_tolerance_k=draw(st.floats(0.0, 2.0)),
        hot_tolerance_k=draw(st.floats(0.0, 2.0)),
        min_on_s=draw(st.floats(0.0, 3600.0)),
        min_off_s=draw(st.floats(0.0, 3600.0)),
        keep_alive_s=draw(st.floats(1.0, 3600.0)),
        max_age_s=draw(st.floats(10.0, 3600.0)),
        room_limit_c=draw(st.floats(25.0, 40.0)),
        device_limit_c=draw(st.floats(60.0, 110.0)),
        power_step_w=draw(st.floats(0.0, 100.0)),
    )


@st.composite
def states(draw: st.DrawFn) -> ThermostatState:
    return ThermostatState(
        integral_w=draw(st.floats(0.0, 5000.0)),
        heating=draw(st.booleans()),
        since_ts=draw(past),
        last_tick_ts=draw(past),
        last_command_ts=draw(past),
        last_power_w=draw(st.floats(0.0, 5000.0)),
        alarm=Alarm(draw(st.integers(0, 127))),
    )


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    age_s = draw(st.one_of(st.floats(-5000.0, 5000.0), st.just(math.nan)))
    return Observation(
        room_temp_c=draw(any_temps),
        reading_ts=NOW_TS - age_s,
        device_temp_c=draw(st.one_of(st.just(math.nan), st.floats(0.0, 130.0))),
        fan_ok=draw(st.booleans()),
        upright=draw(st.booleans()),
        mode=draw(st.sampled_from(Mode)),
    )


# --- limits and safety -------------------------------------------------------------------------


@given(states(), observations(), configs())
def test_power_within_limits_and_zero_when_not_heating(
    state: ThermostatState, observation: Observation, config: ThermostatConfig
) -> None:
    new_state, command = decide(state, observation, NOW_TS, config)
    assert 0.0 <= command.heat_power_w <= config.max_power_w
    assert 0.0 <= new_state.integral_w <= config.max_power_w
    if not command.heating:
        assert command.heat_power_w == 0.0
    if command.alarm:
        assert not command.heating
        assert command.reason is Reason.ALARM
    assert new_state.heating == command.heating
    assert new_state.alarm == command.alarm
    assert new_state.last_tick_ts == NOW_TS


_BAD_READINGS = {
    "nan": (math.nan, NOW_TS, Alarm.SENSOR_NOT_FINITE),
    "inf": (math.inf, NOW_TS, Alarm.SENSOR_NOT_FINITE),
    "nan_ts": (15.0, math.nan, Alarm.SENSOR_NOT_FINITE),
    "stale": (15.0, NOW_TS - 301.0, Alarm.SENSOR_STALE),
    "future": (15.0, NOW_TS + 301.0, Alarm.SENSOR_STALE),
    "too_cold": (-30.5, NOW_TS, Alarm.SENSOR_OUT_OF_RANGE),
    "too_hot": (61.0, NOW_TS, Alarm.SENSOR_OUT_OF_RANGE),
}


@given(
    st.sampled_from(sorted(_BAD_READINGS)),
    st.floats(0.0, 3000.0),
    st.floats(0.0, 599.0),
)
def test_bad_reading_stops_heating_on_that_tick(
    kind: str, integral_w: float, on_for_s: float
) -> None:
    # Heating is on, just started (min_on_s not over) and the integrator is full of demand.
    state = ThermostatState(
        integral_w=integral_w, heating=True, since_ts=NOW_TS - on_for_s, last_tick_ts=NOW_TS - 60
    )
    room_temp_c, reading_ts, flag = _BAD_READINGS[kind]
    new_state, command = decide(state, Observation(room_temp_c, reading_ts), NOW_TS, CONFIG)
    assert command.heat_power_w == 0.0
    assert not command.heating
    assert flag in command.alarm
    assert command.reason is Reason.ALARM
    assert command.send  # the alarm is news: send it now
    assert new_state.integral_w == 0.0  # never averaged in, never integrated


def test_fresh_reading_at_the_age_limit_is_used() -> None:
    state = ThermostatState()
    _, command = decide(state, Observation(15.0, NOW_TS - 300.0), NOW_TS, CONFIG)
    assert command.alarm == Alarm.NONE
    assert command.heating
    assert command.heat_power_w > 0.0


_INTERLOCKS: dict[str, tuple[dict[str, Any], Alarm, Reason]] = {
    "room_over_temperature": (
        {"room_temp_c": 30.0},
        Alarm.ROOM_OVER_TEMPERATURE,
        Reason.ALARM,
    ),
    "device_over_temperature": (
        {"device_temp_c": 95.0},
        Alarm.DEVICE_OVER_TEMPERATURE,
        Reason.ALARM,
    ),
    "fan_failure": ({"fan_ok": False}, Alarm.FAN_FAILURE, Reason.ALARM),
    "tip_over": ({"upright": False}, Alarm.TIP_OVER, Reason.ALARM),
    "user_off": ({"mode": Mode.OFF}, Alarm.NONE, Reason.USER_OFF),
}


@given(
    st.sampled_from(sorted(_INTERLOCKS)),
    states(),
    st.floats(-20.0, 29.0),
)
def test_interlocks_beat_everything(kind: str, state: ThermostatState, room_temp_c: float) -> None:
    changes, flag, reason = _INTERLOCKS[kind]
    observation = replace(Observation(room_temp_c, NOW_TS), **changes)
    new_state, command = decide(state, observation, NOW_TS, CONFIG)
    assert command.heat_power_w == 0.0
    assert not command.heating
    assert command.reason is reason
    assert flag in command.alarm
    assert kind.upper() in command.reasons
    assert new_state.integral_w == 0.0


def test_unknown_mode_code_is_off_in_the_vector_form() -> None:
    observation = ObservationArrays.from_observations([_obs(10.0)])
    observation = replace(observation, mode=np.array([7]))
    _, commands = decide_many(
        ThermostatStateArrays.initial(1),
        observation,
        NOW_TS,
        ThermostatConfigArrays.from_configs([CONFIG]),
    )
    assert commands.command(0).reason is Reason.USER_OFF
    assert commands.heat_power_w[0] == 0.0


def test_no_device_sensor_is_no_alarm() -> None:
    _, command = decide(ThermostatState(), _obs(15.0, device_temp_c=math.nan), NOW_TS, CONFIG)
    assert command.alarm == Alarm.NONE
    assert command.heating


# --- tolerances, minimum times, keep-alive ----------------------------------------------------


def test_default_off_and_cold_tolerance() -> None:
    state = ThermostatState()
    _, command = decide(state, _obs(SETPOINT_C - 0.29), NOW_TS, CONFIG)
    assert not command.heating
    assert command.heat_power_w == 0.0
    assert command.reason is Reason.IDLE
    assert command.setpoint_c == SETPOINT_C
    _, command = decide(state, _obs(SETPOINT_C - 0.3), NOW_TS, CONFIG)
    assert command.heating
    assert command.reason is Reason.HEATING
    assert command.heat_power_w == pytest.approx(CONFIG.kp_w_per_k * 0.3)


def test_hot_tolerance_forces_off_after_min_on() -> None:
    on = ThermostatState(integral_w=2000.0, heating=True, since_ts=NOW_TS - 3600.0)
    _, command = decide(on, _obs(SETPOINT_C + 0.29), NOW_TS, CONFIG)
    assert command.heating  # inside the band, PI keeps control
    _, command = decide(on, _obs(SETPOINT_C + 0.3), NOW_TS, CONFIG)
    assert not command.heating
    assert command.heat_power_w == 0.0
    just_on = replace(on, since_ts=NOW_TS - 599.0)
    _, command = decide(just_on, _obs(SETPOINT_C + 1.0), NOW_TS, CONFIG)
    assert command.heating
    assert command.reason is Reason.HOLD_ON


def test_min_off_holds_a_cold_room() -> None:
    just_off = ThermostatState(heating=False, since_ts=NOW_TS - 599.0)
    _, command = decide(just_off, _obs(SETPOINT_C - 3.0), NOW_TS, CONFIG)
    assert not command.heating
    assert command.reason is Reason.HOLD_OFF
    _, command = decide(just_off, _obs(SETPOINT_C - 3.0), NOW_TS + 1.0, CONFIG)
    assert command.heating


ticks = st.lists(
    st.tuples(
        st.floats(1.0, 900.0),  # seconds since the previous tick
        st.floats(SETPOINT_C - 3.0, SETPOINT_C + 3.0),  # room reading
        st.sampled_from(["ok"] * 12 + ["nan", "fan", "off", "away", "stale"]),
    ),
    min_size=1,
    max_size=60,
)


def _observation(kind: str, room_temp_c: float, now_ts: float) -> Observation:
    if kind == "nan":
        return Observation(math.nan, now_ts)
    if kind == "stale":
        return Observation(room_temp_c, now_ts - 1000.0)
    if kind == "fan":
        return Observation(room_temp_c, now_ts, fan_ok=False)
    mode = {"off": Mode.OFF, "away": Mode.AWAY}.get(kind, Mode.AUTO)
    return Observation(room_temp_c, now_ts, mode=mode)


@settings(max_examples=60)
@given(ticks, st.floats(0.0, 1800.0), st.floats(0.0, 1800.0))
def test_min_on_and_off_times_hold_over_any_sequence(
    sequence: list[tuple[float, float, str]], min_on_s: float, min_off_s: float
) -> None:
    config = replace(CONFIG, min_on_s=min_on_s, min_off_s=min_off_s)
    state = ThermostatState()
    now_ts = NOW_TS
    changed_ts = -math.inf
    for step_s, room_temp_c, kind in sequence:
        now_ts += step_s
        before = state.heating
        state, command = decide(state, _observation(kind, room_temp_c, now_ts), now_ts, config)
        if command.heating != before:
            if command.heating:
                assert now_ts - changed_ts >= min_off_s
            else:
                assert now_ts - changed_ts >= min_on_s or command.reason in SAFETY_REASONS
            changed_ts = now_ts
        assert state.since_ts == changed_ts


def test_keep_alive_resends_an_unchanged_command() -> None:
    config = replace(CONFIG, keep_alive_s=300.0)
    state, command = decide(ThermostatState(), _obs(SETPOINT_C), NOW_TS, config)
    assert command.send  # first command
    sent = [NOW_TS]
    for minute in range(1, 16):
        now_ts = NOW_TS + 60.0 * minute
        state, command = decide(state, _obs(SETPOINT_C, now_ts), now_ts, config)
        if command.send:
            sent.append(now_ts)
    assert np.diff(sent).tolist() == [300.0, 300.0, 300.0]


def test_a_power_change_is_sent_at_once() -> None:
    config = replace(CONFIG, power_step_w=10.0, keep_alive_s=3600.0)
    state, _ = decide(ThermostatState(), _obs(SETPOINT_C - 1.0), NOW_TS, config)
    state, command = decide(state, _obs(SETPOINT_C - 1.0, NOW_TS + 1), NOW_TS + 1, config)
    assert not command.send  # a tiny integral step
    state, command = decide(state, _obs(SETPOINT_C - 0.5, NOW_TS + 2), NOW_TS + 2, config)
    assert command.send
    assert state.last_power_w == command.heat_power_w


# --- PI and anti-windup ------------------------------------------------------------------------


@settings(max_examples=40)
@given(
    st.floats(0.3, 10.0),  # error while saturated [K], enough to start heating
    st.floats(0.01, 0.29),  # overshoot after the flip [K], inside the hot tolerance
    st.integers(12, 144),  # five-minute ticks of saturation (1 to 12 hours)
    st.floats(0.5, 10.0),  # proportional band [K]
)
def test_anti_windup_leaves_saturation_at_once(
    error_k: float, overshoot_k: float, ticks: int, band_k: float
) -> None:
    gains = tune_pi(150.0, 20 * 3600.0, 3000.0, proportional_band_k=band_k)
    config = replace(CONFIG, kp_w_per_k=gains.kp_w_per_k, ki_w_per_k_s=gains.ki_w_per_k_s)
    state = ThermostatState()
    now_ts = NOW_TS
    for _ in range(ticks):
        now_ts += 300.0
        state, command = decide(state, _obs(SETPOINT_C - error_k, now_ts), now_ts, config)
        # The integrator never grows past the value that saturates the output.
        headroom_w = config.max_power_w - config.kp_w_per_k * error_k
        assert state.integral_w <= max(0.0, headroom_w) + 1e-6
    now_ts += 60.0
    state, command = decide(state, _obs(SETPOINT_C + overshoot_k, now_ts), now_ts, config)
    assert command.heating
    assert command.heat_power_w <= config.max_power_w - config.kp_w_per_k * overshoot_k + 1e-6
    assert command.heat_power_w < config.max_power_w


def test_integrator_removes_the_steady_offset() -> None:
    # Constant 0.2 K error below the cold tolerance: P alone gives kp·e, I adds ki·e·t.
    config = replace(CONFIG, max_age_s=600.0)
    state = ThermostatState(heating=True, since_ts=NOW_TS - 3600.0, last_tick_ts=NOW_TS)
    now_ts = NOW_TS
    for _ in range(10):
        now_ts += 60.0
        state, command = decide(state, _obs(SETPOINT_C - 0.2, now_ts), now_ts, config)
    assert state.integral_w == pytest.approx(config.ki_w_per_k_s * 0.2 * 600.0)
    assert command.heat_power_w == pytest.approx(config.kp_w_per_k * 0.2 + state.integral_w)


def test_integration_step_is_capped_at_max_age() -> None:
    state = ThermostatState(heating=True, since_ts=NOW_TS - 9e4, last_tick_ts=NOW_TS - 86_400.0)
    state, _ = decide(state, _obs(SETPOINT_C - 0.1), NOW_TS, CONFIG)
    assert state.integral_w == pytest.approx(CONFIG.ki_w_per_k_s * 0.1 * CONFIG.max_age_s)


@given(
    st.floats(10.0, 1000.0),
    st.floats(3600.0, 100 * 3600.0),
    st.floats(100.0, 10_000.0),
    st.floats(0.5, 10.0),
    st.floats(0.3, 2.0),
)
def test_tune_pi_gives_the_requested_damping(
    ua_w_per_k: float, tau_s: float, max_power_w: float, band_k: float, zeta: float
) -> None:
    gains = tune_pi(
        ua_w_per_k,
        tau_s,
        max_power_w,
        proportional_band_k=band_k,
        damping_ratio=zeta,
        max_integral_time_s=math.inf,
    )
    assert gains.kp_w_per_k == pytest.approx(max_power_w / band_k)
    assert gains.integral_time_s == pytest.approx(gains.kp_w_per_k / gains.ki_w_per_k_s)
    # Closed loop with the 1R1C room: τ·Ti·s² + Ti·(1 + L)·s + L, L = kp / UA.
    loop_gain = gains.kp_w_per_k / ua_w_per_k
    a, b, c = tau_s * gains.integral_time_s, gains.integral_time_s * (1 + loop_gain), loop_gain
    assert b / (2 * math.sqrt(a * c)) == pytest.approx(zeta)
    if zeta <= 1.0:
        assert gains.integral_time_s <= tau_s * (1 + 1e-12)


@given(
    st.floats(20.0, 2000.0),
    st.floats(3600.0, 100 * 3600.0),
    st.floats(100.0, 10_000.0),
    st.floats(60.0, 86_400.0),
)
def test_tune_pi_caps_the_integral_time(
    ua_w_per_k: float, tau_s: float, max_power_w: float, cap_s: float
) -> None:
    capped = tune_pi(ua_w_per_k, tau_s, max_power_w, max_integral_time_s=cap_s)
    free = tune_pi(ua_w_per_k, tau_s, max_power_w, max_integral_time_s=math.inf)
    assert capped.integral_time_s == pytest.approx(min(free.integral_time_s, cap_s))
    assert capped.kp_w_per_k == free.kp_w_per_k
    assert capped.ki_w_per_k_s == pytest.approx(capped.kp_w_per_k / capped.integral_time_s)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ua_w_per_k": 0.0}, "ua_w_per_k"),
        ({"time_constant_s": -1.0}, "time_constant_s"),
        ({"max_power_w": math.nan}, "max_power_w"),
        ({"proportional_band_k": 0.0}, "proportional_band_k"),
        ({"damping_ratio": math.inf}, "damping_ratio"),
        ({"max_integral_time_s": 0.0}, "max_integral_time_s"),
        ({"max_integral_time_s": math.nan}, "max_integral_time_s"),
    ],
)
def test_tune_pi_rejects_bad_input(kwargs: dict[str, float], name: str) -> None:
    arguments = {"ua_w_per_k": 150.0, "time_constant_s": 72_000.0, "max_power_w": 3000.0}
    arguments.update(kwargs)
    with pytest.raises(InputError, match=name):
        tune_pi(**arguments)


@given(
    st.lists(
        st.tuples(st.floats(1.0, 2000.0), st.floats(600.0, 100 * 3600.0), st.floats(5.0, 10_000.0)),
        min_size=1,
        max_size=30,
    ),
    st.floats(0.5, 10.0),
    st.floats(600.0, 86_400.0),
)
def test_tune_pi_many_gives_tune_pis_gains_bit_for_bit(
    rooms: list[tuple[float, float, float]], band_k: float, cap_s: float
) -> None:
    """The simulator's fleet takes its gains from the array form: the same rule, to the bit."""
    ua, tau, power = (np.array(column) for column in zip(*rooms, strict=True))
    kp, ki = tune_pi_many(ua, tau, power, proportional_band_k=band_k, max_integral_time_s=cap_s)
    for index, (u, t, p) in enumerate(rooms):
        gains = tune_pi(u, t, p, proportional_band_k=band_k, max_integral_time_s=cap_s)
        assert kp[index] == gains.kp_w_per_k
        assert ki[index] == gains.ki_w_per_k_s


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ua_w_per_k": [150.0, 0.0]}, "ua_w_per_k"),
        ({"time_constant_s": [-1.0, 72_000.0]}, "time_constant_s"),
        ({"max_power_w": [math.nan, 3000.0]}, "max_power_w"),
        ({"damping_ratio": 0.0}, "damping_ratio"),
    ],
)
def test_tune_pi_many_rejects_bad_input(kwargs: dict[str, Any], name: str) -> None:
    arguments: dict[str, Any] = {
        "ua_w_per_k": [150.0, 200.0],
        "time_constant_s": [72_000.0, 36_000.0],
        "max_power_w": [3000.0, 1200.0],
    }
    arguments.update(kwargs)
    with pytest.raises(InputError, match=name):
        tune_pi_many(**arguments)


# --- schedule and away mode --------------------------------------------------------------------


def _reference_setpoint(schedule: WeeklySchedule, now_ts: float) -> float:
    """Scan back through local time minute by minute with datetime, independent of the code."""
    local = datetime.fromtimestamp(now_ts, UTC) + timedelta(hours=schedule.utc_offset_h)
    points = {(day, minute): value for day, minute, value in schedule.change_points}
    moment = local.replace(second=0, microsecond=0)
    for _ in range(7 * 1440):
        key = (moment.weekday(), moment.hour * 60 + moment.minute)
        if key in points:
            return points[key]
        moment -= timedelta(minutes=1)
    raise AssertionError("no change point in a week")


@settings(max_examples=60)
@given(schedules, st.floats(0.0, 4e9).map(lambda t: float(int(t))))
def test_setpoint_at_matches_a_datetime_reference(schedule: WeeklySchedule, now_ts: float) -> None:
    # Whole-second timestamps: the offset can be fractional hours, the grid is whole minutes.
    assert setpoint_at(schedule, now_ts) == _reference_setpoint(schedule, now_ts)


def test_setpoint_at_weekly_program_and_wrap() -> None:
    # Paris winter time (UTC+1): 21 °C from 06:30 on weekdays, 17 °C from 22:00, 19 °C weekends.
    program = [(day, 390, 21.0) for day in range(5)] + [(day, 1320, 17.0) for day in range(5)]
    program += [(5, 480, 19.0), (6, 1320, 17.0)]
    schedule = WeeklySchedule(tuple(program), utc_offset_h=1.0)
    monday = datetime(2025, 1, 13, tzinfo=UTC).timestamp()  # 01:00 local
    assert setpoint_at(schedule, monday) == 17.0  # Sunday 22:00's setpoint wraps into Monday
    assert setpoint_at(schedule, monday + 5.5 * 3600 - 1) == 17.0  # 06:29:59 local
    assert setpoint_at(schedule, monday + 5.5 * 3600) == 21.0  # 06:30 local
    times = monday + np.array([5.5, 21.0, 5 * 24 + 7.0]) * 3600
    np.testing.assert_array_equal(setpoint_at(schedule, times), [21.0, 17.0, 19.0])


def test_away_mode_uses_the_away_setpoint() -> None:
    config = replace(CONFIG, away_setpoint_c=15.0)
    _, command = decide(ThermostatState(), _obs(17.0, mode=Mode.AWAY), NOW_TS, config)
    assert command.setpoint_c == 15.0
    assert not command.heating
    _, command = decide(ThermostatState(), _obs(14.0, mode=Mode.AWAY), NOW_TS, config)
    assert command.heating


@pytest.mark.parametrize(
    ("points", "offset_h", "match"),
    [
        ((), 0.0, "change_points"),
        (((7, 0, 20.0),), 0.0, "weekday"),
        (((0, 1440, 20.0),), 0.0, "minute_of_day"),
        (((0, 0, math.nan),), 0.0, "setpoint_c"),
        (((0, 0, 20.0), (0, 0, 18.0)), 0.0, "two change points"),
        (((0, 0, 20.0),), 15.0, "utc_offset_h"),
    ],
)
def test_schedule_rejects_bad_input(
    points: tuple[tuple[int, int, float], ...], offset_h: float, match: str
) -> None:
    with pytest.raises(InputError, match=match):
        WeeklySchedule(points, utc_offset_h=offset_h)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_power_w", 0.0),
        ("kp_w_per_k", -1.0),
        ("ki_w_per_k_s", math.nan),
        ("cold_tolerance_k", -0.1),
        ("min_on_s", -1.0),
        ("keep_alive_s", 0.0),
        ("max_age_s", math.inf),
        ("room_limit_c", math.nan),
        ("min_valid_temp_c", 70.0),
    ],
)
def test_config_rejects_bad_input(field: str, value: float) -> None:
    changes: dict[str, Any] = {field: value}
    with pytest.raises(InputError, match=field):
        replace(CONFIG, **changes)


def test_decide_rejects_a_non_finite_clock() -> None:
    with pytest.raises(InputError, match="now_ts"):
        decide(ThermostatState(), _obs(20.0), math.nan, CONFIG)


# --- scalar and vector forms -------------------------------------------------------------------


@settings(max_examples=60)
@given(st.lists(st.tuples(states(), observations(), configs()), min_size=1, max_size=6))
def test_scalar_and_vector_forms_agree(
    homes: list[tuple[ThermostatState, Observation, ThermostatConfig]],
) -> None:
    new_states, commands = decide_many(
        ThermostatStateArrays.from_states([home[0] for home in homes]),
        ObservationArrays.from_observations([home[1] for home in homes]),
        NOW_TS,
        ThermostatConfigArrays.from_configs([home[2] for home in homes]),
    )
    for index, (state, observation, config) in enumerate(homes):
        new_state, command = decide(state, observation, NOW_TS, config)
        assert new_states.state(index) == new_state
        assert commands.command(index) == command


def test_vector_form_broadcasts_one_config_over_many_homes() -> None:
    count = 5
    temps = np.linspace(15.0, 25.0, count)
    observations = ObservationArrays.from_observations([_obs(t) for t in temps])
    new_states, commands = decide_many(
        ThermostatStateArrays.initial(count),
        observations,
        NOW_TS,
        ThermostatConfigArrays.from_configs([CONFIG]),
    )
    assert commands.heat_power_w.shape == (count,)
    assert new_states.last_tick_ts.shape == (count,)
    expected: list[HeatCommand] = [
        decide(ThermostatState(), _obs(t), NOW_TS, CONFIG)[1] for t in temps
    ]
    assert [commands.command(i) for i in range(count)] == expected


# --- closed loop with an exact 1R1C room -------------------------------------------------------


def _room_step(room_temp_c: float, outdoor_c: float, power_w: float, dt_s: float) -> float:
    """Exact zero-order-hold step of C·dT/dt = P + UA·(T_out − T)."""
    ua_w_per_k, tau_s = 150.0, 20 * 3600.0
    steady_c = outdoor_c + power_w / ua_w_per_k
    return steady_c + (room_temp_c - steady_c) * math.exp(-dt_s / tau_s)


@pytest.mark.parametrize(
    ("outdoor_mean_c", "outdoor_swing_k", "rms_limit_k"),
    [(5.0, 0.0, 0.02), (5.0, 3.0, 0.3), (12.0, 5.0, 0.3)],
)
def test_closed_loop_settles_at_the_setpoint(
    outdoor_mean_c: float, outdoor_swing_k: float, rms_limit_k: float
) -> None:
    # 3 kW heater, UA 150 W/K, τ 20 h; a daily outdoor swing the PI can only partly reject.
    dt_s = 120.0
    state = ThermostatState()
    room_temp_c = 16.0
    errors_k = []
    hottest_c = -math.inf
    for tick in range(3 * 720):  # three days
        now_ts = NOW_TS + tick * dt_s
        day_fraction = (tick * dt_s / 86_400.0) % 1.0
        outdoor_c = outdoor_mean_c + outdoor_swing_k * math.sin(2 * math.pi * day_fraction)
        state, command = decide(state, _obs(room_temp_c, now_ts), now_ts, CONFIG)
        room_temp_c = _room_step(room_temp_c, outdoor_c, command.heat_power_w, dt_s)
        hottest_c = max(hottest_c, room_temp_c)
        if tick >= 720:  # after the first day
            errors_k.append(room_temp_c - SETPOINT_C)
    assert hottest_c <= SETPOINT_C + CONFIG.hot_tolerance_k + 0.5
    assert math.sqrt(np.mean(np.square(errors_k))) < rms_limit_k


@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 1439), st.floats(5.0, 30.0)),
        min_size=1,
        max_size=8,
        unique_by=lambda point: (point[0], point[1]),
    ),
    st.floats(-12.0, 14.0),
    st.floats(1.5e9, 2.5e9),
)
def test_next_change_ts_is_the_next_point_where_the_schedule_changes(
    points: list[tuple[int, int, float]], utc_offset_h: float, now_ts: float
) -> None:
    schedule = WeeklySchedule(tuple(points), utc_offset_h)
    change_ts = next_change_ts(schedule, now_ts)
    assert now_ts < change_ts <= now_ts + 7 * 86_400.0
    # every change point of the week lies at or after it, counted from now
    week_s = 7 * 86_400.0
    local_week_s = (now_ts + utc_offset_h * 3600.0 + 3 * 86_400.0) % week_s
    starts_s = [(day * 1440 + minute) * 60.0 for day, minute, _ in points]
    waits_s = [(start_s - local_week_s) % week_s or week_s for start_s in starts_s]
    assert change_ts - now_ts == pytest.approx(min(waits_s), abs=1e-6)
    # the setpoint in force just after it is that point's
    changed = setpoint_at(schedule, change_ts + 1e-3)
    index = waits_s.index(min(waits_s))
    assert changed == points[index][2]


def test_config_arrays_give_back_each_homes_config() -> None:
    weekday = WeeklySchedule(((0, 420, 21.0), (0, 1320, 18.0), (5, 480, 20.0)), utc_offset_h=1.0)
    configs = [CONFIG, replace(CONFIG, schedule=weekday, kp_w_per_k=900.0, hot_tolerance_k=0.7)]
    arrays = ThermostatConfigArrays.from_configs(configs)
    assert [arrays.config(index) for index in range(2)] == configs
    shared = replace(arrays, max_power_w=np.array([2500.0]))  # one value for every home
    assert shared.config(1).max_power_w == 2500.0


def test_config_arrays_refuse_a_schedule_row_out_of_order() -> None:
    weekday = WeeklySchedule(((0, 420, 21.0), (0, 1320, 18.0), (5, 480, 20.0)))
    arrays = ThermostatConfigArrays.from_configs([CONFIG, replace(CONFIG, schedule=weekday)])
    start_s = np.array(arrays.schedule_start_s)
    start_s[1, [0, 1]] = start_s[1, [1, 0]]  # the second home's first two change points swapped
    with pytest.raises(InputError, match="sorted"):
        replace(arrays, schedule_start_s=start_s)
    assert replace(arrays, schedule_start_s=np.sort(start_s, axis=-1)) is not None
