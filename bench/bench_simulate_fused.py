"""Home-steps per second of the fused engine against the step-by-step engine, same run.

For each fleet size (``--sizes``, default 1e4 and 1e5 homes, no racks' tasks: ``mining-only``,
no jobs, one region, 300 s steps) the fused engine (:func:`heatgrid.sim.fused.run_policy_fused`)
runs ``--days`` of the scenario and the step-by-step engine
(:func:`heatgrid.sim.engine.run_policy`, today's engine, the baseline) runs the first steps of
the same scenario for about ``--budget-s`` seconds; the ratio is fused over baseline, in
home-steps per second of wall-clock time. A fused run shorter than a second (10,000 homes: about
30 ms) is repeated, up to ten runs in all, and the best counts (``fused_runs``). Both are also
given per CPU-second of this process (``time.process_time``), which a busy shared machine
disturbs less than the wall clock.

Compile and cache-load times are kept out of the rates: a warm-up run on a small fleet loads
or compiles the fused kernel first, and its time is reported (``first_call_s``); the baseline
and the scheduling-bound case are timed after a warm-up of their own; a child process with an
empty numba cache compiles it from nothing (``cold_compile_s``; ``--skip-cold-compile``).
A scheduling-bound case runs too: ``heat-aware`` with 0.15 jobs per home and hour on
``--scheduling-homes`` homes, where a job arrives at nearly every step, so most steps are
claim steps: their claims (``core.scheduling.choose``, in Python in both engines) dominate, and
the fused engine runs the rest of each step in its kernel. And a leases-held case:
``heat-aware`` with 0.003 jobs per home and hour (one arrival every 2 steps on 2,000 homes),
where most steps hold leases but cannot claim, and run in the fused kernel with their tasks.
The year estimates are 1e5 homes at 60 s steps (525,600 steps) and at 300 s steps, at the
best fused rate; ``year_slice`` runs ``--year-slice-days`` (default 1, split over four seasons)
of that year's own case, 1e5 homes at 60 s steps, and scales it to the year. The ``goal``
case runs the same days and seasons on ``--goal-homes`` homes (1e6): the goal of 1e8
home-steps per second at 1e6 homes, on the year's own workload (``goal_fraction``); the sizes
above, at 300 s steps from 15 January (the coldest weeks, when heaters work hardest, with
fewer steps between a home's setpoint changes), are the hardest case (``best_fraction``).

Measured on 2026-12-04 (2 cores shared with other work, load 4-7, ``--sizes 1000000 10000
--days 0.5 --skip-cold-compile --budget-s 8``; see ``docs/simulator.md``): fused 1.92e7
home-steps/s at 1e6 homes (2.14e7 per CPU-second, 12.2 times the engine), 1.23e7 at 1e4 homes;
year of 1e5 homes at 60 s steps estimated at 46 minutes (goal 10), 19 % of the goal of 1e8
home-steps/s. ``leases_held``: 114 of 144 steps in bursts, fused 1.5-2.0 times the engine on
the wall clock (0.7-0.8 before leased tasks ran in bursts).

Measured again after claim steps joined the bursts (2026-12-04, later; two pairs of runs of
this bench on this code and on main's, same options, load 6.3-11.8, so the rates per
CPU-second are the ones to compare): fused 2.22e7-2.24e7 home-steps per CPU-second at 1e6 homes
(main 2.14e7-2.31e7), 1.38e7-1.52e7 at 1e4 (main 1.44e7-1.47e7); wall-clock year estimates
78-108 minutes in all four runs, from the load. ``scheduling_bound`` ratio 1.85 and 0.84 (main
1.28 and 0.65); ``leases_held`` 3.0 and 1.6 (main 3.4 and 2.1), 137 of 144 steps in bursts
(main 114). See ``docs/simulator.md``.
Measured again after a burst's fixed cost per home was cut (2026-12-05: numba's reference
counting of the per-home bundles, the state copied in and out, the lookups; one thread, 100,000
homes: 118-159 ns per home for a 1-step burst, was 392-447; 31.9-32.5 ns per home-step in
64-step bursts, was 37.6-37.7). Two runs of this bench each, alternating with the code before,
same options, load 4.0-5.1: fused 2.36e7 and 2.44e7 home-steps per CPU-second at 1e6 homes
(before 2.41e7, 2.33e7), 1.30e7 and 1.46e7 at 1e4 (before 1.50e7, 1.58e7): equal within the
spread, the bench's runs being single long bursts; ``leases_held`` fused 4.75e6 and 6.32e6
home-steps/s (before 3.51e6, 3.44e6); year estimates 73 and 59 minutes (before 24 and 50), from
the load: about 37 CPU-minutes at 2.4e7 per CPU-second. Two more pairs after a claim step
decided only the claiming heaters' demand (load 3.4-4.1): 2.50e7 and 2.39e7 per CPU-second at
1e6 homes (before 2.37e7, 2.37e7), 3.59e7 home-steps/s at best (before 3.72e7), year estimate
24 minutes (before 24); ``leases_held`` 8.28e6 and 6.88e6 home-steps/s (before 3.40e6, 5.55e6);
``scheduling_bound`` ratio 1.16 and 1.01 (before 0.79, 0.93). See ``docs/simulator.md``.
Measured on a quiet 2-core machine (2026-12-05, load 0.8-1.1), after the arbiter's level row was
read without numba's reference counting and the start states were built as arrays, the code
before then after (twice), same options: 1e6 homes 5.14e7 home-steps/s before, 6.04e7 and
6.11e7 after (61 % of the goal); 1e4 homes 2.61e7 before, 3.08e7 and 3.12e7 after; year of 1e5
homes at 60 s steps estimated at 17.1 minutes before, 14.5 and 14.3 after (goal 10). A whole
year run with ``heatgrid simulate`` took 11.5 to 12 minutes; the seasonal ``year_slice`` (one
day in four quarters) estimated 12.8 minutes in the next run of this bench (5.82e7 at 1e6 homes).
Measured on the night of 5 December 2026 (the machine slower than earlier that evening: the
300 s case of 1e6 homes ran at 7.0e7 to 7.7e7 on this code and on the code before), four runs:
the ``goal`` case, 1e6 homes on the year's workload, 1.00e8, 1.10e8 and 1.09e8 home-steps/s
(``goal_fraction`` 1.0 to 1.1); 1e6 homes at 300 s in January 7.69e7 and 7.61e7
and, in a run before, 7.03e7 (``best_fraction`` 0.70 to 0.77); ``year_slice`` 1.05e8 (8.4
minutes) and 9.57e7 (9.2 minutes); 1e4 homes, best of 10 runs,
4.7e7 to 4.9e7 (single runs gave 3.7e7 to 4.1e7). See ``docs/simulator.md``.
Usage: ``python bench/bench_simulate_fused.py --out PATH``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from heatgrid.sim.engine import run_policy
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.fused import run_policy_fused
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.scenario import JobStream, Region, Scenario
from heatgrid.weather import synthetic_year

_GOAL_HOME_STEPS_PER_S = 1e8
_SIZES = (10_000, 100_000)
_JANUARY_15_S = 14 * 86_400.0
_YEAR_HOMES = 100_000
_GOAL_HOMES = 1_000_000
_YEAR_STEPS = 525_600  # a year of 60 s steps
_SEASON_START_DAYS = (14, 104, 195, 287)  # mid-January, -April, -July, -October
_MIN_TIMED_S = 1.0
"""A fused run shorter than this is repeated (the best run counts): 10,000 homes take 30 ms."""
_MAX_RUNS = 10
_COLD_SCRIPT = """
import time
from heatgrid.sim.fused import run_policy_fused
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.jobs import sample_jobs
import bench_simulate_fused as bench
scenario = bench._scenario(bench._region(), 20, days=0.05, jobs=bench._NO_JOBS)
fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
start = time.perf_counter()
run_policy_fused(scenario, fleet, jobs, "mining-only")
print(time.perf_counter() - start)
"""
_NO_JOBS = JobStream(rate_per_h=0.0)


def _region() -> Region:
    year = synthetic_year("Lyon")
    return Region(
        name="Lyon",
        timestamps_ts=year.timestamps_ts,
        outdoor_temp_c=year.outdoor_temp_c,
        carbon_g_per_kwh=60.0,
        tz_offset_h=year.tz_offset_h,
    )


def _scenario(
    region: Region,
    n_homes: int,
    *,
    days: float,
    jobs: JobStream,
    step_s: float = 300.0,
    start_s: float = _JANUARY_15_S,
) -> Scenario:
    return Scenario(
        n_homes=n_homes,
        start_ts=float(region.timestamps_ts[0]) + start_s,
        days=days,
        step_s=step_s,
        regions=(region,),
        jobs=jobs,
        seed=1,
    )


def _timed(run: Any) -> tuple[float, float]:
    """Return (wall, CPU) seconds of ``run()``.

    The garbage of earlier runs is collected first: freeing a million homes' arrays inside a
    timed run of 10,000 homes (30 ms) halved its rate.
    """
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _best_of(run: Any) -> tuple[float, float, int]:
    """Return the best (wall, CPU) seconds of ``run()`` and how many runs were timed.

    ``run`` is repeated until the runs add up to :data:`_MIN_TIMED_S` (at most
    :data:`_MAX_RUNS` runs): one run of a small fleet lasts a few tens of milliseconds, and
    one slow scheduling of the machine moved its rate by a third.
    """
    runs = [_timed(run)]
    while sum(wall for wall, _ in runs) < _MIN_TIMED_S and len(runs) < _MAX_RUNS:
        runs.append(_timed(run))
    wall, cpu = min(runs)
    return wall, cpu, len(runs)


def _engine_steps(region: Region, n_homes: int, budget_s: float, step_s: float) -> int:
    """Steps of the step-by-step engine that fit about ``budget_s`` (from a 3-step probe)."""
    probe = _scenario(region, n_homes, days=3 * step_s / 86_400.0, jobs=_NO_JOBS)
    fleet, jobs = sample_fleet(probe), sample_jobs(probe)
    # The first run loads the engine's kernels for this fleet size (one thread, or numba's
    # threads from 50,000 homes): time the second.
    run_policy(probe, fleet, jobs, "mining-only")
    wall_s, _ = _timed(lambda: run_policy(probe, fleet, jobs, "mining-only"))
    return max(3, int(budget_s / (wall_s / 3)))


def _size(region: Region, n_homes: int, days: float, budget_s: float) -> dict[str, Any]:
    scenario = _scenario(region, n_homes, days=days, jobs=_NO_JOBS)
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    fused_wall_s, fused_cpu_s, fused_runs = _best_of(
        lambda: run_policy_fused(scenario, fleet, jobs, "mining-only")
    )
    fused_home_steps = n_homes * scenario.n_steps
    steps = min(scenario.n_steps, _engine_steps(region, n_homes, budget_s, scenario.step_s))
    short = _scenario(region, n_homes, days=steps * scenario.step_s / 86_400.0, jobs=_NO_JOBS)
    engine_wall_s, engine_cpu_s = _timed(lambda: run_policy(short, fleet, jobs, "mining-only"))
    engine_home_steps = n_homes * short.n_steps
    fused_rate = fused_home_steps / fused_wall_s
    engine_rate = engine_home_steps / engine_wall_s
    return {
        "homes": n_homes,
        "fused_steps": scenario.n_steps,
        "fused_seconds": fused_wall_s,
        "fused_runs": fused_runs,
        "fused_home_steps_per_s": fused_rate,
        "fused_home_steps_per_cpu_s": fused_home_steps / fused_cpu_s,
        "engine_steps": short.n_steps,
        "engine_seconds": engine_wall_s,
        "engine_home_steps_per_s": engine_rate,
        "engine_home_steps_per_cpu_s": engine_home_steps / engine_cpu_s,
        "ratio": fused_rate / engine_rate,
        "ratio_cpu": (fused_home_steps / fused_cpu_s) / (engine_home_steps / engine_cpu_s),
        "load_average_1min_after": os.getloadavg()[0],
    }


def _with_jobs(
    region: Region, n_homes: int, *, jobs_per_home_h: float, days: float, what: str
) -> tuple[dict[str, Any], list[int]]:
    """Time the fused engine against the engine on ``heat-aware`` with a job stream.

    Both are warmed up first (on a short run of the same stream, which loads the scheduling
    kernels). Return the result, and the steps the fused run reported its progress at (the
    ends of its bursts and of the engine's own steps).
    """
    stream = JobStream(rate_per_h=jobs_per_home_h * n_homes)
    scenario = _scenario(region, n_homes, days=days, jobs=stream)
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    warm = _scenario(region, n_homes, days=0.02, jobs=stream)
    for run in (run_policy_fused, run_policy):
        run(warm, sample_fleet(warm), sample_jobs(warm), "heat-aware")
    progressed: list[int] = []
    fused_s, _ = _timed(
        lambda: run_policy_fused(scenario, fleet, jobs, "heat-aware", progress=progressed.append)
    )
    engine_s, _ = _timed(lambda: run_policy(scenario, fleet, jobs, "heat-aware"))
    home_steps = n_homes * scenario.n_steps
    return {
        "what": what,
        "homes": n_homes,
        "steps": scenario.n_steps,
        "fused_home_steps_per_s": home_steps / fused_s,
        "engine_home_steps_per_s": home_steps / engine_s,
        "ratio": engine_s / fused_s,
    }, progressed


def _scheduling_bound(region: Region, n_homes: int) -> dict[str, Any]:
    result, _ = _with_jobs(
        region,
        n_homes,
        jobs_per_home_h=0.15,
        days=0.25,
        what="heat-aware, 0.15 jobs per home and hour, 6 h: most steps are claim steps (claims "
        "in Python, the rest of the step in the fused kernel)",
    )
    return result


def _leases_held(region: Region, n_homes: int) -> dict[str, Any]:
    """``heat-aware`` with few arrivals (one every 2 steps): most steps hold a lease, few claim."""
    result, progressed = _with_jobs(
        region,
        n_homes,
        jobs_per_home_h=0.003,
        days=0.5,
        what="heat-aware, 0.003 jobs per home and hour (one every 2 steps), 12 h: leased "
        "tasks run in the fused kernel between claims",
    )
    steps = np.diff(np.array([0, *progressed]))
    return result | {"steps_in_bursts_of_2_or_more": int(np.sum(steps[steps > 1]))}


def _year_slice(region: Region, days: float, homes: int = _YEAR_HOMES) -> dict[str, Any]:
    """Run ``days`` of the year's own case (1e5 homes, 60 s steps) and scale them to a year.

    With ``homes`` other than 1e5, the same seasons on that fleet (the ``goal`` case: 1e6
    homes); its year estimate is still that of 1e5 homes at the rate measured.

    The days are split over four seasons (from mid-January, mid-April, mid-July and
    mid-October), since a winter day costs more than a summer one (heaters that work, not
    idle). The estimate from the best rate above is at 300 s steps and, at 1e6 homes over half
    a day, carries the run's setup; the slices have neither bias.
    """
    wall_s = cpu_s = 0.0
    steps = 0
    for start_day in _SEASON_START_DAYS:
        scenario = _scenario(
            region,
            homes,
            days=days / len(_SEASON_START_DAYS),
            jobs=_NO_JOBS,
            step_s=60.0,
            start_s=start_day * 86_400.0,
        )
        fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
        wall, cpu = _timed(
            functools.partial(run_policy_fused, scenario, fleet, jobs, "mining-only")
        )
        wall_s, cpu_s, steps = wall_s + wall, cpu_s + cpu, steps + scenario.n_steps
    home_steps = homes * steps
    rate = home_steps / wall_s
    return {
        "homes": homes,
        "steps": steps,
        "step_s": 60.0,
        "season_start_days": list(_SEASON_START_DAYS),
        "seconds": wall_s,
        "home_steps_per_s": rate,
        "home_steps_per_cpu_s": home_steps / cpu_s,
        "year_estimate_s": _YEAR_HOMES * _YEAR_STEPS / rate,
        "load_average_1min_after": os.getloadavg()[0],
    }


def _cold_compile_s() -> float | None:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(Path(__file__).parent))
        done = subprocess.run(
            [sys.executable, "-c", _COLD_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return None
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(_SIZES))
    parser.add_argument("--days", type=float, default=1.0, help="days the fused engine runs")
    parser.add_argument("--budget-s", type=float, default=10.0, help="baseline seconds per size")
    parser.add_argument("--scheduling-homes", type=int, default=2_000)
    parser.add_argument(
        "--year-slice-days",
        type=float,
        default=1.0,
        help="days of 1e5 homes at 60 s steps run to estimate the year from (0: none)",
    )
    parser.add_argument(
        "--goal-homes",
        type=int,
        default=_GOAL_HOMES,
        help="homes of the goal case: the year slice's days and seasons on this fleet (0: none)",
    )
    parser.add_argument(
        "--skip-cold-compile", action="store_true", help="do not compile from an empty cache"
    )
    args = parser.parse_args()
    region = _region()
    load_before = os.getloadavg()
    warm = _scenario(region, 20, days=0.05, jobs=_NO_JOBS)
    first_call_s, _ = _timed(
        lambda: run_policy_fused(warm, sample_fleet(warm), sample_jobs(warm), "mining-only")
    )
    rows = [_size(region, n, args.days, args.budget_s) for n in args.sizes]
    scheduling = _scheduling_bound(region, args.scheduling_homes)
    leases = _leases_held(region, args.scheduling_homes)
    year_slice = _year_slice(region, args.year_slice_days) if args.year_slice_days > 0 else None
    goal = (
        _year_slice(region, args.year_slice_days, args.goal_homes)
        if args.year_slice_days > 0 and args.goal_homes > 0
        else None
    )
    best = max(row["fused_home_steps_per_s"] for row in rows)
    result = {
        "benchmark": "simulate_fused",
        "what": "fused engine (sim.fused) against the step-by-step engine (sim.engine), "
        "home-steps per second, mining-only, no jobs, 300 s steps, same process",
        "baseline": "engine_home_steps_per_s: heatgrid.sim.engine.run_policy on the same fleet",
        "sizes": rows,
        "ratio": {str(row["homes"]): row["ratio"] for row in rows},
        "scheduling_bound": scheduling,
        "leases_held": leases,
        "first_call_s": first_call_s,
        "first_call_note": "the warm-up's run: loads the kernels from numba's cache, or compiles "
        "them on the first run after an install; kept out of the rates",
        "cold_compile_s": None if args.skip_cold_compile else _cold_compile_s(),
        "goal_home_steps_per_s": _GOAL_HOME_STEPS_PER_S,
        "goal": goal,
        "goal_fraction": None
        if goal is None
        else goal["home_steps_per_s"] / _GOAL_HOME_STEPS_PER_S,
        "goal_note": "the goal case is the year's own workload (60 s steps, a day split over "
        "four seasons, mining-only) on --goal-homes homes (1e6 by default); the sizes above are "
        "the hardest case (300 s steps from 15 January, the coldest weeks), whose best rate "
        "best_home_steps_per_s gives best_fraction",
        "best_home_steps_per_s": best,
        "best_fraction": best / _GOAL_HOME_STEPS_PER_S,
        "year_of_1e5_homes_at_60_s_estimate_s": _YEAR_HOMES * _YEAR_STEPS / best,
        "year_of_1e5_homes_at_300_s_estimate_s": _YEAR_HOMES * _YEAR_STEPS / 5 / best,
        "year_slice": year_slice,
        "year_slice_note": "days of the year's own case (1e5 homes, 60 s steps, mining-only) "
        "on the fused engine, split over four seasons, scaled to 525,600 steps: the year "
        "estimate without the 300 s steps and the setup of the runs above",
        "threads": numba.get_num_threads(),
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
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
