"""What ``heatgrid demo`` shows: the live view while the fleet runs, and the summary at the end.

The summary's data is :func:`heatgrid.cli._demo_summary.summary`'s.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from heatgrid.cli._demo_fleet import FleetRun
from heatgrid.cli._demo_world import HomeStats

__all__ = ["live_view", "summary_renderable"]


def _clock_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _homes_table(run: FleetRun, stats: list[HomeStats]) -> Table:
    table = Table(title="Homes", title_justify="left")
    columns = ("home", "room / setpoint °C", "outdoor °C", "heat W", "CPU heater W", "kWh")
    for column in (*columns, "shares"):
        table.add_column(column, justify="left" if column == "home" else "right")
    table.add_column("agents")
    online = {d["device_id"]: bool(d["online"]) for d in run.devices}
    for index, home in enumerate(stats):
        heaters = [h for h in run.heaters if h.plan.home == index]
        if not heaters:
            agents = "starting"
        else:
            up = sum(online.get(h.device_id, False) for h in heaters)
            agents = f"{up} of {len(heaters)} online"
        cpu_w = home.cpu_heater_power_w
        table.add_row(
            home.name,
            f"{home.room_temp_c:.2f} / {home.setpoint_c:.1f}",
            f"{home.outdoor_temp_c:.1f}",
            f"{home.heat_power_w:.0f}",
            "—" if cpu_w is None else f"{cpu_w:.0f}",
            f"{home.energy_kwh:.2f}",
            str(home.shares_accepted),
            agents,
        )
    return table


def _job_line(job: dict[str, Any]) -> RenderableType:
    states = job["tasks_by_state"]
    done = sum(n for state, n in states.items() if state not in {"queued", "leased"})
    text = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    return Group(
        Text(f"job {job['name']!r} {job['state']}: {job['task_count']} tasks ({text})"),
        ProgressBar(total=max(job["task_count"], 1), completed=done),
    )


def live_view(run: FleetRun) -> RenderableType:
    """Render the live view: phase, wall-time progress, emulated clock, homes, jobs."""
    options = run.options
    parts: list[RenderableType] = []
    if run.running_since_ts is None:
        parts.append(Text(f"… {run.phase}"))
    else:
        elapsed_s = time.time() - run.started_real_ts
        parts.append(
            Text(
                f"{_clock_text(run.emulated_now_ts())} (emulated, {options.speed:g}× real time) "
                f"· {elapsed_s:.0f} of {options.duration_s:.0f} s"
            )
        )
        parts.append(
            ProgressBar(total=options.duration_s, completed=min(elapsed_s, options.duration_s))
        )
    if run.world is not None and run.world.homes:
        parts.append(_homes_table(run, run.world.stats()))
    parts.extend(_job_line(job) for job in run.jobs)
    return Group(*parts)


_DONE = frozenset({"completed", "verified"})  # the states of a task whose result is kept


def _pi_text(tasks: list[dict[str, Any]]) -> str:
    """Return what the sweep's completed tasks found together: pi from every hit and sample."""
    results = [t["result"] for t in tasks if t["state"] in _DONE and t["result"]]
    hits = sum(int(r.get("hits", 0)) for r in results)
    samples = sum(int(r.get("samples", 0)) for r in results)
    if not samples:
        return ""
    share = hits / samples
    error = 4.0 * math.sqrt(share * (1.0 - share) / samples)
    return f"; together π ≈ {4.0 * share:.5f} ± {error:.5f} from {samples:,} samples"


def _job_lines(data: dict[str, Any]) -> list[str]:
    if data["job_problem"]:
        return [data["job_problem"]]
    if not data["jobs"]:
        return ["No job was submitted before the demo ended."]
    lines = []
    for job in data["jobs"]:
        states = ", ".join(f"{n} {s}" for s, n in sorted(job["tasks_by_state"].items()))
        lines.append(
            f"Job {job['name']!r} {job['state']}: {job['task_count']} tasks ({states}, as the "
            f"coordinator's API says), {job['energy_j'] / 3.6e6:.3f} kWh settled"
            f"{_pi_text(data['tasks'])}."
        )
    return lines


