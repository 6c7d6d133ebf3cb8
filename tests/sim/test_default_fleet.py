"""The default fleet in January: homes are comfortable (their own heating backs up a compute
heater without work) and racks get the overflow the heat-aware policy keeps for them."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from heatgrid.cli.main import main
from heatgrid.core.prices import household_prices
from heatgrid.sim.jobspec import parse_job_stream
from heatgrid.sim.run import simulate
from heatgrid.sim.scenario import Region, Scenario

HOMES = 400


@pytest.fixture(scope="module")
def default_january(make_scenario: Callable[..., Scenario]) -> dict[str, object]:
    scenario = make_scenario(n_homes=HOMES, days=1.0, jobs=parse_job_stream("", HOMES), seed=0)
    return simulate(scenario, ["heat-aware"]).summaries["heat-aware"]


def test_homes_are_comfortable_and_the_report_shows_the_compute_share(
    default_january: dict[str, float],
) -> None:
    summary = default_january
    assert summary["comfort_mean_k_h"] < 3.0  # was about 21 K·h per home and day
    assert summary["backup_heat_kwh"] > 0.0
    share = summary["compute_heat_share_pct"]
    delivered, backup = summary["heat_delivered_kwh"], summary["backup_heat_kwh"]
    assert share == pytest.approx(100.0 * delivered / (delivered + backup))
    assert 50.0 < share < 100.0


def test_racks_get_the_work_heaters_leave_past_max_wait(
    default_january: dict[str, float],
) -> None:
    summary = default_january
    assert summary["rack_task_energy_kwh"] > 0.0
    assert summary["heater_task_energy_kwh"] > summary["rack_task_energy_kwh"]
    assert summary["jobs_completed"] > 0.9 * summary["jobs_submitted"]


def test_without_backup_heating_homes_whose_heater_has_no_task_get_cold(
    make_scenario: Callable[..., Scenario], default_january: dict[str, float]
) -> None:
    scenario = make_scenario(
        n_homes=HOMES, days=1.0, jobs=parse_job_stream("", HOMES), seed=0, backup_heating=False
    )
    bare = simulate(scenario, ["heat-aware"]).summaries["heat-aware"]
    assert bare["backup_heat_kwh"] == 0.0
    assert bare["compute_heat_share_pct"] == pytest.approx(100.0)
    assert bare["comfort_mean_k_h"] > 3.0 * default_january["comfort_mean_k_h"]
    assert np.isfinite(bare["comfort_p95_k_h"])
    # In January a room outside the band is a room too cold.
    assert bare["cold_mean_k_h"] > 0.95 * bare["comfort_mean_k_h"]
    assert bare["cold_p95_k_h"] <= bare["comfort_p95_k_h"]


def test_in_july_rooms_are_too_warm_not_too_cold(
    make_scenario: Callable[..., Scenario], lyon: Region
) -> None:
    """A summer day: the rooms warm past the band (no heater cools), and the report says so."""
    july_ts = float(lyon.timestamps_ts[0]) + 195 * 86_400.0
    scenario = make_scenario(
        n_homes=100, days=1.0, start_ts=july_ts, jobs=parse_job_stream("", 100), seed=0
    )
    run = simulate(scenario, ["mining-only"])
    summary = run.summaries["mining-only"]
    assert summary["comfort_mean_k_h"] > 1.0
    assert summary["cold_mean_k_h"] < 0.05 * summary["comfort_mean_k_h"]
    raw = run.runs["mining-only"]
    assert np.all(raw.cold_k_h <= raw.comfort_k_h + 1e-12)
    assert summary["per_home"]["cold_k_h"]["mean"] == pytest.approx(summary["cold_mean_k_h"])


def test_owners_pay_their_regions_household_price(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--homes", "20", "--days", "0.25", "--weather", "Berlin", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    region = report["scenario"]["regions"][0]
    assert region["tariff_eur_per_kwh"] == pytest.approx(
        household_prices("DE").electricity_eur_per_kwh
    )
    summary = report["policies"]["heat-aware"]
    assert summary["owner_electricity_cost_eur"] == pytest.approx(
        summary["heat_delivered_kwh"] * region["tariff_eur_per_kwh"]
    )
