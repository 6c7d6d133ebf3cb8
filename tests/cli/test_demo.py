"""``heatgrid demo`` runs the real coordinator end to end and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def _demo_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("heatgrid-demo-*"))


def test_demo_enrolls_a_heater_and_cleans_up() -> None:
    before = _demo_dirs()
    done = subprocess.run(
        [sys.executable, "-m", "heatgrid.cli.main", "demo", "--walkthrough"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "living-room heater" in done.stdout
    assert "refused with HTTP 409" in done.stdout
    assert "devices online per /metrics: 1." in " ".join(done.stdout.split())
    assert _demo_dirs() == before
