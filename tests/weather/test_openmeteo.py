"""Tests for the Open-Meteo client, against stored answers served by httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from heatgrid.core.errors import InputError
from heatgrid.weather.openmeteo import (
    ARCHIVE_URL,
    FORECAST_URL,
    OpenMeteoClient,
    OpenMeteoError,
    OpenMeteoRequestError,
    parse_hourly_response,
)

DATA = Path(__file__).parent / "data"
FORECAST_FILE = DATA / "openmeteo_forecast_lyon_2024-01-15.json"
ARCHIVE_FILE = DATA / "openmeteo_archive_lyon_2023-07-01_2023-07-03.json"
ERROR_FILE = DATA / "openmeteo_error_400.json"

Handler = Callable[[httpx.Request], httpx.Response]


def _stored(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


class Server:
    """A MockTransport handler that records requests and replays scripted answers."""

    def __init__(self, answers: list[httpx.Response | Exception]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _ok(path: Path) -> httpx.Response:
    return httpx.Response(
        200, content=path.read_bytes(), headers={"content-type": "application/json"}
    )


class Clock:
    def __init__(self, now_ts: float) -> None:
        self.now_ts = now_ts

    def __call__(self) -> float:
        return self.now_ts


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(
    sleeps: list[float], tmp_path: Path
) -> Iterator[Callable[..., tuple[OpenMeteoClient, Server]]]:
    clients: list[httpx.Client] = []

    def make(
        answers: list[httpx.Response | Exception], **kwargs: Any
    ) -> tuple[OpenMeteoClient, Server]:
        server = Server(answers)
        http = httpx.Client(transport=httpx.MockTransport(server))
        clients.append(http)
        kwargs.setdefault("cache_dir", tmp_path / "cache")
        client = OpenMeteoClient(http=http, sleep=sleeps.append, backoff_s=0.5, **kwargs)
        return client, server

    yield make
    for http in clients:
        http.close()


def test_forecast_parses_the_stored_answer(make_client: Callable[..., Any]) -> None:
    client, server = make_client([_ok(FORECAST_FILE)])
    weather = client.forecast(45.74, 4.94, days=3, tz_offset_h=1.0, name="Lyon")
    stored = _stored(FORECAST_FILE)["hourly"]
    assert weather.n_hours == 72
    assert weather.name == "Lyon"
    assert weather.tz_offset_h == 1.0
    assert weather.elevation_m == 197.0
    assert weather.timestamps_ts[0] == datetime(2024, 1, 15, 0, tzinfo=UTC).timestamp()
    assert weather.timestamps_ts[-1] == datetime(2024, 1, 17, 23, tzinfo=UTC).timestamp()
    np.testing.assert_array_equal(weather.outdoor_temp_c, stored["temperature_2m"])
    np.testing.assert_array_equal(
        weather.global_horizontal_wh_per_m2, stored["shortwave_radiation"]
    )
    assert weather.source == FORECAST_URL
    (request,) = server.requests
    assert str(request.url).startswith(FORECAST_URL)
    params = request.url.params
    assert params["latitude"] == "45.74"
    assert params["longitude"] == "4.94"
    assert params["hourly"] == "temperature_2m,shortwave_radiation"
    assert params["timezone"] == "GMT"
    assert params["forecast_days"] == "3"
    assert request.extensions["timeout"]["read"] == 10.0


def test_history_parses_the_stored_answer(make_client: Callable[..., Any]) -> None:
    client, server = make_client([_ok(ARCHIVE_FILE)])
    weather = client.history(45.73, 4.94, date(2023, 7, 1), date(2023, 7, 3))
    assert weather.n_hours == 72
    assert weather.timestamps_ts[0] == datetime(2023, 7, 1, 0, tzinfo=UTC).timestamp()
    assert weather.outdoor_temp_c.max() > 25.0  # a hot July afternoon
    assert weather.global_horizontal_wh_per_m2[0] == 0.0  # night
    assert weather.global_horizontal_wh_per_m2.max() > 500.0
    params = server.requests[0].url.params
    assert str(server.requests[0].url).startswith(ARCHIVE_URL)
    assert (params["start_date"], params["end_date"]) == ("2023-07-01", "2023-07-03")


def test_second_call_is_served_from_the_cache(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    clock = Clock(1_700_000_000.0)
    client, server = make_client([_ok(FORECAST_FILE)], clock=clock, forecast_max_age_s=600.0)
    first = client.forecast(45.74, 4.94, days=3)
    second = client.forecast(45.74, 4.94, days=3)
    assert len(server.requests) == 1
    np.testing.assert_array_equal(first.outdoor_temp_c, second.outdoor_temp_c)
    assert len(list((tmp_path / "cache").glob("openmeteo-*.json"))) == 1
    # Other parameters are another cache entry.
    client.forecast(45.74, 4.94, days=2)
    assert len(server.requests) == 2
    # A forecast older than its maximum age is fetched again.
    clock.now_ts += 601.0
    client.forecast(45.74, 4.94, days=3)
    assert len(server.requests) == 3


def test_cache_survives_a_new_client(make_client: Callable[..., Any]) -> None:
    client, server = make_client([_ok(ARCHIVE_FILE)])
    client.history(45.73, 4.94, date(2023, 7, 1), date(2023, 7, 3))
    again, other_server = make_client([httpx.Response(500)], clock=Clock(4_000_000_000.0))
    weather = again.history(45.73, 4.94, date(2023, 7, 1), date(2023, 7, 3))
    assert weather.n_hours == 72  # archive answers never expire
    assert len(server.requests) == 1
    assert other_server.requests == []


def test_corrupt_cache_entry_is_fetched_again(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    client, server = make_client([_ok(FORECAST_FILE)])
    client.forecast(45.74, 4.94, days=3)
    (entry,) = (tmp_path / "cache").glob("openmeteo-*.json")
    entry.write_text("{not json")
    client.forecast(45.74, 4.94, days=3)
    assert len(server.requests) == 2
    assert json.loads(entry.read_text())["url"] == FORECAST_URL


def test_without_cache_every_call_fetches(make_client: Callable[..., Any]) -> None:
    client, server = make_client([_ok(FORECAST_FILE)], cache_dir=None)
    client.forecast(45.74, 4.94, days=3)
    client.forecast(45.74, 4.94, days=3)
    assert len(server.requests) == 2


def test_retries_on_503_with_backoff(make_client: Callable[..., Any], sleeps: list[float]) -> None:
    answers = [httpx.Response(503), httpx.Response(503), _ok(FORECAST_FILE)]
    client, server = make_client(answers)
    weather = client.forecast(45.74, 4.94, days=3)
    assert weather.n_hours == 72
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_retries_on_transport_error(make_client: Callable[..., Any], sleeps: list[float]) -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        _ok(ARCHIVE_FILE),
    ]
    client, server = make_client(answers)
    client.history(45.73, 4.94, date(2023, 7, 1), date(2023, 7, 3))
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_gives_up_after_the_retries(make_client: Callable[..., Any], sleeps: list[float]) -> None:
    client, server = make_client([httpx.Response(502, text="Bad Gateway")], retries=2)
    with pytest.raises(OpenMeteoError, match=r"after 3 attempt\(s\); last problem: HTTP 502"):
        client.forecast(45.74, 4.94)
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_400_raises_with_open_meteo_reason(
    make_client: Callable[..., Any], sleeps: list[float]
) -> None:
    client, server = make_client([httpx.Response(400, content=ERROR_FILE.read_bytes())])
    with pytest.raises(OpenMeteoRequestError) as caught:
        client.history(45.0, 4.9, date(2023, 7, 1), date(2023, 7, 3))
    error = caught.value
    assert isinstance(error, InputError)
    assert error.status_code == 400
    assert error.reason == "Latitude must be in range of -90 to 90°. Given: 91.0."
    assert "HTTP 400" in str(error)
    assert "Latitude must be in range" in str(error)
    assert len(server.requests) == 1  # a 4xx is not retried
    assert sleeps == []


def test_4xx_without_json_body(make_client: Callable[..., Any]) -> None:
    client, _ = make_client([httpx.Response(404, text="Not Found")])
    with pytest.raises(OpenMeteoRequestError, match=r"HTTP 404\): Not Found"):
        client.forecast(45.74, 4.94)


def test_arguments_checked_before_any_request(make_client: Callable[..., Any]) -> None:
    client, server = make_client([_ok(FORECAST_FILE)])
    with pytest.raises(InputError, match=r"latitude_deg must be within"):
        client.forecast(91.0, 4.94)
    with pytest.raises(InputError, match=r"days must be within 1–16"):
        client.forecast(45.0, 4.94, days=17)
    with pytest.raises(InputError, match=r"end \(2023-06-30\) is before start"):
        client.history(45.0, 4.94, date(2023, 7, 1), date(2023, 6, 30))
    assert server.requests == []


def test_nulls_at_the_ends_are_dropped_and_short_gaps_filled() -> None:
    payload = _stored(ARCHIVE_FILE)
    hourly = payload["hourly"]
    hourly["temperature_2m"][-5:] = [None] * 5  # the archive lags a few days behind
    hourly["shortwave_radiation"][:2] = [None, None]
    hourly["temperature_2m"][30:32] = [None, None]
    weather = parse_hourly_response(payload, name="x")
    assert weather.n_hours == 72 - 5 - 2
    assert weather.timestamps_ts[0] == datetime(2023, 7, 1, 2, tzinfo=UTC).timestamp()
    filled = weather.outdoor_temp_c[28:30]
    low, high = sorted((hourly["temperature_2m"][29], hourly["temperature_2m"][32]))
    assert np.all((filled >= low) & (filled <= high))


def test_long_gap_and_empty_answer_are_errors() -> None:
    payload = _stored(ARCHIVE_FILE)
    payload["hourly"]["temperature_2m"][10:20] = [None] * 10
    with pytest.raises(
        OpenMeteoError, match=r"temperature_2m is null for 10 hours from 2023-07-01T10:00"
    ):
        parse_hourly_response(payload, name="x")
    payload["hourly"]["temperature_2m"] = [None] * 72
    with pytest.raises(OpenMeteoError, match=r"holds no hourly data"):
        parse_hourly_response(payload, name="x")


def test_local_time_answer_is_converted_to_utc() -> None:
    payload = _stored(FORECAST_FILE)
    payload["utc_offset_seconds"] = 3600
    payload["timezone"] = "Europe/Paris"
    weather = parse_hourly_response(payload, name="x")
    assert weather.timestamps_ts[0] == datetime(2024, 1, 14, 23, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("hourly"), r"has no 'hourly'"),
        (lambda p: p["hourly"].pop("shortwave_radiation"), r"has no 'shortwave_radiation'"),
        (lambda p: p["hourly"]["temperature_2m"].pop(), r"does not have one value per time"),
        (lambda p: p["hourly"]["time"].__setitem__(3, "yesterday"), r"bad time"),
        (lambda p: p["hourly"]["time"].__setitem__(3, p["hourly"]["time"][5]), r"3600 s"),
    ],
)
def test_malformed_answer(mutate: Callable[[dict[str, Any]], Any], message: str) -> None:
    payload = _stored(FORECAST_FILE)
    mutate(payload)
    with pytest.raises(OpenMeteoError, match=message):
        parse_hourly_response(payload, name="x")


def test_non_json_success_is_an_error(make_client: Callable[..., Any]) -> None:
    client, _ = make_client([httpx.Response(200, text="<html>maintenance</html>")])
    with pytest.raises(OpenMeteoError, match=r"not JSON"):
        client.forecast(45.74, 4.94)
