"""Home-steps per second of the fleet simulator's step: thermostat + arbiter + rooms.

One step of a fleet drawn by :func:`heatgrid.sim.fleet.sample_fleet` (no racks), as
:mod:`heatgrid.sim.engine` runs it: :func:`~heatgrid.core.control.decide_many` on every room
reading, :func:`~heatgrid.core.arbiter.plan_many` on the demand (every heater has work; an
alarm stops it), :func:`~heatgrid.core.thermal_kernels.advance_fleet_2r2c` over one step under
the heater power plus internal gains. Timed for 1e4, 1e5 and 1e6 homes (each size runs whole
steps for about ``--budget-s`` seconds after a warm-up step that compiles or loads the JIT),
with the time per phase and the growth exponent ``b`` of the cost per step, ``t ∝ N^b`` (least
squares on log t against log N).

Baseline, run side by side: the scalar per-home path, what an agent runs each tick, on the
first ``--baseline-homes`` homes of the same fleet: :func:`~heatgrid.core.control.decide`, then
:func:`~heatgrid.core.arbiter.plan`, then the room kernel on that one home (one thread). The
ratio says what running the fleet as arrays buys. Also the end-to-end rate of
:func:`heatgrid.sim.run.simulate` (what ``heatgrid simulate`` runs: fleet and job draws,
thermostat, task queue with claims and leases, arbiter, rooms, accounting, summary) for
``--e2e-homes`` homes over one day.
Usage: ``python bench/bench_simulate.py --out PATH``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from heatgrid.core import arbiter, control
from heatgrid.core.thermal_kernels import advance_fleet_2r2c
from heatgrid.sim.fleet import Fleet, sample_fleet
from heatgrid.sim.run import simulate
from heatgrid.sim.scenario import Region, Scenario
from heatgrid.weather import synthetic_year

_GOAL_HOME_STEPS_PER_S = 1e8
_SIZES = (10_000, 100_000, 1_000_000)
_JANUARY_15_S = 14 * 86_400.0
_MIN_STEPS = 3
_PARALLEL_MIN_HOMES = 50_000
"""As :mod:`heatgrid.sim.engine`: smaller fleets run their kernels on one thread."""


def _region() -> Region:
    year = synthetic_year("Lyon")
    return Region(
        name="Lyon",
        timestamps_ts=year.timestamps_ts,
        outdoor_temp_c=year.outdoor_temp_c,
        carbon_g_per_kwh=60.0,
        tz_offset_h=year.tz_offset_h,
    )


def _scenario(region: Region, n_homes: int, *, rack_share: float) -> Scenario:
    return Scenario(
        n_homes=n_homes,
        start_ts=float(region.timestamps_ts[0]) + _JANUARY_15_S,
        days=1.0,
        regions=(region,),
        rack_share=rack_share,
        seed=1,
    )


@dataclass
class _Phases:
    """Seconds spent per phase."""

    control_s: float = 0.0
    arbiter_s: float = 0.0
    thermal_s: float = 0.0
    other_s: float = 0.0
    steps: int = 0


class _FleetStep:
    """The core part of the engine's step over all homes (no queue, claims or accounting)."""

    def __init__(self, scenario: Scenario, fleet: Fleet) -> None:
        n = fleet.n_homes
        self.fleet = fleet
        self.n = n
        self.time_ts = scenario.start_ts + np.arange(scenario.n_steps, dtype=np.float64) * float(
            scenario.step_s
        )
        self.outdoor_c = scenario.regions[0].outdoor_at(self.time_ts)
        self.state_c = np.array(fleet.initial_state_c)
        self.thermostat = control.ThermostatStateArrays.initial(n)
        self.devices = fleet.devices
        self.arbiter = arbiter.DeviceStateArrays.initial(n)
        self.gains_w = fleet.occupied_gains_w
        self.fixed = {
            "device_temp_c": np.full(n, math.nan),
            "fan_ok": np.ones(n, dtype=np.bool_),
            "upright": np.ones(n, dtype=np.bool_),
            "mode": np.full(n, int(control.Mode.AUTO), dtype=np.int64),
        }

    def step(self, k: int, phases: _Phases) -> None:
        t0 = time.perf_counter()
        now = float(self.time_ts[k % self.time_ts.size])
        observation = control.ObservationArrays(
            room_temp_c=self.state_c[:, 0].copy(),
            reading_ts=np.full(self.n, now),
            **self.fixed,
        )
        t1 = time.perf_counter()
        self.thermostat, command = control.decide_many(
            self.thermostat, observation, now, self.fleet.thermostat
        )
        t2 = time.perf_counter()
        self.arbiter, power_w = arbiter.plan_many(
            self.arbiter, command.heat_power_w, self.devices, now, stop_now=command.alarm != 0
        )
        t3 = time.perf_counter()
        self.state_c = advance_fleet_2r2c(
            self.fleet.coefficients,
            self.state_c,
            power_w + self.gains_w,
            self.outdoor_c[k % self.outdoor_c.size : k % self.outdoor_c.size + 1],
        )
        t4 = time.perf_counter()
        phases.other_s += t1 - t0
        phases.control_s += t2 - t1
        phases.arbiter_s += t3 - t2
        phases.thermal_s += t4 - t3
        phases.steps += 1


