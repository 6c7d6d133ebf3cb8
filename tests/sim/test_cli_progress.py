"""``heatgrid simulate`` shows what it is doing on a terminal, and nothing anywhere else.

The command runs in a real subprocess whose stderr is a pseudo-terminal, as in a user's shell.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading

_SMALL = ["simulate", "--homes", "20", "--days", "0.25", "--seed", "3"]


def _run_with_terminal_stderr(*args: str) -> tuple[int, str, str]:
    """Run ``heatgrid ARGS`` with stderr on a pseudo-terminal; return status, stdout, stderr."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "heatgrid.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def _drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=_drain)
    reader.start()
    out, _ = process.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(controller)
    return process.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


def test_a_terminal_sees_each_phase_and_the_time_elapsed() -> None:
    status, out, err = _run_with_terminal_stderr(*_SMALL)
    assert status == 0, err
    assert "loading the weather, drawing homes and jobs" in err
    assert "first step" in err  # what the wait before the first step is
    assert "72/72 steps" in err
    assert "0:00:0" in err  # the elapsed-time column
    assert "useful heat" in out  # the table, on stdout
    assert "steps" not in out


def test_json_on_stdout_has_no_progress_on_the_terminal() -> None:
    status, out, err = _run_with_terminal_stderr(*_SMALL, "--json")
    assert status == 0, err
    assert out.lstrip().startswith("{")
    assert "steps" not in err


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "heatgrid.cli.main", *_SMALL],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stderr
    assert "steps" not in done.stderr


def test_the_fused_engine_shows_its_progress_too() -> None:
    args = [*_SMALL, "--engine", "fused", "--policy", "mining-only"]
    status, out, err = _run_with_terminal_stderr(*args)
    assert status == 0, err
    assert "72/72 steps" in err
    assert "mining-only" in out
