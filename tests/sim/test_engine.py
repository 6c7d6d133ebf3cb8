"""The fleet loop: reproducible, conserving energy and jobs (one home against the agent's own
control tick: ``test_single_home.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.sim.engine import RawRun, _Windows, heat_windows_w, run_policy
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.run import run_one, simulate
from heatgrid.sim.scenario import JobStream, Region, Scenario

_J_PER_KWH = 3.6e6


def _assert_runs_equal(a: RawRun, b: RawRun) -> None:
    for field in fields(a):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, np.ndarray):
            assert np.array_equal(left, right, equal_nan=True), field.name
        else:
            assert left == right, field.name


def test_the_same_seed_gives_the_same_run_bit_for_bit(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(n_homes=60, departure_rate_per_day=2.0)
    for policy in ("heat-aware", "fifo"):
        _assert_runs_equal(run_one(scenario, policy), run_one(scenario, policy))
    first = simulate(scenario, ["heat-aware", "fifo"])
    second = simulate(scenario, ["heat-aware", "fifo"])
    assert first.summaries == second.summaries


def test_heat_aware_beats_fifo_on_comfort_and_useful_heat(
    make_scenario: Callable[..., Scenario],
) -> None:
    """Acceptance: better comfort and more useful heat, with the same jobs completed."""
    scenario = make_scenario(n_homes=100, days=2.0, jobs=JobStream(rate_per_h=10.0))
    summaries = simulate(scenario, ["heat-aware", "fifo"]).summaries
    heat_aware, fifo = summaries["heat-aware"], summaries["fifo"]
    submitted = heat_aware["jobs_submitted"]
    assert submitted == fifo["jobs_submitted"] > 100
    assert heat_aware["jobs_completed"] == fifo["jobs_completed"] == submitted
    assert heat_aware["comfort_mean_k_h"] < fifo["comfort_mean_k_h"]
    assert heat_aware["useful_heat_pct"] > fifo["useful_heat_pct"]


def test_energy_and_jobs_are_conserved(make_scenario: Callable[..., Scenario]) -> None:
    scenario = make_scenario(n_homes=60, departure_rate_per_day=3.0)
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    run = run_policy(scenario, fleet, jobs, "fifo")
    step_h = scenario.step_s / 3600.0
    heater_kwh = float(np.sum(run.home_energy_kwh))
    rack_kwh = float(np.sum(run.rack_energy_kwh))
    assert heater_kwh == pytest.approx(float(np.sum(run.heat_w)) * step_h / 1000.0)
    assert rack_kwh == pytest.approx(float(np.sum(run.rack_w)) * step_h / 1000.0)
    # Task energy is part of the devices' energy: compute = useful heat (heaters) + wasted.
    assert run.heater_task_j / _J_PER_KWH <= heater_kwh + 1e-9
    assert run.rack_task_j / _J_PER_KWH <= rack_kwh + 1e-9
    done = ~np.isnan(run.done_ts)
    kept_j = run.heater_task_j + run.rack_task_j - run.lost_j
    assert kept_j >= float(np.sum(jobs.size_j[done])) - 1e-6
    assert kept_j <= float(np.sum(jobs.size_j)) + 1e-6
    assert np.all(run.done_ts[done] >= run.arrival_ts[done])
    assert run.leases_lost > 0
    assert run.mining_revenue_eur.sum() > 0.0
    assert np.all(run.heat_w <= float(np.sum(fleet.devices.max_power_w[: fleet.n_homes])))


def test_mining_only_leases_nothing_and_asics_still_mine(
    make_scenario: Callable[..., Scenario],
) -> None:
    run = run_one(make_scenario(), "mining-only")
    assert run.claims == 0
    assert run.heater_task_j == run.rack_task_j == 0.0
    assert np.all(np.isnan(run.done_ts))
    assert run.mining_revenue_eur.sum() > 0.0


def test_unknown_policy_is_refused(make_scenario: Callable[..., Scenario]) -> None:
    with pytest.raises(InputError, match="policy must be one of"):
        run_one(make_scenario(), "random")
    with pytest.raises(InputError, match="repeat"):
        simulate(make_scenario(), ["fifo", "fifo"])


@settings(max_examples=12)
@given(
    seed=st.integers(0, 2**32 - 1),
    policy=st.sampled_from(["heat-aware", "fifo", "mining-only"]),
    n_homes=st.integers(1, 12),
    step_s=st.sampled_from([60.0, 300.0, 900.0]),
)
def test_accounting_holds_for_any_small_fleet(
    lyon: Region, *, seed: int, policy: str, n_homes: int, step_s: float
) -> None:
    """Property: powers within limits, task energy within device energy, jobs conserved."""
    scenario = Scenario(
        n_homes=n_homes,
        start_ts=float(lyon.timestamps_ts[0]) + 20 * 86_400.0,
        days=0.25,
        step_s=step_s,
        regions=(lyon,),
        seed=seed,
        rack_share=0.3,
        departure_rate_per_day=4.0,
        jobs=JobStream(rate_per_h=4.0),
    )
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    run = run_policy(scenario, fleet, jobs, policy)
    max_heat_w = float(np.sum(fleet.devices.max_power_w[:n_homes]))
    assert np.all((run.heat_w >= 0.0) & (run.heat_w <= max_heat_w + 1e-9))
    assert np.all(run.comfort_k_h >= 0.0)
    assert run.heater_task_j <= float(np.sum(run.home_energy_kwh)) * _J_PER_KWH + 1e-6
    assert run.rack_task_j <= float(np.sum(run.rack_energy_kwh)) * _J_PER_KWH + 1e-6
    assert 0.0 <= run.lost_j <= run.heater_task_j + run.rack_task_j + 1e-6
    done = ~np.isnan(run.done_ts)
    assert np.all(run.done_ts[done] >= run.arrival_ts[done])
    assert np.all(run.done_ts[done] <= scenario.start_ts + scenario.n_steps * step_s + 1e-6)
    kept_j = run.heater_task_j + run.rack_task_j - run.lost_j
    assert kept_j >= float(np.sum(jobs.size_j[done])) - 1e-6


def test_heat_windows_in_blocks_are_the_windows_of_all_at_once(
    make_scenario: Callable[..., Scenario],
) -> None:
    """A step's claims take their heaters' windows a block at a time (64, 128, …), same rows."""
    scenario = make_scenario(n_homes=300)
    fleet = sample_fleet(scenario)
    now_ts = scenario.start_ts + 7 * 3600.0 + 120.0
    heaters = np.random.default_rng(3).permutation(300)[:250].astype(np.int64)
    whole = heat_windows_w(scenario, fleet, heaters, now_ts)
    windows = _Windows(scenario, fleet, heaters, now_ts)
    rows = np.array([windows.next_w() for _ in heaters])
    assert rows.shape == whole.shape
    assert np.array_equal(rows, whole)
    assert windows._done == 250  # blocks of 64, 128, then the last 58
    assert np.any(whole > 0.0)