def _vectorized(region: Region, n_homes: int, budget_s: float) -> dict[str, Any]:
    scenario = _scenario(region, n_homes, rack_share=0.0)
    start = time.perf_counter()
    fleet = sample_fleet(scenario)
    draw_s = time.perf_counter() - start
    runner = _FleetStep(scenario, fleet)
    threads = numba.get_num_threads()
    if n_homes < _PARALLEL_MIN_HOMES:
        numba.set_num_threads(1)
    try:
        runner.step(0, _Phases())  # warm-up: compiles or loads the JIT
        phases = _Phases()
        start = time.perf_counter()
        k = 1
        while phases.steps < _MIN_STEPS or time.perf_counter() - start < budget_s:
            runner.step(k, phases)
            k += 1
        elapsed_s = time.perf_counter() - start
    finally:
        numba.set_num_threads(threads)
    per_step_s = elapsed_s / phases.steps
    return {
        "homes": n_homes,
        "threads": 1 if n_homes < _PARALLEL_MIN_HOMES else threads,
        "steps": phases.steps,
        "seconds_per_step": per_step_s,
        "home_steps_per_s": n_homes / per_step_s,
        "share_control": phases.control_s / elapsed_s,
        "share_arbiter": phases.arbiter_s / elapsed_s,
        "share_thermal": phases.thermal_s / elapsed_s,
        "share_other": phases.other_s / elapsed_s,
        "fleet_draw_s": draw_s,
        "heating_share_last_step": float(np.mean(runner.thermostat.heating)),
    }


def _capability(fleet: Fleet, home: int) -> arbiter.DeviceCapability:
    levels = fleet.devices.power_levels_w[home]
    return arbiter.DeviceCapability(
        device_id="heater",
        kind=str(fleet.kind[home]),  # type: ignore[arg-type]
        min_power_w=float(fleet.devices.min_power_w[home]),
        max_power_w=float(fleet.devices.max_power_w[home]),
        power_levels_w=tuple(float(v) for v in levels[~np.isnan(levels)]),
        min_cycle_s=float(fleet.devices.min_cycle_s[home]),
    )


def _scalar(region: Region, n_homes: int, steps: int) -> dict[str, Any]:
    """The agent's per-home path on the first ``n_homes`` homes of a 1e4-home fleet."""
    scenario = _scenario(region, 10_000, rack_share=0.0)
    fleet = sample_fleet(scenario)
    homes = range(n_homes)
    configs = [fleet.thermostat.config(i) for i in homes]
    capabilities = [[_capability(fleet, i)] for i in homes]
    offers = [
        arbiter.WorkOffer(
            work_id="work",
            value_eur_per_kwh=0.1,
            device_kinds=("asic", "gpu", "cpu"),
            exclusive=False,
        )
    ]
    states = [control.ThermostatState() for _ in homes]
    plans = [arbiter.ArbiterState() for _ in homes]
    rooms_c = [np.array(fleet.initial_state_c[i : i + 1]) for i in homes]
    coefficients = [np.ascontiguousarray(fleet.coefficients[:, i : i + 1]) for i in homes]
    time_ts = scenario.start_ts + np.arange(steps + 1, dtype=np.float64) * float(scenario.step_s)
    outdoor_c = region.outdoor_at(time_ts)

    def step(k: int) -> None:
        now = float(time_ts[k])
        for i in homes:
            reading = control.Observation(room_temp_c=float(rooms_c[i][0, 0]), reading_ts=now)
            states[i], command = control.decide(states[i], reading, now, configs[i])
            plans[i], plan = arbiter.plan(
                plans[i],
                command.heat_power_w,
                capabilities[i],
                offers,
                now,
                stop_now=command.alarm != control.Alarm.NONE,
            )
            rooms_c[i] = advance_fleet_2r2c(
                coefficients[i],
                rooms_c[i],
                plan[0].power_w + fleet.occupied_gains_w[i],
                outdoor_c[k : k + 1],
            )

    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # one home: as an agent runs it, without waking threads
    try:
        step(0)  # warm-up
        start = time.perf_counter()
        for k in range(1, steps + 1):
            step(k)
        elapsed_s = time.perf_counter() - start
    finally:
        numba.set_num_threads(threads)
    return {"homes": n_homes, "steps": steps, "home_steps_per_s": n_homes * steps / elapsed_s}


