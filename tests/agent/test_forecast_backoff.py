"""The heat window (steady-state heat loss, clipped) and the jittered exponential backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.agent.backoff import Backoff
from heatgrid.agent.forecast import heat_window, segment_count
from heatgrid.core.control import ThermostatConfig, WeeklySchedule
from heatgrid.core.errors import InputError

MONDAY_TS = 1_767_571_200.0  # 2026-01-05T00:00:00Z, a Monday
SCHEDULE = WeeklySchedule(((0, 0, 18.0), (0, 360, 21.0)))  # Monday 06:00 local: 21 °C
CONFIG = ThermostatConfig(max_power_w=2000.0, kp_w_per_k=1.0, ki_w_per_k_s=0.0, schedule=SCHEDULE)


def test_window_follows_schedule_and_outdoor_and_clips() -> None:
    window = heat_window(
        MONDAY_TS,
        [8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, -20.0, 25.0],
        ua_w_per_k=100.0,
        thermostat=CONFIG,
        segment_s=3600.0,
    )
    powers = [s.heat_power_w for s in window]
    assert powers[:6] == [1000.0] * 6  # 100 W/K · (18 − 8) before 06:00
    assert powers[6] == 1300.0  # 21 °C from 06:00
    assert powers[7] == 2000.0  # clipped to the heater
    assert powers[8] == 0.0  # warm outside: no heat
    assert [s.start_ts for s in window] == [MONDAY_TS + 3600.0 * i for i in range(9)]


def test_window_is_empty_of_heat_when_off_and_refuses_bad_input() -> None:
    window = heat_window(
        MONDAY_TS,
        [0.0, 0.0],
        ua_w_per_k=100.0,
        thermostat=CONFIG,
        segment_s=1800.0,
        heating_allowed=False,
    )
    assert [s.heat_power_w for s in window] == [0.0, 0.0]
    with pytest.raises(InputError, match="outdoor_temp_c"):
        heat_window(MONDAY_TS, [], ua_w_per_k=100.0, thermostat=CONFIG, segment_s=60.0)
    assert segment_count(6 * 3600.0, 3600.0) == 6
    assert segment_count(100 * 86400.0, 60.0) == 288


@given(outdoor=st.lists(st.floats(-40.0, 40.0), min_size=1, max_size=48))
def test_window_power_is_within_heater_limits(outdoor: list[float]) -> None:
    window = heat_window(MONDAY_TS, outdoor, ua_w_per_k=250.0, thermostat=CONFIG, segment_s=3600.0)
    assert all(0.0 <= s.heat_power_w <= CONFIG.max_power_w for s in window)


@given(seed=st.integers(0, 2**32), failures=st.integers(1, 40))
def test_backoff_is_jittered_exponential_and_capped(seed: int, failures: int) -> None:
    backoff = Backoff(1.0, 300.0, random.Random(seed))
    for n in range(failures):
        delay_s = backoff.next_delay_s()
        assert 0.0 <= delay_s <= min(300.0, 2.0**n)
    backoff.reset()
    assert backoff.next_delay_s() <= 1.0
