"""Tests for the EPW reader: the real Lyon file, and small or damaged files built here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.errors import InputError
from heatgrid.weather.epw import EPW_FIELDS, EpwData, parse_epw, read_epw

# A data row for 1/1 hour 1 in the Lyon file's style; fields 1-3 are replaced per row.
_ROW_TEMPLATE = (
    "2004,1,1,1,60,?9?9?9?9E0?9?9?9*9*9?9?9?9?9*9?9?9*9*9*9*9*9,0.0,-2.0,85,99846,0,0,271,0,0,0,"
    "0,0,0,0,268,3.0,8,8,6750.0,77777,9,999999999,8,0.0850,0,88,0.200,0.0,0.0"
)
_HEADER = [
    "LOCATION,Testville,AR,FRA,ISD-TMYx,074800,45.72610,4.93780,1.0,198.0",
    "DESIGN CONDITIONS,0",
    "TYPICAL/EXTREME PERIODS,0",
    "GROUND TEMPERATURES,0",
    "HOLIDAYS/DAYLIGHT SAVINGS,No,0,0,0",
    'COMMENTS 1,"made in a test"',
    "COMMENTS 2,",
]


def _rows(days: list[tuple[int, int]]) -> list[str]:
    """24 rows per (month, day), temperature rising by 0.1 K per row."""
    rows: list[str] = []
    for month, day in days:
        for hour in range(1, 25):
            fields = _ROW_TEMPLATE.split(",")
            fields[1], fields[2], fields[3] = str(month), str(day), str(hour)
            fields[6] = f"{len(rows) * 0.1:.1f}"
            rows.append(",".join(fields))
    return rows


def _epw_text(
    days: list[tuple[int, int]] | None = None,
    period: str = "1/ 1,1/ 2",
    header: list[str] | None = None,
) -> list[str]:
    """Lines of a small EPW file (default: 1-2 January, 48 rows)."""
    days = [(1, 1), (1, 2)] if days is None else days
    lines = list(_HEADER if header is None else header)
    lines.append(f"DATA PERIODS,1,1,Data,Sunday,{period}")
    return lines + _rows(days)


def _parse(lines: list[str], **kwargs: int) -> EpwData:
    return parse_epw("\n".join(lines) + "\n", source="test.epw", **kwargs)


# --- The real Lyon file ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lyon(lyon_epw: Path) -> EpwData:
    return read_epw(lyon_epw)


def test_lyon_parses_all_rows_and_fields(lyon: EpwData) -> None:
    assert lyon.n_hours == 8760
    for spec in EPW_FIELDS:
        values = lyon.field(spec.name)
        assert len(values) == 8760, spec.name
        if spec.kind == "float":
            assert isinstance(values, np.ndarray)
            assert values.dtype == np.float64
        elif spec.kind == "int":
            assert isinstance(values, np.ndarray)
            assert values.dtype == np.int64
        else:
            assert isinstance(values, tuple)
            assert all(isinstance(value, str) for value in values)
    # Spot values from the first data row (file line 9).
    assert lyon.year[0] == 2004
    assert lyon.pressure_pa[0] == 99846.0
    assert lyon.horizontal_infrared_wh_per_m2[0] == 271.0
    assert lyon.wind_direction_deg[0] == 268.0
    assert lyon.visibility_km[0] == 6750.0
    assert lyon.ceiling_height_m[0] == 77777.0  # "unlimited", not a missing code
    assert lyon.present_weather_codes[0] == "999999999"
    assert lyon.aerosol_optical_depth[0] == pytest.approx(0.085)
    assert lyon.albedo[0] == pytest.approx(0.2)
    # Calendar columns cover the year; the TMYx mixes source years.
    assert set(lyon.month.tolist()) == set(range(1, 13))
    assert set(lyon.hour.tolist()) == set(range(1, 25))
    assert len(set(lyon.year.tolist())) > 1


def test_lyon_location_and_header(lyon: EpwData, lyon_epw: Path) -> None:
    location = lyon.location
    assert location.city == "Lyon Bron AP"
    assert location.country == "FRA"
    assert location.source == "ISD-TMYx"
    assert location.wmo == "074800"
    assert location.latitude_deg == pytest.approx(45.7261)
    assert location.longitude_deg == pytest.approx(4.9378)
    assert location.tz_offset_h == 1.0
    assert location.elevation_m == 198.0
    assert len(lyon.data_periods) == 1
    period = lyon.data_periods[0]
    assert (period.start_month, period.start_day, period.end_month, period.end_day) == (
        1,
        1,
        12,
        31,
    )
    assert len(lyon.header_lines) == 8
    assert lyon.source == str(lyon_epw)


def test_lyon_figures_match_the_readme(lyon: EpwData) -> None:
    temps_c = lyon.dry_bulb_temp_c
    assert not np.any(np.isnan(temps_c))
    assert float(temps_c.min()) == pytest.approx(-5.6)
    assert float(temps_c.mean()) == pytest.approx(13.02, abs=0.005)
    assert float(temps_c.max()) == pytest.approx(37.7)
    weather = lyon.to_weather_year()
    assert weather.heating_degree_hours_k_h(18.0) == pytest.approx(56_476, abs=1.0)


def test_lyon_missing_codes_become_nan(lyon: EpwData) -> None:
    # Zenith luminance is 9999 (missing) in some rows of this file.
    assert np.isnan(lyon.zenith_luminance_cd_per_m2).sum() > 0
    assert np.nanmax(lyon.zenith_luminance_cd_per_m2) < 9999


def test_lyon_timestamps_are_end_of_hour_utc(lyon: EpwData) -> None:
    stamps = lyon.timestamps_ts
    # Hour 1 of 1 January ends at 01:00 local = 00:00 UTC (UTC+1), in the default year 2023.
    assert stamps[0] == datetime(2023, 1, 1, 0, tzinfo=UTC).timestamp()
    assert stamps[-1] == datetime(2023, 12, 31, 23, tzinfo=UTC).timestamp()
    assert np.all(np.diff(stamps) == 3600.0)
    assert not stamps.flags.writeable


def test_lyon_to_weather_year(lyon: EpwData) -> None:
    weather = lyon.to_weather_year()
    assert weather.n_hours == 8760
    assert weather.name == "Lyon Bron AP"
    np.testing.assert_array_equal(weather.outdoor_temp_c, lyon.dry_bulb_temp_c)
    np.testing.assert_array_equal(
        weather.global_horizontal_wh_per_m2, lyon.global_horizontal_wh_per_m2
    )
    assert weather.latitude_deg == pytest.approx(45.7261)
    means = weather.monthly_mean_temp_c()
    assert means[6] > 20.0  # July warm
    assert means[0] < 5.0  # January cold


def test_error_in_real_file_names_file_line_and_field(lyon_epw: Path, tmp_path: Path) -> None:
    lines = lyon_epw.read_text().splitlines()
    fields = lines[56].split(",")
    fields[6] = "abc"
    lines[56] = ",".join(fields)
    damaged = tmp_path / "lyon.epw"
    damaged.write_text("\r\n".join(lines) + "\r\n")
    with pytest.raises(InputError) as caught:
        read_epw(damaged)
    message = str(caught.value)
    assert str(damaged) in message
    assert "line 57, field 6 dry_bulb_temp_c: 'abc' is not a number" in message


def test_truncated_real_file(lyon_epw: Path, tmp_path: Path) -> None:
    lines = lyon_epw.read_text().splitlines()
    short = tmp_path / "short.epw"
    short.write_text("\n".join(lines[:-100]) + "\n")
    with pytest.raises(InputError, match=r"short\.epw: expected 8760 hourly rows .* found 8660"):
        read_epw(short)
    # A row cut in the middle (a file copied incompletely).
    cut = tmp_path / "cut.epw"
    cut.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])
    with pytest.raises(InputError, match=r"cut\.epw line 8768: \d+ field\(s\), expected 35"):
        read_epw(cut)


# --- Small files built here --------------------------------------------------------------------


def test_small_file_parses_a_partial_data_period() -> None:
    data = _parse(_epw_text())
    assert data.n_hours == 48
    assert data.location.city == "Testville"
    np.testing.assert_allclose(data.dry_bulb_temp_c, np.arange(48) * 0.1)
    weather = data.to_weather_year()
    assert weather.n_hours == 48


def test_crlf_and_trailing_blank_lines_are_accepted() -> None:
    text = "\r\n".join(_epw_text()) + "\r\n\r\n"
    assert parse_epw(text).n_hours == 48


@pytest.mark.parametrize(
    ("index", "code"),
    [
        (6, "99.9"),
        (7, "99.9"),
        (8, "999"),
        (9, "999999"),
        (13, "9999"),
        (16, "999900"),
        (20, "999"),
        (21, "999"),
        (22, "99"),
        (24, "9999"),
        (25, "99999"),
        (29, ".999"),
        (32, "999"),
    ],
)
def test_missing_codes_become_nan(index: int, code: str) -> None:
    lines = _epw_text()
    fields = lines[10].split(",")
    fields[index] = code
    lines[10] = ",".join(fields)
    data = _parse(lines)
    values = data.field(EPW_FIELDS[index].name)
    assert isinstance(values, np.ndarray)
    assert np.isnan(values[2])
    assert np.isnan(values).sum() == 1


def test_blank_measurement_is_missing() -> None:
    lines = _epw_text()
    fields = lines[9].split(",")
    fields[21] = ""
    lines[9] = ",".join(fields)
    assert np.isnan(_parse(lines).wind_speed_m_per_s[1])


def test_short_temperature_gap_is_interpolated_long_gap_rejected() -> None:
    lines = _epw_text()
    for row in (10, 11):  # hours 3 and 4
        fields = lines[row].split(",")
        fields[6] = "99.9"
        lines[row] = ",".join(fields)
    weather = _parse(lines).to_weather_year()
    np.testing.assert_allclose(weather.outdoor_temp_c[1:5], [0.1, 0.2, 0.3, 0.4])
    for row in range(8, 8 + 30):
        fields = lines[row].split(",")
        fields[6] = "99.9"
        lines[row] = ",".join(fields)
    with pytest.raises(InputError, match=r"dry_bulb_temp_c is missing for 30 consecutive hours"):
        _parse(lines).to_weather_year()


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (6, "abc", r"line 12, field 6 dry_bulb_temp_c: 'abc' is not a number"),
        (6, "75.0", r"line 12, field 6 dry_bulb_temp_c: 75.0 is outside the valid range"),
        (8, "-5", r"field 8 relative_humidity_pct: -5 is outside the valid range \[0, 110\]"),
        (20, "400", r"field 20 wind_direction_deg: 400 is outside"),
        (13, "nan", r"field 13 global_horizontal_wh_per_m2: 'nan' is not a finite number"),
        (3, "x", r"line 12, field 3 hour: 'x' is not an integer"),
        (3, "25", r"line 12, field 3 hour: 25 is outside the valid range \[1, 24\]"),
        (1, "13", r"field 1 month: 13 is outside"),
    ],
)
def test_bad_value_names_line_and_field(index: int, value: str, message: str) -> None:
    lines = _epw_text()
    fields = lines[11].split(",")
    fields[index] = value
    lines[11] = ",".join(fields)
    with pytest.raises(InputError, match=message) as caught:
        _parse(lines)
    assert str(caught.value).startswith("test.epw line 12, field ")


def test_row_with_too_many_fields() -> None:
    lines = _epw_text()
    lines[20] += ",1"
    with pytest.raises(InputError, match=r"test\.epw line 21: 36 fields, expected 35"):
        _parse(lines)


def test_truncated_header() -> None:
    with pytest.raises(InputError, match=r"truncated EPW file: it has 3 line\(s\)"):
        _parse(_HEADER[:3])


def test_header_out_of_order() -> None:
    header = [_HEADER[0], _HEADER[2], _HEADER[1], *_HEADER[3:]]
    with pytest.raises(InputError, match=r"test\.epw line 2: expected the 'DESIGN CONDITIONS'"):
        _parse(_epw_text(header=header))


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("LOCATION,X,,,,,95.0,4.9,1.0,198", r"line 1, field 6 latitude_deg: 95.0 is outside"),
        ("LOCATION,X,,,,,45.0,4.9,north,198", r"line 1, field 8 tz_offset_h: 'north' is not"),
        ("LOCATION,X,,,,,45.0,4.9", r"line 1, field 8 tz_offset_h: missing"),
    ],
)
def test_bad_location(location: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _parse(_epw_text(header=[location, *_HEADER[1:]]))


def test_row_count_inconsistent_with_data_periods() -> None:
    lines = _epw_text(period="1/ 1,1/ 3")
    with pytest.raises(InputError, match=r"expected 72 hourly rows for DATA PERIODS 1/1 to 1/3"):
        _parse(lines)


def test_full_year_row_count_message() -> None:
    lines = _epw_text(period="1/ 1,12/31")
    with pytest.raises(InputError, match=r"expected 8760 hourly rows \(8784 in a leap year\)"):
        _parse(lines)


def test_rows_must_be_consecutive_hours() -> None:
    lines = _epw_text(days=[(1, 1), (1, 3)], period="1/1,1/2")
    with pytest.raises(InputError, match=r"line 33: 1/3 hour 1 does not follow the previous row"):
        _parse(lines)


def test_first_row_must_match_data_period_start() -> None:
    lines = _epw_text(days=[(1, 2), (1, 3)], period="1/1,1/2")
    with pytest.raises(InputError, match=r"the first row is 1/2 but DATA PERIODS starts on 1/1"):
        _parse(lines)


def test_sub_hourly_files_are_refused() -> None:
    lines = _epw_text()
    lines[7] = "DATA PERIODS,1,4,Data,Sunday,1/ 1,1/ 2"
    with pytest.raises(InputError, match=r"only hourly EPW files"):
        _parse(lines)


def test_leap_day_needs_a_leap_reference_year() -> None:
    lines = _epw_text(days=[(2, 28), (2, 29), (3, 1)], period="2/28,3/1")
    data = _parse(lines)
    assert data.timestamps_ts[0] == datetime(2024, 2, 28, 0, tzinfo=UTC).timestamp()
    assert data.n_hours == 72
    with pytest.raises(InputError, match=r"29 February but year 2023 is not a leap year"):
        _parse(lines, year=2023)
    no_leap = _epw_text(days=[(2, 28), (3, 1)], period="2/28,3/1")
    assert _parse(no_leap).n_hours == 48
    with pytest.raises(InputError, match=r"no 29 February but year 2024 is a leap year"):
        _parse(no_leap, year=2024)


def test_day_that_does_not_exist() -> None:
    lines = _epw_text(days=[(2, 30), (2, 31)], period="2/28,3/1")
    with pytest.raises(InputError, match=r"line 9, field 2 day: day 30 does not exist in month 2"):
        _parse(lines)


def test_caller_year_sets_timestamps() -> None:
    data = _parse(_epw_text(), year=2019)
    assert data.timestamps_ts[0] == datetime(2019, 1, 1, 0, tzinfo=UTC).timestamp()


@given(tz_offset_h=st.sampled_from([-10.0, -5.0, -3.5, 0.0, 1.0, 5.5, 9.0, 12.75, 14.0]))
def test_timestamps_follow_the_time_zone(tz_offset_h: float) -> None:
    header = [f"LOCATION,X,,,,,45.0,4.9,{tz_offset_h},198", *_HEADER[1:]]
    data = _parse(_epw_text(header=header))
    local_end_of_first_hour = datetime(2023, 1, 1, 1, tzinfo=UTC).timestamp()
    assert data.timestamps_ts[0] == local_end_of_first_hour - tz_offset_h * 3600.0
    assert data.to_weather_year().tz_offset_h == tz_offset_h


def test_missing_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.epw"
    with pytest.raises(InputError, match=r"EPW file not found: .*nowhere\.epw"):
        read_epw(missing)


def test_latin1_file_is_read(tmp_path: Path) -> None:
    header = ["LOCATION,Zürich Kloten,ZH,CHE,SRC,066700,47.48,8.54,1.0,432.0", *_HEADER[1:]]
    path = tmp_path / "zurich.epw"
    path.write_bytes(("\n".join(_epw_text(header=header)) + "\n").encode("latin-1"))
    assert read_epw(path).location.city == "Zürich Kloten"


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.epw"
    path.write_bytes(("\n".join(_epw_text()) + "\n").encode("utf-8-sig"))
    assert read_epw(path).location.city == "Testville"


def test_unknown_field_name() -> None:
    with pytest.raises(InputError, match=r"no EPW field named 'temperature'"):
        _parse(_epw_text()).field("temperature")


def test_field_table_is_complete() -> None:
    assert [spec.index for spec in EPW_FIELDS] == list(range(35))
    names = [spec.name for spec in EPW_FIELDS]
    assert len(set(names)) == 35
    assert set(names) <= set(EpwData.__dataclass_fields__)
