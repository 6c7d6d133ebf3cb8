"""Seed a migrated coordinator database with enrolled GPU heaters and queued tasks, fast.

Accounts and their keys are made by the coordinator's own service
(:func:`heatgrid.coordinator.accounts.create_api_key`). Devices, their heat windows, jobs and
tasks go in with PostgreSQL ``COPY``: rows exactly as enrollment and job submission write them
(a device's token is ``hgd_<id>_<secret>`` and only the SHA-256 of the secret is stored, made by
:func:`heatgrid.coordinator.auth.issue_secret`), so the API accepts the tokens and the claim path
leases the tasks. Jobs hold at most ``MAX_TASKS_PER_JOB`` tasks, as the API allows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.api.job_schemas import MAX_TASKS_PER_JOB
from heatgrid.coordinator.auth import issue_secret, new_id
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.settings import Settings
from heatgrid.protocol import v1

__all__ = ["SUBMITTERS", "TASK_ENERGY_J", "seed_devices", "seed_history", "seed_tasks"]

SUBMITTERS = 4
"""Job submitter accounts the tasks are spread over (fairness across them is part of claiming)."""

TASK_ENERGY_J = 3.6e6
"""Estimated energy of each task [J] (1 kWh)."""

_CHECKPOINT_EVERY_J = 3.6e4  # 10 Wh: a 2-hour heat window carries a claim of 64 slots
_DEVICE_POWER_W = 1200.0
_WINDOW_S = 7 * 86_400.0  # the longest heat window segment the protocol allows
_CHUNK_ROWS = 20_000
_NULL = r"\N"


def _copy(conn: psycopg.Connection[Any], table: str, columns: str, lines: Iterator[str]) -> None:
    """COPY text-format ``lines`` (tab-separated, newline-ended) into ``table``."""
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= _CHUNK_ROWS:
                copy.write("".join(chunk))
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))


def _accounts(database_url: str, now_ts: float) -> tuple[int, list[int]]:
    """Create the owner and the submitters; return their account ids."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            owner = create_api_key(
                session, name="bench-owner", role="owner", scopes=None, now_ts=now_ts
            ).account.id
            submitters = [
                create_api_key(
                    session,
                    name=f"bench-submitter-{n}",
                    role="submitter",
                    scopes=None,
                    now_ts=now_ts,
                ).account.id
                for n in range(SUBMITTERS)
            ]
    finally:
        engine.dispose()
    return owner, submitters


def seed_devices(
    database_url: str, conn: psycopg.Connection[Any], count: int, now_ts: float
) -> list[tuple[str, str]]:
    """Enroll ``count`` GPU heaters, online, each with a week-long heat window.

    Parameters
    ----------
    database_url : str
        The coordinator database (SQLAlchemy URL), for the accounts.
    conn : psycopg.Connection
        A connection to the same database, for ``COPY``.
    count : int
        Devices to enroll.
    now_ts : float
        The present [POSIX s, UTC]: enrollment and last heartbeat times derive from it.

    Returns
    -------
    list of (str, str)
        Each device's id and token.
    """
    owner_id, _ = _accounts(database_url, now_ts)
    hardware = json.dumps(
        v1.Hardware(model="bench GPU heater", max_power_w=_DEVICE_POWER_W, vram_gb=24.0).model_dump(
            mode="json"
        )
    )
    issued = [issue_secret("hgd", new_id()) for _ in range(count)]
    _copy(
        conn,
        "devices",
        "id, owner_id, name, kind, hardware, has_room, token_hash, enrolled_ts, last_seen_ts, "
        "revoked_ts",
        (
            f"{secret.id}\t{owner_id}\tbench heater {n}\tgpu\t{hardware}\tt\t{secret.secret_hash}"
            f"\t{now_ts - 86_400.0!r}\t{now_ts!r}\t{_NULL}\n"
            for n, secret in enumerate(issued)
        ),
    )
    _copy(
        conn,
        "heat_windows",
        "device_id, start_ts, duration_s, heat_power_w, received_ts",
        (
            f"{secret.id}\t{now_ts - 60.0!r}\t{_WINDOW_S!r}\t{_DEVICE_POWER_W!r}\t{now_ts!r}\n"
            for secret in issued
        ),
    )
    return [(secret.id, secret.token) for secret in issued]


