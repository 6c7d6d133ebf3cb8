"""Kill -9 the coordinator under load, restart it: nothing it acknowledged is lost or doubled.

A real ``heatgrid serve`` process runs on a loopback port. Four heaters claim, checkpoint and
complete tasks while a submitter keeps sending jobs, each in its own thread. Mid-load the
server is killed with SIGKILL and started again on the same database; the clients retry what
failed in flight, as agents do. Afterwards every job, checkpoint and result the server had
acknowledged (answered 2xx) is in the database, every checkpoint blob is on disk with its
digest, no task was completed twice, and the ledger balances with one settlement per attempt.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from heatgrid.cli.main import main
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Checkpoint, LedgerTransaction, Task, TaskAttempt
from heatgrid.coordinator.ledger import unbalanced_transactions

from .serve_process import ServeProcess

pytestmark = pytest.mark.slow

_TASK_ENERGY_J = 3.6e5
_HEATERS = 4


@dataclass
class Acknowledged:
    """What the server answered 2xx to, recorded by the clients."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[str, int] = field(default_factory=dict)
    checkpoints: list[tuple[str, int, str]] = field(default_factory=list)
    completions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    transport_errors: int = 0


def _send(
    client: httpx.Client, stop: threading.Event, ack: Acknowledged, method: str, path: str,
    **kwargs: Any,
) -> httpx.Response | None:  # fmt: skip
    """Send until the server answers (it may be down); None once the load is stopped."""
    while not stop.is_set():
        try:
            return client.request(method, path, **kwargs)
        except httpx.TransportError:
            with ack.lock:
                ack.transport_errors += 1
            time.sleep(0.05)
    return None


def _heater(url: str, device_id: str, token: str, stop: threading.Event, ack: Acknowledged) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/v1/devices/{device_id}"
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        while not stop.is_set():
            answer = _send(client, stop, ack, "POST", f"{base}/claim", json={"slots": 1})
            if answer is None:
                return
            assert answer.status_code == 200, answer.text
            if not answer.json()["leases"]:
                time.sleep(0.02)
                continue
            lease = answer.json()["leases"][0]
            task, attempt = lease["task_id"], lease["attempt"]
            half_j = _TASK_ENERGY_J / 2
            blob = json.dumps({"task": task, "progress_j": half_j}).encode()
            stored = _send(
                client, stop, ack, "PUT", f"{base}/tasks/{task}/checkpoint",
                params={"attempt": attempt, "energy_j": half_j}, content=blob,
                headers={"Content-Type": "application/octet-stream"},
            )  # fmt: skip
            if stored is None:
                return
            if stored.status_code == 200:
                with ack.lock:
                    ack.checkpoints.append(
                        (task, stored.json()["seq"], hashlib.sha256(blob).hexdigest())
                    )
            result = {"n_squared": int(lease["task_input"]["n"]) ** 2}
            body = {"attempt": attempt, "energy_j": _TASK_ENERGY_J, "result": result}
            done = _send(client, stop, ack, "POST", f"{base}/tasks/{task}/complete", json=body)
            if done is None:
                return
            if done.status_code == 200:
                with ack.lock:
                    ack.completions[(task, attempt)] = result


def _submitter(url: str, key: str, stop: threading.Event, ack: Acknowledged) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        batch = 0
        while not stop.is_set():
            tasks = [
                {"task_input": {"n": batch * 5 + n}, "energy_j": _TASK_ENERGY_J} for n in range(5)
            ]
            body = {"name": f"batch {batch}", "device_kinds": ["cpu"], "tasks": tasks}
            answer = _send(client, stop, ack, "POST", "/v1/jobs", json=body)
            if answer is None:
                return
            if answer.status_code == 201:
                with ack.lock:
                    ack.jobs[answer.json()["job_id"]] = len(tasks)
                batch += 1
            time.sleep(0.05)


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """The coordinator as a real process (stopped by its PID at the end)."""
    running = ServeProcess(
        database_url,
        tmp_path / "serve.log",
        ("--checkpoint-url", str(tmp_path / "blobs"), "--policy", "fifo",
         "--rate-limit-per-s", "100000", "--rate-limit-burst", "100000", "--log-level", "warning"),
    )  # fmt: skip
    running.start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _wait_for(ack: Acknowledged, completions: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with ack.lock:
            if len(ack.completions) >= completions:
                return
        assert time.monotonic() < deadline, f"only {len(ack.completions)} completions"
        time.sleep(0.05)


def test_nothing_acknowledged_is_lost_or_doubled_by_kill_9(
    server: ServeProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = server.database_url
    _cli_json(capsys, "admin", "create-key", "--role", "owner", "--name", "alice", "--json",
              "--database-url", url)  # fmt: skip
    key = _cli_json(capsys, "admin", "create-key", "--role", "submitter", "--name", "carol",
                    "--json", "--database-url", url)["api_key"]  # fmt: skip
    heaters = []
    for n in range(_HEATERS):
        code = _cli_json(capsys, "admin", "enroll-code", "--owner", "alice", "--json",
                         "--database-url", url)["enrollment_code"]  # fmt: skip
        enrolled = httpx.post(
            f"{server.url}/v1/devices/enroll",
            json={"enrollment_code": code, "device_name": f"heater {n}", "device_kind": "cpu",
                  "hardware": {"max_power_w": 500.0, "cpu_cores": 16}, "has_room": True},
        )  # fmt: skip
        assert enrolled.status_code == 201, enrolled.text
        heaters.append((enrolled.json()["device_id"], enrolled.json()["device_token"]))

    ack = Acknowledged()
    stop = threading.Event()
    threads = [threading.Thread(target=_submitter, args=(server.url, key, stop, ack))]
    threads += [
        threading.Thread(target=_heater, args=(server.url, device_id, token, stop, ack))
        for device_id, token in heaters
    ]
    for thread in threads:
        thread.start()
    try:
        for kill in range(2):
            _wait_for(ack, completions=20 * (kill + 1))
            server.kill()  # mid-load: requests are in flight in every thread
            time.sleep(0.3)
            server.start()
            server.wait_ready()
        _wait_for(ack, completions=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60.0)
    assert ack.transport_errors > 0  # the kills did hit requests in flight

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            for job_id, count in ack.jobs.items():
                stored = session.scalar(select(func.count()).where(Task.job_id == job_id))
                assert stored == count, f"job {job_id} lost tasks"
            for task_id, seq, digest in ack.checkpoints:
                row = session.get(Checkpoint, (task_id, seq))
                assert row is not None, f"checkpoint {task_id}/{seq} lost"
                assert row.sha256 == digest
                blob = (tmp_path / "blobs" / row.blob_key).read_bytes()
                assert hashlib.sha256(blob).hexdigest() == digest
            for (task_id, attempt), result in ack.completions.items():
                task = session.get_one(Task, task_id)
                assert task.state == "completed"
                assert task.attempt == attempt
                assert task.result == result
            completed_twice = session.execute(
                select(TaskAttempt.task_id)
                .where(TaskAttempt.outcome == "completed")
                .group_by(TaskAttempt.task_id)
                .having(func.count() > 1)
            ).all()
            assert completed_twice == []
            assert unbalanced_transactions(session) == []
            ended = session.scalar(
                select(func.count())
                .select_from(TaskAttempt)
                .where(TaskAttempt.outcome != "running")
            )
            settlements = session.scalar(select(func.count()).select_from(LedgerTransaction))
            assert settlements == ended  # one ledger transaction per ended attempt, no more
    finally:
        engine.dispose()
