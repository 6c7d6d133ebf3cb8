"""One entry point for "give me a year of weather": an EPW file path or a built-in city name."""

from __future__ import annotations

from pathlib import Path

from heatgrid.core.errors import InputError
from heatgrid.weather.cities import CITIES, close_city_names, find_city
from heatgrid.weather.epw import read_epw
from heatgrid.weather.synthetic import synthetic_year
from heatgrid.weather.year import DEFAULT_YEAR, WeatherYear

__all__ = ["load_weather"]


def load_weather(spec: str | Path, *, year: int | None = None) -> WeatherYear:
    """Load a year of hourly weather from an EPW file or a built-in city.

    Parameters
    ----------
    spec : str or pathlib.Path
        A path to an EnergyPlus ``.epw`` file, or the name of a city in
        :data:`heatgrid.weather.cities.CITIES` (case, accents, spaces and hyphens are
        ignored; local spellings such as "München" work).
    year : int, optional
        Calendar year of the timestamps. For a city the default is 2023 (8760 hours); for an
        EPW file, 2023, or 2024 when the file has a 29 February.

    Returns
    -------
    WeatherYear
        The hourly series.

    Raises
    ------
    InputError
        If ``spec`` names an EPW file that is missing or malformed, or is neither a file nor a
        known city (the message lists close matches and says how to pass a file).
    """
    text = str(spec).strip()
    path = Path(text).expanduser()
    if text.lower().endswith(".epw") or path.is_file():
        return read_epw(path, year=year).to_weather_year()
    if find_city(text) is not None:
        return synthetic_year(text, year=DEFAULT_YEAR if year is None else year)
    raise InputError(_unknown_message(text))


def _unknown_message(text: str) -> str:
    """Explain that ``text`` is neither a city nor a file, with close matches."""
    suggestions = close_city_names(text)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    return (
        f"unknown weather {text!r}: not a built-in city and not an .epw file.{hint} "
        "Pass the path to an EnergyPlus weather file (ending in .epw, e.g. ./lyon.epw), "
        f"or one of the built-in cities: {', '.join(sorted(CITIES))}."
    )
