"""The processes ``heatgrid demo`` starts, and stops by their PIDs, whatever happens.

Each child runs in its own session, so that Ctrl-C in a terminal reaches the demo alone; the demo
then stops its children in the reverse order of their start (agents before the coordinator and
the broker they talk to): SIGTERM, a grace period, SIGKILL. On Linux each child is also told to
die with the demo (``PR_SET_PDEATHSIG``), so that not even a SIGKILL of the demo leaves one behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Child", "Children", "free_port", "mosquitto_binary", "run_heatgrid", "wait_for_port"]

_PR_SET_PDEATHSIG = 1
_GRACE_S = 15.0


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str | None:
    """Return the mosquitto broker's executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """A started process: its name (for people), the process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Its process ID."""
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of its log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Children:
    """The processes one demo started, stopped in reverse order by :meth:`stop_all`."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        """Start ``argv`` with its output in ``log_dir/NAME.log``."""
        log_path = self.log_dir / f"{name.replace(' ', '-')}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        child = Child(name, process, log_path)
        self.started.append(child)
        return child

    def pids(self) -> list[int]:
        """PIDs of every process started, running or not."""
        return [child.pid for child in self.started]

    def failed(self) -> Child | None:
        """Return the first child that has exited, if any."""
        return next((c for c in self.started if c.process.poll() is not None), None)

    async def stop(self, child: Child, grace_s: float = _GRACE_S) -> None:
        """Stop one child by its PID: SIGTERM, then SIGKILL after ``grace_s``."""
        process = child.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def kill_remaining(self) -> None:
        """SIGKILL any child still running, and reap it (the last resort, synchronous)."""
        for child in self.started:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.process.wait()

    async def stop_all(self, names: tuple[str, ...] | None = None) -> None:
        """Stop the children (those whose name starts with one of ``names``), newest first."""
        chosen = [
            child
            for child in reversed(self.started)
            if names is None or child.name.startswith(names)
        ]
        await asyncio.gather(*(asyncio.shield(self.stop(child)) for child in chosen))


async def run_heatgrid(*args: str, env: dict[str, str]) -> str:
    """Run one ``heatgrid`` command to its end; return its standard output.

    Raises
    ------
    RuntimeError
        If it fails, with its error output.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "heatgrid.cli.main",
        *args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"heatgrid {args[0]} {args[1]} failed: {err.decode().strip()}")
    return out.decode()


async def wait_for_port(port: int, child: Child, timeout_s: float) -> None:
    """Wait until something accepts connections on loopback ``port``.

    Raises
    ------
    RuntimeError
        If ``child`` exits first or ``timeout_s`` passes.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited: {child.log_tail()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not listen on port {port} within {timeout_s} s")
        await asyncio.sleep(0.1)
