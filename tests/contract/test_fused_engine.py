"""The fused engine (``sim.fused``) and the step-by-step engine (``sim.engine``) run the same rules.

For any small fleet, policy, job stream, departures and step, with results verified or not
(``Scenario.verification``), both give the same
:class:`~heatgrid.sim.engine.RawRun`: counts, claims, leases and job completion times equal,
every float within :data:`RTOL` of its series' scale. The differences are summation order
(chunked sums against NumPy's pairwise sums) and the thermal update compiled with and without
``fastmath``: about 1e-13 relative here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatgrid.core.control import decide_many
from heatgrid.sim import _fused_kernel as _kernel
from heatgrid.sim import fused
from heatgrid.sim.engine import RawRun, run_policy
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.fused import run_policy_fused
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.scenario import JobStream, Region, Scenario, Verification
from heatgrid.weather import synthetic_year

RTOL = 1e-9
"""Largest difference allowed, relative to the largest magnitude of the quantity (or 1)."""
_JANUARY_15_S = 14 * 86_400.0


def _region(city: str, carbon_g_per_kwh: float) -> Region:
    year = synthetic_year(city)
    return Region(
        name=city,
        timestamps_ts=year.timestamps_ts,
        outdoor_temp_c=year.outdoor_temp_c,
        carbon_g_per_kwh=carbon_g_per_kwh,
        tz_offset_h=year.tz_offset_h,
    )


_LYON = _region("Lyon", 60.0)
_MONTREAL = _region("Montreal", 30.0)


def _scenario(**overrides: Any) -> Scenario:
    values: dict[str, Any] = {
        "n_homes": 30,
        "start_ts": float(_LYON.timestamps_ts[0]) + _JANUARY_15_S,
        "days": 0.5,
        "regions": (_LYON,),
        "seed": 1,
    }
    values.update(overrides)
    return Scenario(**values)


def _differences(a: RawRun, b: RawRun) -> list[str]:
    """Return the fields where ``a`` and ``b`` differ beyond :data:`RTOL` (empty: equal)."""
    different = []
    for field in fields(a):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, np.ndarray):
            if left.shape != right.shape or not np.array_equal(np.isnan(left), np.isnan(right)):
                different.append(field.name)
                continue
            finite = ~np.isnan(left)
            scale = max(1.0, float(np.max(np.abs(left[finite]), initial=0.0)))
            if not np.allclose(left[finite], right[finite], rtol=0.0, atol=RTOL * scale):
                different.append(field.name)
        elif isinstance(left, float):
            if not np.isclose(left, right, rtol=RTOL, atol=RTOL):
                different.append(field.name)
        elif left != right:
            different.append(field.name)
    return different


def _both(scenario: Scenario, policy: str, **options: Any) -> tuple[RawRun, RawRun]:
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    return (
        run_policy(scenario, fleet, jobs, policy, **options),
        run_policy_fused(scenario, fleet, jobs, policy, **options),
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    n_homes=st.integers(1, 40),
    policy=st.sampled_from(["heat-aware", "fifo", "mining-only"]),
    rate_per_h=st.sampled_from([0.0, 0.5, 3.0]),
    departures_per_day=st.sampled_from([0.0, 3.0]),
    step_s=st.sampled_from([120.0, 300.0, 900.0]),
    backup_heating=st.booleans(),
    share_1r1c=st.sampled_from([0.0, 0.3, 1.0]),
    trusted_results=st.sampled_from([None, 0, 300]),
)
def test_the_fused_engine_gives_the_engines_run(  # noqa: PLR0917
    seed: int,
    n_homes: int,
    policy: str,
    rate_per_h: float,
    departures_per_day: float,
    step_s: float,
    backup_heating: bool,
    share_1r1c: float,
    trusted_results: int | None,
) -> None:
    scenario = _scenario(
        seed=seed,
        n_homes=n_homes,
        jobs=JobStream(rate_per_h=rate_per_h),
        departure_rate_per_day=departures_per_day,
        step_s=step_s,
        backup_heating=backup_heating,
        share_1r1c=share_1r1c,
        verification=None
        if trusted_results is None
        else Verification(trusted_results=trusted_results),
    )
    engine, fused = _both(scenario, policy)
    assert _differences(engine, fused) == []


def test_chunks_regions_and_recorded_rooms_agree() -> None:
    """Over one chunk of homes (256), two regions in two time zones, every room recorded."""
    scenario = _scenario(
        n_homes=300,
        days=0.25,
        regions=(_LYON, _MONTREAL),
        departure_rate_per_day=4.0,
        jobs=JobStream(rate_per_h=2.0),
    )
    for policy in ("mining-only", "heat-aware"):
        engine, fused = _both(scenario, policy, record_rooms=True)
        assert _differences(engine, fused) == []
        assert fused.room_temp_c.shape == (scenario.n_steps, 300)


def test_the_fused_run_is_the_same_bit_for_bit_on_one_thread_or_all() -> None:
    """Reproducible: homes run and are summed in fixed chunks, whatever the thread count."""
    scenario = _scenario(
        n_homes=600, days=0.25, departure_rate_per_day=4.0, jobs=JobStream(rate_per_h=2.0)
    )
    threads = numba.get_num_threads()
    for policy in ("mining-only", "heat-aware"):  # bursts only; bursts and claim steps
        runs = []
        for count in (1, threads):
            numba.set_num_threads(count)
            try:
                fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
                runs.append(run_policy_fused(scenario, fleet, jobs, policy))
            finally:
                numba.set_num_threads(threads)
        one, every = runs
        for field in fields(one):
            left, right = getattr(one, field.name), getattr(every, field.name)
            if isinstance(left, np.ndarray):
                assert np.array_equal(left, right, equal_nan=True), (policy, field.name)
            else:
                assert left == right, (policy, field.name)


def test_leased_tasks_run_in_bursts_and_leases_end_in_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps with leased tasks and no claim run in the kernel: completions, expiries, hand-backs.

    Bursts start with leases held, some end at a lease that ends (run again up to there), and
    the run still equals the engine's: the kernel's task steps are the queue's.
    """
    seen = {"leased_bursts": 0, "runs": 0, "bursts": 0}
    burst, run_burst = fused._FusedLoop._burst, fused._FusedLoop._run_burst

    def counted_burst(loop: Any, k0: int, k1: int) -> int:
        seen["leased_bursts"] += int(np.any(loop.queue.task_of >= 0) and k1 - k0 > 1)
        seen["bursts"] += 1
        return burst(loop, k0, k1)

    def counted_run(loop: Any, k0: int, k1: int) -> Any:
        seen["runs"] += 1
        return run_burst(loop, k0, k1)

    monkeypatch.setattr(fused._FusedLoop, "_burst", counted_burst)
    monkeypatch.setattr(fused._FusedLoop, "_run_burst", counted_run)
    scenario = _scenario(
        n_homes=40, days=1.0, departure_rate_per_day=3.0, jobs=JobStream(rate_per_h=2.0)
    )
    engine, fused_run = _both(scenario, "heat-aware")
    assert _differences(engine, fused_run) == []
    assert engine.leases_lost > 0
    assert engine.leases_handed_back > 0
    assert seen["leased_bursts"] > 0
    assert seen["runs"] > seen["bursts"]  # some bursts ended at a lease that ended


