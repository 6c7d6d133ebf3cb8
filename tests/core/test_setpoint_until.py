"""The schedule lookup says how long its answer holds, and the answer does hold that long.

The simulator's fused loop looks a home's schedule up again only once the instant returned by
``_control_kernel.scheduled_setpoint_until`` is reached; these tests hold that instant to its
promise (same setpoint at every instant before it) and show it is not needlessly early (the
setpoint changes just after it when a change point follows).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core import _control_kernel

_WEEK_S = 7 * 86_400.0


def _table(starts_s: list[float]) -> tuple[np.ndarray, np.ndarray]:
    start_s = np.array([sorted(set(starts_s))], dtype=np.float64)
    setpoint_c = 15.0 + np.arange(start_s.shape[1], dtype=np.float64)  # all different
    return start_s, setpoint_c[np.newaxis, :]


@settings(max_examples=200, deadline=None)
@given(
    starts_s=st.lists(st.integers(0, int(_WEEK_S) - 1), min_size=1, max_size=8),
    offset_h=st.sampled_from([-5.0, 0.0, 1.0, 5.5, 9.0]),
    now_ts=st.floats(1.6e9, 1.9e9),
    fractions=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=5),
)
def test_the_setpoint_holds_until_the_instant_returned(
    starts_s: list[int],
    offset_h: float,
    now_ts: float,
    fractions: list[float],
) -> None:
    start_s, setpoint_c = _table([float(s) for s in starts_s])
    setpoint, until_ts = _control_kernel.scheduled_setpoint_until(
        start_s, setpoint_c, 0, offset_h, now_ts
    )
    assert setpoint == _control_kernel.scheduled_setpoint(start_s, setpoint_c, 0, offset_h, now_ts)
    last_ts = math.nextafter(until_ts, -math.inf)
    for t in [*(now_ts + f * (until_ts - now_ts) for f in fractions), last_ts]:
        if now_ts <= t < until_ts:
            assert (
                _control_kernel.scheduled_setpoint(start_s, setpoint_c, 0, offset_h, t) == setpoint
            )


@settings(max_examples=100, deadline=None)
@given(
    quarters=st.lists(st.integers(0, 670), min_size=2, max_size=8, unique=True),
    now_ts=st.floats(1.6e9, 1.9e9),
)
def test_the_instant_returned_is_just_before_the_next_change(
    quarters: list[int], now_ts: float
) -> None:
    # Change points on quarter hours, the last an hour before the week ends: a margin of a
    # few seconds after the instant returned crosses at most one of them.
    start_s, setpoint_c = _table([900.0 * q for q in quarters])
    setpoint, until_ts = _control_kernel.scheduled_setpoint_until(
        start_s, setpoint_c, 0, 0.0, now_ts
    )
    margin_s = 2.0 * (_control_kernel.UNTIL_GUARD_S + 1e-9 * now_ts)
    after = _control_kernel.scheduled_setpoint(start_s, setpoint_c, 0, 0.0, until_ts + margin_s)
    week_end = until_ts + margin_s - now_ts > _WEEK_S - (now_ts + 3 * 86_400.0) % _WEEK_S
    # A change point follows within the margin: the setpoint changes (all differ), unless the
    # instant is the week's end, where the last setpoint of the week carries on.
    assert after != setpoint or (week_end and setpoint == setpoint_c[0, -1])


def test_an_away_home_holds_its_setpoint_for_ever() -> None:
    schedule = _control_kernel.Schedule(
        start_s=np.array([[0.0, 3600.0]]),
        setpoint_c=np.array([[19.0, 21.0]]),
        utc_offset_h=np.array([0.0]),
    )
    setpoint, until_ts = _control_kernel.home_setpoint_until(
        0, _control_kernel.MODE_AWAY, 1.7e9, 12.0, schedule
    )
    assert (setpoint, until_ts) == (12.0, math.inf)


def test_a_setpoint_holds_until_its_change_point_less_the_guard() -> None:
    """Monday 05:00 UTC, change at 06:00: held until 06:00 less the guard."""
    monday_ts = 4 * 86_400.0 * 1.0 + 7 * 86_400.0 * 2800  # a Monday 00:00 UTC (epoch: Thursday)
    now_ts = monday_ts + 5 * 3600.0
    start_s, setpoint_c = _table([0.0, 6 * 3600.0, 22 * 3600.0])
    setpoint, until_ts = _control_kernel.scheduled_setpoint_until(
        start_s, setpoint_c, 0, 0.0, now_ts
    )
    guard_s = _control_kernel.UNTIL_GUARD_S + 1e-9 * now_ts
    assert setpoint == 15.0
    assert until_ts == monday_ts + 6 * 3600.0 - guard_s
