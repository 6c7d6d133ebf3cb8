"""What ``heatgrid demo`` shows: the live view while the fleet runs, and the summary at the end."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from heatgrid.cli._demo_fleet import FleetRun
from heatgrid.cli._demo_world import HomeStats

__all__ = ["live_view", "summary", "summary_renderable"]


def _clock_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _homes_table(
    stats: list[HomeStats], devices: dict[str, dict[str, Any]], ids: list[str]
) -> Table:
    table = Table(title="Homes", title_justify="left")
    for column in ("home", "room / setpoint °C", "outdoor °C", "heat W", "kWh", "shares"):
        table.add_column(column, justify="left" if column == "home" else "right")
    table.add_column("agent")
    for index, home in enumerate(stats):
        device = devices.get(ids[index]) if index < len(ids) else None
        online = "starting" if device is None else ("online" if device["online"] else "offline")
        table.add_row(
            home.name,
            f"{home.room_temp_c:.2f} / {home.setpoint_c:.1f}",
            f"{home.outdoor_temp_c:.1f}",
            f"{home.heat_power_w:.0f}",
            f"{home.energy_kwh:.2f}",
            str(home.shares_accepted),
            online,
        )
    return table


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
        devices = {d["device_id"]: d for d in run.devices}
        parts.append(_homes_table(run.world.stats(), devices, run.device_ids))
    for job in run.jobs:
        states = ", ".join(f"{n} {state}" for state, n in sorted(job["tasks_by_state"].items()))
        parts.append(Text(f"job {job['name']!r}: {job['task_count']} tasks ({states})"))
    return Group(*parts)


def summary(run: FleetRun, *, interrupted: bool, leftover_pids: list[int]) -> dict[str, Any]:
    """Return the demo's outcome as plain data (``--json``)."""
    homes = [] if run.world is None else run.world.stats()
    emulated_s = 0.0
    if run.running_since_ts is not None:
        emulated_s = (time.time() - run.running_since_ts) * run.options.speed
    energy_kwh = sum(h.energy_kwh for h in homes)
    tasks: dict[str, int] = {}
    for job in run.jobs:
        for state, count in job["tasks_by_state"].items():
            tasks[state] = tasks.get(state, 0) + count
    children = [] if run.children is None else run.children.started
    return {
        "interrupted": interrupted,
        "dashboard_url": run.url,
        "dashboard_status": run.dashboard_status,
        "speed": run.options.speed,
        "emulated_hours": emulated_s / 3600.0,
        "homes": [_finite(asdict(home)) for home in homes],
        "energy_kwh": energy_kwh,
        "heat_delivered_kwh": energy_kwh,  # every watt a miner draws heats the room
        "work_th": sum(h.work_th for h in homes),
        "shares_accepted": sum(h.shares_accepted for h in homes),
        "shares_rejected": sum(h.shares_rejected for h in homes),
        "devices_enrolled": len(run.device_ids),
        "devices_online": sum(1 for d in run.devices if d["online"]),
        "jobs": [
            {"job_id": j["job_id"], "name": j["name"], "tasks_by_state": j["tasks_by_state"]}
            for j in run.jobs
        ],
        "tasks_by_state": tasks,
        "balances": run.balances,
        "processes": [
            {"name": c.name, "pid": c.pid, "returncode": c.process.returncode} for c in children
        ],
        "leftover_pids": leftover_pids,
    }


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def summary_renderable(data: dict[str, Any]) -> RenderableType:
    """Render the summary for people."""
    table = Table(title="Homes after the demo", title_justify="left")
    for column in (
        "home",
        "setpoint °C",
        "room °C after warm-up",
        "in ±1 K",
        "heat kWh",
        "shares",
    ):
        table.add_column(column, justify="left" if column == "home" else "right")
    for home in data["homes"]:
        low, high = home["min_temp_c"], home["max_temp_c"]
        kept = "—" if low is None else f"{low:.2f} – {high:.2f}"
        share = home["comfort_share"]
        table.add_row(
            home["name"],
            f"{home['setpoint_c']:.1f}",
            kept,
            "—" if share is None else f"{100.0 * share:.0f} %",
            f"{home['energy_kwh']:.2f}",
            str(home["shares_accepted"]),
        )
    tasks = ", ".join(f"{n} {s}" for s, n in sorted(data["tasks_by_state"].items())) or "none"
    lines = [
        f"{len(data['homes'])} homes over {data['emulated_hours']:.1f} emulated hours "
        f"({data['speed']:g}× real time); {data['devices_online']} of "
        f"{data['devices_enrolled']} agents online at the end.",
        f"Energy drawn {data['energy_kwh']:.2f} kWh, all of it heat delivered to the rooms "
        f"({data['heat_delivered_kwh']:.2f} kWh).",
        f"Mining: {data['shares_accepted']} shares accepted by the test pool "
        f"({data['shares_rejected']} rejected); the miners' emulated work "
        f"{data['work_th']:.0f} TH.",
        f"Sample job tasks: {tasks}. (It asks for a CPU or GPU heater; the demo's heaters are "
        "miners for now, so its tasks wait in the queue.)",
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
    return Group(table, *(Text(line) for line in lines))