def _end_to_end(region: Region, n_homes: int) -> dict[str, Any]:
    scenario = _scenario(region, n_homes, rack_share=0.1)
    start = time.perf_counter()
    result = simulate(scenario, ["heat-aware"])
    elapsed_s = time.perf_counter() - start
    run = result.runs["heat-aware"]
    home_steps = scenario.n_homes * scenario.n_steps
    return {
        "what": "heatgrid.sim.run.simulate (what `heatgrid simulate` runs), heat-aware, "
        "default jobs, 10 % racks, one day, draws and summary included",
        "homes": n_homes,
        "racks": scenario.n_racks,
        "steps": scenario.n_steps,
        "step_s": scenario.step_s,
        "seconds": elapsed_s,
        "home_steps_per_s": home_steps / elapsed_s,
        "claims": run.claims,
        "jobs_done": int(np.count_nonzero(np.isfinite(run.done_ts))),
    }


def _growth_exponent(rows: list[dict[str, Any]]) -> float:
    log_n = np.log([row["homes"] for row in rows])
    log_t = np.log([row["seconds_per_step"] for row in rows])
    slope, _ = np.polyfit(log_n, log_t, 1)
    return float(slope)


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=6.0, help="timed seconds per size")
    parser.add_argument("--baseline-homes", type=int, default=200)
    parser.add_argument("--baseline-steps", type=int, default=5)
    parser.add_argument("--e2e-homes", type=int, default=10_000)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(_SIZES), help="fleet sizes (homes)"
    )
    args = parser.parse_args()
    region = _region()
    rows = [_vectorized(region, n, args.budget_s) for n in args.sizes]
    baseline = _scalar(region, args.baseline_homes, args.baseline_steps)
    end_to_end = _end_to_end(region, args.e2e_homes)
    best = max(row["home_steps_per_s"] for row in rows)
    result = {
        "benchmark": "simulate",
        "what": "fleet simulator step (thermostat decide_many + arbiter plan_many + exact 2R2C "
        "room step), home-steps/s, one region, every heater with work, step 300 s",
        "sizes": rows,
        "growth_exponent": _growth_exponent(rows) if len(rows) > 1 else None,
        "growth_note": "seconds per step ∝ homes^growth_exponent (1: linear, < 1: fixed "
        "per-step costs still matter)",
        "baseline": "baseline_home_steps_per_s: the agent's scalar path (control.decide + "
        "arbiter.plan + the room kernel on one home), per home, same run",
        "baseline_home_steps_per_s": baseline["home_steps_per_s"],
        "baseline_homes": baseline["homes"],
        "ratio_vs_baseline": {
            str(row["homes"]): row["home_steps_per_s"] / baseline["home_steps_per_s"]
            for row in rows
        },
        "end_to_end": end_to_end,
        "goal_home_steps_per_s": _GOAL_HOME_STEPS_PER_S,
        "best_home_steps_per_s": best,
        "goal_met": best >= _GOAL_HOME_STEPS_PER_S,
        "goal_fraction": best / _GOAL_HOME_STEPS_PER_S,
        "threads": numba.get_num_threads(),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "system": platform.system(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "numba": numba.__version__,
            "numpy": np.__version__,
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
