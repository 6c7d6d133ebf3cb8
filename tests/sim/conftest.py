"""Fixtures of the simulator tests: a region on a built-in synthetic year, small scenarios."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from heatgrid.sim.scenario import Region, Scenario
from heatgrid.weather import synthetic_year

JANUARY_15_OFFSET_S = 14 * 86_400.0


@pytest.fixture(scope="session")
def lyon() -> Region:
    """Lyon's synthetic typical year as a grid region (France's grid, 60 g/kWh)."""
    year = synthetic_year("Lyon")
    return Region(
        name="Lyon",
        timestamps_ts=year.timestamps_ts,
        outdoor_temp_c=year.outdoor_temp_c,
        carbon_g_per_kwh=60.0,
        tz_offset_h=year.tz_offset_h,
    )


@pytest.fixture(scope="session")
def make_scenario(lyon: Region) -> Callable[..., Scenario]:
    """Build a small winter scenario in Lyon; keyword arguments override the fields."""

    def build(**overrides: Any) -> Scenario:
        fields: dict[str, Any] = {
            "n_homes": 40,
            "start_ts": float(lyon.timestamps_ts[0]) + JANUARY_15_OFFSET_S,
            "days": 1.0,
            "regions": (lyon,),
            "seed": 7,
        }
        fields.update(overrides)
        return Scenario(**fields)

    return build
