"""A throwaway PostgreSQL server for a benchmark: initdb + postgres in a temporary directory.

The server listens on a free loopback port with trust authentication. PostgreSQL refuses to
run as root: then initdb and postgres run as the ``postgres`` user (or ``nobody``), as the
coordinator's test suite does. :func:`running_postgres` stops the server by its PID and removes
its directory on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

__all__ = ["PostgresServer", "free_port", "pg_bindir", "running_postgres"]

_USER = "heatgrid"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its port, PID, and the settings it was started with."""

    port: int
    pid: int
    settings: Mapping[str, str]

    def url(self, database: str = "postgres") -> str:
        """Return the SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """Open an autocommit psycopg connection to ``database``."""
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=_USER, dbname=database, autocommit=True
        )


def pg_bindir() -> Path | None:
    """Return the directory of ``initdb`` and ``postgres``, or None when not installed."""
    configured = os.environ.get("HEATGRID_PG_BINDIR")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to an unprivileged user; empty when not root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)  # PostgreSQL's "fast shutdown"
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            with server.connect() as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not start:\n{log.read_text(errors='replace')}"
                ) from None
            time.sleep(0.1)


@contextmanager
def running_postgres(settings: Mapping[str, str]) -> Iterator[PostgresServer]:
    """Start a PostgreSQL server with ``settings`` (``-c name=value``); stop and remove it after.

    Raises
    ------
    FileNotFoundError
        When PostgreSQL's binaries are not installed.
    RuntimeError
        When the server does not start; the message holds its log.
    """
    bindir = pg_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        raise FileNotFoundError(
            "PostgreSQL binaries (initdb, postgres) are not installed; install the Debian "
            "package 'postgresql' or set HEATGRID_PG_BINDIR"
        )
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="heatgrid-bench-pg-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        if run_as:
            os.chown(root, run_as["user"], run_as["group"])
        data = root / "data"
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", _USER, "--auth=trust"]
        subprocess.run(
            [*initdb, "--encoding=UTF8", "--locale=C", "--no-sync"],
            check=True,
            capture_output=True,
            cwd=root,
            **run_as,
        )
        port = free_port()
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        log = root / "postgres.log"
        postgres = [str(bindir / "postgres"), "-D", str(data), "-k", str(root)]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*postgres, "-p", str(port), "-h", "127.0.0.1", *options],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=root,
                **run_as,
            )
        server = PostgresServer(port=port, pid=process.pid, settings=dict(settings))
        _wait_ready(server, process, log)
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)
