"""Contract: the agent's heat window and the simulator's are one rule (core.forecast).

For the same home (the simulator's drawn thermostat schedule, UA, heater and gains), the same
instant and the same outdoor forecast, :func:`heatgrid.agent.forecast.heat_window` (what a real
heater sends) and :func:`heatgrid.sim.engine.heat_windows_w` (what the simulator's heaters offer
the scheduler) agree to 1e-9 W. Changing one side's rule makes them disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from heatgrid.agent import forecast as agent_forecast
from heatgrid.agent.forecast import heat_window
from heatgrid.core.forecast import window_instants_ts
from heatgrid.sim import engine
from heatgrid.sim.fleet import Fleet, sample_fleet
from heatgrid.sim.scenario import Region, Scenario
from heatgrid.weather import synthetic_year

S_PER_H = 3600.0
TOLERANCE_W = 1e-9


@pytest.fixture(scope="module")
def home_fleet() -> tuple[Scenario, Fleet]:
    year = synthetic_year("Lyon")
    region = Region(
        name="Lyon",
        timestamps_ts=year.timestamps_ts,
        outdoor_temp_c=year.outdoor_temp_c,
        carbon_g_per_kwh=60.0,
        tz_offset_h=year.tz_offset_h,
    )
    scenario = Scenario(
        n_homes=24,
        start_ts=float(year.timestamps_ts[0]) + 14 * 86_400.0,
        days=3.0,
        regions=(region,),
        seed=11,
        away_share=0.5,
    )
    return scenario, sample_fleet(scenario)


def _instants(scenario: Scenario) -> list[float]:
    """Claim instants over two days, every 50 minutes: schedule changes fall inside windows."""
    return [scenario.start_ts + 3000.0 * k for k in range(int(2 * 86_400 / 3000))]


def _largest_difference_w(scenario: Scenario, fleet: Fleet) -> float:
    """Largest |agent − simulator| over every home and instant where gains hold still [W]."""
    region = scenario.regions[0]
    homes = np.arange(fleet.n_homes)
    worst_w = 0.0
    compared = 0
    for now_ts in _instants(scenario):
        simulated_w = engine.heat_windows_w(scenario, fleet, homes, now_ts)
        instants_ts = window_instants_ts(now_ts, scenario.window_h, S_PER_H)
        gains_w = engine.internal_gains_w(scenario, fleet, homes, instants_ts)
        outdoor_c = region.outdoor_at(instants_ts)
        for home in homes:
            if np.ptp(gains_w[home]) != 0.0:
                continue  # the agent's gains are one configured number
            segments = heat_window(
                now_ts,
                outdoor_c,
                ua_w_per_k=float(fleet.ua_w_per_k[home]),
                thermostat=fleet.thermostat.config(int(home)),
                segment_s=S_PER_H,
                gains_w=float(gains_w[home, 0]),
            )
            assert [s.start_ts for s in segments] == pytest.approx(
                now_ts + S_PER_H * np.arange(scenario.window_h), abs=0.0
            )
            agent_w = np.array([s.heat_power_w for s in segments])
            worst_w = max(worst_w, float(np.max(np.abs(agent_w - simulated_w[home]))))
            compared += 1
    assert compared > fleet.n_homes * 10
    return worst_w


def test_the_agent_and_the_simulator_offer_the_same_heat_window(
    home_fleet: tuple[Scenario, Fleet],
) -> None:
    scenario, fleet = home_fleet
    assert _largest_difference_w(scenario, fleet) <= TOLERANCE_W


def _setpoint_at_segment_start(
    original: Callable[..., Any],
) -> Callable[..., Any]:
    def at_start(schedule: Any, now_ts: Any) -> Any:
        return original(schedule, np.asarray(now_ts) - S_PER_H / 2.0)

    return at_start


def test_the_contract_fails_when_the_agent_takes_the_setpoint_elsewhere(
    home_fleet: tuple[Scenario, Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old agent rule's instant (here: each segment's start) is caught."""
    monkeypatch.setattr(
        agent_forecast, "setpoint_at", _setpoint_at_segment_start(agent_forecast.setpoint_at)
    )
    scenario, fleet = home_fleet
    assert _largest_difference_w(scenario, fleet) > 1.0


def test_the_contract_fails_when_the_simulator_ignores_gains(
    home_fleet: tuple[Scenario, Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's window without gains (the old agent rule) is caught."""
    rule = engine.heat_window_w

    def without_gains(ua: Any, setpoint: Any, outdoor: Any, gains: Any, most: Any) -> Any:
        return rule(ua, setpoint, outdoor, np.zeros_like(gains), most)

    monkeypatch.setattr(engine, "heat_window_w", without_gains)
    scenario, fleet = home_fleet
    assert _largest_difference_w(scenario, fleet) > 1.0
