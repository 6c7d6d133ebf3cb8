"""The statements of the hot paths use indexes, on SQLite and PostgreSQL (``EXPLAIN``).

The statements are the ones the app really sends: a heartbeat, a claim, progress, a
completion, and the first page of the job list are sent through the API while every
statement is recorded; each recorded ``SELECT``, ``UPDATE``, ``DELETE`` and ``WITH`` (a
data-modifying CTE) is then explained with its own parameters. A full scan of a table that
grows with the fleet or the queue fails the test. On PostgreSQL sequential scans are priced
out (``enable_seqscan = off``), so a scan in the plan means that no index can serve the
statement, whatever the table's size now.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql as psycopg_sql
from sqlalchemy import Connection, event, text

from heatgrid.coordinator.db.engine import json_rows, json_rows_source

from .conftest import Coordinator

_GROWING = ("tasks", "task_attempts", "telemetry", "heat_windows", "devices", "jobs", "api_keys")
_WEEK_S = 7 * 86_400.0


def _record(coordinator: Coordinator) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        if not many and re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)\b", statement, re.IGNORECASE):
            seen.append((statement, parameters))

    event.listen(coordinator.app.state.engine, "before_cursor_execute", record)
    return seen


def _hot_paths(coordinator: Coordinator) -> list[tuple[str, Any]]:
    owner = coordinator.owner_key()
    submitter = coordinator.submitter_key()
    body = coordinator.enroll_body(coordinator.enrollment_code(owner))
    body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
    enrolled = coordinator.client.post("/v1/devices/enroll", json=body).json()
    device_id, headers = enrolled["device_id"], coordinator.auth(enrolled["device_token"])
    job = {
        "name": "job",
        "checkpoint_every_j": 90_000.0,
        "tasks": [{"task_input": {"n": n}, "energy_j": 360_000.0} for n in range(3)],
    }
    answer = coordinator.client.post("/v1/jobs", json=job, headers=coordinator.auth(submitter))
    assert answer.status_code == 201, answer.text
    base = f"/v1/devices/{device_id}"
    now_ts = coordinator.clock()
    beat = {
        "sent_ts": now_ts,
        "telemetry": coordinator.heartbeat_body(now_ts, [800.0])["telemetry"],
        "heat_window": [{"start_ts": now_ts, "duration_s": _WEEK_S, "heat_power_w": 1000.0}],
    }
    assert coordinator.client.post(f"{base}/heartbeat", json=beat, headers=headers).is_success

    seen = _record(coordinator)
    assert coordinator.client.post(f"{base}/heartbeat", json=beat, headers=headers).is_success
    claimed = coordinator.client.post(f"{base}/claim", json={"slots": 2}, headers=headers)
    assert claimed.status_code == 200, claimed.text
    [lease, other] = claimed.json()["leases"]
    task = f"{base}/tasks/{lease['task_id']}"
    report = {"attempt": lease["attempt"], "energy_j": 1000.0}
    assert coordinator.client.post(f"{task}/progress", json=report, headers=headers).is_success
    done = {**report, "energy_j": 2000.0, "result": {"ok": True}}
    assert coordinator.client.post(f"{task}/complete", json=done, headers=headers).is_success
    batch = [{**done, "task_id": other["task_id"], "attempt": other["attempt"]}]
    batched = coordinator.client.post(
        f"{base}/completions", json={"completions": batch}, headers=headers
    )
    assert batched.status_code == 200, batched.text
    jobs = coordinator.client.get("/v1/jobs?limit=2", headers=coordinator.auth(submitter))
    assert jobs.status_code == 200, jobs.text
    return seen


def _pg_scans(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan":
            yield str(plan.get("Relation Name"))
        for value in plan.values():
            yield from _pg_scans(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _pg_scans(value)


def _scans(connection: Connection, backend: str, statement: str, parameters: Any) -> list[str]:
    """Return the growing tables the statement's plan reads in full."""
    if backend == "postgresql":
        row = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).one()
        plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
        return [table for table in _pg_scans(plan) if table in _GROWING]
    rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    found = []
    for row in rows:
        match = re.match(r"SCAN (\w+)(?! USING (COVERING )?INDEX)", str(row[-1]))
        if match and match.group(1) in _GROWING:
            found.append(match.group(1))
        # A write of given rows that reaches them through the state index reads every task
        # in that state (SQLite has no statistics to know better):
        walk = re.match(r"SEARCH (\w+) USING (COVERING )?INDEX \w+ \(state=\?\)$", str(row[-1]))
        if walk and statement.lstrip().upper().startswith("UPDATE"):
            found.append(f"{walk.group(1)} (every row in one state)")
    return found


