"""Serve one of the benchmark's apps (``_apps.py``) with uvicorn in a subprocess on loopback.

Both apps are served the same way: ``python -m uvicorn --factory --workers N`` on a free
127.0.0.1 port, output to a log file. The server runs in its own session so that its worker
processes can be found again; :func:`served` stops it by its PID (SIGTERM, uvicorn's graceful
shutdown), and then ends any process left in its group, also on Ctrl-C or an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from _postgres import free_port

__all__ = ["Served", "served"]

_BENCH_DIR = Path(__file__).resolve().parent
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Served:
    """A running server: its port and the PID of its process tree's root."""

    port: int
    pid: int


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _stop(process: subprocess.Popen[bytes], *, profiled: bool = False) -> None:
    """Stop the server by its PID, then whatever is left of its process group.

    Under py-spy the server is py-spy's child: it is stopped first, so that py-spy sees it
    end and writes its profile.
    """
    pgid = process.pid  # start_new_session: the server leads its own group
    if profiled and process.poll() is None:
        for child in _children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_STOP_TIMEOUT_S)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while _group_alive(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        time.sleep(0.2)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def _wait_ready(port: int, probe: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            method, path = probe.split(" ", 1)
            answer = httpx.request(method, f"http://127.0.0.1:{port}{path}", json={}, timeout=5.0)
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"the server ({probe}) did not start:\n{log.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(0.2)


def _profiled(command: list[str], profile: Path | None) -> list[str]:
    """Wrap ``command`` in ``py-spy record`` (all threads, worker processes included)."""
    if profile is None:
        return command
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError("--profile needs py-spy: pip install py-spy")
    record = [found, "record", "--subprocesses", "--format", "raw", "--rate", "250"]
    return [*record, "--output", str(profile), "--", *command]


@contextmanager
def served(
    app: str,
    *,
    workers: int,
    env: Mapping[str, str],
    log: Path,
    probe: str,
    profile: Path | None = None,
) -> Iterator[Served]:
    """Serve ``_apps:<app>`` with ``workers`` uvicorn workers; yield its port and PID.

    Parameters
    ----------
    app : str
        A factory in ``_apps.py``: ``"coordinator"`` or ``"echo"``.
    workers : int
        uvicorn worker processes.
    env : mapping
        Extra environment of the server.
    log : Path
        File that receives the server's output.
    probe : str
        ``"METHOD /path"`` that answers 200 once the server is up.
    profile : Path, optional
        Record the server with py-spy into this file (collapsed stacks of threads on the CPU).
    """
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(_BENCH_DIR)]
    command += [f"_apps:{app}", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log", "--no-server-header"]
    command += ["--log-level", "warning"]
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(_BENCH_DIR), os.environ.get("PYTHONPATH", "")) if part
    )
    with log.open("ab") as sink:
        process = subprocess.Popen(
            _profiled(command, profile),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    try:
        _wait_ready(port, probe, process, log)
        yield Served(port=port, pid=process.pid)
    finally:
        _stop(process, profiled=profile is not None)
