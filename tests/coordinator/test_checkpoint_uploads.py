"""Checkpoint uploads against a real server on SQLite: no lock held while a body streams in,
and nothing left behind by an upload that fails (client gone, disk full).

The blob is streamed to a staging file and flushed to disk with no transaction open; a short
transaction then moves it to its key and records it. So another heater's heartbeat goes
through while an upload is still arriving, and a failed upload leaves no ``.partial`` file.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.settings import Settings

from .serve_process import ServeProcess, free_port

WEEK_S = 7 * 86_400.0


def _operator_key(database_url: str) -> str:
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        token = create_api_key(
            session, name="operator", role="operator", scopes=None, now_ts=time.time()
        ).token
    engine.dispose()
    return token


@dataclass
class Heater:
    """An enrolled GPU heater with a week-long heat window."""

    device_id: str
    headers: dict[str, str]

    def url(self, path: str) -> str:
        return f"/v1/devices/{self.device_id}{path}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def _heartbeat_body() -> dict[str, Any]:
    now_ts = time.time()
    return {
        "sent_ts": now_ts,
        "heat_window": [{"start_ts": now_ts, "duration_s": WEEK_S, "heat_power_w": 1000.0}],
    }


def _heater(http: httpx.Client, owner_key: str, name: str) -> Heater:
    code = _ok(http.post("/v1/admin/enrollment-codes", json={}, headers=_auth(owner_key)), 201)
    enrolled = _ok(
        http.post(
            "/v1/devices/enroll",
            json={
                "enrollment_code": code["enrollment_code"],
                "device_name": name,
                "device_kind": "gpu",
                "hardware": {"max_power_w": 900.0, "vram_gb": 24.0},
                "has_room": True,
            },
        ),
        201,
    )
    heater = Heater(enrolled["device_id"], _auth(enrolled["device_token"]))
    _ok(http.post(heater.url("/heartbeat"), json=_heartbeat_body(), headers=heater.headers))
    return heater


def _leased(http: httpx.Client, operator_key: str) -> tuple[Heater, Heater, str, int]:
    """Two heaters; the first holds the lease of a one-task job: (first, second, task, attempt)."""
    admin = _auth(operator_key)
    owner = _ok(
        http.post("/v1/admin/keys", json={"name": "alice", "role": "owner"}, headers=admin), 201
    )
    submitter = _ok(
        http.post("/v1/admin/keys", json={"name": "carol", "role": "submitter"}, headers=admin), 201
    )
    first, second = (_heater(http, owner["api_key"], name) for name in ("study", "hall"))
    job = {"name": "train", "tasks": [{"task_input": {}, "energy_j": 3.6e6}]}
    _ok(http.post("/v1/jobs", json=job, headers=_auth(submitter["api_key"])), 201)
    [lease] = _ok(http.post(first.url("/claim"), json={"slots": 1}, headers=first.headers))[
        "leases"
    ]
    return first, second, lease["task_id"], lease["attempt"]


def _files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A coordinator on SQLite on a loopback port: (base URL, operator key, checkpoint dir)."""
    template = tmp_path / "db.sqlite3"
    database_url = f"sqlite:///{template}"

    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    operator_key = _operator_key(database_url)
    checkpoints = tmp_path / "checkpoints"
    app = create_app(Settings(database_url=database_url, checkpoint_url=str(checkpoints)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", operator_key, checkpoints
    finally:
        server.should_exit = True
        thread.join(timeout=30.0)
        app.state.engine.dispose()


def _wait_for(condition: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_a_heartbeat_goes_through_while_an_upload_streams_in(
    served: tuple[str, str, Path],
) -> None:
    url, operator_key, checkpoints = served
    with httpx.Client(base_url=url, timeout=10.0) as http:
        first, second, task_id, attempt = _leased(http, operator_key)
        sent_first, finish = threading.Event(), threading.Event()

        def slow_body() -> Iterator[bytes]:
            yield b"a" * 65_536
            sent_first.set()
            finish.wait(timeout=60.0)
            yield b"b" * 65_536

        answers: list[httpx.Response] = []

        def upload() -> None:
            with httpx.Client(base_url=url, timeout=60.0) as uploader:
                answers.append(
                    uploader.put(
                        first.url(f"/tasks/{task_id}/checkpoint"),
                        params={"attempt": attempt, "energy_j": 1000.0},
                        content=slow_body(),
                        headers={**first.headers, "Content-Type": "application/octet-stream"},
                    )
                )

        uploading = threading.Thread(target=upload)
        uploading.start()
        try:
            assert sent_first.wait(timeout=30.0)
            # Give the server the first chunk: it has staged it once a file appears (a server
            # that holds a lock meanwhile shows nothing; it has had 5 s to take the lock).
            deadline = time.monotonic() + 5.0
            while not _files(checkpoints) and time.monotonic() < deadline:
                time.sleep(0.02)
            # The upload is mid-body; another heater's heartbeat must not wait for it (a
            # blocked one would wait for SQLite's 30 s busy timeout: the client gives up at 10).
            beat = http.post(
                second.url("/heartbeat"), json=_heartbeat_body(), headers=second.headers
            )
            assert beat.status_code == 200, beat.text
            assert not answers  # the upload was still in flight
        finally:
            finish.set()
            uploading.join(timeout=60.0)
        receipt = _ok(answers[0])
        assert (receipt["seq"], receipt["size_bytes"]) == (1, 131_072)
    assert [path.name for path in _files(checkpoints)] == ["00000001.ckpt"]


def test_an_upload_cut_off_midway_leaves_nothing(served: tuple[str, str, Path]) -> None:
    url, operator_key, checkpoints = served
    with httpx.Client(base_url=url, timeout=10.0) as http:
        first, _second, task_id, attempt = _leased(http, operator_key)
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                (
                    f"PUT {first.url(f'/tasks/{task_id}/checkpoint')}?attempt={attempt}"
                    "&energy_j=10 HTTP/1.1\r\nHost: coordinator\r\n"
                    f"Authorization: {first.headers['Authorization']}\r\n"
                    "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
                ).encode()
                + b"z" * 4096
            )
            _wait_for(lambda: _files(checkpoints), "the upload reached the store")
        _wait_for(lambda: not _files(checkpoints), "the cut-off upload's partial file was removed")
        shown = _ok(http.get(f"/v1/devices/{first.device_id}", headers=_auth(operator_key)))
        assert shown["device_id"] == first.device_id  # the server is well
        stored = http.put(
            first.url(f"/tasks/{task_id}/checkpoint"),
            params={"attempt": attempt, "energy_j": 10.0},
            content=b"whole",
            headers={**first.headers, "Content-Type": "application/octet-stream"},
        )
        assert _ok(stored)["seq"] == 1


class _LimitedServe(ServeProcess):
    """``heatgrid serve`` whose files may not grow past ``max_file_bytes``: a full disk."""

    max_file_bytes: int = 4 * 1024 * 1024

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["prlimit", f"--fsize={self.max_file_bytes}", sys.executable, "-m",
                 "heatgrid.cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--database-url", self.database_url, *self.options],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip


def test_an_upload_the_disk_cannot_take_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    checkpoints = tmp_path / "checkpoints"
    server = _LimitedServe(
        database_url,
        tmp_path / "serve.log",
        ("--migrate", "--checkpoint-url", str(checkpoints)),
        port=free_port(),
    )
    server.start()
    try:
        server.wait_ready()
        operator_key = _operator_key(database_url)
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            first, _second, task_id, attempt = _leased(http, operator_key)
            params = {"attempt": attempt, "energy_j": 10.0}
            headers = {**first.headers, "Content-Type": "application/octet-stream"}
            path = first.url(f"/tasks/{task_id}/checkpoint")
            refused = http.put(
                path, params=params, content=b"x" * (8 * 1024 * 1024), headers=headers
            )
            assert refused.status_code == 503, refused.text
            assert "checkpoint:" in refused.json()["detail"]
            assert _files(checkpoints) == []
            stored = _ok(http.put(path, params=params, content=b"small", headers=headers))
            assert (stored["seq"], stored["size_bytes"]) == (1, 5)
    finally:
        server.stop()
    assert [path.name for path in _files(checkpoints)] == ["00000001.ckpt"]
