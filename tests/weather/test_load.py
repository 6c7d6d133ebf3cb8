"""Tests for load_weather: a city name or an EPW path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heatgrid import weather
from heatgrid.core.errors import InputError
from heatgrid.weather.cities import close_city_names
from heatgrid.weather.load import load_weather


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("Lyon", "Lyon"), ("  paris ", "Paris"), ("MÜNCHEN", "Munich"), ("Zürich", "Zurich")],
)
def test_city_names(spec: str, expected: str) -> None:
    year = load_weather(spec)
    assert year.name == expected
    assert year.n_hours == 8760
    assert year.source.startswith("synthetic:")


def test_city_in_a_leap_year() -> None:
    assert load_weather("Oslo", year=2024).n_hours == 8784


def test_epw_path(lyon_epw: Path) -> None:
    year = load_weather(str(lyon_epw))
    assert year.n_hours == 8760
    assert year.source == str(lyon_epw)
    assert year.heating_degree_hours_k_h() == pytest.approx(56_476, abs=1.0)
    assert np.array_equal(load_weather(lyon_epw).outdoor_temp_c, year.outdoor_temp_c)


def test_epw_file_without_the_suffix(lyon_epw: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lyon_weather.txt"
    copy.write_bytes(lyon_epw.read_bytes())
    assert load_weather(copy).n_hours == 8760


def test_missing_epw_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"EPW file not found: .*gone\.epw"):
        load_weather(str(tmp_path / "gone.epw"))


def test_unknown_name_lists_close_matches_and_how_to_pass_a_file() -> None:
    with pytest.raises(InputError) as caught:
        load_weather("Pariss")
    message = str(caught.value)
    assert "unknown weather 'Pariss'" in message
    assert "Did you mean: Paris?" in message
    assert ".epw" in message
    assert "Lyon" in message  # the list of built-in cities


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(InputError) as caught:
        load_weather("Xyzzy")
    assert "Did you mean" not in str(caught.value)


def test_package_exports() -> None:
    for name in weather.__all__:
        assert hasattr(weather, name), name
    assert weather.load_weather is load_weather


def test_close_city_names() -> None:
    assert close_city_names("Muenchn")[0] == "Munich"
    assert close_city_names("Lisboaa") == ["Lisbon"]
    assert close_city_names("Qwertyuiop") == []