def test_claim_steps_run_in_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step where claims lease tasks is its claims, then a burst from that step on.

    The engine's own step never runs in the fused engine, and the run is the engine's: claims,
    leases and completions equal.
    """
    scenario = _scenario(n_homes=40, departure_rate_per_day=3.0, jobs=JobStream(rate_per_h=6.0))
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    engine = run_policy(scenario, fleet, jobs, "heat-aware")

    def refused(loop: Any, k: int) -> None:
        raise AssertionError(f"the engine's step ran at step {k}")

    monkeypatch.setattr(fused._FusedLoop, "step", refused)
    fused_run = run_policy_fused(scenario, fleet, jobs, "heat-aware")
    assert engine.claims > 10
    assert np.count_nonzero(~np.isnan(engine.done_ts)) > 0
    assert _differences(engine, fused_run) == []


def test_short_bursts_give_the_run_of_long_ones() -> None:
    scenario = _scenario(n_homes=20, jobs=JobStream(rate_per_h=0.0))
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    long = run_policy_fused(scenario, fleet, jobs, "mining-only", burst_steps=10_000)
    short = run_policy_fused(scenario, fleet, jobs, "mining-only", burst_steps=7)
    assert _differences(long, short) == []


def test_one_step_bursts_give_the_steps_of_long_ones_bit_for_bit() -> None:
    """Bursts of one step carry the state and the lookups over from the last: same steps.

    The kernel updates the loop's state in place and keeps each home's schedule and gains
    lookups from one burst to the next (valid until the instant they were given for); a day
    of one-step bursts crosses the schedules' and the away homes' change points. Every per-step
    series is the same bit for bit (the per-home totals are added per burst, so only to
    rounding).
    """
    scenario = _scenario(n_homes=40, days=1.0, jobs=JobStream(rate_per_h=0.0))
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    long = run_policy_fused(scenario, fleet, jobs, "mining-only", record_rooms=True)
    short = run_policy_fused(scenario, fleet, jobs, "mining-only", record_rooms=True, burst_steps=1)
    assert np.ptp(long.setpoint_mean_c) > 0.5  # the schedules change within the day
    for name in ("room_temp_c", "room_p05_c", "setpoint_mean_c", "demand_w", "heat_w"):
        assert np.array_equal(getattr(long, name), getattr(short, name)), name
    assert _differences(long, short) == []


@pytest.mark.parametrize("step", [1, 37, 100])
def test_a_claim_steps_demand_is_decide_manys_bit_for_bit(step: int) -> None:
    """The demand a claim step's claims read is the one the engine's decide_many gives.

    After ``step`` steps of bursts (the state and the kept lookups of a run), the kernel's
    demand_rows gives every home the heat power decide_many gives it, bit for bit.
    """
    scenario = _scenario(n_homes=60, days=1.0, jobs=JobStream(rate_per_h=0.0))
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    loop = fused._FusedLoop(scenario, fleet, jobs, "mining-only", False)
    k = 0
    while k < step:
        k = loop._burst(k, min(step, k + 7))
    now = float(loop.time_ts[step])
    _, command = decide_many(loop.thermostat, loop._observation_at(now), now, fleet.thermostat)
    demand_w = np.full(fleet.n_homes, np.nan)
    state = loop._state
    _kernel.demand_rows(
        np.arange(fleet.n_homes),
        now,
        loop._homes,
        loop._config,
        loop._schedule,
        state.thermostat,
        state.rooms,
        state.lookups,
        demand_w,
    )
    assert np.count_nonzero(command.heat_power_w) > 0
    assert np.array_equal(demand_w, command.heat_power_w)


def test_the_comparison_sees_a_changed_rule() -> None:
    """A run under another rule (no backup heating) is told apart: the check can fail."""
    scenario = _scenario(n_homes=20)
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    engine = run_policy(scenario, fleet, jobs, "mining-only")
    changed = _scenario(n_homes=20, backup_heating=False)
    fused = run_policy_fused(changed, fleet, jobs, "mining-only")
    assert "comfort_k_h" in _differences(engine, fused)


def test_bad_burst_length_is_refused() -> None:
    scenario = _scenario(n_homes=2)
    fleet, jobs = sample_fleet(scenario), sample_jobs(scenario)
    with pytest.raises(ValueError, match="burst_steps"):
        run_policy_fused(scenario, fleet, jobs, "fifo", burst_steps=0)
