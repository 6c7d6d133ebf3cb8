"""Summaries of a run: comfort, job latency, goodput, useful heat, revenue and CO2.

* **Comfort**: degree-hours per home outside ``setpoint ± comfort_band_k`` (the room air at the
  end of each step against the setpoint in force); the fleet's mean and 95th percentile, of
  all of them and of those below the band (too cold: the heating fell short; the rest is a
  room too warm, in summer mostly the weather, which no heater can answer).
* **Jobs**: completion time (done − arrival) percentiles of the jobs completed, in hours.
* **Goodput**: task energy kept (not lost with a lease) per hour of the run, and as a share of
  the task energy burned.
* **Heat**: the heaters' energy (all of it heat), the homes' own backup heating (when
  ``backup_heating``: the demand of homes whose compute heater has no work) and the compute
  share, heaters over heaters plus backup.
* **Useful heat**: share of the task energy burned in heaters (whose rooms asked for that heat)
  rather than in racks (whose heat is wasted).
* **Revenue**: mining revenue of the ASIC heaters (the arbiter's mining value per kWh) and
  compute revenue at ``compute_price_eur_per_kwh`` on the task energy kept; the owners earn the
  mining and the compute done in their homes and pay their region's ``tariff_eur_per_kwh``
  (or the scenario's) for the heaters.
* **CO2** (:mod:`heatgrid.core.heat_value`): the fleet emits the grid's intensity on the
  heaters' energy and on the racks' energy times the PUE. The baseline runs the same compute
  and mining in a data centre (energy × PUE × grid intensity) and heats the homes with
  ``displaced`` heating for the same heat; the saving is the difference. The saving is also
  given against gas boilers and against heat pumps whatever ``displaced`` says.
* **Per home** (``per_home``, what an investor asks of a fleet): the distribution over homes
  (mean and 5/25/50/75/95th percentiles) of the heat each heater delivered, the backup heat,
  the mining revenue (:func:`heatgrid.sim.engine.home_mining_revenue_eur`, the model of
  ``heatgrid economics``), the owner's revenue (mining plus compute on the task energy burned
  in the home), the electricity bill of the heater, the net cost (bill − revenue) and the
  comfort degree-hours (all, and those below the band).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from heatgrid.core.heat_value import HeatingAlternative, displaced_co2_kg
from heatgrid.sim.engine import RawRun
from heatgrid.sim.scenario import Scenario

__all__ = [
    "PER_HOME_PERCENTILES",
    "json_safe",
    "per_home",
    "per_home_net_cost_eur",
    "summarize",
]

_J_PER_KWH = 3.6e6
_S_PER_H = 3600.0


def _alternative(name: str) -> HeatingAlternative:
    if name == "resistive":
        return "resistive"
    if name == "heat-pump":
        return "heat-pump"
    return "gas"


def _percentile(values: np.ndarray[Any, Any], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


_COMPARED: tuple[HeatingAlternative, ...] = ("gas", "heat-pump")
PER_HOME_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
"""Percentiles of the per-home distributions in ``per_home``."""


def _distribution(values: np.ndarray[Any, Any]) -> dict[str, float]:
    points = np.percentile(values, PER_HOME_PERCENTILES)
    result = {"mean": float(np.mean(values))}
    pairs = zip(PER_HOME_PERCENTILES, points, strict=True)
    result.update({f"p{q:02.0f}": float(v) for q, v in pairs})
    return result


def per_home(scenario: Scenario, run: RawRun) -> dict[str, dict[str, float]]:
    """Return the distribution over homes of heat, revenue, bill, net cost and comfort.

    Parameters
    ----------
    scenario : Scenario
        What was simulated (compute price, tariffs).
    run : RawRun
        One policy's run.

    Returns
    -------
    dict
        Quantity (unit in the name) to ``{"mean", "p05", "p25", "p50", "p75", "p95"}``.
    """
    bill_eur, owner_eur = _bill_and_revenue_eur(scenario, run)
    quantities = {
        "heat_delivered_kwh": run.home_heat_kwh,
        "backup_heat_kwh": run.home_backup_kwh,
        "mining_revenue_eur": run.home_mining_revenue_eur,
        "owner_revenue_eur": owner_eur,
        "electricity_cost_eur": bill_eur,
        "net_cost_eur": bill_eur - owner_eur,
        "comfort_k_h": run.comfort_k_h,
        "cold_k_h": run.cold_k_h,
    }
    return {name: _distribution(values) for name, values in quantities.items()}


def per_home_net_cost_eur(scenario: Scenario, run: RawRun) -> np.ndarray[Any, Any]:
    """Return each home's heater electricity bill minus its owner's revenue [EUR], (N,)."""
    bill_eur, owner_eur = _bill_and_revenue_eur(scenario, run)
    net_eur: np.ndarray[Any, Any] = bill_eur - owner_eur
    return net_eur


def _bill_and_revenue_eur(
    scenario: Scenario, run: RawRun
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    tariffs = np.array([_tariff(scenario, region) for region in scenario.regions])
    bill_eur = run.home_heat_kwh * tariffs[run.home_region]
    owner_eur = run.home_mining_revenue_eur + run.home_task_kwh * scenario.compute_price_eur_per_kwh
    return bill_eur, owner_eur


def _tariff(scenario: Scenario, region: Any) -> float:
    value = region.tariff_eur_per_kwh
    return float(scenario.tariff_eur_per_kwh if value is None else value)


def summarize(scenario: Scenario, run: RawRun) -> dict[str, Any]:
    """Return the outputs of one run as a flat JSON-ready dict, units in the keys.

    Parameters
    ----------
    scenario : Scenario
        What was simulated.
    run : RawRun
        What :func:`heatgrid.sim.engine.run_policy` returned.

    Returns
    -------
    dict
        Floats, ints and None (a percentile of no completed job).
    """
    done = ~np.isnan(run.done_ts)
    latency_h = (run.done_ts[done] - run.arrival_ts[done]) / _S_PER_H
    task_j = run.heater_task_j + run.rack_task_j
    carbon = np.array([region.carbon_g_per_kwh for region in scenario.regions])
    tariffs = np.array([_tariff(scenario, region) for region in scenario.regions])
    home_kwh, rack_kwh = run.home_energy_kwh, run.rack_energy_kwh
    actual_kg = float(np.sum(home_kwh * carbon + rack_kwh * scenario.pue * carbon)) / 1000.0
    displaced = displaced_co2_kg(
        home_kwh,
        _alternative(scenario.displaced),
        grid_carbon_g_per_kwh=np.broadcast_to(carbon, home_kwh.shape),
        outdoor_temp_c=run.outdoor_temp_c,
    )
    data_centre_kg = float(np.sum((home_kwh + rack_kwh) * scenario.pue * carbon)) / 1000.0
    baseline_kg = data_centre_kg + float(np.sum(displaced))
    saved_against_kg = {
        alternative: data_centre_kg
        + float(
            np.sum(
                displaced_co2_kg(
                    home_kwh,
                    alternative,
                    grid_carbon_g_per_kwh=np.broadcast_to(carbon, home_kwh.shape),
                    outdoor_temp_c=run.outdoor_temp_c,
                )
            )
        )
        - actual_kg
        for alternative in _COMPARED
    }
    heat_kwh = float(np.sum(home_kwh))
    backup_kwh = float(np.sum(run.backup_w)) * (scenario.step_s / _S_PER_H) / 1000.0
    mining = float(np.sum(run.mining_revenue_eur))
    step_h = scenario.step_s / _S_PER_H
    return {
        "policy": run.policy,
        "homes": int(run.comfort_k_h.size),
        "racks": scenario.n_racks,
        "steps": int(run.time_ts.size),
        "step_s": scenario.step_s,
        "days": scenario.n_steps * scenario.step_s / 86_400.0,
        "comfort_mean_k_h": float(np.mean(run.comfort_k_h)),
        "comfort_p95_k_h": float(np.percentile(run.comfort_k_h, 95.0)),
        "cold_mean_k_h": float(np.mean(run.cold_k_h)),
        "cold_p95_k_h": float(np.percentile(run.cold_k_h, 95.0)),
        "jobs_submitted": int(run.arrival_ts.size),
        "jobs_completed": int(np.count_nonzero(done)),
        "jobs_dead": run.tasks_dead,
        "job_latency_p50_h": _percentile(latency_h, 50.0),
        "job_latency_p95_h": _percentile(latency_h, 95.0),
        "job_latency_p99_h": _percentile(latency_h, 99.0),
        "task_energy_kwh": task_j / _J_PER_KWH,
        "heater_task_energy_kwh": run.heater_task_j / _J_PER_KWH,
        "rack_task_energy_kwh": run.rack_task_j / _J_PER_KWH,
        "lost_task_energy_kwh": run.lost_j / _J_PER_KWH,
        "goodput_kwh_per_h": (task_j - run.lost_j) / _J_PER_KWH / (run.time_ts.size * step_h),
        "goodput_pct": 100.0 * (task_j - run.lost_j) / task_j if task_j > 0 else None,
        "useful_heat_pct": 100.0 * run.heater_task_j / task_j if task_j > 0 else None,
        "heat_demand_kwh": float(np.sum(run.demand_w)) * step_h / 1000.0,
        "heat_delivered_kwh": heat_kwh,
        "backup_heat_kwh": backup_kwh,
        "compute_heat_share_pct": (
            100.0 * heat_kwh / (heat_kwh + backup_kwh) if heat_kwh + backup_kwh > 0 else None
        ),
        "mining_revenue_eur": mining,
        "compute_revenue_eur": float(np.sum(run.compute_revenue_eur)),
        "owner_revenue_eur": mining + float(np.sum(run.compute_revenue_homes_eur)),
        "owner_electricity_cost_eur": float(np.sum(home_kwh * tariffs)),
        "co2_kg": actual_kg,
        "baseline_co2_kg": baseline_kg,
        "co2_saved_kg": baseline_kg - actual_kg,
        "co2_saved_vs_gas_kg": saved_against_kg["gas"],
        "co2_saved_vs_heat_pump_kg": saved_against_kg["heat-pump"],
        "mining_revenue_per_home_eur": float(np.mean(run.home_mining_revenue_eur)),
        "owner_revenue_per_home_eur": (mining + float(np.sum(run.compute_revenue_homes_eur)))
        / run.comfort_k_h.size,
        "per_home": per_home(scenario, run),
        "leases_lost": run.leases_lost,
        "leases_handed_back": run.leases_handed_back,
        "claims": run.claims,
        **_verification(scenario, run, task_j),
    }


def _verification(scenario: Scenario, run: RawRun, task_j: float) -> dict[str, Any]:
    """Return what verifying the results cost: None for every key of a run without it.

    The overhead is the energy of replica attempts and of progress dropped by restarts (a
    device answers for its whole result) over the rest: what the tasks burned on top of
    running each once [%].
    """
    rounds = run.results_checked + run.results_unchecked
    extra_j = run.replica_j + run.restarted_j
    cost = {
        "results_checked": run.results_checked,
        "results_unchecked": run.results_unchecked,
        "replica_results": run.replica_results,
        "spot_check_share_pct": 100.0 * run.results_checked / rounds if rounds else None,
        "replica_task_energy_kwh": run.replica_j / _J_PER_KWH,
        "restarted_task_energy_kwh": run.restarted_j / _J_PER_KWH,
        "verification_overhead_pct": 100.0 * extra_j / (task_j - extra_j)
        if task_j > extra_j
        else None,
    }
    return cost if scenario.verification is not None else dict.fromkeys(cost)


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
