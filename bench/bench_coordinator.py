"""Coordinator throughput on PostgreSQL: heartbeats/s and claim-plus-complete/s, against echo.

What it does, all on loopback, all started and stopped here:

1. starts a PostgreSQL server in a temporary directory and runs ``heatgrid db upgrade``;
2. seeds ``--devices`` enrolled GPU heaters, ``--tasks`` queued tasks (``COPY``) and a history
   of ``--history`` tasks completed before, with their attempts and settlements (see
   ``_seed.seed_history``), then ``VACUUM ANALYZE``;
3. baseline: serves a bare FastAPI JSON echo app with uvicorn (``--workers``) and drives it
   with the load generator (``_loadgen.py``, ``--loadgen-processes`` processes,
   ``--connections`` keep-alive connections in all, closed loop) sending the heartbeat's bytes;
4. serves the real coordinator app the same way (a fresh server per phase) and drives
   heartbeats, then claim-plus-complete (claim ``--claim-slots`` tasks, hand in their results
   in one batch; one slot: claim one, complete it alone), each for ``--warmup-s`` +
   ``--duration-s``, counting the statements PostgreSQL ran (``pg_stat_statements``) and the
   CPU time of server, database and load generators (``--profile DIR``: py-spy as well).

It prints and writes (``--out``) JSON with the rates, p50/p99 latencies, their ratio against
the echo baseline of the same run, and whether the issue's goals are met: heartbeats at least
50 % of echo with p99 under 100 ms, and 2,000 tasks claimed and completed per second. A goal
with any error in its phase counts as not met. Usage:
``python bench/bench_coordinator.py --out PATH [--devices N --tasks N --duration-s S ...]``;
quick development run: ``--devices 200 --tasks 20000 --duration-s 5``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from _cpu import tree_cpu_s
from _postgres import PostgresServer, running_postgres
from _seed import seed_devices, seed_history, seed_tasks
from _serve import Served, served

_BENCH_DIR = Path(__file__).resolve().parent
_START_DELAY_S = 2.0  # load generator processes start and wait for the common start time
_GOAL_HEARTBEAT_VS_ECHO = 0.5
_GOAL_HEARTBEAT_P99_MS = 100.0
_GOAL_CLAIM_COMPLETE_PER_S = 2000.0
_EXIT_BAD_INPUT = 2
_EXIT_FAILED = 1
_LOGGED_ERRORS = 5
_MAX_CLAIM_SLOTS = 64  # protocol.v1.MAX_CLAIM_SLOTS and MAX_BATCHED_COMPLETIONS


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    cores = _cores()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--devices", type=int, default=10_000, help="enrolled heaters")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="queued tasks")
    parser.add_argument("--duration-s", type=float, default=30.0, help="measured, per phase [s]")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="not measured, per phase [s]")
    parser.add_argument(
        "--workers", type=int, default=max(1, cores // 4), help="uvicorn workers of each app"
    )
    parser.add_argument(
        "--loadgen-processes", type=int, default=max(1, cores // 4), help="load generators"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help="concurrent connections of all generators together (default: 16 per worker)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="the coordinator's log level (info, as `heatgrid serve`, logs each request)",
    )
    parser.add_argument(
        "--claim-slots",
        type=int,
        default=32,
        help="tasks per claim, completed in one batch (1: claim one, complete it alone; "
        "default: a heater with 32 slots, one task per slot)",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=10_000,
        help="tasks completed before the run, with attempts and settlements (0: none; then "
        "the tables of completed work are planned as empty, see _seed.seed_history)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record the coordinator with py-spy into this directory (one file per phase)",
    )
    parser.add_argument(
        "--durability",
        choices=("full", "off"),
        default="full",
        help="PostgreSQL durability: full (fsync, synchronous commit: as in production) or off",
    )
    args = parser.parse_args(argv)
    if args.connections is None:
        args.connections = 16 * max(1, args.workers)
    problems = [
        f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}"
        for name, low in (
            ("devices", 1),
            ("tasks", 1),
            ("workers", 1),
            ("loadgen_processes", 1),
            ("connections", 1),
            ("claim_slots", 1),
            ("history", 0),
        )
        if getattr(args, name) < low
    ]
    problems += [
        f"--{name.replace('_', '-')} must be a finite number of seconds > 0, got {value}"
        for name, value in (("duration_s", args.duration_s), ("warmup_s", args.warmup_s))
        if not (np.isfinite(value) and value > 0.0)
    ]
    if args.claim_slots > _MAX_CLAIM_SLOTS:
        problems.append(f"--claim-slots must be at most {_MAX_CLAIM_SLOTS}, got {args.claim_slots}")
    if not problems and args.connections < args.loadgen_processes:
        problems.append(
            f"--connections ({args.connections}) must be at least --loadgen-processes "
            f"({args.loadgen_processes}): each generator needs a connection"
        )
    if not problems and args.devices < args.connections:
        problems.append(
            f"--devices ({args.devices}) must be at least --connections ({args.connections}): "
            "a connection drives its own devices"
        )
    if problems:
        parser.error("; ".join(problems))  # exit status 2
    return args


def _postgres_settings(workers: int, durability: str) -> dict[str, str]:
    # Each coordinator worker keeps at most POOL_CONNECTIONS (40) connections (db.engine).
    settings = {
        "max_connections": str(30 + 40 * workers),
        "shared_buffers": "256MB",
        "shared_preload_libraries": "pg_stat_statements",  # statements per request
    }
    if durability == "off":
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    return settings


def _heatgrid(*args: str) -> None:
    found = shutil.which("heatgrid", path=str(Path(sys.executable).parent))
    command = [found] if found else [sys.executable, "-m", "heatgrid.cli.main"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"heatgrid {' '.join(args[:2])} failed:\n{done.stderr}")


def _seed(
    server: PostgresServer, args: argparse.Namespace
) -> tuple[str, list[Any], dict[str, Any]]:
    with server.connect() as conn:
        conn.execute("CREATE DATABASE heatgrid")
    with server.connect("heatgrid") as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    url = server.url("heatgrid")
    _heatgrid("db", "upgrade", "--database-url", url)
    now_ts = time.time()
    timings: dict[str, Any] = {}
    with server.connect("heatgrid") as conn:
        started_s = time.perf_counter()
        devices = seed_devices(url, conn, args.devices, now_ts)
        timings["devices_s"] = time.perf_counter() - started_s
        started_s = time.perf_counter()
        timings["jobs"] = seed_tasks(conn, args.tasks, now_ts)
        timings["tasks_s"] = time.perf_counter() - started_s
        seed_history(conn, args.history, now_ts)
        started_s = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - started_s
        row = conn.execute("SHOW server_version").fetchone()
        timings["postgres_version"] = str(row[0]) if row else "?"
    return url, devices, timings


def _reset_statements(server: PostgresServer) -> None:
    with server.connect("heatgrid") as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def _statements(server: PostgresServer, requests: int) -> dict[str, Any]:
    """Statements the database ran since the last reset: in all, per request, the busiest."""
    with server.connect("heatgrid") as conn:
        rows = conn.execute(
            "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = 'heatgrid' AND query NOT LIKE '%pg_stat_statements%' "
            "ORDER BY total_exec_time DESC"
        ).fetchall()
    total = sum(int(row[0]) for row in rows)
    return {
        "statements": total,
        "statements_per_request": total / max(requests, 1),
        "execution_ms_per_request": sum(float(row[1]) for row in rows) / max(requests, 1),
        "busiest": [  # by their time in the database, all calls together
            {
                "calls_per_request": int(calls) / max(requests, 1),
                "mean_ms": float(time_ms) / max(int(calls), 1),
                "query": str(query),
            }
            for calls, time_ms, query in rows[:10]
        ],
    }


def _percentile_ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q) * 1000.0) if values else None


def _drive(
    mode: str, port: int, devices: list[Any], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    """Run the load generators of one phase and merge what they measured."""
    start_ts = time.time() + _START_DELAY_S
    count = args.loadgen_processes
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(count):
            plan = {
                "mode": mode,
                "host": "127.0.0.1",
                "port": port,
                "connections": args.connections // count + (index < args.connections % count),
                "devices": devices[index::count],
                "start_ts": start_ts,
                "warmup_s": args.warmup_s,
                "duration_s": args.duration_s,
                "slots": args.claim_slots,
            }
            plan_path = tmp / f"plan-{mode}-{index}.json"
            result_path = tmp / f"result-{mode}-{index}.json"
            plan_path.write_text(json.dumps(plan))
            command = [sys.executable, str(_BENCH_DIR / "_loadgen.py"), str(plan_path)]
            processes.append((subprocess.Popen([*command, str(result_path)]), result_path))
        timeout_s = _START_DELAY_S + args.warmup_s + args.duration_s + 120.0
        for process, _ in processes:
            if process.wait(timeout=timeout_s) != 0:
                raise RuntimeError(f"a load generator ({mode}) exited with {process.returncode}")
    finally:
        for process, _ in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
    tallies = [json.loads(path.read_text()) for _, path in processes]
    merged: dict[str, Any] = {
        "ops": 0,
        "requests": 0,
        "empty_claims": 0,
        "errors": {},
        "error_examples": [],
    }
    for key in ("latencies_s", "claim_latencies_s", "complete_latencies_s"):
        merged[key] = [value for tally in tallies for value in tally[key]]
    for tally in tallies:
        merged["ops"] += tally["ops"]
        merged["requests"] += tally["requests"]
        merged["empty_claims"] += tally["empty_claims"]
        merged["error_examples"] += tally["error_examples"]
        for kind, n in tally["errors"].items():
            merged["errors"][kind] = merged["errors"].get(kind, 0) + n
    return merged


def _measured(  # noqa: PLR0917 - a private helper with one caller
    mode: str,
    served_app: Served,
    database: PostgresServer,
    devices: list[Any],
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    """Drive one phase; add the CPU time [s] the server, database and load generators used."""
    before = (tree_cpu_s(served_app.pid), tree_cpu_s(database.pid), _children_cpu_s())
    wall_started_s = time.perf_counter()
    merged = _drive(mode, served_app.port, devices, args, tmp)
    wall_s = time.perf_counter() - wall_started_s
    after = (tree_cpu_s(served_app.pid), tree_cpu_s(database.pid), _children_cpu_s())
    used = [end - start for start, end in zip(before, after, strict=True)]
    merged["cpu"] = {
        "wall_s": wall_s,
        "server_cpu_s": used[0],
        "database_cpu_s": used[1],
        "loadgen_cpu_s": used[2],
        "cores_busy": sum(used) / wall_s,
        # robust on a shared machine: what one request costs, whoever else wants the cores
        "server_cpu_ms_per_request": 1000.0 * used[0] / max(merged["requests"], 1),
        "database_cpu_ms_per_request": 1000.0 * used[1] / max(merged["requests"], 1),
        "load_average_1m_after": os.getloadavg()[0],
    }
    return merged


def _children_cpu_s() -> float:
    """CPU time [s] of this process's children that ended and were waited for (generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _logged_errors(log: Path) -> list[str]:
    """The first few errors in the coordinator's JSON log: exception type and message."""
    found: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            found.append(f"{entry.get('exc_type')}: {str(entry.get('exc_message'))[:300]}")
            if len(found) >= _LOGGED_ERRORS:
                break
    return found


