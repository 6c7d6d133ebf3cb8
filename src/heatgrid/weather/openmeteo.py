"""Hourly temperature and solar radiation from the Open-Meteo forecast and archive APIs.

* Forecast: ``https://api.open-meteo.com/v1/forecast`` (up to 16 days ahead).
* History: ``https://archive-api.open-meteo.com/v1/archive`` (ERA5 reanalysis, from 1940 to a
  few days ago).

Both are asked for ``hourly=temperature_2m,shortwave_radiation`` with ``timezone=GMT``, so the
``time`` strings are UTC. ``temperature_2m`` is the value at the instant; ``shortwave_radiation``
is the mean over the preceding hour [W/m²], which over one hour is the irradiation in Wh/m².
The timestamps therefore mark the end of each hour, as everywhere in :mod:`heatgrid.weather`.

Requests have explicit timeouts; transport errors, HTTP 429 and 5xx are retried with
exponential backoff; other 4xx answers raise :class:`OpenMeteoRequestError` carrying
Open-Meteo's ``reason``. Answers can be cached on disk as JSON (one file per URL and parameter
set): forecasts for ``forecast_max_age_s``, archive answers forever (the past does not change).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeAlias

import numpy as np
from numpy.typing import NDArray

from heatgrid.core.errors import InputError
from heatgrid.weather._gaps import interpolate_gaps, longest_gap
from heatgrid.weather.year import WeatherYear

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ARCHIVE_URL",
    "FORECAST_URL",
    "OpenMeteoClient",
    "OpenMeteoError",
    "OpenMeteoRequestError",
    "parse_hourly_response",
]

FloatArray: TypeAlias = NDArray[np.float64]
Params: TypeAlias = Mapping[str, str | int | float]

FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
ARCHIVE_URL = "https://archive-api.open-meteo.com/v1/archive"
_HOURLY_VARIABLES = "temperature_2m,shortwave_radiation"
_MAX_FILLED_GAP_H = 6
_MAX_FORECAST_DAYS = 16
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class OpenMeteoError(RuntimeError):
    """Open-Meteo could not be reached or answered something unusable (after retries)."""


class OpenMeteoRequestError(InputError):
    """Open-Meteo rejected the request (HTTP 4xx); the message carries its ``reason``."""

    def __init__(self, message: str, *, status_code: int, reason: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason


class OpenMeteoClient:
    """A small client for Open-Meteo's forecast and archive APIs.

    Parameters
    ----------
    http : httpx.Client, optional
        The HTTP client to use (tests pass one with an ``httpx.MockTransport``). When omitted
        the client makes and closes its own.
    cache_dir : str or pathlib.Path, optional
        Directory for the JSON cache; no caching when omitted. Created if absent.
    forecast_max_age_s : float
        How long a cached forecast stays valid [s]. Archive answers never expire.
    timeout_s : float
        Timeout for connecting, reading and writing, per request [s].
    retries : int
        Extra attempts after a transport error, HTTP 429 or 5xx.
    backoff_s : float
        Wait before the first retry [s]; doubles for each further retry.
    sleep : callable, optional
        ``sleep(seconds)``; :func:`time.sleep` by default (tests pass a recorder).
    clock : callable, optional
        Returns the current POSIX time [s]; :func:`time.time` by default.
    forecast_url, archive_url : str
        Endpoints, for self-hosted Open-Meteo instances.
    """

    def __init__(
        self,
        *,
        http: httpx.Client | None = None,
        cache_dir: str | Path | None = None,
        forecast_max_age_s: float = 3600.0,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        forecast_url: str = FORECAST_URL,
        archive_url: str = ARCHIVE_URL,
    ) -> None:
        if retries < 0:
            raise InputError(f"retries must not be negative, got {retries!r}")
        if not (math.isfinite(timeout_s) and timeout_s > 0.0):
            raise InputError(f"timeout_s must be a positive number, got {timeout_s!r}")
        if not (math.isfinite(backoff_s) and backoff_s >= 0.0):
            raise InputError(f"backoff_s must not be negative, got {backoff_s!r}")
        if not forecast_max_age_s >= 0.0:
            raise InputError(f"forecast_max_age_s must not be negative, got {forecast_max_age_s!r}")
        # Imported here: httpx is slow to import, and loading a city or an EPW file needs none.
        import httpx  # noqa: PLC0415

        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client()
        self._cache_dir = None if cache_dir is None else Path(cache_dir)
        self._forecast_max_age_s = forecast_max_age_s
        self._timeout = httpx.Timeout(timeout_s)
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._clock = clock
        self._forecast_url = forecast_url
        self._archive_url = archive_url

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def forecast(
        self,
        latitude_deg: float,
        longitude_deg: float,
        *,
        days: int = 7,
        tz_offset_h: float = 0.0,
        name: str | None = None,
    ) -> WeatherYear:
        """Hourly forecast from today (00:00 UTC) for ``days`` days.

        Parameters
        ----------
        latitude_deg, longitude_deg : float
            Location [°], north and east positive.
        days : int
            Number of days, 1–16.
        tz_offset_h : float
            Local standard time minus UTC [h], stored in the result (the data are UTC).
        name : str, optional
            Place name for the result.

        Returns
        -------
        WeatherYear
            ``24 · days`` hours (fewer if Open-Meteo has no data for the last ones).

        Raises
        ------
        InputError
            If an argument is out of range, or Open-Meteo rejects the request.
        OpenMeteoError
            If Open-Meteo cannot be reached or answers something unusable.
        """
        _check_coordinates(latitude_deg, longitude_deg)
        if not 1 <= days <= _MAX_FORECAST_DAYS:
            raise InputError(f"days must be within 1–{_MAX_FORECAST_DAYS}, got {days!r}")
        params = _base_params(latitude_deg, longitude_deg) | {"forecast_days": days}
        payload = self._get_json(self._forecast_url, params, max_age_s=self._forecast_max_age_s)
        label = name or f"Open-Meteo forecast {latitude_deg:.3f}, {longitude_deg:.3f}"
        return parse_hourly_response(
            payload, name=label, tz_offset_h=tz_offset_h, source=self._forecast_url
        )

    def history(
        self,
        latitude_deg: float,
        longitude_deg: float,
        start: date,
        end: date,
        *,
        tz_offset_h: float = 0.0,
        name: str | None = None,
    ) -> WeatherYear:
        """Hourly reanalysis weather from ``start`` to ``end`` (both included, UTC days).

        Parameters
        ----------
        latitude_deg, longitude_deg : float
            Location [°], north and east positive.
        start, end : datetime.date
            First and last day.
        tz_offset_h : float
            Local standard time minus UTC [h], stored in the result (the data are UTC).
        name : str, optional
            Place name for the result.

        Returns
        -------
        WeatherYear
            The hours Open-Meteo has data for (the last days before today may be absent).

        Raises
        ------
        InputError
            If an argument is out of range, or Open-Meteo rejects the request.
        OpenMeteoError
            If Open-Meteo cannot be reached or answers something unusable.
        """
        _check_coordinates(latitude_deg, longitude_deg)
        if end < start:
            raise InputError(f"end ({end.isoformat()}) is before start ({start.isoformat()})")
        params = _base_params(latitude_deg, longitude_deg) | {
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
        }
        payload = self._get_json(self._archive_url, params, max_age_s=None)
        label = name or f"Open-Meteo archive {latitude_deg:.3f}, {longitude_deg:.3f}"
        return parse_hourly_response(
            payload, name=label, tz_offset_h=tz_offset_h, source=self._archive_url
        )

    def _get_json(self, url: str, params: Params, *, max_age_s: float | None) -> dict[str, Any]:
        """GET ``url`` as JSON, through the cache when there is one."""
        cache_path = self._cache_path(url, params)
        if cache_path is not None:
            cached = _read_cache(cache_path, self._clock(), max_age_s)
            if cached is not None:
                return cached
        payload = self._fetch(url, params)
        if cache_path is not None:
            _write_cache(cache_path, url, params, self._clock(), payload)
        return payload

    def _cache_path(self, url: str, params: Params) -> Path | None:
        """Cache file for a URL and parameter set, or ``None`` without a cache directory."""
        if self._cache_dir is None:
            return None
        key = json.dumps([url, sorted((k, str(v)) for k, v in params.items())])
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        return self._cache_dir / f"openmeteo-{digest}.json"

    def _fetch(self, url: str, params: Params) -> dict[str, Any]:
        """GET with retries on transport errors, 429 and 5xx; raise on other 4xx."""
        import httpx  # noqa: PLC0415 - see __init__

        last_problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(self._backoff_s * 2.0 ** (attempt - 1))
            try:
                response = self._http.get(url, params=dict(params), timeout=self._timeout)
            except httpx.TransportError as error:
                last_problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code in _RETRY_STATUS:
                last_problem = f"HTTP {response.status_code}: {_reason(response)}"
                continue
            if response.is_client_error:
                reason = _reason(response)
                raise OpenMeteoRequestError(
                    f"Open-Meteo rejected the request to {url} "
                    f"(HTTP {response.status_code}): {reason}",
                    status_code=response.status_code,
                    reason=reason,
                )
            if not response.is_success:
                raise OpenMeteoError(f"{url}: unexpected HTTP {response.status_code}")
            return _decode_json(response, url)
        raise OpenMeteoError(
            f"Open-Meteo unreachable at {url} after {self._retries + 1} attempt(s); "
            f"last problem: {last_problem}"
        )


def parse_hourly_response(
    payload: Mapping[str, Any], *, name: str, tz_offset_h: float = 0.0, source: str = "Open-Meteo"
) -> WeatherYear:
    """Turn an Open-Meteo JSON answer with hourly temperature and radiation into a WeatherYear.

    Leading and trailing hours without data (``null``) are dropped; gaps of up to 6 h inside
    are filled by linear interpolation.

    Parameters
    ----------
    payload : mapping
        The decoded JSON: ``latitude``, ``longitude``, ``utc_offset_seconds``, ``elevation`` and
        ``hourly`` with ``time`` (ISO 8601 local times), ``temperature_2m`` [°C] and
        ``shortwave_radiation`` [W/m², mean of the preceding hour].
    name : str
        Place name for the result.
    tz_offset_h : float
        Local standard time minus UTC [h] to store in the result.
    source : str
        Where the answer came from.

    Returns
    -------
    WeatherYear
        The hourly series, timestamps in UTC.

    Raises
    ------
    OpenMeteoError
        If the answer lacks a field, is not hourly, or holds no data.
    """
    hourly = _member(payload, "hourly", source)
    times = _member(hourly, "time", source)
    offset_s = float(_member(payload, "utc_offset_seconds", source))
    try:
        timestamps_ts = np.array(
            [datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp() - offset_s for t in times],
            dtype=np.float64,
        )
    except (TypeError, ValueError) as error:
        raise OpenMeteoError(f"{source}: hourly.time holds a bad time: {error}") from None
    temps_c = _series(hourly, "temperature_2m", len(times), source)
    radiation_w_per_m2 = _series(hourly, "shortwave_radiation", len(times), source)
    present = np.flatnonzero(~np.isnan(temps_c) & ~np.isnan(radiation_w_per_m2))
    if present.size == 0:
        raise OpenMeteoError(f"{source}: the answer holds no hourly data")
    keep = slice(int(present[0]), int(present[-1]) + 1)
    series = {}
    for label, values in (
        ("temperature_2m", temps_c[keep]),
        ("shortwave_radiation", radiation_w_per_m2[keep]),
    ):
        start, length = longest_gap(values)
        if length > _MAX_FILLED_GAP_H:
            raise OpenMeteoError(
                f"{source}: {label} is null for {length} hours from {times[keep.start + start]}"
            )
        series[label] = interpolate_gaps(values)
    try:
        return WeatherYear(
            name=name,
            latitude_deg=float(_member(payload, "latitude", source)),
            longitude_deg=float(_member(payload, "longitude", source)),
            elevation_m=float(payload.get("elevation", 0.0)),
            tz_offset_h=tz_offset_h,
            timestamps_ts=timestamps_ts[keep],
            outdoor_temp_c=series["temperature_2m"],
            global_horizontal_wh_per_m2=np.maximum(series["shortwave_radiation"], 0.0),
            source=source,
        )
    except InputError as error:
        raise OpenMeteoError(f"{source}: unusable answer: {error}") from None


def _check_coordinates(latitude_deg: float, longitude_deg: float) -> None:
    """Reject coordinates Open-Meteo would reject, before asking it."""
    if not (math.isfinite(latitude_deg) and -90.0 <= latitude_deg <= 90.0):
        raise InputError(f"latitude_deg must be within [-90, 90], got {latitude_deg!r}")
    if not (math.isfinite(longitude_deg) and -180.0 <= longitude_deg <= 180.0):
        raise InputError(f"longitude_deg must be within [-180, 180], got {longitude_deg!r}")


def _base_params(latitude_deg: float, longitude_deg: float) -> dict[str, str | int | float]:
    """Query parameters shared by the forecast and archive requests."""
    return {
        "latitude": round(latitude_deg, 4),
        "longitude": round(longitude_deg, 4),
        "hourly": _HOURLY_VARIABLES,
        "timezone": "GMT",
    }


def _reason(response: httpx.Response) -> str:
    """Open-Meteo's ``reason`` from an error answer, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "(empty body)"
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        return str(body["reason"])
    return response.text[:200]


