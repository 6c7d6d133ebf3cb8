"""``heatgrid serve --workers N``: several worker processes on one PostgreSQL database."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import httpx
import pytest

from heatgrid.cli.main import main
from heatgrid.coordinator.app import SETTINGS_ENV, app_from_environment
from heatgrid.coordinator.settings import Settings
from heatgrid.core.clock import CLOCK_ENV, parse_clock

from .serve_process import ServeProcess


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    capsys.readouterr()
    assert main(["serve", "--database-url", url, "--workers", "2", "--port", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_workers_serve_one_postgresql_database(database_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    server = ServeProcess(
        database_url, log_path, ("--workers", "2", "--checkpoint-url", str(tmp_path / "blobs"))
    )
    server.start()
    try:
        server.wait_ready()
        assert server.process is not None
        process = server.process
        commands = [Path(f"/proc/{child}/cmdline").read_bytes() for child in _children(process.pid)]
        workers = [c for c in commands if b"spawn_main" in c and b"resource_tracker" not in c]
        assert len(workers) == 2, log_path.read_text()
        answers = [httpx.get(f"{server.url}/v1/jobs") for _ in range(20)]
        assert {answer.status_code for answer in answers} == {401}  # each worker is the real app
    finally:
        server.stop()


@pytest.mark.parametrize("clock_text", [None, "start=2026-01-14T06:00:00Z,speed=60,origin_ts=0"])
def test_a_worker_runs_on_the_clock_serve_was_given(
    clock_text: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve --workers N --clock …`` hands the clock to each worker through the environment."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}")
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(dataclasses.asdict(settings)))
    if clock_text is None:
        monkeypatch.delenv(CLOCK_ENV, raising=False)
    else:
        monkeypatch.setenv(CLOCK_ENV, clock_text)
    spec = None if clock_text is None else parse_clock(clock_text)
    before_ts = time.time()
    app_now_ts = app_from_environment().state.clock()
    after_ts = time.time()
    if spec is None:
        assert before_ts <= app_now_ts <= after_ts
    else:
        assert spec.emulated_ts(before_ts) <= app_now_ts <= spec.emulated_ts(after_ts)
