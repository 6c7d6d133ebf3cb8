"""The heat window from a weather forecast: Open-Meteo answers served over HTTP on loopback.

A real HTTP server (``http.server`` in a thread, stopped at the end of each test) serves a
stored Open-Meteo answer (``tests/weather/data``) or an error; the agent's forecast is wired
exactly as ``heatgrid agent`` wires it (:func:`heatgrid.cli.agent.weather_forecast`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.agent.config import AgentConfig, parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.forecast import HourlyOutdoorForecast
from heatgrid.agent.state_store import StateStore
from heatgrid.cli.agent import weather_forecast
from heatgrid.core.errors import InputError

DATA = Path(__file__).parents[1] / "weather" / "data"
FORECAST_BODY = (DATA / "openmeteo_forecast_lyon_2024-01-15.json").read_bytes()
ERROR_BODY = (DATA / "openmeteo_error_400.json").read_bytes()
NOW_TS = datetime(2024, 1, 15, 3, 0, tzinfo=UTC).timestamp()
# Hourly temperatures of the stored answer from 2024-01-15T00:00Z.
HOURLY_C = [0.9, 0.4, 0.2, 0.6, 1.0, 1.4, 1.8, 2.4]
CONFIG = """
[sensor]
topic = "unused: read in-process"

[thermostat]
setpoint_c = 21.0

[room]
ua_w_per_k = 100.0
learn = false

[forecast]
horizon_h = 4.0
outdoor_temp_c = 12.0
latitude_deg = 45.74
longitude_deg = 4.94

[[devices]]
type = "cpu"
name = "cpu"
idle_power_w = 10.0
max_power_w = 5000.0
"""


class _OpenMeteo:
    """What the loopback server answers, and how many requests it had."""

    def __init__(self) -> None:
        self.status = 200
        self.body = FORECAST_BODY
        self.requests: list[str] = []


@pytest.fixture
def open_meteo() -> Iterator[tuple[_OpenMeteo, str]]:
    state = _OpenMeteo()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1/forecast"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _config(tmp_path: Path) -> AgentConfig:
    return parse_config(
        CONFIG, environ={"HEATGRID_AGENT__STATE__PATH": f'"{tmp_path / "agent.sqlite3"}"'}
    )


def test_heat_window_follows_the_served_forecast_and_refreshes_hourly(
    tmp_path: Path, open_meteo: tuple[_OpenMeteo, str]
) -> None:
    server, url = open_meteo
    config = _config(tmp_path)
    with (
        weather_forecast(config, forecast_url=url) as forecast,
        StateStore(config.state.path) as store,
    ):
        assert forecast is not None
        daemon = AgentDaemon(
            config,
            devices=[],
            room=lambda: None,
            store=store,
            client=None,
            clock=lambda: NOW_TS,
            outdoor_forecast=forecast,
        )
        window = daemon.heat_window(NOW_TS)
        # Segment middles at 03:30 … 06:30: the hourly values interpolated.
        middles_c = [(HOURLY_C[h] + HOURLY_C[h + 1]) / 2.0 for h in range(3, 7)]
        assert [s.heat_power_w for s in window] == pytest.approx(
            [100.0 * (21.0 - t) for t in middles_c]
        )
        assert len(server.requests) == 1
        assert "latitude=45.74" in server.requests[0]
        assert "forecast_days=2" in server.requests[0]
        daemon.heat_window(NOW_TS + 1800.0)  # within the hour: no new request
        assert len(server.requests) == 1
        assert forecast.fetches == 1
    assert list((tmp_path / "weather-cache").glob("openmeteo-*.json"))


def test_a_failing_forecast_falls_back_to_persistence_with_a_warning(
    tmp_path: Path, open_meteo: tuple[_OpenMeteo, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, url = open_meteo
    server.status, server.body = 400, ERROR_BODY
    config = _config(tmp_path)
    outdoor_c: float | None = None
    with (
        weather_forecast(config, forecast_url=url) as forecast,
        StateStore(config.state.path) as store,
        caplog.at_level(logging.WARNING, logger="heatgrid.agent.forecast"),
    ):
        daemon = AgentDaemon(
            config,
            devices=[],
            room=lambda: None,
            store=store,
            client=None,
            clock=lambda: NOW_TS,
            outdoor=lambda: outdoor_c,
            outdoor_forecast=forecast,
        )
        window = daemon.heat_window(NOW_TS)
        assert [s.heat_power_w for s in window] == [100.0 * (21.0 - 12.0)] * 4  # configured
        assert "weather forecast unavailable" in caplog.text
        assert "OpenMeteoRequestError" in caplog.text
        outdoor_c = -3.0
        window = daemon.heat_window(NOW_TS + 60.0)  # the last reading held; no retry yet
        assert [s.heat_power_w for s in window] == [100.0 * 24.0] * 4
        assert len(server.requests) == 1
        server.status, server.body = 200, FORECAST_BODY  # back: retried after 10 minutes
        window = daemon.heat_window(NOW_TS + 600.0)
        assert len(server.requests) == 2
        assert window[0].heat_power_w == pytest.approx(100.0 * (21.0 - (0.6 + 0.4 * 40 / 60)))


def test_no_location_means_no_forecast(tmp_path: Path) -> None:
    config = parse_config(CONFIG.replace("latitude_deg", "# ").replace("longitude_deg", "# "))
    with weather_forecast(config) as forecast:
        assert forecast is None


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"HEATGRID_AGENT__FORECAST__LATITUDE_DEG": "91.0"}, "forecast.latitude_deg"),
        ({"HEATGRID_AGENT__FORECAST__LONGITUDE_DEG": "-181.0"}, "forecast.longitude_deg"),
        ({"HEATGRID_AGENT__FORECAST__LATITUDE_DEG": '"north"'}, "forecast.latitude_deg"),
    ],
)
def test_bad_coordinates_are_refused_naming_the_key(override: dict[str, str], key: str) -> None:
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        parse_config(CONFIG, environ=override)


def test_one_coordinate_alone_is_refused() -> None:
    with pytest.raises(InputError, match="longitude_deg is missing"):
        parse_config(CONFIG.replace("longitude_deg", "# "))


@given(
    temps_c=st.lists(st.floats(-40.0, 40.0), min_size=3, max_size=30),
    offset_s=st.floats(0.0, 3600.0),
)
def test_interpolated_forecast_stays_within_the_served_values(
    temps_c: list[float], offset_s: float
) -> None:
    times_ts = NOW_TS + 3600.0 * np.arange(len(temps_c))
    forecast = HourlyOutdoorForecast(lambda: (times_ts, temps_c))
    count = len(temps_c) - 2
    values = forecast(NOW_TS + offset_s, count, 3600.0)
    assert values is not None
    assert len(values) == count
    assert min(temps_c) <= min(values)
    assert max(values) <= max(temps_c)
    assert forecast(NOW_TS + offset_s, len(temps_c) + 1, 3600.0) is None  # not covered
    assert forecast.fetches == 1