def _decode_json(response: httpx.Response, url: str) -> dict[str, Any]:
    """Decode a successful answer, which must be a JSON object."""
    try:
        body = response.json()
    except ValueError:
        raise OpenMeteoError(f"{url}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise OpenMeteoError(f"{url}: the answer is not a JSON object")
    return body


def _member(container: Any, key: str, source: str) -> Any:
    """``container[key]``, or :class:`OpenMeteoError` naming the missing member."""
    if not isinstance(container, Mapping) or key not in container:
        raise OpenMeteoError(f"{source}: the answer has no {key!r}")
    return container[key]


def _series(hourly: Mapping[str, Any], key: str, n_times: int, source: str) -> FloatArray:
    """Return an hourly variable as float64, NaN for ``null``; one value per ``time``."""
    values = _member(hourly, key, source)
    if not isinstance(values, list) or len(values) != n_times:
        raise OpenMeteoError(f"{source}: hourly.{key} does not have one value per time")
    try:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise OpenMeteoError(f"{source}: hourly.{key} holds a value that is not a number") from None


def _read_cache(path: Path, now_ts: float, max_age_s: float | None) -> dict[str, Any] | None:
    """Return the cached answer at ``path`` if it exists, parses and is fresh enough."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        fetched_ts = float(entry["fetched_ts"])
        payload = entry["response"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    if max_age_s is not None and not 0.0 <= now_ts - fetched_ts <= max_age_s:
        return None
    return payload


def _write_cache(
    path: Path, url: str, params: Params, now_ts: float, payload: Mapping[str, Any]
) -> None:
    """Write a cache entry atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"url": url, "params": dict(params), "fetched_ts": now_ts, "response": payload}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(entry, stream)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
