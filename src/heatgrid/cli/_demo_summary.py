"""What ``heatgrid demo`` found, as plain data (``--json``), with its acceptance checks.

The homes' figures come from the emulated world (rooms, miners, the CPU heaters' meters, the
test pool's count of accepted shares); the jobs, their tasks, the mining credited per owner and
the ledger's balances are what the coordinator's API answered, as it answered them (task states
included: whatever states the coordinator has, the summary shows).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any

from heatgrid.cli._demo_fleet import FleetRun
from heatgrid.cli._demo_world import COMFORT_BAND_K
from heatgrid.core.leasing import TaskState

__all__ = ["acceptance", "summary"]

_TASK_FIELDS = ("task_index", "state", "attempt", "result", "last_error")


def summary(run: FleetRun, *, interrupted: bool, leftover_pids: list[int]) -> dict[str, Any]:
    """Return the demo's outcome as plain data, ``acceptance`` included."""
    homes = [] if run.world is None else run.world.stats()
    emulated_s = 0.0
    if run.running_since_ts is not None:
        emulated_s = (time.time() - run.running_since_ts) * run.options.speed
    energy_kwh = sum(h.energy_kwh for h in homes)
    tasks: dict[str, int] = {}
    for job in run.jobs:
        for state, count in job["tasks_by_state"].items():
            tasks[state] = tasks.get(state, 0) + count
    online = {d["device_id"]: bool(d["online"]) for d in run.devices}
    children = [] if run.children is None else run.children.started
    mining = run.mining or {}
    data: dict[str, Any] = {
        "interrupted": interrupted,
        "dashboard_url": run.url,
        "dashboard_status": run.dashboard_status,
        "dashboard_answered": run.dashboard_answered,
        "proxy_url": run.proxy_url,
        "speed": run.options.speed,
        "emulated_hours": emulated_s / 3600.0,
        "comfort_band_k": COMFORT_BAND_K,
        "homes": [_finite(asdict(home)) for home in homes],
        "heaters": [
            {
                "name": h.plan.name,
                "home": h.plan.home,
                "kind": h.plan.kind,
                "owner": h.plan.owner,
                "device_id": h.device_id,
                "online": online.get(h.device_id, False),
            }
            for h in run.heaters
        ],
        "energy_kwh": energy_kwh,
        "heat_delivered_kwh": energy_kwh,  # every watt a heater draws heats its room
        "cpu_heater_energy_kwh": sum(h.cpu_heater_energy_kwh for h in homes),
        "work_th": sum(h.work_th for h in homes),
        "shares_accepted": sum(h.shares_accepted for h in homes),
        "shares_rejected": sum(h.shares_rejected for h in homes),
        "mining_owners": [
            {
                key: owner[key]
                for key in (
                    "owner_id",
                    "owner_name",
                    "device_count",
                    "accepted_shares",
                    "work_diff1",
                    "rejected",
                    "credited_sat",
                    "balance_sat",
                )
            }
            for owner in mining.get("owners", [])
        ],
        "devices_enrolled": len(run.heaters),
        "devices_online": sum(1 for h in run.heaters if online.get(h.device_id, False)),
        "jobs": [
            {
                "job_id": j["job_id"],
                "name": j["name"],
                "state": j["state"],
                "task_count": j["task_count"],
                "tasks_by_state": j["tasks_by_state"],
                "energy_j": j["energy_j"],
            }
            for j in run.jobs
        ],
        "job_problem": run.job_problem,
        "tasks_by_state": tasks,
        "tasks": [{key: task.get(key) for key in _TASK_FIELDS} for task in run.job_tasks],
        "balances": run.balances,
        "processes": [
            {"name": c.name, "pid": c.pid, "returncode": c.process.returncode} for c in children
        ],
        "leftover_pids": leftover_pids,
    }
    data["acceptance"] = acceptance(data)
    return data


def acceptance(data: dict[str, Any]) -> dict[str, bool]:
    """Return whether each acceptance item of the demo held, from its summary ``data``.

    * ``job_completed``: a job the demo submitted ended ``completed``;
    * ``job_verified`` (only where the coordinator verifies results): every task of such a job
      is ``verified``, its result agreed on by heaters of different owners;
    * ``shares_accepted_and_credited``: the test pool accepted shares from every home, none
      rejected, and the proxy credited shares to every owner of a miner heater;
    * ``homes_comfortable``: every room stayed within ``comfort_band_k`` of its setpoint after
      warm-up;
    * ``dashboard_answered``: the dashboard's URL answered while the fleet ran;
    * ``no_process_left``: every process the demo started has ended.
    """
    homes = data["homes"]
    miners_owners = {h["owner"] for h in data["heaters"] if h["kind"] == "miners"}
    credited = {o["owner_name"] for o in data["mining_owners"] if o["accepted_shares"] > 0}
    band_k = data["comfort_band_k"]
    completed = [job for job in data["jobs"] if job["state"] == "completed"]
    return {
        "job_completed": bool(completed),
        "job_verified": any(
            job["tasks_by_state"].get(TaskState.VERIFIED, 0) == job["task_count"]
            for job in completed
        ),
        "shares_accepted_and_credited": bool(homes)
        and all(home["shares_accepted"] > 0 for home in homes)
        and data["shares_rejected"] == 0
        and bool(miners_owners)
        and miners_owners <= credited,
        "homes_comfortable": bool(homes)
        and all(
            home["min_temp_c"] is not None
            and home["setpoint_c"] - band_k <= home["min_temp_c"]
            and home["max_temp_c"] <= home["setpoint_c"] + band_k
            for home in homes
        ),
        "dashboard_answered": bool(data["dashboard_answered"]),
        "no_process_left": not data["leftover_pids"] and bool(data["processes"]),
    }


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }
