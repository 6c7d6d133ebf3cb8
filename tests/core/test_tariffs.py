"""Tests for flat, time-of-use and series tariffs and the tariff CSV parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.core.tariffs import (
    FlatTariff,
    SeriesTariff,
    Tariff,
    TimeOfUseTariff,
    TouPeriod,
    parse_tariff_csv,
)

# A French-style tariff: peak on weekdays 07:00–22:00, a cheap weekend night, base otherwise.
PEAK = TouPeriod(0.30, 7.0, 22.0, weekdays=(0, 1, 2, 3, 4))
WEEKEND_NIGHT = TouPeriod(0.12, 23.5, 6.0, weekdays=(5, 6))
BASE_EUR_PER_KWH = 0.20
TOU = TimeOfUseTariff((PEAK, WEEKEND_NIGHT), BASE_EUR_PER_KWH, utc_offset_h=1.0)

JAN_1_2025_TS = datetime(2025, 1, 1, tzinfo=UTC).timestamp()  # a Wednesday


def _expected_price(timestamp_ts: float, offset_h: float) -> float:
    """Reference lookup through datetime, independent of the tariff's own arithmetic."""
    local = datetime.fromtimestamp(timestamp_ts, UTC) + timedelta(hours=offset_h)
    hour = local.hour + local.minute / 60.0
    day = local.weekday()
    for period in (PEAK, WEEKEND_NIGHT):
        start, end = period.start_local_h, period.end_local_h
        in_time = start <= hour < end if start < end else (hour >= start or hour < end)
        if in_time and day in period.weekdays:
            return period.price_eur_per_kwh
    return BASE_EUR_PER_KWH


def test_all_tariffs_satisfy_the_protocol() -> None:
    series = SeriesTariff(np.array([0.0]), np.array([0.1]))
    for tariff in (FlatTariff(0.25), TOU, series):
        assert isinstance(tariff, Tariff)


def test_flat_tariff_broadcasts() -> None:
    prices = FlatTariff(0.25).price_eur_per_kwh(np.arange(48.0) * 3600)
    assert prices.shape == (48,)
    assert np.all(prices == 0.25)
    with pytest.raises(InputError, match="rate_eur_per_kwh"):
        FlatTariff(-0.1)
    with pytest.raises(InputError, match="rate_eur_per_kwh"):
        FlatTariff(float("inf"))


@given(st.floats(min_value=0.0, max_value=4e9))
def test_time_of_use_lookup_matches_period_table(timestamp_ts: float) -> None:
    price = float(TOU.price_eur_per_kwh(timestamp_ts))
    assert price == _expected_price(timestamp_ts, 1.0)


def test_time_of_use_known_hours() -> None:
    # Wednesday 2025-01-01; local = UTC + 1 h.
    at = [JAN_1_2025_TS + hours * 3600 for hours in (5.5, 6.0, 20.9, 21.0)]
    np.testing.assert_array_equal(TOU.price_eur_per_kwh(at), [0.20, 0.30, 0.30, 0.20])
    # Saturday 2025-01-04 23:45 local is in the weekend night; Monday 05:00 local is not.
    saturday = datetime(2025, 1, 4, 22, 45, tzinfo=UTC).timestamp()
    monday = datetime(2025, 1, 6, 4, 0, tzinfo=UTC).timestamp()
    assert float(TOU.price_eur_per_kwh(saturday)) == 0.12
    assert float(TOU.price_eur_per_kwh(monday)) == 0.20


def test_time_of_use_rejects_bad_periods() -> None:
    with pytest.raises(InputError, match=r"periods\[1\] overlaps periods\[0\]"):
        TimeOfUseTariff((PEAK, TouPeriod(0.5, 21.0, 23.0)), 0.2)
    with pytest.raises(InputError, match="must differ"):
        TouPeriod(0.1, 6.0, 6.0)
    with pytest.raises(InputError, match="whole minute"):
        TouPeriod(0.1, 6.001, 7.0)
    with pytest.raises(InputError, match="weekdays"):
        TouPeriod(0.1, 6.0, 7.0, weekdays=(7,))
    with pytest.raises(InputError, match="price_eur_per_kwh"):
        TouPeriod(-0.1, 6.0, 7.0)
    with pytest.raises(InputError, match="tz_name"):
        TimeOfUseTariff((), 0.2, tz_name="Mars/Olympus_Mons")


def test_time_of_use_follows_daylight_saving() -> None:
    try:
        ZoneInfo("Europe/Paris")
    except ZoneInfoNotFoundError:
        pytest.skip("the system has no IANA time-zone database")
    tariff = TimeOfUseTariff((TouPeriod(0.30, 7.0, 22.0),), 0.20, tz_name="Europe/Paris")
    winter = datetime(2025, 1, 15, 5, 30, tzinfo=UTC).timestamp()  # 06:30 CET: base
    summer = datetime(2025, 7, 15, 5, 30, tzinfo=UTC).timestamp()  # 07:30 CEST: peak
    np.testing.assert_array_equal(tariff.price_eur_per_kwh([winter, summer]), [0.20, 0.30])


def test_series_tariff_holds_each_price_for_its_interval() -> None:
    stamps = JAN_1_2025_TS + 3600.0 * np.arange(3)
    tariff = SeriesTariff(stamps, np.array([0.10, -0.02, 0.15]))  # negative prices allowed
    query = JAN_1_2025_TS + np.array([0.0, 3599.0, 3600.0, 7200.0, 10_799.0])
    np.testing.assert_array_equal(tariff.price_eur_per_kwh(query), [0.10, 0.10, -0.02, 0.15, 0.15])
    with pytest.raises(InputError, match="outside the tariff series"):
        tariff.price_eur_per_kwh(JAN_1_2025_TS + 10_800.0)
    with pytest.raises(InputError, match="outside the tariff series"):
        tariff.price_eur_per_kwh(JAN_1_2025_TS - 1.0)


def test_series_tariff_validation() -> None:
    with pytest.raises(InputError, match="strictly increasing"):
        SeriesTariff(np.array([0.0, 0.0]), np.array([0.1, 0.2]))
    with pytest.raises(InputError, match="prices_eur_per_kwh has 1 values"):
        SeriesTariff(np.array([0.0, 3600.0]), np.array([0.1]))
    with pytest.raises(InputError, match="prices_eur_per_kwh"):
        SeriesTariff(np.array([0.0]), np.array([np.nan]))


def test_parse_tariff_csv_accepts_iso_and_posix() -> None:
    text = (
        "# day-ahead prices\n"
        "timestamp,price_eur_per_kwh\n"
        "2025-01-01T00:00:00Z,0.10\n"
        "2025-01-01T02:00:00+01:00,0.12\n"
        f"{JAN_1_2025_TS + 7200:.0f},-0.01\n"
        "\n"
    )
    tariff = parse_tariff_csv(text, "prices.csv")
    np.testing.assert_array_equal(
        tariff.timestamps_ts, JAN_1_2025_TS + np.array([0.0, 3600.0, 7200.0])
    )
    np.testing.assert_array_equal(tariff.prices_eur_per_kwh, [0.10, 0.12, -0.01])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("yesterday,0.1", "line 3, column 1: expected POSIX seconds or an ISO-8601"),
        ("2025-01-01T01:00:00Z,cheap", "line 3, column 2: expected a number"),
        ("2025-01-01T01:00:00,0.1", "line 3, column 1: ISO-8601 timestamp"),
        ("2025-01-01T00:00:00Z,0.1", "line 3, column 1: timestamp"),
        ("2025-01-01T01:00:00Z,0.1,extra", "line 3: expected 2 columns"),
        ("2025-01-01T01:00:00Z,inf", "line 3, column 2: expected a finite number"),
    ],
)
def test_parse_tariff_csv_errors_name_line_and_column(body: str, fragment: str) -> None:
    text = f"timestamp,price_eur_per_kwh\n2025-01-01T00:00:00Z,0.1\n{body}\n"
    with pytest.raises(InputError) as caught:
        parse_tariff_csv(text, "prices.csv")
    assert str(caught.value).startswith("prices.csv, ")
    assert fragment in str(caught.value)


def test_parse_tariff_csv_header_errors() -> None:
    with pytest.raises(InputError, match="line 1, column 2: the price column"):
        parse_tariff_csv("timestamp,price\n0,0.1\n", "p.csv")
    with pytest.raises(InputError, match="line 1: header"):
        parse_tariff_csv("time,price_eur_per_kwh\n", "p.csv")
    with pytest.raises(InputError, match="no price rows"):
        parse_tariff_csv("timestamp,price_eur_per_kwh\n", "p.csv")
    with pytest.raises(InputError, match="empty file"):
        parse_tariff_csv("", "p.csv")