def test_hot_statements_use_indexes(coordinator: Coordinator, backend: str) -> None:
    recorded = _hot_paths(coordinator)
    assert len(recorded) >= 10, recorded
    tables = " ".join(statement for statement, _ in recorded)
    for hot in ("tasks", "devices", "heat_windows", "task_attempts", "jobs"):
        assert hot in tables, f"no statement on {hot} was recorded"
    scanned = {}
    with coordinator.app.state.engine.connect() as connection:
        if backend == "postgresql":
            connection.execute(text("SET enable_seqscan = off"))
        for statement, parameters in recorded:
            tables_scanned = _scans(connection, backend, statement, parameters)
            if tables_scanned:
                scanned[" ".join(statement.split())[:200]] = tables_scanned
        connection.rollback()
    assert not scanned, json.dumps(scanned, indent=1)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_full_scan_is_seen(coordinator: Coordinator, backend: str) -> None:
    """The check itself finds a scan where there is one (a query on an unindexed column)."""
    with coordinator.app.state.engine.connect() as connection:
        found = _scans(connection, backend, "SELECT id FROM tasks WHERE energy_j > ?", (1.0,))
    assert found == ["tasks"]


def _pg_indexes(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if "Index Name" in plan:
            yield str(plan["Index Name"])
        for value in plan.values():
            yield from _pg_indexes(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _pg_indexes(value)


def _generic_plan_indexes(connection: Connection, statement: str, parameters: Any) -> list[str]:
    """The indexes of the statement's generic plan: prepared as psycopg prepares it."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", number, statement)
    raw = connection.connection.dbapi_connection
    assert raw is not None
    literals = ", ".join(
        psycopg_sql.Literal(parameters[name]).as_string(raw)  # type: ignore[arg-type]
        for name in names
    )
    connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    connection.exec_driver_sql(f"PREPARE generic_plan AS {prepared}")
    row = connection.exec_driver_sql(
        f"EXPLAIN (FORMAT JSON) EXECUTE generic_plan({literals})"
    ).one()
    connection.exec_driver_sql("DEALLOCATE generic_plan")
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return list(_pg_indexes(plan))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_claim_and_the_sweep_read_their_partial_index_in_a_generic_plan(
    coordinator: Coordinator, backend: str
) -> None:
    """psycopg prepares a statement after a few runs, and PostgreSQL may then plan it once for
    any parameters: the partial claim and lease indexes (``db.models.Task``) serve such a
    generic plan only where the statement names the states in its text (``leases.state_in``).
    """
    recorded = _hot_paths(coordinator)
    wanted = {
        "ix_tasks_queue": "ORDER BY tasks.priority DESC",  # the claim's candidates
        "ix_tasks_lease": "ORDER BY tasks.lease_expires_ts",  # the sweep of expired leases
    }
    found = {}
    with coordinator.app.state.engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        for index, mark in wanted.items():
            statement, parameters = next(
                (statement, parameters) for statement, parameters in recorded if mark in statement
            )
            found[index] = _generic_plan_indexes(connection, statement, parameters)
        connection.rollback()
    assert all(index in found[index] for index in wanted), found


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("jsonb", [False, True])
def test_json_rows_are_planned_as_few(coordinator: Coordinator, backend: str, jsonb: bool) -> None:
    """Rows sent as one JSON parameter are read back whole and planned as few (``unnest``'s 10).

    ``json_to_recordset`` is planned as 100 rows, for which PostgreSQL joined a completion
    batch's ``task_attempts`` by a hash over a sequential scan (``db.engine.json_rows_source``).
    """
    rows = [{"task_id": "task-0", "attempt": 0, "note": 'a "quoted" é, {braces}'}]
    rows += [{"task_id": f"task-{n}", "attempt": n, "note": None} for n in range(1, 3)]
    source = json_rows_source(
        "rows", "v", "task_id VARCHAR, attempt INTEGER, note TEXT", ordinality=True, jsonb=jsonb
    )
    query = f"SELECT v.task_id, v.attempt, v.note FROM {source} ORDER BY v_json.n"
    with coordinator.app.state.engine.connect() as connection:
        found = connection.execute(text(query), {"rows": json_rows(rows)}).all()
        plan = connection.execute(
            text(f"EXPLAIN (FORMAT JSON) {query}"), {"rows": json_rows(rows)}
        ).scalar_one()
    assert [tuple(row) for row in found] == [tuple(row.values()) for row in rows]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    assert plan[0]["Plan"]["Plan Rows"] <= 10, plan
