"""Fixtures for the coordinator: real SQLite and real PostgreSQL databases, and the app.

PostgreSQL: one server per test session, started from the machine's PostgreSQL binaries
(``initdb`` + ``postgres`` found on PATH, in ``/usr/lib/postgresql/*/bin``, or in
``$HEATGRID_PG_BINDIR``) into a temporary directory, listening on a free loopback port. It is
migrated once into a template database; each test gets a fresh database copied from it
(``CREATE DATABASE … TEMPLATE``). At the end of the session the server is stopped by its PID.

PostgreSQL refuses to run as root, and CI runs as root: then initdb and postgres run as the
unprivileged ``postgres`` user that the Debian package creates (or ``nobody`` where it does not
exist), through ``subprocess.Popen(user=…, group=…, extra_groups=[])``; the data directory is
made by root in /tmp and handed to that user with ``chown``.

Without PostgreSQL binaries the PostgreSQL cases skip with the reason, unless
``HEATGRID_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import itertools
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import fsspec
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from heatgrid.coordinator.accounts import create_api_key
from heatgrid.coordinator.app import create_app
from heatgrid.coordinator.db import make_engine, make_session_factory, upgrade
from heatgrid.coordinator.settings import Settings

from .serve_process import free_port

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_PG_USER = "heatgrid"
_TEMPLATE = "heatgrid_template"


# --------------------------------------------------------------------------- PostgreSQL server


def _pg_bindir() -> Path | None:
    configured = os.environ.get("HEATGRID_PG_BINDIR")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@dataclass
class PostgresServer:
    """A running PostgreSQL server of this test session."""

    port: int
    process: subprocess.Popen[bytes]
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        """Return the SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{_PG_USER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE DATABASE needs that)."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=_PG_USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def new_database(self, template: str = "template1") -> str:
        """Create a fresh database copied from ``template`` and return its URL."""
        name = f"test_{os.getpid()}_{next(self._counter)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (closing its connections): a server with fewer
        databases stops faster at the end of the session."""
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_postgres() -> tuple[PostgresServer, Path]:
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        raise FileNotFoundError("PostgreSQL binaries (initdb, postgres) are not installed")
    user = _unprivileged_user()
    data_root = Path(tempfile.mkdtemp(prefix="heatgrid-pg-"))
    if user is not None:
        os.chown(data_root, user.pw_uid, user.pw_gid)
    data_dir = data_root / "data"
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            _PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        cwd=data_root,
        **_as_user(user),
    )
    port = free_port()
    log = (data_root / "postgres.log").open("wb")
    process = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(data_dir),
            "-k",
            str(data_root),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "shared_buffers=32MB",
            "-c",
            "max_connections=100",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_root,
        **_as_user(user),
    )
    log.close()
    server = PostgresServer(port=port, process=process)
    deadline = time.monotonic() + 60.0
    while True:
        try:
            server.execute("SELECT 1")
            break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                output = (data_root / "postgres.log").read_text(errors="replace")
                shutil.rmtree(data_root, ignore_errors=True)
                raise RuntimeError(f"PostgreSQL did not start:\n{output}") from None
            time.sleep(0.1)
    return server, data_root


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)  # "fast shutdown"
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session, with a migrated template database."""
    try:
        server, data_root = _start_postgres()
    except FileNotFoundError as error:
        if os.environ.get("HEATGRID_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required here (HEATGRID_REQUIRE_SERVICES=1): {error}")
        pytest.skip(f"PostgreSQL tests skipped: {error}")
    try:
        server.execute(f'CREATE DATABASE "{_TEMPLATE}"')
        engine = make_engine(server.url(_TEMPLATE))
        upgrade(engine)
        engine.dispose()
        # No connection to the template, not even autovacuum's: CREATE DATABASE … TEMPLATE
        # fails while anyone is connected to it ("being accessed by other users").
        server.execute(
            f'ALTER DATABASE "{_TEMPLATE}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false'
        )
        yield server
    finally:
        _stop(server.process)
        shutil.rmtree(data_root, ignore_errors=True)


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind of this test case: ``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, migrated database of each kind."""
    if backend == "sqlite":
        path = tmp_path / "coordinator.sqlite3"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.new_database(_TEMPLATE)
    yield url
    server.drop_database(url)


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """URL of a fresh database of each kind that was never migrated."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.new_database()
    yield url
    server.drop_database(url)


# --------------------------------------------------------------------------- the app


