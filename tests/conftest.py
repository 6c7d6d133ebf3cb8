"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from tests.mqtt_broker import mosquitto_broker  # noqa: F401 (a fixture: a real MQTT broker)
from tests.sandbox import sandbox_ready  # noqa: F401 (a fixture: bubblewrap and cgroups)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LYON_EPW = SHARED / "weather" / "FRA_AR_Lyon-Bron.AP.074800_TMYx.2004-2018.epw"

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile("ci", parent=settings.get_profile("default"), print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def lyon_epw() -> Path:
    """The real Lyon EPW from ../shared/weather; skips with a reason where ../shared is absent."""
    if not LYON_EPW.is_file():
        if os.environ.get("HEATGRID_REQUIRE_SERVICES"):
            pytest.fail(f"{LYON_EPW} is missing, and CI must have ../shared")
        pytest.skip(f"{LYON_EPW} is absent (a user's clone has no ../shared)")
    return LYON_EPW
