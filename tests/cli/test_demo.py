"""``heatgrid demo`` runs the real coordinator end to end and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


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


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--duration", "5"], "--duration must be at least 10 seconds, got 5.0"),
        (["--duration", "nan"], "--duration must be at least 10 seconds"),
        (["--homes", "0"], "--homes must be between 1 and 8, got 0"),
        (["--heaters", "9"], "--homes must be between 1 and 8, got 9"),
        (["--speed", "0.5"], "--speed must be between 1 and 600, got 0.5"),
    ],
)
def test_the_demo_refuses_bad_options_before_starting_anything(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from heatgrid.cli.main import main  # noqa: PLC0415

    before = _demo_dirs()
    assert main(["demo", *arguments]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert _demo_dirs() == before