class Clock:
    """The app's clock, moved by the test: ``clock.now_ts`` [POSIX s]."""

    def __init__(self, now_ts: float = T0_TS) -> None:
        self.now_ts = now_ts

    def __call__(self) -> float:
        return self.now_ts

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` [s]."""
        self.now_ts += seconds


class Client:
    """A synchronous client of an ASGI app, through ``httpx.ASGITransport`` on a portal."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: httpx.AsyncClient):
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return the answer (app exceptions are raised, not hidden)."""
        call: Callable[[], Any] = functools.partial(self._client.request, method, url, **kwargs)
        response: httpx.Response = self._portal.call(call)
        return response

    @property
    def portal(self) -> anyio.from_thread.BlockingPortal:
        """The event loop's portal, to run the app's lifespan or other async work on it."""
        return self._portal

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@dataclass
class Coordinator:
    """An app on a real database, its clock, a client, and the operator's API key."""

    app: FastAPI
    clock: Clock
    client: Client
    database_url: str
    operator_key: str

    def auth(self, token: str) -> dict[str, str]:
        """Return the Authorization header for ``token``."""
        return {"Authorization": f"Bearer {token}"}

    def owner_key(self, name: str = "alice") -> str:
        """Create (through the API) an owner account's key and return it."""
        answer = self.client.post(
            "/v1/admin/keys",
            json={"name": name, "role": "owner"},
            headers=self.auth(self.operator_key),
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["api_key"])

    def submitter_key(self, name: str = "carol") -> str:
        """Create (through the API) a job submitter's key and return it."""
        answer = self.client.post(
            "/v1/admin/keys",
            json={"name": name, "role": "submitter"},
            headers=self.auth(self.operator_key),
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["api_key"])

    def enrollment_code(self, owner_key: str, ttl_s: float = 3600.0) -> str:
        """Create (through the API) an enrollment code for the owner of ``owner_key``."""
        answer = self.client.post(
            "/v1/admin/enrollment-codes", json={"ttl_s": ttl_s}, headers=self.auth(owner_key)
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["enrollment_code"])

    def enroll(self, code: str, name: str = "living room") -> tuple[str, str]:
        """Enroll an ASIC heater with ``code``; return (device_id, device_token)."""
        answer = self.client.post("/v1/devices/enroll", json=self.enroll_body(code, name))
        assert answer.status_code == 201, answer.text
        return str(answer.json()["device_id"]), str(answer.json()["device_token"])

    @staticmethod
    def enroll_body(code: str, name: str = "living room") -> dict[str, Any]:
        """A valid enrollment request for an ASIC heater."""
        return {
            "protocol_version": 1,
            "enrollment_code": code,
            "device_name": name,
            "device_kind": "asic",
            "hardware": {
                "model": "Antminer S9",
                "max_power_w": 1400.0,
                "min_power_w": 400.0,
                "hashrate_ths": 14.0,
            },
            "has_room": True,
        }

    @staticmethod
    def heartbeat_body(now_ts: float, powers_w: list[float]) -> dict[str, Any]:
        """A valid heartbeat with one sample a minute ending at ``now_ts`` and a 2-hour window."""
        count = len(powers_w)
        return {
            "protocol_version": 1,
            "sent_ts": now_ts,
            "telemetry": [
                {
                    "sample_ts": now_ts - 60.0 * (count - 1 - index),
                    "room_temp_c": 20.5,
                    "setpoint_c": 21.0,
                    "power_w": power_w,
                    "device_temp_c": 65.0,
                    "workload": "mining",
                    "hashrate_ths": 13.5,
                }
                for index, power_w in enumerate(powers_w)
            ],
            "heat_window": [
                {"start_ts": now_ts, "duration_s": 3600.0, "heat_power_w": 1200.0},
                {"start_ts": now_ts + 3600.0, "duration_s": 3600.0, "heat_power_w": 800.0},
            ],
        }


@pytest.fixture
def clock() -> Clock:
    """The app's clock, starting at 2026-01-01T00:00:00Z."""
    return Clock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings the ``coordinator`` fixture uses; a test module redefines it to change them.

    The rate limit is lifted: tests send hundreds of requests per second of real time.
    """
    return {
        "rate_limit_per_s": 1e9,
        "rate_limit_burst": 1_000_000,
        "anonymous_rate_limit_per_s": 1e9,
        "anonymous_rate_limit_burst": 1_000_000,
    }


@pytest.fixture
def coordinator(
    database_url: str, clock: Clock, tmp_path: Path, settings_overrides: dict[str, Any]
) -> Iterator[Coordinator]:
    """The coordinator app on a fresh migrated database (SQLite and PostgreSQL)."""
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        operator_key = create_api_key(
            session, name="operator", role="operator", scopes=None, now_ts=clock()
        ).token
    engine.dispose()
    settings = Settings(
        database_url=database_url,
        checkpoint_url=str(tmp_path / "checkpoints"),
        **settings_overrides,
    )
    app = create_app(settings, clock=clock)
    with anyio.from_thread.start_blocking_portal() as portal:
        async_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://coordinator.test"
        )
        try:
            yield Coordinator(app, clock, Client(portal, async_client), database_url, operator_key)
        finally:
            portal.call(async_client.aclose)
            app.state.engine.dispose()


# --------------------------------------------------------------------------- S3 (moto)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on a free loopback port, stopped by its PID at the end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60.0
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1.0)
                break
            except httpx.HTTPError:
                assert process.poll() is None, "moto's server exited"
                assert time.monotonic() < deadline, "moto's server did not start in 60 s"
                time.sleep(0.2)
        yield endpoint
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Credentials and the endpoint for s3fs, as an operator sets them; a fresh bucket.

    s3fs keeps its file systems by their arguments, not by the environment: those made
    against another module's (stopped) server are forgotten before and after.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    s3 = fsspec.get_filesystem_class("s3")
    s3.clear_instance_cache()
    bucket = f"heatgrid-{os.urandom(4).hex()}"
    fsspec.filesystem("s3").mkdir(bucket)
    yield bucket
    s3.clear_instance_cache()
