"""``heatgrid serve --workers N``: several worker processes on one PostgreSQL database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from heatgrid.cli.main import main


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "heatgrid.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--database-url", database_url, "--workers", "2",
             "--checkpoint-url", str(tmp_path / "blobs")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60.0
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5.0).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        commands = [Path(f"/proc/{child}/cmdline").read_bytes() for child in _children(process.pid)]
        workers = [c for c in commands if b"spawn_main" in c and b"resource_tracker" not in c]
        assert len(workers) == 2, log_path.read_text()
        answers = [httpx.get(f"http://127.0.0.1:{port}/v1/jobs") for _ in range(20)]
        assert {answer.status_code for answer in answers} == {401}  # each worker is the real app
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30.0)
