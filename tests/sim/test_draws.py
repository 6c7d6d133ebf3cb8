"""Scenario validation and the seeded draws of homes, devices, departures and jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import numpy as np
import pytest

from heatgrid.core.catalog import load_catalog
from heatgrid.core.errors import InputError
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.fused import run_policy_fused
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.scenario import JobStream, Region, Scenario


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_homes": 0}, "n_homes"),
        ({"n_homes": 2.5}, "n_homes"),
        ({"days": -1.0}, "days"),
        ({"days": 0.001}, "at least one step"),
        ({"step_s": 0.0}, "step_s"),
        ({"regions": ()}, "regions"),
        ({"days": 400.0}, "does not cover"),
        ({"region_weights": (1.0, 2.0)}, "one weight per region"),
        ({"heater_mix": {"Avalon Q": 0.0}}, "heater_mix"),
        ({"rack_share": 1.0}, "rack_share"),
        ({"pue": 0.9}, "pue"),
        ({"displaced": "coal"}, "displaced"),
        ({"claim_batch": 0}, "claim_batch"),
    ],
)
def test_bad_scenarios_are_refused_by_name(
    make_scenario: Callable[..., Scenario], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        make_scenario(**overrides)


def test_bad_job_streams_and_regions_are_refused() -> None:
    with pytest.raises(InputError, match="median_j"):
        JobStream(median_j=0.0)
    with pytest.raises(InputError, match="arrivals_end_fraction"):
        JobStream(arrivals_end_fraction=0.0)
    with pytest.raises(InputError, match="3600"):
        Region("x", np.array([0.0, 1800.0]), np.array([1.0, 2.0]), 50.0)


def test_the_same_seed_draws_the_same_fleet_and_jobs(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario()
    first, second = sample_fleet(scenario), sample_fleet(scenario)
    for field in fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), field.name
    jobs_a, jobs_b = sample_jobs(scenario), sample_jobs(scenario)
    for field in fields(jobs_a):
        assert np.array_equal(getattr(jobs_a, field.name), getattr(jobs_b, field.name))
    other = sample_fleet(make_scenario(seed=8))
    assert not np.array_equal(first.ua_w_per_k, other.ua_w_per_k)


def test_the_fleet_follows_the_catalog_and_the_physics_ranges(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(n_homes=300, share_1r1c=0.5)
    fleet = sample_fleet(scenario)
    catalog = load_catalog()
    n = fleet.n_homes
    assert fleet.n_racks == 30
    assert list(fleet.kind[n:]) == ["rack"] * 30
    for device in range(fleet.n_devices):
        model = fleet.models[int(fleet.model[device])]
        assert catalog.find(model.name).max_power_w == fleet.devices.max_power_w[device]
        assert model.min_power_w == fleet.devices.min_power_w[device]
        assert model.vram_gb == fleet.vram_gb[device]
        levels_w = fleet.devices.power_levels_w[device]
        assert tuple(levels_w[~np.isnan(levels_w)]) == model.power_levels_w
        assert fleet.kind[device] == (model.kind if device < n else "rack")
    assert set(fleet.kind[:n]) <= {"asic", "gpu", "cpu"}
    assert {"asic", "gpu"} <= set(fleet.kind[:n])
    assert np.all((fleet.time_constant_h >= 10.0) & (fleet.time_constant_h <= 60.0))
    heater_w = fleet.devices.max_power_w[:n]
    assert np.all(fleet.ua_w_per_k <= heater_w / 25.0 + 1e-9)
    assert np.all(fleet.ua_w_per_k >= 0.5 * heater_w / 25.0 - 1e-9)
    # A one-node home has no mass coupling in the fused kernel; a two-node home has.
    assert np.all(fleet.coefficients[1:4, fleet.one_node] == 0.0)
    assert np.all(fleet.coefficients[1, ~fleet.one_node] > 0.0)
    assert np.all(fleet.mining_value_eur_per_kwh[fleet.kind != "asic"] == 0.0)
    assert np.all(fleet.mining_value_eur_per_kwh[fleet.kind == "asic"] > 0.0)
    assert np.all(fleet.offline_end_step > fleet.offline_start_step)
    assert np.all(np.diff(fleet.offline_start_step) >= 0)


def test_jobs_arrive_in_the_leading_span_with_capped_sizes(
    make_scenario: Callable[..., Scenario],
) -> None:
    stream = JobStream(rate_per_h=50.0, arrivals_end_fraction=0.5, cpu_ok_share=0.3)
    scenario = make_scenario(days=2.0, jobs=stream)
    jobs = sample_jobs(scenario)
    span_s = scenario.n_steps * scenario.step_s * 0.5
    assert 0.7 * 50 * 24 < jobs.count < 1.3 * 50 * 24
    assert np.all(np.diff(jobs.arrival_ts) >= 0.0)
    assert jobs.arrival_ts[0] >= scenario.start_ts
    assert jobs.arrival_ts[-1] <= scenario.start_ts + span_s
    assert np.all(jobs.size_j <= stream.max_size_factor * stream.median_j)
    assert np.all(jobs.min_vram_gb[jobs.cpu_ok] == 0.0)
    assert float(np.median(jobs.size_j)) == pytest.approx(stream.median_j, rel=0.25)
    assert set(np.unique(jobs.priority)) <= {0, 1}


def test_a_whole_weather_year_runs(make_scenario: Callable[..., Scenario], lyon: Region) -> None:
    """8,760 h from the weather's first hour: the last heat windows hold the last hour."""
    start_ts = float(lyon.timestamps_ts[0]) - 3600.0
    scenario = make_scenario(
        start_ts=start_ts, days=365.0, step_s=3600.0, n_homes=2, jobs=JobStream(rate_per_h=0.01)
    )
    assert scenario.n_steps == 8760
    run = run_policy_fused(scenario, sample_fleet(scenario), sample_jobs(scenario), "heat-aware")
    assert run.time_ts.size == 8760
    assert np.all(np.isfinite(run.room_mean_c))
    late_ts = np.array([float(lyon.timestamps_ts[-1]) + 5 * 3600.0])
    assert lyon.outdoor_at(late_ts)[0] == lyon.outdoor_temp_c[-1]