def _mining_line(data: dict[str, Any]) -> str:
    owners = ", ".join(
        f"{o['owner_name']} {o['accepted_shares']} shares ({o['work_diff1']:.3g} diff-1 work, "
        f"{o['credited_sat']} sat settled)"
        for o in data["mining_owners"]
    )
    return (
        f"Mining through the coordinator's Stratum proxy: {data['shares_accepted']} shares "
        f"accepted by the test pool ({data['shares_rejected']} rejected); credited by the proxy "
        f"to {owners or 'no owner'}. The miners' emulated work {data['work_th']:.0f} TH: what "
        "their rated hashrate stands for; the proxy credits the work they really hashed, at "
        "the tiny share difficulty the demo sets, which is worth well under a satoshi."
    )


_ACCEPTANCE = {
    "job_completed": "a job completed",
    "job_verified": "its results verified on heaters of different owners",
    "shares_accepted_and_credited": "shares accepted by the test pool and credited to owners",
    "homes_comfortable": "every home within ±{band:g} K of its setpoint after warm-up",
    "dashboard_answered": "the dashboard answered while the fleet ran",
    "no_process_left": "no process of the demo left running",
}


def summary_renderable(data: dict[str, Any]) -> RenderableType:
    """Render the summary for people: the homes, what ran, and each acceptance item."""
    band_k = data["comfort_band_k"]
    table = Table(title="Homes after the demo", title_justify="left")
    for column in (
        "home",
        "setpoint °C",
        "room °C after warm-up",
        f"in ±{band_k:g} K",
        "miners kWh",
        "CPU heater kWh",
        "pool shares",
    ):
        table.add_column(column, justify="left" if column == "home" else "right")
    for home in data["homes"]:
        low, high = home["min_temp_c"], home["max_temp_c"]
        share = home["comfort_share"]
        table.add_row(
            home["name"],
            f"{home['setpoint_c']:.1f}",
            "—" if low is None else f"{low:.2f} – {high:.2f}",
            "—" if share is None else f"{100.0 * share:.0f} %",
            f"{home['miners_energy_kwh']:.2f}",
            "—" if home["cpu_heater_power_w"] is None else f"{home['cpu_heater_energy_kwh']:.3f}",
            str(home["shares_accepted"]),
        )
    names = {f"owner:{o['owner_id']}": o["owner_name"] for o in data["mining_owners"]}
    balances = ", ".join(
        f"{names[b['account']]} {b['amount']:.4g} {b['unit']}"
        for b in data["balances"]
        if b["account"] in names
    )
    lines = [
        f"{len(data['homes'])} homes, {data['devices_enrolled']} heaters over "
        f"{data['emulated_hours']:.1f} emulated hours ({data['speed']:g}× real time); "
        f"{data['devices_online']} of {data['devices_enrolled']} agents online at the end.",
        f"Heat delivered {data['heat_delivered_kwh']:.2f} kWh, every watt drawn (CPU heaters "
        f"{data['cpu_heater_energy_kwh']:.3f} kWh of it).",
        *_job_lines(data),
        _mining_line(data),
        f"Owners' ledger balances: {balances or 'none'}.",
        f"Dashboard {data['dashboard_url']} answered HTTP {data['dashboard_status']}.",
        f"Stopped {len(data['processes'])} processes; "
        + (
            "none left running."
            if not data["leftover_pids"]
            else f"still running: {data['leftover_pids']}"
        ),
    ]
    if data["interrupted"]:
        lines.insert(0, "Interrupted: every process the demo started was stopped.")
    checks = [Text("Acceptance:", style="bold")]
    for key, met in data["acceptance"].items():
        mark = Text("  ✓ " if met else "  ✗ ", style="green" if met else "bold red")
        checks.append(mark + Text(_ACCEPTANCE[key].format(band=band_k)))
    return Group(table, *(Text(line) for line in lines), *checks)
