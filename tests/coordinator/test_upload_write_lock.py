"""The async upload routes never hold SQLite's write lock while the event loop serves others.

An async route runs its database work in worker threads, one hop at a time, and between two
hops the event loop runs whatever else is ready. A route that began a write transaction in
one hop (``BEGIN IMMEDIATE`` on SQLite) and committed it in a later one kept every other
writer waiting in between; and when what the loop ran in between needed the write lock itself
(a write on the loop, or a request whose worker thread was the last one free), nothing could
move until SQLite's 30 s busy timeout ended it with "database is locked".

Here every transaction the app begins in a worker thread while an upload is in flight
schedules another device's claim on the event loop itself, at once. On the loop it runs before
the upload's next hop can start. It completes only if the upload holds no write lock across
hops: its checks read on read-only sessions, and its one write begins and commits within a
single hop. Nothing is timed; the claim completes or fails with "database is locked".
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from heatgrid.coordinator import leases
from heatgrid.coordinator.db.models import Device
from heatgrid.protocol import v1

from .conftest import Coordinator

WEEK_S = 7 * 86_400.0
BLOB = b"checkpoint bytes " * 64
BLOB_SHA256 = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def backend() -> str:
    """SQLite only: its write lock is the one a request could hold across hops."""
    return "sqlite"


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


@dataclass
class _Fleet:
    """Two CPU heaters, a job of two tasks, the first task leased to heater ``a``."""

    a_id: str
    a_auth: dict[str, str]
    b_id: str
    task_id: str
    submitter_auth: dict[str, str]


def _heater(coordinator: Coordinator, owner_key: str, name: str) -> tuple[str, dict[str, str]]:
    http = coordinator.client
    code = coordinator.enrollment_code(owner_key)
    enrolled = _ok(
        http.post(
            "/v1/devices/enroll",
            json={
                "enrollment_code": code,
                "device_name": name,
                "device_kind": "cpu",
                "hardware": {"max_power_w": 200.0},
                "has_room": True,
            },
        ),
        201,
    )
    auth = coordinator.auth(enrolled["device_token"])
    now_ts = coordinator.clock()
    window = [{"start_ts": now_ts, "duration_s": WEEK_S, "heat_power_w": 200.0}]
    _ok(
        http.post(
            f"/v1/devices/{enrolled['device_id']}/heartbeat",
            json={"sent_ts": now_ts, "heat_window": window},
            headers=auth,
        )
    )
    return str(enrolled["device_id"]), auth


@pytest.fixture
def fleet(coordinator: Coordinator) -> _Fleet:
    owner_key = coordinator.owner_key()
    a_id, a_auth = _heater(coordinator, owner_key, "kitchen")
    b_id, _ = _heater(coordinator, owner_key, "study")
    submitter_auth = coordinator.auth(coordinator.submitter_key())
    tasks = [{"energy_j": 3.6e6}, {"energy_j": 3.6e6}]
    _ok(
        coordinator.client.post(
            "/v1/jobs",
            json={"name": "train", "device_kinds": ["cpu"], "tasks": tasks},
            headers=submitter_auth,
        ),
        201,
    )
    [lease] = _ok(
        coordinator.client.post(f"/v1/devices/{a_id}/claim", json={"slots": 1}, headers=a_auth)
    )["leases"]
    assert lease["attempt"] == 1
    return _Fleet(a_id, a_auth, b_id, lease["task_id"], submitter_auth)


@dataclass
class _ClaimsOnTheLoop:
    """While armed, each transaction begun off the loop makes the loop run heater b's claim."""

    coordinator: Coordinator
    device_id: str
    armed: bool = False
    leased: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    claims: int = 0

    def __post_init__(self) -> None:
        portal = self.coordinator.client.portal
        self._loop: asyncio.AbstractEventLoop = portal.call(asyncio.get_running_loop)
        self._loop_thread: int = portal.call(threading.get_ident)

    def on_begin(self, _connection: Any) -> None:
        """The engine's ``begin`` event: the transaction has begun (on SQLite, a writer's
        ``BEGIN IMMEDIATE`` holds the write lock by now)."""
        if self.armed and threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self._claim)

    def _claim(self) -> None:
        # On the event loop's own thread: until this returns, no other hop can start.
        app = self.coordinator.app
        self.claims += 1
        try:
            with app.state.session_factory() as session:
                device = session.get_one(Device, self.device_id)
                granted = leases.claim(
                    session,
                    device,
                    v1.ClaimRequest(slots=1),
                    now_ts=self.coordinator.clock(),
                    settings=app.state.settings,
                )
            self.leased.extend(lease.task_id for lease in granted)
        except Exception as error:  # "database is locked": reported by the test
            self.errors.append(error)


@pytest.fixture
def claims(coordinator: Coordinator, fleet: _Fleet) -> Iterator[_ClaimsOnTheLoop]:
    watcher = _ClaimsOnTheLoop(coordinator, fleet.b_id)
    engine = coordinator.app.state.engine
    event.listen(engine, "begin", watcher.on_begin)
    try:
        yield watcher
    finally:
        event.remove(engine, "begin", watcher.on_begin)


