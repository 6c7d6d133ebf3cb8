"""Lists page with keyset cursors at a fixed number of queries, and reads never block writes.

On SQLite and PostgreSQL: ``GET /v1/jobs`` and ``GET /v1/devices`` honour ``?limit=``, refuse
one over the cap, hand out ``next_cursor`` until the last page, visit every row once, and build
a page with as many SQL statements whatever the number of jobs (no query per job). On SQLite:
a heartbeat goes through while a listing's read transaction is open (reads begin deferred and
WAL lets them read a snapshot; only writers take the write lock).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import event

from heatgrid.coordinator.pages import MAX_PAGE_LIMIT

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")


def _submit(coordinator: Coordinator, key: str, count: int, tasks: int = 2) -> list[str]:
    ids = []
    for index in range(count):
        body = {
            "name": f"job {index}",
            "device_kinds": ["cpu"],
            "tasks": [{"task_input": {"n": n}, "energy_j": 3.6e6} for n in range(tasks)],
        }
        answer = coordinator.client.post("/v1/jobs", json=body, headers=coordinator.auth(key))
        assert answer.status_code == 201, answer.text
        ids.append(str(answer.json()["job_id"]))
        coordinator.clock.advance(1.0 if index % 3 else 0.0)  # some jobs share a created_ts
    return ids


@contextmanager
def _statements(coordinator: Coordinator) -> Iterator[list[str]]:
    """Collect the SQL statements the app sends while the block runs."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = coordinator.app.state.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _page_statements(coordinator: Coordinator, key: str, limit: int) -> int:
    with _statements(coordinator) as seen:
        answer = coordinator.client.get(
            "/v1/jobs", params={"limit": limit}, headers=coordinator.auth(key)
        )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) == limit
    return len(seen)


def test_a_page_of_jobs_costs_the_same_statements_however_many_jobs(
    coordinator: Coordinator,
) -> None:
    carol = coordinator.submitter_key()
    _submit(coordinator, carol, 12)
    few = _page_statements(coordinator, carol, 10)
    _submit(coordinator, carol, 36)
    many = _page_statements(coordinator, carol, 10)
    assert few == many
    # and a bigger page costs no more statements than a smaller one
    assert _page_statements(coordinator, carol, 40) == many


def _walk(coordinator: Coordinator, path: str, key: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        answer = coordinator.client.get(path, params=params, headers=coordinator.auth(key))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["items"]) <= limit
        rows.extend(page["items"])
        if page["next_cursor"] is None:
            return rows
        assert len(page["items"]) == limit
        params["cursor"] = page["next_cursor"]


def test_jobs_page_newest_first_each_once_and_only_ones_own(coordinator: Coordinator) -> None:
    carol, dave = coordinator.submitter_key("carol"), coordinator.submitter_key("dave")
    carols = _submit(coordinator, carol, 11, tasks=1)
    daves = _submit(coordinator, dave, 3, tasks=1)
    seen = _walk(coordinator, "/v1/jobs", carol, 4)
    assert sorted(job["job_id"] for job in seen) == sorted(carols)
    keys = [(job["created_ts"], job["job_id"]) for job in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id
    assert all(job["tasks_by_state"] == {"queued": 1} for job in seen)
    everything = _walk(coordinator, "/v1/jobs", coordinator.operator_key, 5)
    assert {job["job_id"] for job in everything} == set(carols + daves)
    default = coordinator.client.get("/v1/jobs", headers=coordinator.auth(carol)).json()
    assert len(default["items"]) == 11
    assert default["next_cursor"] is None


def test_devices_page_oldest_first_each_once(coordinator: Coordinator) -> None:
    owner = coordinator.owner_key()
    enrolled = []
    for index in range(7):
        device_id, _token = coordinator.enroll(
            coordinator.enrollment_code(owner), f"heater {index}"
        )
        enrolled.append(device_id)
        coordinator.clock.advance(0.0 if index % 2 else 1.0)
    seen = _walk(coordinator, "/v1/devices", owner, 3)
    assert sorted(device["device_id"] for device in seen) == sorted(enrolled)
    keys = [(device["enrolled_ts"], device["device_id"]) for device in seen]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": MAX_PAGE_LIMIT + 1}, "limit"),
        ({"limit": 0}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # a cursor of another shape: ["x"]
    ],
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/devices", "/v1/ledger/balances"])
def test_a_bad_limit_or_cursor_is_refused_naming_it(
    coordinator: Coordinator, path: str, params: dict[str, Any], field: str
) -> None:
    answer = coordinator.client.get(
        path, params=params, headers=coordinator.auth(coordinator.operator_key)
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}:")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_heartbeat_is_not_blocked_by_an_open_listing_on_sqlite(coordinator: Coordinator) -> None:
    carol = coordinator.submitter_key()
    _submit(coordinator, carol, 3)
    device_id, token = coordinator.enroll(coordinator.enrollment_code(coordinator.owner_key()))
    reading, release = threading.Event(), threading.Event()

    def hold_the_listing(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The listing's transaction has begun (its key was looked up); it stops here, open.
        if "FROM jobs" in statement and not reading.is_set():
            reading.set()
            release.wait(timeout=120.0)

    engine = coordinator.app.state.engine
    event.listen(engine, "before_cursor_execute", hold_the_listing)
    portal = coordinator.client.portal
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=coordinator.app), base_url="http://coordinator.test"
    )
    try:
        listing = portal.start_task_soon(
            functools.partial(client.get, "/v1/jobs", headers=coordinator.auth(carol))
        )
        assert reading.wait(timeout=60.0)

        async def beat() -> httpx.Response:
            with anyio.fail_after(20.0):  # the busy timeout is 30 s: a blocked beat fails here
                return await client.post(
                    f"/v1/devices/{device_id}/heartbeat",
                    json=coordinator.heartbeat_body(coordinator.clock(), [900.0]),
                    headers=coordinator.auth(token),
                )

        answer = portal.call(beat)
        assert answer.status_code == 200, answer.text
        assert not listing.done()  # the listing was still open all along
        release.set()
        listed = listing.result(timeout=60.0)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()["items"]) == 3
    finally:
        release.set()
        event.remove(engine, "before_cursor_execute", hold_the_listing)
        portal.call(client.aclose)


def test_a_jobs_tasks_page_in_index_order_for_its_submitter_only(
    coordinator: Coordinator,
) -> None:
    carol, dave = coordinator.submitter_key("carol"), coordinator.submitter_key("dave")
    [job_id] = _submit(coordinator, carol, 1, tasks=7)
    seen = _walk(coordinator, f"/v1/jobs/{job_id}/tasks", carol, 3)
    assert [task["task_index"] for task in seen] == list(range(7))
    assert all(task["state"] == "queued" for task in seen)
    hidden = coordinator.client.get(f"/v1/jobs/{job_id}/tasks", headers=coordinator.auth(dave))
    assert hidden.status_code == 404, hidden.text
    wrong = coordinator.client.get(
        f"/v1/jobs/{job_id}/tasks", params={"cursor": "WyJ4Il0"}, headers=coordinator.auth(carol)
    )
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["detail"].startswith("cursor:")
