"""Acceptance: 50 concurrent claimers on PostgreSQL never receive the same task attempt.

Two real ``heatgrid serve`` processes share one PostgreSQL database, each on its own loopback
port. Fifty GPU heaters enroll; each round, a submitter sends two jobs of 100 tasks, and the
fifty heaters, each a thread with its own HTTP connection to one of the two processes, claim
at once until every task is leased. No (task, attempt) may be granted twice, and every task
must be granted exactly once, to the device the database says holds it. Three rounds. Then
every heater hands its results in as batches sent to both processes at once (a retry racing
the original): each task is completed and settled exactly once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.db.models import LedgerTransaction, Task, TaskAttempt

from .conftest import PostgresServer
from .serve_process import ServeProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEVICES = 50
JOBS = 2
TASKS_PER_JOB = 100
_MAX_IDLE_CLAIMS = 400  # a claimer gives up after this many empty answers in a row
_IDLE_PAUSE_S = 0.02


@dataclass
class Fleet:
    """Two coordinator processes on one database, a submitter, and enrolled heaters."""

    base_urls: list[str]
    submitter_key: str
    devices: list[tuple[str, str]]  # (device_id, device_token)
    logs: list[Path]
    database_url: str


def _enroll_fleet(base_url: str, owner_key: str) -> list[tuple[str, str]]:
    devices = []
    now_ts = time.time()
    window = [{"start_ts": now_ts, "duration_s": 86_400.0, "heat_power_w": 1000.0}]
    owner = {"Authorization": f"Bearer {owner_key}"}
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for index in range(DEVICES):
            code = client.post("/v1/admin/enrollment-codes", json={"ttl_s": 600.0}, headers=owner)
            assert code.status_code == 201, code.text
            enrolled = client.post(
                "/v1/devices/enroll",
                json={
                    "enrollment_code": code.json()["enrollment_code"],
                    "device_name": f"heater {index}",
                    "device_kind": "gpu",
                    "hardware": {"max_power_w": 450.0, "vram_gb": 24.0},
                    "has_room": True,
                },
            )
            assert enrolled.status_code == 201, enrolled.text
            device_id, token = enrolled.json()["device_id"], enrolled.json()["device_token"]
            beat = client.post(
                f"/v1/devices/{device_id}/heartbeat",
                json={"sent_ts": now_ts, "heat_window": window},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert beat.status_code == 200, beat.text
            devices.append((device_id, token))
    return devices


@pytest.fixture(scope="module")
def fleet(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Two ``heatgrid serve`` processes on a fresh migrated PostgreSQL database, 50 heaters."""
    url = postgres_server.new_database()
    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        keys = {
            role: create_api_key(
                session, name=role, role=role, scopes=None, now_ts=time.time()
            ).token
            for role in ("owner", "submitter")
        }
    engine.dispose()
    directory = tmp_path_factory.mktemp("claim-concurrency")
    logs = [directory / f"serve-{index}.log" for index in range(2)]
    servers = [ServeProcess(url, log, ("--log-level", "warning")) for log in logs]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        base_urls = [server.url for server in servers]
        devices = _enroll_fleet(base_urls[0], keys["owner"])
        yield Fleet(base_urls, keys["submitter"], devices, logs, url)
    finally:
        for server in servers:
            server.stop()
    for log in logs:
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        assert not [r for r in records if r.get("level") in ("error", "critical")], log


@dataclass
class _Round:
    """What the claimers of one round share: a start line and the leases granted so far."""

    total: int
    start: threading.Barrier
    lock: threading.Lock = field(default_factory=threading.Lock)
    granted: list[tuple[str, int, str]] = field(default_factory=list)  # (task, attempt, device)

    def record(self, device_id: str, leases: list[dict[str, Any]]) -> bool:
        """Record a claimer's new leases; return whether every task is leased now."""
        with self.lock:
            self.granted.extend((lease["task_id"], lease["attempt"], device_id) for lease in leases)
            return len(self.granted) >= self.total


