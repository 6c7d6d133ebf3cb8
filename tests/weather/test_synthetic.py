"""Tests for the built-in cities and the synthetic typical year."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from heatgrid.core.carbon import grid_carbon_g_per_kwh
from heatgrid.core.errors import InputError
from heatgrid.core.prices import household_prices
from heatgrid.weather.cities import CITIES, City
from heatgrid.weather.epw import read_epw
from heatgrid.weather.synthetic import find_city, synthetic_year
from heatgrid.weather.year import WeatherYear

CITY_NAMES = sorted(CITIES)


@pytest.fixture(scope="module")
def years() -> dict[str, WeatherYear]:
    return {name: synthetic_year(name) for name in CITY_NAMES}


def test_cities_in_europe_north_america_and_east_asia_each_with_a_source() -> None:
    assert len(CITIES) >= 20
    regions = {"Europe": 0, "North America": 0, "East Asia": 0}
    for name, city in CITIES.items():
        assert city.name == name
        assert city.source, name
        assert 30.0 <= city.latitude_deg <= 71.0, name
        if -25.0 <= city.longitude_deg <= 45.0:
            regions["Europe"] += 1
            assert city.tz_offset_h in (0.0, 1.0, 2.0), name
        elif -130.0 <= city.longitude_deg <= -60.0:
            regions["North America"] += 1
            assert city.country in ("US", "CA"), name
            assert -8.0 <= city.tz_offset_h <= -5.0, name
        else:
            assert 100.0 <= city.longitude_deg <= 146.0, name
            regions["East Asia"] += 1
            assert city.country in ("CN", "JP", "KR"), name
            assert 8.0 <= city.tz_offset_h <= 9.0, name
        # Summer warmer than winter, ranges and irradiation positive.
        assert max(city.monthly_mean_temp_c[5:8]) > max(city.monthly_mean_temp_c[0:2]) + 8.0
        assert min(city.monthly_diurnal_range_k) > 0.0
        assert min(city.monthly_daily_global_horizontal_kwh_per_m2) > 0.0
    assert regions["Europe"] >= 20
    assert regions["North America"] >= 6
    assert regions["East Asia"] >= 5


@pytest.mark.parametrize(
    ("name", "low_k_h", "high_k_h"),
    [
        # Heating degree-hours, base 18 °C, bracketing the normals' own degree-days (±15 %).
        ("Harbin", 110_000.0, 145_000.0),
        ("Minneapolis", 85_000.0, 115_000.0),
        ("Montreal", 85_000.0, 115_000.0),
        ("Seattle", 50_000.0, 72_000.0),
        ("Tokyo", 32_000.0, 48_000.0),
    ],
)
def test_a_new_climate_gives_its_heating_degree_hours_and_country_defaults(
    name: str, low_k_h: float, high_k_h: float
) -> None:
    year = synthetic_year(name)
    assert low_k_h < year.heating_degree_hours_k_h(18.0) < high_k_h
    city = CITIES[name]
    assert city.source in year.source
    household_prices(city.country)  # the tariff defaults follow the city's country
    grid_carbon_g_per_kwh(city.country)  # and so does the grid carbon


def test_city_needs_twelve_months() -> None:
    with pytest.raises(InputError, match=r"monthly_mean_temp_c needs 12 values, has 11"):
        City("X", "XX", "x", 0.0, 0.0, 0.0, 0.0, (1.0,) * 11, (1.0,) * 12, (1.0,) * 12)


@pytest.mark.parametrize("name", CITY_NAMES)
def test_year_is_hourly_finite_and_complete(years: dict[str, WeatherYear], name: str) -> None:
    year = years[name]
    assert year.n_hours == 8760
    assert np.all(np.isfinite(year.outdoor_temp_c))
    assert np.all(np.isfinite(year.global_horizontal_wh_per_m2))
    assert year.timestamps_ts[0] == (
        datetime(2023, 1, 1, 1, tzinfo=UTC).timestamp() - 3600.0 * CITIES[name].tz_offset_h
    )
    assert np.all(np.diff(year.timestamps_ts) == 3600.0)
    # Plausible extremes for a European climate.
    assert -35.0 < year.outdoor_temp_c.min() < year.outdoor_temp_c.max() < 45.0


@pytest.mark.parametrize("name", CITY_NAMES)
def test_monthly_means_match_the_normals(years: dict[str, WeatherYear], name: str) -> None:
    means = years[name].monthly_mean_temp_c()
    np.testing.assert_allclose(means, CITIES[name].monthly_mean_temp_c, atol=0.3)


@pytest.mark.parametrize("name", CITY_NAMES)
def test_monthly_irradiation_matches_the_normals(years: dict[str, WeatherYear], name: str) -> None:
    year = years[name]
    months = year.local_months()
    days = np.bincount(months, minlength=13)[1:] / 24
    daily_kwh = (
        np.bincount(months, weights=year.global_horizontal_wh_per_m2, minlength=13)[1:]
        / days
        / 1000.0
    )
    np.testing.assert_allclose(
        daily_kwh, CITIES[name].monthly_daily_global_horizontal_kwh_per_m2, rtol=1e-6
    )
    # Never above the solar constant, dark at local midnight.
    assert year.global_horizontal_wh_per_m2.max() < 1100.0
    local_hour_end = np.arange(1, 8761) % 24
    assert np.all(year.global_horizontal_wh_per_m2[local_hour_end == 0] == 0.0)


def test_diurnal_cycle_shape(years: dict[str, WeatherYear]) -> None:
    by_day = years["Lyon"].outdoor_temp_c.reshape(365, 24)
    hour_end_of_min = np.bincount(by_day.argmin(axis=1) + 1).argmax()
    hour_end_of_max = np.bincount(by_day.argmax(axis=1) + 1).argmax()
    assert 4 <= hour_end_of_min <= 9  # around sunrise (local standard time)
    assert 13 <= hour_end_of_max <= 17  # mid-afternoon
    daily_range_k = by_day.max(axis=1) - by_day.min(axis=1)
    july = slice(181, 212)
    assert np.mean(daily_range_k[july]) == pytest.approx(11.3, abs=2.5)


def test_weather_varies_from_day_to_day(years: dict[str, WeatherYear]) -> None:
    daily_c = years["Berlin"].outdoor_temp_c.reshape(365, 24).mean(axis=1)
    january = daily_c[:31]
    assert np.std(january) > 1.5  # weather, not a smooth climatology
    assert np.max(np.abs(np.diff(daily_c))) < 8.0  # but no jumps between days


def test_same_city_same_year_bit_for_bit() -> None:
    first, second = synthetic_year("Lyon"), synthetic_year("lyon")
    assert first.outdoor_temp_c.tobytes() == second.outdoor_temp_c.tobytes()
    assert (
        first.global_horizontal_wh_per_m2.tobytes() == second.global_horizontal_wh_per_m2.tobytes()
    )
    other = synthetic_year("Paris")
    assert not np.array_equal(first.outdoor_temp_c, other.outdoor_temp_c)


def test_leap_year_has_8784_hours() -> None:
    year = synthetic_year("Vienna", year=2024)
    assert year.n_hours == 8784
    np.testing.assert_allclose(
        year.monthly_mean_temp_c(), CITIES["Vienna"].monthly_mean_temp_c, atol=0.3
    )


def test_colder_cities_need_more_heat(years: dict[str, WeatherYear]) -> None:
    helsinki = years["Helsinki"].heating_degree_hours_k_h()
    paris = years["Paris"].heating_degree_hours_k_h()
    athens = years["Athens"].heating_degree_hours_k_h()
    assert helsinki > paris > athens


def test_synthetic_lyon_heating_close_to_the_real_epw(
    years: dict[str, WeatherYear], lyon_epw: Path
) -> None:
    real = read_epw(lyon_epw).to_weather_year()
    synthetic = years["Lyon"]
    real_k_h = real.heating_degree_hours_k_h()
    assert synthetic.heating_degree_hours_k_h() == pytest.approx(real_k_h, rel=0.15)
    real_kwh = real.global_horizontal_wh_per_m2.sum() / 1000.0
    assert synthetic.global_horizontal_wh_per_m2.sum() / 1000.0 == pytest.approx(real_kwh, rel=0.15)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lyon", "Lyon"),
        (" LYON ", "Lyon"),
        ("München", "Munich"),
        ("munchen", "Munich"),
        ("zurich", "Zurich"),
        ("Zürich", "Zurich"),
        ("bucuresti", "Bucharest"),
        ("WIEN", "Vienna"),
    ],
)
def test_find_city_tolerates_case_accents_and_spaces(query: str, expected: str) -> None:
    city = find_city(query)
    assert city is not None
    assert city.name == expected


def test_unknown_city() -> None:
    assert find_city("Atlantis") is None
    with pytest.raises(InputError, match=r"no built-in climate for 'Atlantis'.*Lyon"):
        synthetic_year("Atlantis")
