"""A real mosquitto broker for tests, started in a temporary directory on a free loopback port.

Imported by conftest files; :func:`mosquitto_broker` is registered as a fixture in
``tests/conftest.py``. The broker runs with a generated configuration (one listener on
``127.0.0.1``, anonymous access, no persistence, log to stderr) and is killed by its PID at
teardown. Under root mosquitto would drop its privileges to the ``mosquitto`` user after reading
its configuration; it needs no file afterwards, so it is told to do so explicitly (``user``) and
falls back to staying root where that user does not exist.

Without the ``mosquitto`` binary the test skips with the reason, unless
``HEATGRID_REQUIRE_SERVICES=1`` (CI), where it fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from tests.ports import free_port

_START_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _run_as_user() -> str | None:
    """The ``user`` line mosquitto needs: None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        return "root"
    return "mosquitto"


def _config(port: int) -> str:
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
    ]
    user = _run_as_user()
    if user is not None:
        lines.append(f"user {user}")
    return "\n".join(lines) + "\n"


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _start(
    binary: str, directory: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start mosquitto on ``port`` (else a free one) and wait until it accepts; retry if taken."""
    errors: list[str] = []
    for attempt in range(_START_ATTEMPTS):
        listen_port = free_port() if port is None else port
        config = directory / f"mosquitto-{attempt}.conf"
        config.write_text(_config(listen_port))
        log = directory / f"mosquitto-{attempt}.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [binary, "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _accepts(listen_port):
                return process, listen_port
            time.sleep(0.02)
        _stop(process)
        errors.append(log.read_text(errors="replace").strip() or "no output")
    raise RuntimeError(f"mosquitto did not start after {_START_ATTEMPTS} attempts: {errors}")


@contextmanager
def running_broker(port: int | None = None) -> Iterator[tuple[str, int]]:
    """Run a mosquitto broker for the duration of the block; yields ``(host, port)``.

    ``port`` restarts a broker where an earlier one listened (to test reconnection); by
    default a free port is taken.
    """
    binary = _mosquitto_binary()
    if binary is None:
        if os.environ.get("HEATGRID_REQUIRE_SERVICES"):
            pytest.fail(
                "mosquitto is not installed, and CI must have it (apt-get install mosquitto)"
            )
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory(prefix="heatgrid-mosquitto-") as tmp:
        process, listen_port = _start(binary, Path(tmp), port)
        try:
            yield "127.0.0.1", listen_port
        finally:
            _stop(process)


@pytest.fixture
def mosquitto_broker() -> Iterator[tuple[str, int]]:
    """A fresh mosquitto broker on loopback for one test: ``(host, port)``."""
    with running_broker() as address:
        yield address