def seed_tasks(conn: psycopg.Connection[Any], count: int, now_ts: float) -> int:
    """Queue ``count`` GPU tasks in jobs of at most ``MAX_TASKS_PER_JOB``; return the job count.

    The submitters' accounts must exist (:func:`seed_devices` makes them). Tasks were queued
    over the hour before ``now_ts`` [POSIX s, UTC], oldest first.
    """
    submitters = [
        int(row[0])
        for row in conn.execute(
            "SELECT id FROM accounts WHERE name LIKE 'bench-submitter-%' ORDER BY id"
        )
    ]
    settings = Settings(database_url="")
    job_count = -(-count // MAX_TASKS_PER_JOB)
    jobs = [
        (
            new_id(),
            submitters[n % len(submitters)],
            min(MAX_TASKS_PER_JOB, count - n * MAX_TASKS_PER_JOB),
        )
        for n in range(job_count)
    ]
    _copy(
        conn,
        "jobs",
        "id, submitter_id, name, state, priority, device_kinds, min_vram_gb, max_attempts, "
        "price_eur_per_kwh, owner_share, task_count, created_ts, ended_ts",
        (
            f'{job_id}\t{submitter}\tbench job {n}\trunning\t0\t["gpu"]\t0.0\t5\t'
            f"{settings.compute_price_eur_per_kwh!r}\t{settings.owner_share!r}\t{tasks}\t"
            f"{now_ts - 3600.0!r}\t{_NULL}\n"
            for n, (job_id, submitter, tasks) in enumerate(jobs)
        ),
    )
    step_s = 3600.0 / max(count, 1)

    def rows() -> Iterator[str]:
        for n in range(count):
            job_id, submitter, _ = jobs[n // MAX_TASKS_PER_JOB]
            queued = repr(now_ts - 3600.0 + n * step_s)
            yield (
                f"{new_id()}\t{job_id}\t{n % MAX_TASKS_PER_JOB}\t{submitter}\tqueued\t0\tt\tf\t"
                "0.0\t"
                f'{{"shard": {n}}}\t{TASK_ENERGY_J!r}\t{_CHECKPOINT_EVERY_J!r}\t0.0\t0\t0\t'
                f"{queued}\t{queued}\n"
            )

    _copy(
        conn,
        "tasks",
        "id, job_id, task_index, submitter_id, state, priority, runs_on_gpu, runs_on_cpu, "
        "min_vram_gb, task_input, energy_j, checkpoint_every_j, progress_energy_j, "
        "checkpoint_seq, attempt, queued_ts, not_before_ts",
        rows(),
    )
    return job_count


def seed_history(conn: psycopg.Connection[Any], count: int, now_ts: float) -> None:
    """Record ``count`` tasks completed a day before ``now_ts`` [POSIX s]: rows, attempts, ledger.

    A fleet with a million tasks queued has completed many before. Left empty, the tables that
    only completed work fills (``task_attempts``, ``ledger_transactions``, ``ledger_entries``)
    are planned as empty (the seed's ``ANALYZE`` sees no rows), and each server connection
    keeps such a plan until autovacuum analyzes the table (within a minute or so of a
    deployment's start, but after a run of this benchmark has ended): PostgreSQL then checks
    each new ledger entry's foreign key, and reads a completion batch's attempts, with a
    sequential scan of tables that grow during the run. The history is one completed job of
    ``count`` tasks (at most 10,000 per job is the API's rule; this job is the seed's, never
    listed against it), each with its completed attempt on the first seeded heater and a
    balanced settlement (one kWh from the heater to the job, in joules). Call it after
    :func:`seed_devices` and :func:`seed_tasks`.
    """
    if count <= 0:
        return
    params = {"n": count, "ts": now_ts - 86_400.0, "j": TASK_ENERGY_J}
    conn.execute(
        "INSERT INTO jobs (id, submitter_id, name, state, priority, device_kinds, min_vram_gb, "
        "max_attempts, price_eur_per_kwh, owner_share, task_count, created_ts, ended_ts) "
        "SELECT 'bench-history', submitter_id, 'bench history', 'completed', 0, device_kinds, "
        "0.0, max_attempts, price_eur_per_kwh, owner_share, %(n)s, %(ts)s, %(ts)s "
        "FROM jobs ORDER BY id LIMIT 1",
        params,
    )
    conn.execute(
        "INSERT INTO tasks (id, job_id, task_index, submitter_id, state, priority, runs_on_gpu, "
        "runs_on_cpu, min_vram_gb, task_input, energy_j, checkpoint_every_j, progress_energy_j, "
        "checkpoint_seq, attempt, queued_ts, not_before_ts, ended_ts, result, result_sha256) "
        "SELECT 'history-' || n, 'bench-history', n - 1, j.submitter_id, 'completed', 0, true, "
        "false, 0.0, json_build_object('shard', n), %(j)s, %(j)s, 0.0, 0, 1, %(ts)s, %(ts)s, "
        "%(ts)s, json_build_object('ok', true), md5(n::text) || md5(n::text) "
        "FROM generate_series(1, %(n)s) AS n, jobs AS j WHERE j.id = 'bench-history'",
        params,
    )
    conn.execute(
        "INSERT INTO task_attempts (task_id, attempt, device_id, outcome, started_ts, ended_ts, "
        "start_progress_energy_j, energy_j, checkpointed_energy_j) "
        "SELECT t.id, 1, d.id, 'completed', %(ts)s, %(ts)s, 0.0, %(j)s, %(j)s "
        "FROM tasks AS t, (SELECT id FROM devices ORDER BY id LIMIT 1) AS d "
        "WHERE t.job_id = 'bench-history'",
        params,
    )
    conn.execute(
        "INSERT INTO ledger_transactions (key, kind, job_id, task_id, device_id, created_ts) "
        "SELECT 'history:' || a.task_id, 'task_attempt', 'bench-history', a.task_id, "
        "a.device_id, %(ts)s FROM task_attempts AS a JOIN tasks AS t ON t.id = a.task_id "
        "WHERE t.job_id = 'bench-history'",
        params,
    )
    conn.execute(
        "INSERT INTO ledger_entries (transaction_id, account, unit, amount) "
        "SELECT l.id, e.account, 'j', e.amount * %(j)s::bigint FROM ledger_transactions AS l "
        "CROSS JOIN LATERAL (VALUES ('device:' || l.device_id, -1), ('job:' || l.job_id, 1)) "
        "AS e(account, amount) WHERE l.key LIKE 'history:%%'",
        params,
    )
