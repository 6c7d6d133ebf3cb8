"""The shared emulated clock: a pure function of the wall clock, one line of text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.clock import ClockSpec, parse_clock
from heatgrid.core.errors import InputError

_TS = st.floats(min_value=0.0, max_value=4e9, allow_nan=False)
_SPEED = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)


@given(start_ts=_TS, origin_ts=_TS, speed=_SPEED)
def test_its_text_reads_back_to_the_same_clock(
    start_ts: float, origin_ts: float, speed: float
) -> None:
    spec = ClockSpec(start_ts=start_ts, origin_ts=origin_ts, speed=speed)
    again = parse_clock(spec.text())
    assert again.speed == spec.speed
    assert again.origin_ts == spec.origin_ts
    assert again.start_ts == pytest.approx(spec.start_ts, abs=1e-5)


@given(start_ts=_TS, origin_ts=_TS, speed=_SPEED, elapsed_s=st.floats(0.0, 1e6))
def test_it_reads_start_at_origin_and_runs_speed_times_faster(
    start_ts: float, origin_ts: float, speed: float, elapsed_s: float
) -> None:
    spec = ClockSpec(start_ts=start_ts, origin_ts=origin_ts, speed=speed)
    assert spec.emulated_ts(origin_ts) == start_ts
    later_ts = spec.emulated_ts(origin_ts + elapsed_s)
    # Sums round to ~1e-6 s near 4e9 s, and the clock multiplies that by speed.
    assert later_ts - start_ts == pytest.approx(
        speed * elapsed_s, rel=1e-9, abs=speed * 1e-5 + 1e-6
    )
    assert spec.real_s(speed * elapsed_s) == pytest.approx(elapsed_s, rel=1e-9, abs=1e-9)


def test_a_date_start_is_utc_midnight_and_speed_defaults_to_1() -> None:
    spec = parse_clock("start=2026-01-15, origin_ts=100")
    assert spec == ClockSpec(start_ts=1_768_435_200.0, origin_ts=100.0, speed=1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected start="),
        ("start=2026-01-15", "origin_ts missing"),
        ("speed=2,origin_ts=1", "start missing"),
        ("start=someday,origin_ts=1", "start must be a date"),
        ("start=2026-01-15,origin_ts=1,speed=fast", "speed must be a number"),
        ("start=2026-01-15,origin_ts=1,speed=0", "speed must be greater than 0"),
        ("start=2026-01-15,origin_ts=inf", "origin_ts must be a finite number"),
        ("start=2026-01-15,origin_ts=1,origin_ts=2", "given twice"),
        ("start=2026-01-15,origin_ts=1,rate=2", "expected start="),
    ],
)
def test_a_bad_clock_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_clock(text)
