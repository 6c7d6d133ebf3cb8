"""Claim-plus-complete in the coordinator's service functions, on SQLite and PostgreSQL.

No HTTP: this measures what the database work of the claim and completion paths costs, on
both databases (``bench_coordinator`` serves PostgreSQL only). A database is seeded with
``--devices`` GPU heaters and ``--tasks`` queued tasks; then, side by side in this process:

* baseline: a device claims ``--slots`` tasks (``leases.claim``) and completes them one by one
  (``leases.complete``, a transaction each: the per-task ORM path, which now serves only
  completions whose results are verified; the single route is a batch of one);
* batched: a device claims ``--slots`` tasks and hands their results in as one batch
  (``completions.complete_batch``), as ``POST /v1/devices/{id}/completions`` does.

Each runs ``--rounds`` rounds; the JSON gives tasks per second, this process's CPU time per
task (robust on a shared machine) and the SQL statements per task of each, and the ratio
batched / baseline. PostgreSQL runs when its binaries are installed, with ``--history`` tasks
completed before (``_seed.seed_history``). ``--profile DIR`` writes cProfile statistics of
each database's batched loop. Usage:
``python bench/bench_leases.py --out PATH [--tasks N --rounds N --slots N --profile DIR]``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert

from _postgres import pg_bindir, running_postgres
from _seed import TASK_ENERGY_J, seed_history
from heatgrid.coordinator import completions, leases
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.api.job_schemas import MAX_TASKS_PER_JOB
from heatgrid.coordinator.auth import issue_secret, new_id
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.db.models import Device, HeatWindowSegmentRow, Job, Task
from heatgrid.coordinator.settings import Settings
from heatgrid.protocol import v1

_WARMUP_ROUNDS = 5
_SUBMITTERS = 4
_WINDOW_S = 7 * 86_400.0
_POWER_W = 1200.0
_CHUNK = 5_000
_EXIT_BAD_INPUT = 2


def _seed(database_url: str, devices: int, tasks: int, now_ts: float) -> list[str]:
    """Migrate and seed heaters and queued tasks, as the API would write them; return device ids."""
    engine = make_engine(database_url)
    upgrade(engine)
    settings = Settings(database_url="")
    with make_session_factory(engine)() as session:
        owner = create_api_key(session, name="owner", role="owner", scopes=None, now_ts=now_ts)
        submitters = [
            create_api_key(
                session, name=f"submitter {n}", role="submitter", scopes=None, now_ts=now_ts
            ).account.id
            for n in range(_SUBMITTERS)
        ]
        owner_id = owner.account.id
    hardware = v1.Hardware(model="bench GPU heater", max_power_w=_POWER_W, vram_gb=24.0)
    issued_all = [issue_secret("hgd", new_id()) for _ in range(devices)]
    jobs = [new_id() for _ in range(-(-tasks // MAX_TASKS_PER_JOB))]
    with engine.begin() as connection:
        connection.execute(
            insert(Device),
            [
                {
                    "id": issued.id,
                    "owner_id": owner_id,
                    "name": f"heater {n}",
                    "kind": "gpu",
                    "hardware": hardware.model_dump(mode="json"),
                    "has_room": True,
                    "token_hash": issued.secret_hash,
                    "enrolled_ts": now_ts - 86_400.0,
                    "last_seen_ts": now_ts,
                }
                for n, issued in enumerate(issued_all)
            ],
        )
        connection.execute(
            insert(HeatWindowSegmentRow),
            [
                {
                    "device_id": issued.id,
                    "start_ts": now_ts - 60.0,
                    "duration_s": _WINDOW_S,
                    "heat_power_w": _POWER_W,
                    "received_ts": now_ts,
                }
                for issued in issued_all
            ],
        )
        connection.execute(
            insert(Job),
            [
                {
                    "id": job_id,
                    "submitter_id": submitters[n % _SUBMITTERS],
                    "name": f"job {n}",
                    "state": "running",
                    "priority": 0,
                    "device_kinds": ["gpu"],
                    "min_vram_gb": 0.0,
                    "max_attempts": 5,
                    "price_eur_per_kwh": settings.compute_price_eur_per_kwh,
                    "owner_share": settings.owner_share,
                    "task_count": MAX_TASKS_PER_JOB,
                    "created_ts": now_ts - 3600.0,
                }
                for n, job_id in enumerate(jobs)
            ],
        )
        for start in range(0, tasks, _CHUNK):
            rows = []
            for n in range(start, min(tasks, start + _CHUNK)):
                queued_ts = now_ts - 3600.0 + n * 3600.0 / tasks
                job = n // MAX_TASKS_PER_JOB
                rows.append(
                    {
                        "id": new_id(),
                        "job_id": jobs[job],
                        "task_index": n % MAX_TASKS_PER_JOB,
                        "submitter_id": submitters[job % _SUBMITTERS],
                        "state": "queued",
                        "priority": 0,
                        "runs_on_gpu": True,
                        "runs_on_cpu": False,
                        "min_vram_gb": 0.0,
                        "task_input": {"shard": n},
                        "energy_j": TASK_ENERGY_J,
                        "checkpoint_every_j": TASK_ENERGY_J / 10.0,
                        "progress_energy_j": 0.0,
                        "checkpoint_seq": 0,
                        "attempt": 0,
                        "queued_ts": queued_ts,
                        "not_before_ts": queued_ts,
                    }
                )
            connection.execute(insert(Task), rows)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
    engine.dispose()
    return [issued.id for issued in issued_all]


def _round(
    factory: Callable[[], Any], settings: Settings, device_id: str, slots: int, *, batched: bool
) -> int:
    """Claim ``slots`` tasks for a device and complete them; return how many were completed."""
    with factory() as session:
        device = session.get(Device, device_id)
        granted = leases.claim(
            session, device, v1.ClaimRequest(slots=slots), now_ts=time.time(), settings=settings
        )
    with factory() as session:
        device = session.get(Device, device_id)
        items = [
            v1.BatchedCompletion(
                task_id=lease.task_id,
                attempt=lease.attempt,
                energy_j=1000.0,
                result={"shard": lease.task_input.get("shard")},
            )
            for lease in granted
        ]
        if batched and items:
            outcomes = completions.complete_batch(
                session,
                device,
                v1.CompletionBatch(completions=items),
                now_ts=time.time(),
                settings=settings,
            )
            if any(outcome.status_code != 200 for outcome in outcomes):
                raise RuntimeError(f"a completion was refused: {outcomes}")
        for item in items if not batched else []:
            leases.complete(
                session, device, item.task_id, item, now_ts=time.time(), settings=settings
            )
    return len(granted)


@contextmanager
def _counting(engine: Engine) -> Iterator[list[int]]:
    count = [0]

    def record(*_args: Any) -> None:
        count[0] += 1

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _measure(
    database_url: str, devices: list[str], args: argparse.Namespace, *, profile: Path | None = None
) -> dict[str, Any]:
    """Run both loops; ``profile``: write the batched loop's cProfile statistics there."""
    settings = Settings(database_url=database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    result: dict[str, Any] = {}
    try:
        for name, batched in (("one_by_one", False), ("batched", True)):
            for n in range(_WARMUP_ROUNDS):
                _round(factory, settings, devices[n % len(devices)], args.slots, batched=batched)
            profiler = cProfile.Profile() if profile is not None and batched else None
            with _counting(engine) as statements:
                started_s, cpu_started_s = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.enable()
                done = sum(
                    _round(
                        factory, settings, devices[n % len(devices)], args.slots, batched=batched
                    )
                    for n in range(args.rounds)
                )
                if profiler is not None:
                    profiler.disable()
                wall_s = time.perf_counter() - started_s
                cpu_s = time.process_time() - cpu_started_s
            if profiler is not None and profile is not None:
                profile.parent.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(profile)
            result[name] = {
                "tasks": done,
                "tasks_per_s": done / wall_s,
                "cpu_ms_per_task": 1000.0 * cpu_s / max(done, 1),
                "statements_per_task": statements[0] / max(done, 1),
            }
    finally:
        engine.dispose()
    result["ratio_vs_baseline"] = result["batched"]["tasks_per_s"] / max(
        result["one_by_one"]["tasks_per_s"], 1e-9
    )
    result["cpu_ratio_vs_baseline"] = result["one_by_one"]["cpu_ms_per_task"] / max(
        result["batched"]["cpu_ms_per_task"], 1e-9
    )
    return result


def _run(args: argparse.Namespace) -> dict[str, Any]:
    now_ts = time.time()
    backends: dict[str, Any] = {}
    profiles = {
        name: None if args.profile is None else args.profile / f"{name}.prof"
        for name in ("sqlite", "postgresql")
    }
    with tempfile.TemporaryDirectory(prefix="heatgrid-bench-leases-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'coordinator.db'}"
        backends["sqlite"] = _measure(
            url, _seed(url, args.devices, args.tasks, now_ts), args, profile=profiles["sqlite"]
        )
    if pg_bindir() is None:
        backends["postgresql"] = "skipped: no PostgreSQL binaries (initdb) found"
    else:
        with running_postgres({"max_connections": "50"}) as server:
            with server.connect() as conn:
                conn.execute("CREATE DATABASE heatgrid")
            url = server.url("heatgrid")
            devices = _seed(url, args.devices, args.tasks, now_ts)
            with server.connect("heatgrid") as conn:  # see _seed.seed_history: not planned empty
                seed_history(conn, args.history, now_ts)
                conn.execute("VACUUM ANALYZE")
            backends["postgresql"] = _measure(url, devices, args, profile=profiles["postgresql"])
    return {
        "benchmark": "leases",
        "what": "tasks claimed and completed per second in the service functions (no HTTP): "
        "completions handed in as one batch against one by one, side by side",
        "baseline": "one_by_one: the same claims, each task completed in its own transaction",
        "parameters": {
            key: getattr(args, key) for key in ("devices", "tasks", "rounds", "slots", "history")
        },
        "backends": backends,
        "ratio_vs_baseline": backends["sqlite"]["ratio_vs_baseline"],
        "machine": {
            "cores": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "python": platform.python_version(),
        },
    }


def main() -> int:
    """Run the benchmark, print its JSON and write it to ``--out``; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument(
        "--history",
        type=int,
        default=10_000,
        help="PostgreSQL: tasks completed before the run (see _seed.seed_history); 0: none",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="write cProfile statistics of each database's batched loop into this directory "
        "(sqlite.prof, postgresql.prof; read them with python -m pstats); the batched loop's "
        "rates then include the profiler's overhead",
    )
    args = parser.parse_args()
    if not 1 <= args.slots <= v1.MAX_CLAIM_SLOTS:
        parser.error(f"--slots must be 1 to {v1.MAX_CLAIM_SLOTS}, got {args.slots}")
    if min(args.devices, args.rounds) < 1:
        parser.error("--devices and --rounds must be at least 1")
    if args.history < 0:
        parser.error("--history must be at least 0")
    if args.tasks < 2 * args.slots * (args.rounds + _WARMUP_ROUNDS):
        parser.error(
            f"--tasks must be at least {2 * args.slots * (args.rounds + _WARMUP_ROUNDS)} "
            "(both runs claim --slots tasks per round)"
        )
    result = _run(args)
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
