"""Tests for WeatherYear and heating degree-hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.weather.year import WeatherYear, heating_degree_hours_k_h

temps_strategy = st.lists(
    st.floats(min_value=-40.0, max_value=45.0, allow_nan=False), min_size=1, max_size=200
)


def _year(n_hours: int = 48, **overrides: Any) -> WeatherYear:
    start_ts = datetime(2023, 1, 1, tzinfo=UTC).timestamp() - 3600.0  # local midnight, UTC+1
    fields: dict[str, Any] = {
        "name": "Test",
        "latitude_deg": 45.0,
        "longitude_deg": 5.0,
        "elevation_m": 200.0,
        "tz_offset_h": 1.0,
        "timestamps_ts": start_ts + 3600.0 * np.arange(1, n_hours + 1),
        "outdoor_temp_c": np.linspace(-2.0, 8.0, n_hours),
        "global_horizontal_wh_per_m2": np.zeros(n_hours),
        "source": "test",
    }
    fields.update(overrides)
    return WeatherYear(**fields)


def test_degree_hours_by_hand() -> None:
    assert heating_degree_hours_k_h([10.0, 18.0, 20.0, -2.0]) == pytest.approx(8.0 + 20.0)
    assert heating_degree_hours_k_h([10.0, 12.0], base_c=15.0) == pytest.approx(8.0)
    assert heating_degree_hours_k_h([10.0, 12.0], base_c=15.0, step_h=0.5) == pytest.approx(4.0)
    assert heating_degree_hours_k_h([], base_c=15.0) == 0.0


@given(temps=temps_strategy, base_c=st.floats(-20, 30), step_k=st.floats(0.0, 10.0))
def test_degree_hours_monotone_in_base(temps: list[float], base_c: float, step_k: float) -> None:
    lower = heating_degree_hours_k_h(temps, base_c)
    higher = heating_degree_hours_k_h(temps, base_c + step_k)
    assert higher >= lower
    # Raising the base by Δ adds at most Δ per hour.
    assert higher - lower <= step_k * len(temps) + 1e-6


@given(temps=temps_strategy, warming_k=st.floats(0.0, 10.0))
def test_degree_hours_fall_when_weather_warms(temps: list[float], warming_k: float) -> None:
    warmer = np.asarray(temps) + warming_k
    assert heating_degree_hours_k_h(warmer) <= heating_degree_hours_k_h(temps) + 1e-9


@given(temps=temps_strategy)
def test_degree_hours_limits(temps: list[float]) -> None:
    array = np.asarray(temps)
    assert heating_degree_hours_k_h(array, base_c=float(array.min())) == 0.0
    base_c = float(array.max()) + 1.0
    expected = float(np.sum(base_c - array))
    assert heating_degree_hours_k_h(array, base_c=base_c) == pytest.approx(expected)


def test_degree_hours_reject_nan() -> None:
    with pytest.raises(InputError, match=r"outdoor_temp_c must be finite, value 1 is nan"):
        heating_degree_hours_k_h([1.0, float("nan")])
    with pytest.raises(InputError, match=r"step_h"):
        heating_degree_hours_k_h([1.0], step_h=0.0)


def test_weather_year_holds_read_only_copies() -> None:
    temps = np.linspace(0.0, 1.0, 24)
    year = _year(24, outdoor_temp_c=temps)
    temps[0] = 99.0
    assert year.outdoor_temp_c[0] == 0.0
    assert not year.outdoor_temp_c.flags.writeable
    assert year.n_hours == 24
    assert year.heating_degree_hours_k_h() == heating_degree_hours_k_h(year.outdoor_temp_c)


def test_monthly_means_use_local_months() -> None:
    # 31 + 28 days; January at 0 °C and February at 10 °C, local time UTC+1.
    temps = np.concatenate([np.zeros(31 * 24), np.full(28 * 24, 10.0)])
    means = _year(59 * 24, outdoor_temp_c=temps, global_horizontal_wh_per_m2=np.zeros(59 * 24))
    monthly = means.monthly_mean_temp_c()
    assert monthly[0] == 0.0
    assert monthly[1] == 10.0
    assert np.all(np.isnan(monthly[2:]))
    months = means.local_months()
    assert months[31 * 24 - 1] == 1  # the hour ending at local midnight, 31 January
    assert months[31 * 24] == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"latitude_deg": 91.0}, r"latitude_deg must be within \[-90, 90\]"),
        ({"tz_offset_h": 15.0}, r"tz_offset_h"),
        ({"outdoor_temp_c": np.full(48, np.nan)}, r"outdoor_temp_c must be finite; 48 value"),
        ({"outdoor_temp_c": np.zeros(47)}, r"outdoor_temp_c has 47 values, timestamps_ts has 48"),
        ({"global_horizontal_wh_per_m2": np.full(48, -1.0)}, r"must not be negative"),
        ({"timestamps_ts": np.arange(48) * 1800.0}, r"step by exactly 3600 s; step 0 is 1800 s"),
        ({"timestamps_ts": np.zeros((2, 24))}, r"timestamps_ts must be one-dimensional"),
    ],
)
def test_weather_year_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _year(48, **overrides)


def test_weather_year_must_not_be_empty() -> None:
    empty = np.empty(0)
    with pytest.raises(InputError, match=r"at least one hour"):
        _year(0, timestamps_ts=empty, outdoor_temp_c=empty, global_horizontal_wh_per_m2=empty)
