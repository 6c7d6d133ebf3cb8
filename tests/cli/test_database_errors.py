"""A command whose database cannot be reached says so in one message, with no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.ports import free_port

from heatgrid.cli.main import main


def test_an_admin_command_names_an_unreachable_postgresql(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://heatgrid@127.0.0.1:{free_port()}/heatgrid"
    assert main(["mining", "report", "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert "the database failed" in err
    assert "refused" in err
    assert "Traceback" not in err


def test_an_admin_command_names_a_sqlite_file_it_cannot_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'no such directory' / 'coordinator.sqlite3'}"
    assert main(["mining", "report", "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert "the database failed: unable to open database file" in err
    assert "Traceback" not in err


def test_the_stratum_proxy_names_an_unreachable_database() -> None:
    """The proxy in its own process, as it runs: status 1 and the driver's reason."""
    url = f"postgresql://heatgrid@127.0.0.1:{free_port()}/heatgrid"
    pool = f"stratum+tcp://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "heatgrid.cli.main", "stratum", "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*command, "--database-url", url, "--pool-url", pool, "--pool-user", "operator"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "the database failed" in done.stderr
    assert "Traceback" not in done.stderr
