"""Weather: EPW files, the Open-Meteo API and a built-in synthetic typical year per city."""

from heatgrid.weather.cities import CITIES, City, close_city_names, find_city
from heatgrid.weather.epw import (
    EPW_FIELDS,
    EpwData,
    EpwDataPeriod,
    EpwField,
    EpwLocation,
    parse_epw,
    read_epw,
)
from heatgrid.weather.load import load_weather
from heatgrid.weather.openmeteo import (
    OpenMeteoClient,
    OpenMeteoError,
    OpenMeteoRequestError,
    parse_hourly_response,
)
from heatgrid.weather.synthetic import synthetic_year
from heatgrid.weather.year import DEFAULT_YEAR, WeatherYear, heating_degree_hours_k_h

__all__ = [
    "CITIES",
    "DEFAULT_YEAR",
    "EPW_FIELDS",
    "City",
    "EpwData",
    "EpwDataPeriod",
    "EpwField",
    "EpwLocation",
    "OpenMeteoClient",
    "OpenMeteoError",
    "OpenMeteoRequestError",
    "WeatherYear",
    "close_city_names",
    "find_city",
    "heating_degree_hours_k_h",
    "load_weather",
    "parse_epw",
    "parse_hourly_response",
    "read_epw",
    "synthetic_year",
]
