"""``heatgrid jobs``: a submitter's command line against a real coordinator over HTTP."""

from __future__ import annotations

import json
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
