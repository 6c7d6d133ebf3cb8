"""``heatgrid jobs``: a submitter's command line against a real coordinator over HTTP."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from heatgrid.cli.main import main
from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.settings import Settings

from .serve_process import free_port


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """The coordinator on a loopback port: (base URL, carol's key, dave's key)."""
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        carol, dave = (
            create_api_key(session, name=name, role="submitter", scopes=None, now_ts=time.time())
            for name in ("carol", "dave")
        )
        keys = (carol.token, dave.token)
    engine.dispose()
    settings = Settings(database_url=database_url, checkpoint_url=str(tmp_path / "blobs"))
    app = create_app(settings)
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
        yield f"http://127.0.0.1:{port}", *keys
    finally:
        server.should_exit = True
        thread.join(timeout=30.0)
        app.state.engine.dispose()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, " ".join(captured.err.split())  # Rich wraps long lines


def test_submit_list_show_and_cancel(served, tmp_path: Path, capsys) -> None:
    url, carol, dave = served
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "name": "sweep",
                "device_kinds": ["gpu"],
                "tasks": [{"task_input": {"lr": lr}, "energy_j": 3.6e6} for lr in (0.1, 0.01)],
            }
        )
    )
    common = ("--url", url, "--api-key", carol)
    status, out, err = _run(capsys, "jobs", "submit", str(spec), *common, "--json")
    assert status == 0, err
    job_id = json.loads(out)["job_id"]
    status, out, _ = _run(capsys, "jobs", "submit", str(spec), *common)
    assert status == 0
    assert "2 tasks" in out

    status, out, _ = _run(capsys, "jobs", "list", *common, "--json")
    assert status == 0
    assert [job["name"] for job in json.loads(out)] == ["sweep", "sweep"]
    status, out, _ = _run(capsys, "jobs", "list", "--url", url, "--api-key", dave, "--json")
    assert json.loads(out) == []  # dave sees none of carol's jobs

    status, out, _ = _run(capsys, "jobs", "show", job_id, *common, "--json")
    shown = json.loads(out)
    assert [task["task_index"] for task in shown["tasks"]] == [0, 1]
    assert shown["state"] == "running"
    status, out, _ = _run(capsys, "jobs", "show", job_id, *common)
    assert status == 0
    assert "sweep" in out

    status, _, err = _run(capsys, "jobs", "cancel", job_id, "--url", url, "--api-key", dave)
    assert status == 2
    assert "404" in err
    status, out, _ = _run(capsys, "jobs", "cancel", job_id, *common, "--json")
    assert status == 0
    assert json.loads(out)["state"] == "cancelled"


def test_refusals_name_what_is_wrong(served, tmp_path: Path, capsys) -> None:
    url, carol, _ = served
    common = ("--url", url, "--api-key", carol)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "tasks": [{"energy_j": -1.0}]}))
    status, _, err = _run(capsys, "jobs", "submit", str(bad), *common)
    assert status == 2
    assert "tasks[0].energy_j" in err
    bad.write_text("{not json")
    status, _, err = _run(capsys, "jobs", "submit", str(bad), *common)
    assert status == 2
    assert "is not JSON" in err
    status, _, err = _run(capsys, "jobs", "submit", str(tmp_path / "missing.json"), *common)
    assert status == 2
    assert "cannot read" in err
    status, _, err = _run(capsys, "jobs", "list", "--url", url, "--api-key", "nonsense")
    assert status == 2
    assert "401" in err
    status, _, err = _run(capsys, "jobs", "list", "--url", url)
    assert status == 2
    assert "--api-key" in err
    status, _, err = _run(capsys, "jobs", "list", "--url", "http://127.0.0.1:1", "--api-key", carol)
    assert status == 1
    assert "cannot reach the coordinator" in err


class _DroppingProxy:
    """A TCP proxy to ``upstream`` that cuts the first connection once the answer starts.

    The coordinator has handled (and committed) that first request; the client never hears
    its answer, as when a connection drops or the coordinator dies before replying.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            drop = self.connections == 1
            threading.Thread(target=self._pipe, args=(client, drop), daemon=True).start()

    def _pipe(self, client: socket.socket, drop: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))

        def forward() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65_536):
                    upstream.sendall(data)

        threading.Thread(target=forward, daemon=True).start()
        with client, upstream, contextlib.suppress(OSError):
            while data := upstream.recv(65_536):
                if drop:  # the answer never reaches the client; shutdown wakes forward()
                    client.shutdown(socket.SHUT_RDWR)
                    upstream.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(data)

    def close(self) -> None:
        self.listener.close()


def test_submit_retries_a_dropped_connection_without_doubling_the_job(
    served, tmp_path: Path, capsys
) -> None:
    url, carol, _ = served
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"name": "once", "tasks": [{"energy_j": 3.6e6}]}))
    proxy = _DroppingProxy(int(url.rsplit(":", 1)[1]))
    try:
        proxied = f"http://127.0.0.1:{proxy.port}"
        status, out, err = _run(
            capsys, "jobs", "submit", str(spec), "--url", proxied, "--api-key", carol, "--json"
        )
    finally:
        proxy.close()
    assert status == 0, err
    assert proxy.connections == 2  # the first answer was lost; the retry got the same job
    status, listed, _ = _run(capsys, "jobs", "list", "--url", url, "--api-key", carol, "--json")
    assert [job["job_id"] for job in json.loads(listed)] == [json.loads(out)["job_id"]]
    # The same key given again, by hand, finds the job too; with another spec it is refused.
    common = ("--url", url, "--api-key", carol, "--idempotency-key", "nightly-2026-12-03")
    status, first, _ = _run(capsys, "jobs", "submit", str(spec), *common, "--json")
    status, again, _ = _run(capsys, "jobs", "submit", str(spec), *common, "--json")
    assert json.loads(first)["job_id"] == json.loads(again)["job_id"]
    spec.write_text(json.dumps({"name": "other", "tasks": [{"energy_j": 3.6e6}]}))
    status, _, err = _run(capsys, "jobs", "submit", str(spec), *common)
    assert status == 2
    assert "409" in err
    assert "Idempotency-Key" in err


def test_list_follows_pages_and_takes_a_limit(
    served, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, carol, _ = served
    monkeypatch.setattr("heatgrid.cli.jobs._PAGE_LIMIT", 2)
    spec = tmp_path / "job.json"
    common = ("--url", url, "--api-key", carol)
    for index in range(5):
        spec.write_text(json.dumps({"name": f"job {index}", "tasks": [{"energy_j": 3.6e6}]}))
        assert _run(capsys, "jobs", "submit", str(spec), *common)[0] == 0
    status, out, _ = _run(capsys, "jobs", "list", *common, "--json")
    assert status == 0
    assert sorted(job["name"] for job in json.loads(out)) == [f"job {i}" for i in range(5)]
    status, out, _ = _run(capsys, "jobs", "list", *common, "--json", "--limit", "3")
    assert len(json.loads(out)) == 3
