"""``heatgrid agent enroll``: the one-time code becomes a device id and token in the state file."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from tests.agent.coordinator_app import (
    ServedCoordinator,
    SimClock,
    migrated_database,
    running_in_thread,
)

from heatgrid.agent.state_store import StateStore
from heatgrid.cli.main import main


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
[state]
path = "{tmp_path / "state" / "agent.sqlite3"}"

[heater]
name = "study"

[sensor]
topic = "home/study/temperature"

[[devices]]
type = "cpu"
idle_power_w = 10.0
max_power_w = 90.0
worker_count = 2
"""
    )
    return path


def test_enroll_stores_a_private_token_the_coordinator_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = SimClock(time.time())
    database_url, code = migrated_database(tmp_path, clock)
    config = _config(tmp_path)
    with running_in_thread(ServedCoordinator(database_url, tmp_path / "cp", clock)) as served:
        status = main(
            ["agent", "enroll", "--config", str(config), "--code", code, "--url", served.url]
        )
        out, err = capsys.readouterr()
        assert status == 0, err
        again = main(
            ["agent", "enroll", "--config", str(config), "--code", code, "--url", served.url]
        )
        assert again == 2  # a one-time code
        assert "--code: enrollment refused" in capsys.readouterr().err
    with StateStore(tmp_path / "state" / "agent.sqlite3") as store:
        identity = store.identity
        assert identity is not None
        assert identity.url == served.url
        assert store.file_mode == 0o600
    assert identity.device_id in out
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT name, kind FROM devices WHERE id = ?", (identity.device_id,)
        ).fetchone()
    assert row == ("study", "cpu")


def test_enroll_against_no_coordinator_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    status = main(
        [
            "agent",
            "enroll",
            "--config",
            str(_config(tmp_path)),
            "--code",
            "abcdefgh12",
            "--url",
            url,
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "--url: the coordinator cannot be reached" in err
    assert "Traceback" not in err
