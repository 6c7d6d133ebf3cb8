"""Latency of a page of ``GET /v1/jobs`` at few and at many jobs, on SQLite and PostgreSQL.

The same app (in-process, through ``httpx.ASGITransport``) answers a page of 100 jobs from a
database seeded with ``--small`` jobs (the baseline) and from one with ``--large`` jobs, side
by side in this process; each job has two tasks. For each size: the median latency of the
first page and of a page near the end of the list (its cursor taken from the database), and the
SQL statements one page sends. The ratio large/small shows whether a page's cost depends on
how many jobs exist (keyset pages: it should not). PostgreSQL runs when its binaries are
installed. Usage: ``python bench/bench_lists.py --out PATH [--small N] [--large N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, insert, select

from _postgres import running_postgres
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.db.models import Job, Task
from heatgrid.coordinator.pages import encode_cursor
from heatgrid.coordinator.settings import Settings

_PAGE = 100
_REPEATS = 15
_BATCH = 5_000
_T0_TS = 1_767_225_600.0


def _seed(database_url: str, jobs: int) -> str:
    """Migrate, create a submitter with ``jobs`` jobs of two tasks, analyze; return its key."""
    engine = make_engine(database_url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        issued = create_api_key(session, name="carol", role="submitter", scopes=None, now_ts=1.0)
        submitter_id = issued.account.id
        for start in range(0, jobs, _BATCH):
            job_rows, task_rows = [], []
            for index in range(start, min(jobs, start + _BATCH)):
                job_id = uuid.uuid4().hex
                created_ts = _T0_TS + index
                job_rows.append(
                    {"id": job_id, "submitter_id": submitter_id, "name": f"job {index}",
                     "state": "running", "priority": 0, "device_kinds": ["gpu"],
                     "min_vram_gb": 0.0, "max_attempts": 5, "price_eur_per_kwh": 0.2,
                     "owner_share": 0.85, "task_count": 2, "created_ts": created_ts}
                )  # fmt: skip
                task_rows.extend(
                    {"id": uuid.uuid4().hex, "job_id": job_id, "task_index": n,
                     "submitter_id": submitter_id, "state": "queued", "priority": 0,
                     "runs_on_gpu": True, "runs_on_cpu": False, "min_vram_gb": 0.0,
                     "task_input": {"n": n}, "energy_j": 3.6e6, "checkpoint_every_j": 3.6e6,
                     "progress_energy_j": 0.0, "checkpoint_seq": 0, "attempt": 0,
                     "queued_ts": created_ts, "not_before_ts": created_ts}
                    for n in range(2)
                )  # fmt: skip
            session.execute(insert(Job), job_rows)
            session.execute(insert(Task), task_rows)
            session.commit()
        token = issued.token
    with engine.connect() as connection:  # statistics, as autovacuum would gather by now
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    engine.dispose()
    return token


def _deep_cursor(database_url: str, jobs: int) -> str:
    """A cursor that starts a page 150 jobs before the end of the list (or halfway)."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        created_ts, job_id = connection.execute(
            select(Job.created_ts, Job.id)
            .order_by(Job.created_ts, Job.id)
            .offset(min(150, jobs // 2))
            .limit(1)
        ).one()
    engine.dispose()
    return encode_cursor((created_ts, job_id))


@contextmanager
def _counting(engine: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def _measure(database_url: str, token: str, cursor: str) -> dict[str, float]:
    settings = Settings(database_url=database_url, rate_limit_per_s=1e9, rate_limit_burst=10**9)
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {token}"}
    result: dict[str, float] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for name, params in (("first", {}), ("deep", {"cursor": cursor})):
            latencies_s = []
            for _ in range(_REPEATS):
                start = time.perf_counter()
                answer = await client.get(
                    "/v1/jobs", params={"limit": _PAGE, **params}, headers=headers
                )
                latencies_s.append(time.perf_counter() - start)
                answer.raise_for_status()
            result[f"{name}_page_median_s"] = statistics.median(latencies_s)
        with _counting(app.state.engine) as seen:
            (
                await client.get("/v1/jobs", params={"limit": _PAGE}, headers=headers)
            ).raise_for_status()
        result["statements_per_page"] = len(seen)
    app.state.engine.dispose()
    return result


def _database(kind: str, name: str, directory: Path, server: Any) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory / f'{name}.sqlite3'}"
    with server.connect() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return str(server.url(name))


def _run(kind: str, sizes: dict[str, int], directory: Path, server: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for label, jobs in sizes.items():
        url = _database(kind, f"lists_{label}", directory, server)
        started = time.perf_counter()
        token = _seed(url, jobs)
        seeded_s = time.perf_counter() - started
        found[label] = {
            "jobs": jobs,
            "seed_s": seeded_s,
            **asyncio.run(_measure(url, token, _deep_cursor(url, jobs))),
        }
    for name in ("first", "deep"):
        key = f"{name}_page_median_s"
        found[f"{name}_page_ratio_large_to_small"] = found["large"][key] / found["small"][key]
    return found


def main() -> None:
    """Run the benchmark, print its JSON and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args()
    if not 1 <= args.small <= args.large:
        parser.error("--small must be at least 1 and at most --large")
    sizes = {"small": args.small, "large": args.large}
    report: dict[str, Any] = {
        "benchmark": "lists",
        "page_limit": _PAGE,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory(prefix="heatgrid-bench-lists-") as directory:
        report["sqlite"] = _run("sqlite", sizes, Path(directory), None)
        try:
            with running_postgres({"fsync": "off", "synchronous_commit": "off"}) as server:
                report["postgresql"] = _run("postgresql", sizes, Path(directory), server)
        except FileNotFoundError as error:
            report["postgresql"] = {"skipped": str(error)}
    text = json.dumps(report, indent=2)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