class _Claimer(threading.Thread):
    """One heater claiming tasks over its own connection until every task is leased."""

    def __init__(self, base_url: str, device: tuple[str, str], round_: _Round, seed: int) -> None:
        super().__init__(name=f"claimer-{device[0]}")
        self.base_url = base_url
        self.device_id, self.token = device
        self.round = round_
        self.random = random.Random(seed)
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            self._claim_until_done()
        except Exception as error:  # reported by the test, not lost in the thread
            self.errors.append(repr(error))

    def _claim_until_done(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"/v1/devices/{self.device_id}/claim"
        idle = 0
        with httpx.Client(base_url=self.base_url, timeout=60.0) as client:
            self.round.start.wait(timeout=60.0)
            while idle < _MAX_IDLE_CLAIMS:
                answer = client.post(
                    url, json={"slots": self.random.randint(1, 3)}, headers=headers
                )
                if answer.status_code not in (200, 429):
                    self.errors.append(f"{answer.status_code}: {answer.text}")
                    return
                leases = answer.json()["leases"] if answer.status_code == 200 else []
                if self.round.record(self.device_id, leases):
                    return
                if leases:
                    idle = 0
                else:  # the rest is locked by other claimers, or this token is over its rate
                    idle += 1
                    time.sleep(_IDLE_PAUSE_S)


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_claimers_never_share_a_task_attempt(fleet: Fleet, round_: int) -> None:
    submitter = {"Authorization": f"Bearer {fleet.submitter_key}"}
    with httpx.Client(base_url=fleet.base_urls[1], timeout=60.0) as client:
        job_ids = []
        for index in range(JOBS):
            job = client.post(
                "/v1/jobs",
                json={
                    "name": f"round {round_} job {index}",
                    "tasks": [
                        {"task_input": {"n": n}, "energy_j": 360_000.0}
                        for n in range(TASKS_PER_JOB)
                    ],
                },
                headers=submitter,
            )
            assert job.status_code == 201, job.text
            job_ids.append(job.json()["job_id"])

        total = JOBS * TASKS_PER_JOB
        shared = _Round(total=total, start=threading.Barrier(DEVICES))
        claimers = [
            _Claimer(fleet.base_urls[index % 2], device, shared, seed=1000 * round_ + index)
            for index, device in enumerate(fleet.devices)
        ]
        for claimer in claimers:
            claimer.start()
        for claimer in claimers:
            claimer.join()
        assert [error for claimer in claimers for error in claimer.errors] == []
        granted = shared.granted

        attempts = [(task_id, attempt) for task_id, attempt, _ in granted]
        assert len(attempts) == len(set(attempts)), "a task attempt was granted twice"
        holders = {task_id: device_id for task_id, _, device_id in granted}
        assert len(set(holders.values())) >= DEVICES // 4  # many claimers got work at once
        tasks = []
        for job_id in job_ids:
            shown = client.get(f"/v1/jobs/{job_id}", headers=submitter)
            assert shown.status_code == 200, shown.text
            tasks.extend(shown.json()["tasks"])
        assert len(tasks) == total
        assert sorted(holders) == sorted(task["task_id"] for task in tasks)  # each task once
        for task in tasks:
            assert (task["state"], task["attempt"]) == ("leased", 1)
            assert task["lease_device_id"] == holders[task["task_id"]]

        for job_id in job_ids:  # end the round: the next one starts with an empty queue
            cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=submitter)
            assert cancelled.status_code == 200, cancelled.text


def _send_batches(
    base_url: str, device: tuple[str, str], items: list[dict[str, Any]], start: threading.Barrier
) -> list[int]:
    """Send a device's completions in batches of at most 16; return every outcome's status."""
    codes = []
    headers = {"Authorization": f"Bearer {device[1]}"}
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        start.wait(timeout=60.0)
        for first in range(0, len(items), 16):
            answer = client.post(
                f"/v1/devices/{device[0]}/completions",
                json={"completions": items[first : first + 16]},
                headers=headers,
            )
            assert answer.status_code == 200, answer.text
            codes += [outcome["status_code"] for outcome in answer.json()["outcomes"]]
    return codes


def test_batches_raced_to_two_processes_complete_each_task_once(fleet: Fleet) -> None:
    submitter = {"Authorization": f"Bearer {fleet.submitter_key}"}
    with httpx.Client(base_url=fleet.base_urls[0], timeout=60.0) as client:
        job = client.post(
            "/v1/jobs",
            json={
                "name": "batches",
                "tasks": [
                    {"task_input": {"n": n}, "energy_j": 360_000.0} for n in range(TASKS_PER_JOB)
                ],
            },
            headers=submitter,
        )
        assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]
    shared = _Round(total=TASKS_PER_JOB, start=threading.Barrier(DEVICES))
    claimers = [
        _Claimer(fleet.base_urls[index % 2], device, shared, seed=index)
        for index, device in enumerate(fleet.devices)
    ]
    for claimer in claimers:
        claimer.start()
    for claimer in claimers:
        claimer.join()
    assert [error for claimer in claimers for error in claimer.errors] == []

    items: dict[str, list[dict[str, Any]]] = {}
    for task_id, attempt, device_id in shared.granted:
        items.setdefault(device_id, []).append(
            {"task_id": task_id, "attempt": attempt, "energy_j": 1000.0, "result": {"t": task_id}}
        )
    tokens = dict(fleet.devices)
    senders = [
        (base_url, (device_id, tokens[device_id]), mine)
        for device_id, mine in items.items()
        for base_url in fleet.base_urls  # the same batches to both processes at once
    ]
    start = threading.Barrier(len(senders))
    codes: list[list[int]] = []
    failures: list[str] = []

    def send(base_url: str, device: tuple[str, str], mine: list[dict[str, Any]]) -> None:
        try:
            codes.append(_send_batches(base_url, device, mine, start))
        except Exception as error:  # reported by the test, not lost in the thread
            failures.append(repr(error))

    threads = [threading.Thread(target=send, args=sender) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert {code for mine in codes for code in mine} == {200}  # each accepted, a replay too
    assert sum(len(mine) for mine in codes) == 2 * TASKS_PER_JOB

    engine = make_engine(fleet.database_url)
    try:
        with make_session_factory(engine)() as session:
            states = session.execute(
                select(Task.state, func.count()).where(Task.job_id == job_id).group_by(Task.state)
            ).all()
            completed_attempts = session.scalar(
                select(func.count())
                .select_from(TaskAttempt)
                .join(Task, Task.id == TaskAttempt.task_id)
                .where(Task.job_id == job_id, TaskAttempt.outcome == "completed")
            )
            settled = session.scalar(
                select(func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.job_id == job_id)
            )
    finally:
        engine.dispose()
    assert [tuple(row) for row in states] == [("completed", TASKS_PER_JOB)]
    assert completed_attempts == TASKS_PER_JOB
    assert settled == TASKS_PER_JOB  # none lost, none doubled
