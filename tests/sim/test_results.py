"""Summaries of a run: the shares, percentiles, revenue and CO2 add up."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from heatgrid.sim.results import json_safe, summarize
from heatgrid.sim.run import run_one
from heatgrid.sim.scenario import Scenario


def test_summary_is_consistent_with_the_raw_run(make_scenario: Callable[..., Scenario]) -> None:
    scenario = make_scenario(n_homes=50)
    run = run_one(scenario, "heat-aware")
    summary = summarize(scenario, run)
    task_kwh = summary["heater_task_energy_kwh"] + summary["rack_task_energy_kwh"]
    assert summary["task_energy_kwh"] == pytest.approx(task_kwh)
    assert summary["useful_heat_pct"] == pytest.approx(
        100.0 * summary["heater_task_energy_kwh"] / task_kwh
    )
    assert 0.0 <= summary["goodput_pct"] <= 100.0
    hours = scenario.n_steps * scenario.step_s / 3600.0
    kept_kwh = task_kwh - summary["lost_task_energy_kwh"]
    assert summary["goodput_kwh_per_h"] == pytest.approx(kept_kwh / hours)
    assert (
        summary["job_latency_p50_h"] <= summary["job_latency_p95_h"] <= summary["job_latency_p99_h"]
    )
    assert summary["comfort_mean_k_h"] == pytest.approx(float(np.mean(run.comfort_k_h)))
    assert summary["heat_delivered_kwh"] == pytest.approx(float(np.sum(run.home_energy_kwh)))
    carbon = scenario.regions[0].carbon_g_per_kwh
    expected_kg = (
        (summary["heat_delivered_kwh"] + float(np.sum(run.rack_energy_kwh)) * scenario.pue)
        * carbon
        / 1000.0
    )
    assert summary["co2_kg"] == pytest.approx(expected_kg)
    assert summary["co2_saved_kg"] == pytest.approx(summary["baseline_co2_kg"] - expected_kg)
    assert summary["co2_saved_kg"] > 0.0  # heat reused beats a data centre plus a gas boiler
    assert summary["owner_revenue_eur"] >= summary["mining_revenue_eur"] > 0.0
    json.dumps(json_safe(summary), allow_nan=False)


def test_json_safe_replaces_non_finite_numbers() -> None:
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "x"}
    assert json_safe(value) == {"a": None, "b": [1.0, None, {"c": None}], "d": "x"}
