"""Acceptance of the simulator (issue 6): one simulated home is the agent's own closed loop.

The simulator steps a home with :func:`~heatgrid.core.control.decide_many`,
:func:`~heatgrid.core.arbiter.plan_many` and the fused 2R2C kernel. The agent's side here is the
agent's control tick itself, :func:`heatgrid.agent.loop.control_tick` (thermostat, arbiter and
the command bookkeeping of the daemon), closing the loop through
:class:`~heatgrid.emulators.room.RoomEmulator`, with the same inputs: the home the simulator drew
(2R2C room, weekly schedule, tuned gains, internal gains, an Avalon Q miner with three power
levels and its minimum cycle), Lyon's weather and the same step.

Two things of the simulator's model are given to the agent's side as inputs, and said here:

* **the heater delivers the power it is commanded** over the whole step (the simulator has no
  device dynamics): each tick's device reading is the power the agent last commanded;
* **the outdoor temperature is held over each step** at the value of the weather hour that
  contains the step's start (:meth:`heatgrid.sim.scenario.Region.outdoor_at`); the emulated room,
  which samples its outdoor series in the middle of a step, gets those held values.

The room temperature and the device power must then agree to floating-point tolerance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from heatgrid.agent.devices.base import DeviceReading
from heatgrid.agent.loop import LoopState, RoomSample, control_tick
from heatgrid.core.arbiter import DeviceCapability, WorkOffer
from heatgrid.core.control import Mode, ThermostatConfig
from heatgrid.core.thermal import Room2R2C
from heatgrid.emulators.room import OutdoorSeries, RoomEmulator
from heatgrid.sim.engine import run_policy
from heatgrid.sim.fleet import Fleet, sample_fleet
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.scenario import Scenario

HEATER_ID = "heater"


def _thermostat(fleet: Fleet) -> ThermostatConfig:
    """Home 0's thermostat, as the agent's configuration would give it."""
    return fleet.thermostat.config(0)


def _device(fleet: Fleet) -> DeviceCapability:
    """Home 0's heater, as the agent's adapter would describe it."""
    devices = fleet.devices
    levels = np.asarray(devices.power_levels_w)[0]
    assert fleet.kind[0] == "asic"
    return DeviceCapability(
        device_id=HEATER_ID,
        kind="asic",
        min_power_w=float(devices.min_power_w[0]),
        max_power_w=float(devices.max_power_w[0]),
        power_levels_w=tuple(float(v) for v in levels[~np.isnan(levels)]),
        min_cycle_s=float(devices.min_cycle_s[0]),
    )


def _room(fleet: Fleet, scenario: Scenario) -> RoomEmulator:
    """Home 0's room, with the simulator's outdoor temperatures held over each step."""
    assert not fleet.one_node[0]
    step_s = scenario.step_s
    time_ts = scenario.start_ts + step_s * np.arange(scenario.n_steps, dtype=np.float64)
    region = scenario.regions[int(fleet.region[0])]
    held = OutdoorSeries(region.outdoor_at(time_ts), scenario.start_ts + 0.5 * step_s, step_s)
    room = Room2R2C.from_ua_and_time_constant(
        float(fleet.ua_w_per_k[0]),
        float(fleet.time_constant_h[0]),
        air_out_fraction=float(fleet.air_out_fraction[0]),
    )
    return RoomEmulator(
        room,
        held,
        now_ts=scenario.start_ts,
        initial_temp_c=float(fleet.initial_state_c[0, 0]),
        gains_w=float(fleet.occupied_gains_w[0]),
        max_step_s=step_s,
    )


def test_one_simulated_home_is_the_agents_control_tick_with_the_emulated_room(
    make_scenario: Callable[..., Scenario],
) -> None:
    """Acceptance: same room temperature and device power, step by step, to rounding."""
    scenario = make_scenario(
        n_homes=1,
        days=2.0,
        step_s=120.0,
        heater_mix={"Avalon Q": 1.0},
        rack_share=0.0,
        share_1r1c=0.0,
        away_share=0.0,
        departure_rate_per_day=0.0,
        seed=11,
    )
    fleet = sample_fleet(scenario)
    # The emulated room starts with every node at one temperature: so does the simulated home.
    air_c = float(fleet.initial_state_c[0, 0])
    fleet = dataclasses.replace(fleet, initial_state_c=np.array([[air_c, air_c]]))
    run = run_policy(scenario, fleet, sample_jobs(scenario), "heat-aware", record_rooms=True)

    thermostat, device = _thermostat(fleet), _device(fleet)
    model = fleet.models[int(fleet.model[0])]
    assert model.efficiency_j_per_th is not None
    offers = [WorkOffer.mining(scenario.market.hashprice_eur_per_th_day, model.efficiency_j_per_th)]
    room = _room(fleet, scenario)
    state = LoopState()
    power_w = 0.0
    room_c, heat_w, demand_w = [], [], []
    for k in range(scenario.n_steps):
        now_ts = scenario.start_ts + k * scenario.step_s
        reading = DeviceReading(
            read_ts=now_ts, power_w=power_w, power_measured=False, running=power_w > 0.0
        )
        result = control_tick(
            state,
            thermostat=thermostat,
            mode=Mode.AUTO,
            devices=[device],
            readings={HEATER_ID: reading},
            room=RoomSample(room_temp_c=room.room_temp_c, reading_ts=now_ts, received_ts=now_ts),
            offers=offers,
            now_ts=now_ts,
        )
        state = result.state
        power_w = state.applied_w[HEATER_ID]  # what the heater was told, and delivers
        room_c.append(room.advance(now_ts + scenario.step_s, power_w))
        heat_w.append(power_w)
        demand_w.append(result.command.heat_power_w)

    np.testing.assert_allclose(run.room_temp_c[:, 0], room_c, rtol=0.0, atol=1e-9)
    np.testing.assert_allclose(run.heat_w, heat_w, rtol=0.0, atol=1e-9)
    np.testing.assert_allclose(run.demand_w, demand_w, rtol=0.0, atol=1e-6)
    # The run exercised what it compares: the schedule, levels and on/off cycles of the miner.
    assert np.ptp(run.setpoint_mean_c) > 0.5
    assert {0.0, *device.power_levels_w} <= set(heat_w)
    assert np.ptp(room_c) > 0.5