def _summary(prefix: str, merged: Mapping[str, Any], duration_s: float) -> dict[str, Any]:
    return {
        f"{prefix}_per_s": merged["ops"] / duration_s,
        f"{prefix}_p50_ms": _percentile_ms(merged["latencies_s"], 50.0),
        f"{prefix}_p99_ms": _percentile_ms(merged["latencies_s"], 99.0),
        f"{prefix}_errors": merged["errors"],
    }


def _goals(result: Mapping[str, Any]) -> dict[str, Any]:
    ratio = result["heartbeat_vs_echo"]
    p99_ms = result["heartbeat_p99_ms"]
    clean_hb = not result["heartbeat_errors"]
    clean_claim = not result["claim_complete_errors"]
    return {
        "heartbeats": {
            "goal": "heartbeats_per_s >= 50 % of echo_per_s, with heartbeat_p99_ms < 100, "
            "no errors",
            "met": bool(
                clean_hb
                and ratio >= _GOAL_HEARTBEAT_VS_ECHO
                and p99_ms is not None
                and p99_ms < _GOAL_HEARTBEAT_P99_MS
            ),
        },
        "claim_complete": {
            "goal": "claim_complete_per_s >= 2000, no errors",
            "met": bool(
                clean_claim and result["claim_complete_per_s"] >= _GOAL_CLAIM_COMPLETE_PER_S
            ),
        },
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="heatgrid-bench-")))
        pg_settings = _postgres_settings(args.workers, args.durability)
        server = stack.enter_context(running_postgres(pg_settings))
        url, devices, seed = _seed(server, args)
        with served(
            "echo", workers=args.workers, env={}, log=tmp / "echo.log", probe="POST /echo"
        ) as echo_server:
            echo = _measured("echo", echo_server, server, devices, args, tmp)
        env = {
            "HEATGRID_DATABASE_URL": url,
            "HEATGRID_BENCH_LOG_LEVEL": args.log_level,
            "HEATGRID_BENCH_CHECKPOINTS": str(tmp / "checkpoints"),
        }
        log = tmp / "coordinator.log"
        phases: dict[str, dict[str, Any]] = {}
        statements: dict[str, dict[str, Any]] = {}
        for mode in ("heartbeat", "claim"):  # a fresh server per phase: a profile each
            profile = None if args.profile is None else args.profile / f"{mode}.txt"
            if profile is not None:
                profile.parent.mkdir(parents=True, exist_ok=True)
            with served(
                "coordinator",
                workers=args.workers,
                env=env,
                log=log,
                probe="GET /healthz",
                profile=profile,
            ) as coordinator:
                _reset_statements(server)
                phases[mode] = _measured(mode, coordinator, server, devices, args, tmp)
                statements[mode] = _statements(server, phases[mode]["requests"])
        heartbeat, claim = phases["heartbeat"], phases["claim"]
        server_errors = _logged_errors(log)
        with server.connect("heatgrid") as conn:
            row = conn.execute(  # the seeded history's tasks left out
                "SELECT count(*) FROM tasks WHERE state = 'completed' AND job_id <> 'bench-history'"
            ).fetchone()
            completed = int(row[0]) if row else 0
    result: dict[str, Any] = {
        "benchmark": "coordinator",
        "what": "heartbeats/s and claim-plus-complete/s of the coordinator on PostgreSQL, "
        "closed-loop load on loopback, against a bare FastAPI JSON echo app served the same way",
        "parameters": {
            key: getattr(args, key)
            for key in (
                "devices",
                "tasks",
                "duration_s",
                "warmup_s",
                "workers",
                "loadgen_processes",
                "connections",
                "log_level",
                "durability",
                "claim_slots",
                "history",
            )
        },
        **_summary("heartbeat", heartbeat, args.duration_s),
        **_summary("claim_complete", claim, args.duration_s),
        "claim_p50_ms": _percentile_ms(claim["claim_latencies_s"], 50.0),
        "claim_p99_ms": _percentile_ms(claim["claim_latencies_s"], 99.0),
        "complete_p50_ms": _percentile_ms(claim["complete_latencies_s"], 50.0),
        "complete_p99_ms": _percentile_ms(claim["complete_latencies_s"], 99.0),
        "empty_claims": claim["empty_claims"],
        "tasks_completed_in_db": completed,
        **_summary("echo", echo, args.duration_s),
        "baseline": "echo_per_s: the same generator against a bare FastAPI JSON echo app "
        "(same payload, uvicorn, same worker count), same run",
        "error_examples": heartbeat["error_examples"]
        + claim["error_examples"]
        + echo["error_examples"],
        "coordinator_logged_errors": server_errors,
        "cpu_split": {"echo": echo["cpu"], "heartbeat": heartbeat["cpu"], "claim": claim["cpu"]},
        "database_statements": statements,
        "seed": seed,
        "postgres_settings": pg_settings,
        "machine": {
            "cores": _cores(),
            "load_average_1m_before": load_before[0],
            "python": platform.python_version(),
            "processor": platform.machine(),
        },
    }
    result["heartbeats_per_s"] = result.pop("heartbeat_per_s")
    result["heartbeat_vs_echo"] = result["heartbeats_per_s"] / max(result["echo_per_s"], 1e-9)
    result["ratio_vs_baseline"] = result["heartbeat_vs_echo"]
    result["goals"] = _goals(result)
    return result


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its JSON and write it to ``--out``; return the exit status."""
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)  # clean up on `kill` as on Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started ignoring it
    try:
        result = _run(args)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return _EXIT_BAD_INPUT
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return _EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