def _checkpoint(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
    return coordinator.client.put(
        f"/v1/devices/{fleet.a_id}/tasks/{fleet.task_id}/checkpoint",
        params={"attempt": 1, "energy_j": 1000.0},
        content=BLOB,
        headers=fleet.a_auth,
    )


def _chunk(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
    return coordinator.client.put(
        f"/v1/devices/{fleet.a_id}/tasks/{fleet.task_id}/checkpoint-chunks/{BLOB_SHA256}",
        params={"attempt": 1},
        content=BLOB,
        headers=fleet.a_auth,
    )


def _missing(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
    return coordinator.client.post(
        f"/v1/devices/{fleet.a_id}/tasks/{fleet.task_id}/checkpoint-chunks/missing",
        json={"attempt": 1, "chunks": [BLOB_SHA256]},
        headers=fleet.a_auth,
    )


def _commit(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
    return coordinator.client.post(
        f"/v1/devices/{fleet.a_id}/tasks/{fleet.task_id}/checkpoints",
        json={
            "attempt": 1,
            "energy_j": 1000.0,
            "chunks": [BLOB_SHA256],
            "sha256": BLOB_SHA256,
            "size_bytes": len(BLOB),
        },
        headers=fleet.a_auth,
    )


def _artifact(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
    return coordinator.client.put(
        f"/v1/artifacts/{BLOB_SHA256}", content=BLOB, headers=fleet.submitter_auth
    )


_Upload = Callable[[Coordinator, _Fleet], httpx.Response]
_UPLOADS: dict[str, tuple[list[_Upload], _Upload, int]] = {
    # name: (sent before, unwatched; the upload watched; its status)
    "checkpoint": ([], _checkpoint, 200),
    "chunk": ([], _chunk, 201),
    "missing-chunks": ([], _missing, 200),
    "commit-chunks": ([_chunk], _commit, 200),
    "artifact": ([], _artifact, 201),
    "artifact-again": ([_artifact], _artifact, 200),
}


@pytest.mark.parametrize("name", list(_UPLOADS))
def test_another_heaters_claim_runs_on_the_loop_between_an_uploads_hops(
    name: str, coordinator: Coordinator, fleet: _Fleet, claims: _ClaimsOnTheLoop
) -> None:
    before, upload, status = _UPLOADS[name]
    for step in before:
        assert step(coordinator, fleet).status_code < 300
    claims.armed = True
    answer = upload(coordinator, fleet)
    claims.armed = False
    assert answer.status_code == status, answer.text
    assert claims.claims >= 1  # the upload did touch the database
    assert claims.errors == []
    assert len(claims.leased) == 1  # heater b got the job's other task, once
    assert claims.leased != [fleet.task_id]


def _report(path: str, body: dict[str, Any]) -> _Upload:
    def send(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
        url = f"/v1/devices/{fleet.a_id}/{path.format(task=fleet.task_id)}"
        return coordinator.client.post(url, json=body, headers=fleet.a_auth)

    return send


def _batch(coordinator: Coordinator, fleet: _Fleet) -> httpx.Response:
    item = {"task_id": fleet.task_id, "attempt": 1, "energy_j": 1000.0, "result": {"loss": 0.1}}
    return coordinator.client.post(
        f"/v1/devices/{fleet.a_id}/completions", json={"completions": [item]}, headers=fleet.a_auth
    )


_DEVICE_ROUTES: dict[str, tuple[_Upload, int]] = {
    # name: (the request of heater a, watched; how many tasks heater b's claims then get)
    "progress": (_report("tasks/{task}/progress", {"attempt": 1, "energy_j": 1000.0}), 1),
    "complete": (
        _report("tasks/{task}/complete", {"attempt": 1, "energy_j": 1000.0, "result": {}}),
        1,
    ),
    "completions": (_batch, 1),
    "fail": (_report("tasks/{task}/fail", {"attempt": 1, "energy_j": 1.0, "error": "oom"}), 1),
    "hand-back": (
        _report("tasks/{task}/hand-back", {"attempt": 1, "energy_j": 1.0, "reason": "warm"}),
        1,
    ),
    "claim": (_report("claim", {"slots": 1}), -1),  # a and b race for the one task left
}


@pytest.mark.parametrize("name", list(_DEVICE_ROUTES))
def test_another_heaters_claim_runs_on_the_loop_between_a_device_routes_hops(
    name: str, coordinator: Coordinator, fleet: _Fleet, claims: _ClaimsOnTheLoop
) -> None:
    """The device routes that write read the device's row, check and write in one hop.

    Before, the row was read (``BEGIN IMMEDIATE`` on SQLite) in the dependency's hop and the
    route committed in the next one, so heater b's claim on the loop found the lock taken.
    """
    request, leased = _DEVICE_ROUTES[name]
    claims.armed = True
    answer = request(coordinator, fleet)
    claims.armed = False
    assert answer.status_code == 200, answer.text
    assert claims.claims >= 1  # the route did begin a transaction off the loop
    assert claims.errors == []
    if leased >= 0:
        assert len(claims.leased) == leased  # once, whichever task (a hand-back's is free)
    else:  # the claim: the job's other task went to a or to b, once
        granted = [lease["task_id"] for lease in answer.json()["leases"]]
        assert len(granted) + len(claims.leased) == 1
