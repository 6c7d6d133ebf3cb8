"""Heartbeats arriving together are stored together, each answered as if stored alone."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import event, func, select, update

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Device, HeatWindowSegmentRow, Task, TelemetrySampleRow
from heatgrid.coordinator.heartbeats import HeartbeatWriter
from heatgrid.protocol import v1

from .conftest import Coordinator

pytestmark = pytest.mark.usefixtures("backend")

_DEVICES = 24


def _send_together(coordinator: Coordinator, requests: list[tuple[str, str, Any]]) -> list[Any]:
    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=coordinator.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://c.test") as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(url, json=body, headers=coordinator.auth(token))
                        for url, token, body in requests
                    )
                )
            )

    return list(coordinator.client.portal.call(send))


def _query(database_url: str, statement: Any) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.execute(statement))
    finally:
        engine.dispose()


def test_heartbeats_sent_at_once_share_transactions_and_answer_each(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key()
    fleet = [coordinator.enroll(coordinator.enrollment_code(owner)) for _ in range(_DEVICES)]
    now_ts = coordinator.clock()
    for device_id, token in fleet:  # each token verified and cached
        first = coordinator.heartbeat_body(now_ts - 120.0, [500.0])
        answer = coordinator.client.post(
            f"/v1/devices/{device_id}/heartbeat", json=first, headers=coordinator.auth(token)
        )
        assert answer.status_code == 200, answer.text
    revoked_id = fleet[0][0]
    engine = make_engine(coordinator.database_url)
    try:  # revoked behind this process's back: its cached token must still be refused
        with make_session_factory(engine)() as session:
            session.execute(update(Device).where(Device.id == revoked_id).values(revoked_ts=now_ts))
            session.commit()
    finally:
        engine.dispose()
    writer: HeartbeatWriter = coordinator.app.state.heartbeat_writer
    batches_before = writer.batches
    row_by_row: list[str] = []  # cursor.executemany: psycopg runs the statement once per row
    event.listen(
        coordinator.app.state.engine,
        "do_executemany",
        lambda _cursor, statement, *_: row_by_row.append(statement),
    )

    coordinator.clock.advance(60.0)
    later_ts = coordinator.clock()
    requests = [
        (f"/v1/devices/{device_id}/heartbeat", token, coordinator.heartbeat_body(later_ts, [700.0]))
        for device_id, token in fleet
    ]
    twice_id, twice_token = fleet[1]  # a second heartbeat of one device, with another sample
    requests.append(
        (
            f"/v1/devices/{twice_id}/heartbeat",
            twice_token,
            coordinator.heartbeat_body(later_ts - 30.0, [650.0]),
        )
    )
    answers = _send_together(coordinator, requests)

    assert answers[0].status_code == 401
    assert "revoked" in answers[0].json()["detail"]
    for answer in answers[1:]:
        assert answer.status_code == 200, answer.text
        assert (answer.json()["stored_samples"], answer.json()["duplicate_samples"]) == (1, 0)
    assert writer.batches - batches_before < len(requests) - 1  # stored together
    assert row_by_row == []  # samples and heat windows: one multi-row INSERT each

    samples = dict(
        _query(
            coordinator.database_url,
            select(TelemetrySampleRow.device_id, func.count()).group_by(
                TelemetrySampleRow.device_id
            ),
        )
    )
    assert samples[revoked_id] == 1  # only the heartbeat from before the revocation
    assert samples[twice_id] == 3
    assert all(samples[device_id] == 2 for device_id, _ in fleet[2:])
    windows = dict(
        _query(
            coordinator.database_url,
            select(HeatWindowSegmentRow.device_id, func.count()).group_by(
                HeatWindowSegmentRow.device_id
            ),
        )
    )
    assert all(windows[device_id] == 2 for device_id, _ in fleet)  # replaced, never doubled
    seen = dict(_query(coordinator.database_url, select(Device.id, Device.last_seen_ts)))
    assert seen[revoked_id] == now_ts
    assert all(seen[device_id] == later_ts for device_id, _ in fleet[1:])


def test_a_batched_heartbeat_renews_only_its_own_devices_leases(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key()
    submitter = coordinator.submitter_key()
    devices = []
    for name in ("one", "two"):
        body = coordinator.enroll_body(coordinator.enrollment_code(owner), name)
        body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
        enrolled = coordinator.client.post("/v1/devices/enroll", json=body).json()
        devices.append((enrolled["device_id"], enrolled["device_token"]))
    job = {
        "name": "job",
        "checkpoint_every_j": 90_000.0,
        "tasks": [{"task_input": {"n": n}, "energy_j": 360_000.0} for n in range(2)],
    }
    answer = coordinator.client.post("/v1/jobs", json=job, headers=coordinator.auth(submitter))
    assert answer.status_code == 201, answer.text
    now_ts = coordinator.clock()
    window = [{"start_ts": now_ts, "duration_s": 86_400.0, "heat_power_w": 1000.0}]
    leased = {}
    for device_id, token in devices:
        beat = {"sent_ts": now_ts, "heat_window": window}
        url = f"/v1/devices/{device_id}"
        headers = coordinator.auth(token)
        assert coordinator.client.post(f"{url}/heartbeat", json=beat, headers=headers).is_success
        claim = coordinator.client.post(f"{url}/claim", json={"slots": 1}, headers=headers)
        [lease] = claim.json()["leases"]
        leased[device_id] = lease["task_id"]

    coordinator.clock.advance(100.0)
    later = coordinator.clock()
    answers = _send_together(
        coordinator,
        [
            (f"/v1/devices/{device_id}/heartbeat", token, {"sent_ts": later, "heat_window": []})
            for device_id, token in devices
        ],
    )
    for (device_id, _), answer in zip(devices, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json()["leased_task_ids"] == [leased[device_id]]
        assert answer.json()["lease_expires_ts"] == later + coordinator.app.state.settings.lease_s
    expiries = dict(_query(coordinator.database_url, select(Task.id, Task.lease_expires_ts)))
    assert all(
        expiries[task_id] == later + coordinator.app.state.settings.lease_s
        for task_id in leased.values()
    )


def _statements_sent(engine: Any) -> list[str]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return sent


def _statements_sent_by_the_writer(engine: Any) -> list[str]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name == "heatgrid-heartbeat-writer":
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return sent


def test_only_a_batch_that_renews_no_lease_commits_without_waiting_for_the_flush(
    coordinator: Coordinator, backend: str
) -> None:
    owner = coordinator.owner_key()
    submitter = coordinator.submitter_key()
    body = coordinator.enroll_body(coordinator.enrollment_code(owner), "gpu")
    body.update(device_kind="gpu", hardware={"max_power_w": 900.0, "vram_gb": 24.0})
    enrolled = coordinator.client.post("/v1/devices/enroll", json=body).json()
    device_id, token = enrolled["device_id"], enrolled["device_token"]
    url, headers = f"/v1/devices/{device_id}", coordinator.auth(token)
    now_ts = coordinator.clock()
    window = [{"start_ts": now_ts, "duration_s": 86_400.0, "heat_power_w": 1000.0}]
    sent = _statements_sent(coordinator.app.state.engine)

    beat = {"sent_ts": now_ts, "heat_window": window}
    assert coordinator.client.post(f"{url}/heartbeat", json=beat, headers=headers).is_success
    telemetry_only = [line for line in sent if "synchronous_commit" in line]
    job = {
        "name": "job",
        "checkpoint_every_j": 90_000.0,
        "tasks": [{"task_input": {"n": 1}, "energy_j": 360_000.0}],
    }
    submitted = coordinator.client.post("/v1/jobs", json=job, headers=coordinator.auth(submitter))
    assert submitted.status_code == 201, submitted.text
    claimed = coordinator.client.post(f"{url}/claim", json={"slots": 1}, headers=headers)
    assert len(claimed.json()["leases"]) == 1, claimed.text
    sent.clear()
    writer_sent = _statements_sent_by_the_writer(coordinator.app.state.engine)
    coordinator.clock.advance(30.0)
    beat = {
        "sent_ts": coordinator.clock(),
        "heat_window": window,
        "telemetry": coordinator.heartbeat_body(coordinator.clock(), [800.0])["telemetry"],
    }
    renewing = coordinator.client.post(f"{url}/heartbeat", json=beat, headers=headers)

    assert renewing.json()["leased_task_ids"] == [claimed.json()["leases"][0]["task_id"]]
    assert renewing.json()["stored_samples"] == 1
    renewal = [line for line in sent if "synchronous_commit" in line]
    if backend == "postgresql":  # the writer's session commits asynchronously, but a lease
        assert telemetry_only == ["SET synchronous_commit = off"]
        assert renewal == ["SET LOCAL synchronous_commit = on"]
        # the whole batch is one statement (data-modifying CTEs), then the SET LOCAL
        assert len(writer_sent) == 2, writer_sent
        assert writer_sent[0].startswith("WITH alive AS (UPDATE devices"), writer_sent
    else:  # SQLite commits every batch alike, in five statements (after its BEGIN IMMEDIATE)
        assert telemetry_only == renewal == []
        assert len([line for line in writer_sent if not line.startswith("BEGIN")]) == 5


def test_stopping_the_writer_stores_and_answers_every_queued_heartbeat(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key()
    fleet = [coordinator.enroll(coordinator.enrollment_code(owner)) for _ in range(_DEVICES)]
    now_ts = coordinator.clock()
    writer = HeartbeatWriter(coordinator.app.state.engine, lease_s=600.0, max_batch=4)
    beats = [
        v1.Heartbeat.model_validate(coordinator.heartbeat_body(now_ts, [600.0])) for _ in fleet
    ]

    async def queue_then_stop() -> list[Any]:
        writes = [
            asyncio.ensure_future(writer.write(device_id, beat, now_ts=now_ts))
            for (device_id, _), beat in zip(fleet, beats, strict=True)
        ]
        await asyncio.sleep(0)  # all queued, few written
        await anyio.to_thread.run_sync(writer.stop)
        assert all(write.done() for write in writes)  # stop() returned after the last batch
        return [write.result() for write in writes]

    stored = coordinator.client.portal.call(queue_then_stop)

    assert [(one.revoked, one.stored_samples) for one in stored] == [(False, 1)] * len(fleet)
    assert writer.batches >= len(fleet) // 4
    rows = _query(
        coordinator.database_url,
        select(func.count())
        .select_from(TelemetrySampleRow)
        .where(TelemetrySampleRow.device_id.in_([device_id for device_id, _ in fleet])),
    )
    assert rows[0][0] == len(fleet)


def test_disposing_of_the_engine_ends_the_writer_and_closes_its_connection(
    coordinator: Coordinator,
) -> None:
    owner = coordinator.owner_key()
    device_id, token = coordinator.enroll(coordinator.enrollment_code(owner))
    engine = coordinator.app.state.engine
    out: set[int] = set()
    closed: set[int] = set()
    event.listen(engine, "checkout", lambda conn, *_: out.add(id(conn)))
    event.listen(engine, "checkin", lambda conn, *_: out.discard(id(conn)))
    event.listen(engine, "close", lambda conn, *_: closed.add(id(conn)))
    beat = coordinator.heartbeat_body(coordinator.clock(), [500.0])
    answer = coordinator.client.post(
        f"/v1/devices/{device_id}/heartbeat", json=beat, headers=coordinator.auth(token)
    )
    assert answer.status_code == 200, answer.text
    [held] = out  # the writer's, held between batches
    writer = [t for t in threading.enumerate() if t.name == "heatgrid-heartbeat-writer"]
    assert writer

    engine.dispose()

    assert not any(t.is_alive() for t in writer)
    assert held in closed  # closed, not left open in the pool disposed of
