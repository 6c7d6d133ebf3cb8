"""Summaries of a run: the shares, percentiles, revenue and CO2 add up."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from heatgrid.core.economics import mining_revenue_btc
from heatgrid.sim.engine import run_policy
from heatgrid.sim.fleet import sample_fleet
from heatgrid.sim.jobs import sample_jobs
from heatgrid.sim.results import json_safe, summarize
from heatgrid.sim.run import run_one
from heatgrid.sim.scenario import JobStream, Scenario


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


def test_per_home_mining_revenue_is_the_economics_model(
    make_scenario: Callable[..., Scenario],
) -> None:
    """Each ASIC home earns mining_revenue_btc at its mean hashrate; the homes add up to the
    fleet's mining revenue (the arbiter's value per kWh)."""
    scenario = make_scenario(n_homes=40, jobs=JobStream(rate_per_h=0.0))
    fleet = sample_fleet(scenario)
    run = run_policy(scenario, fleet, sample_jobs(scenario), "mining-only")
    assert float(np.sum(run.home_mining_revenue_eur)) == pytest.approx(
        float(np.sum(run.mining_revenue_eur)), rel=1e-9
    )
    market, duration_s = scenario.market, scenario.n_steps * scenario.step_s
    asics = [i for i in range(fleet.n_homes) if fleet.kind[i] == "asic"]
    assert asics
    for home in asics:
        device = fleet.models[fleet.model[home]]
        assert device.efficiency_j_per_th is not None
        hashrate_ths = run.home_heat_kwh[home] * 3.6e6 / device.efficiency_j_per_th / duration_s
        btc = mining_revenue_btc(
            hashrate_ths,
            duration_s,
            market.difficulty,
            market.subsidy_btc,
            market.fees_btc_per_block,
        )
        expected_eur = btc * market.btc_price_usd / market.usd_per_eur
        assert run.home_mining_revenue_eur[home] == pytest.approx(expected_eur, rel=1e-12)
    others = [i for i in range(fleet.n_homes) if fleet.kind[i] != "asic"]
    assert np.all(run.home_mining_revenue_eur[others] == 0.0)


def test_per_home_distributions_add_up(make_scenario: Callable[..., Scenario]) -> None:
    scenario = make_scenario(n_homes=60)
    run = run_one(scenario, "heat-aware")
    summary = summarize(scenario, run)
    per_home = summary["per_home"]
    for values in per_home.values():
        points = [values[name] for name in ("p05", "p25", "p50", "p75", "p95")]
        assert points == sorted(points)
    heat = per_home["heat_delivered_kwh"]["mean"]
    assert heat * 60 == pytest.approx(summary["heat_delivered_kwh"])
    assert per_home["backup_heat_kwh"]["mean"] * 60 == pytest.approx(summary["backup_heat_kwh"])
    assert per_home["owner_revenue_eur"]["mean"] == pytest.approx(
        summary["owner_revenue_per_home_eur"]
    )
    assert per_home["electricity_cost_eur"]["mean"] * 60 == pytest.approx(
        summary["owner_electricity_cost_eur"]
    )
    assert per_home["net_cost_eur"]["mean"] == pytest.approx(
        per_home["electricity_cost_eur"]["mean"] - per_home["owner_revenue_eur"]["mean"]
    )
    assert per_home["comfort_k_h"]["mean"] == pytest.approx(summary["comfort_mean_k_h"])
    # Gas burns more CO2 per kWh of heat than a heat pump on a clean grid.
    assert summary["co2_saved_vs_gas_kg"] > summary["co2_saved_vs_heat_pump_kg"]
