"""``heatgrid demo`` heats a winter morning whatever today's date.

The demo used to emulate the hours before today: run in July, no home wanted heat, no miner
mined, and its own acceptance failed. Its clock (:func:`demo_clock`) now starts on a fixed
winter morning; here a demo started on a summer afternoon still finds every home needing its
miners, through the same rooms (weather included) the demo builds.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.cli._demo_world import DEMO_START_TS, HOMES, HomeSpec, demo_clock, room_options
from heatgrid.cli._emulate_room import build_room
from heatgrid.core.clock import ClockSpec

_SUMMER_TODAY_TS = datetime(2026, 7, 15, 14, 0, tzinfo=UTC).timestamp()
_SPEED = 60.0
_DURATION_S = 720.0  # 12 emulated hours: longer than the e2e tests' demos [s]
_DEFAULT_DURATION_S = 120.0  # heatgrid demo's default: 2 emulated hours [s]
_SAMPLE_S = 600.0  # [s]


def _demand_w(
    spec: HomeSpec, clock: ClockSpec, real_start_ts: float, duration_s: float
) -> np.ndarray:
    """Heat the home needs to hold its setpoint, through the demo's run [W].

    Steady state, sampled every 10 emulated minutes: ``UA (setpoint - outdoor) - gains``, with
    the outdoor temperature of the room the demo builds for the home at that emulated time.
    """
    start_ts = clock.emulated_ts(real_start_ts)
    room = build_room(room_options(spec), start_ts)
    end_ts = clock.emulated_ts(real_start_ts + duration_s)
    outdoor_c = np.array([room.outdoor_temp_c(t) for t in np.arange(start_ts, end_ts, _SAMPLE_S)])
    demand_w: np.ndarray = spec.ua_w_per_k * (spec.setpoint_c - outdoor_c) - spec.gains_w
    return demand_w


def test_a_demo_started_in_summer_heats_a_winter_morning() -> None:
    clock = demo_clock(_SUMMER_TODAY_TS, _SPEED)
    assert clock.emulated_ts(_SUMMER_TODAY_TS) == DEMO_START_TS
    for spec in HOMES:
        demand_w = _demand_w(spec, clock, _SUMMER_TODAY_TS, _DURATION_S)
        # more than the CPU heater gives: the home's miners heat too, so every home mines
        assert demand_w.min() > spec.cpu_heater_max_power_w, spec.name
        # within what its heaters give: the room can be kept comfortable
        assert demand_w.max() < sum(spec.miners_max_power_w) + spec.cpu_heater_max_power_w


def test_the_hours_before_a_summer_today_want_no_heat() -> None:
    """What the demo emulated before, the two hours up to a summer afternoon, heats nothing."""
    start_ts = _SUMMER_TODAY_TS - _SPEED * _DEFAULT_DURATION_S
    before = ClockSpec(start_ts=start_ts, origin_ts=_SUMMER_TODAY_TS, speed=_SPEED)
    for spec in HOMES:
        demand_w = _demand_w(spec, before, _SUMMER_TODAY_TS, _DEFAULT_DURATION_S)
        assert demand_w.max() <= 0.0, spec.name


@given(
    today_ts=st.floats(
        min_value=datetime(2020, 1, 1, tzinfo=UTC).timestamp(),
        max_value=datetime(2040, 1, 1, tzinfo=UTC).timestamp(),
    ),
    speed=st.floats(min_value=1.0, max_value=600.0),
    elapsed_s=st.floats(min_value=0.0, max_value=3600.0),
)
def test_the_demo_clock_runs_from_the_same_morning_whatever_the_date(
    today_ts: float, speed: float, elapsed_s: float
) -> None:
    clock = demo_clock(today_ts, speed)
    emulated_s = clock.emulated_ts(today_ts + elapsed_s) - DEMO_START_TS
    assert np.isclose(emulated_s, speed * elapsed_s, rtol=1e-9, atol=1e-3)
