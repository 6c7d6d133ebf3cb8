"""A real ``heatgrid serve`` process on a loopback port, for the tests that need one.

It runs in its own process group (``--workers`` starts children), logs to a file that failed
assertions show, and is stopped by its process group's ID; :meth:`ServeProcess.kill` sends
SIGKILL to the server alone, as a crash would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.ports import free_port

__all__ = ["ServeProcess", "free_port"]


@dataclass
class ServeProcess:
    """``heatgrid serve --database-url DATABASE_URL *options`` on ``port`` (free by default)."""

    database_url: str
    log_path: Path
    options: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (the log is appended to); see :meth:`wait_ready`."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "heatgrid.cli.main", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--database-url", self.database_url, *self.options],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until ``/readyz`` answers 200; fail with the log if the process ends first."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server process, as a crash would, and reap it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30.0)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 30 s; nothing of it is left running."""
        if self.process is None:
            return
        for sent in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sent)
            except ProcessLookupError:
                return  # the group is gone
            try:
                self.process.wait(timeout=30.0)
                return
            except subprocess.TimeoutExpired:
                continue
