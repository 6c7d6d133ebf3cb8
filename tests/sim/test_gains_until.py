"""A home's internal gains say how long they hold, and they do hold that long.

The fused loop evaluates ``_fused_kernel.home_gains_until`` again only once the instant it
returned is reached.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.core._control_kernel import UNTIL_GUARD_S
from heatgrid.sim._fused_kernel import home_gains_until, home_gains_w

_GAINS_W = np.array([400.0, 100.0])  # (occupied, away)
_MONDAY_TS = 4 * 86_400.0 + 7 * 86_400.0 * 2800  # a Monday 00:00 UTC


@settings(max_examples=300, deadline=None)
@given(
    now_ts=st.floats(1.6e9, 1.9e9),
    tz_s=st.sampled_from([-18_000.0, 0.0, 3600.0, 19_800.0]),
    away_home=st.booleans(),
    leave_minute=st.floats(0.0, 1440.0),
    return_minute=st.floats(0.0, 1440.0),
    fractions=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=5),
)
def test_the_gains_hold_until_the_instant_returned(  # noqa: PLR0917
    now_ts: float,
    tz_s: float,
    away_home: bool,
    leave_minute: float,
    return_minute: float,
    fractions: list[float],
) -> None:
    home = (tz_s, away_home, leave_minute, return_minute, _GAINS_W)
    gains_w, until_ts = home_gains_until(now_ts, *home)
    assert gains_w == home_gains_w(now_ts, *home)
    if not math.isfinite(until_ts):
        probes = [now_ts + f * 30 * 86_400.0 for f in fractions]
    else:
        last_ts = math.nextafter(until_ts, -math.inf)
        probes = [*(now_ts + f * (until_ts - now_ts) for f in fractions), last_ts]
    for t in probes:
        if now_ts <= t < until_ts:
            assert home_gains_w(t, *home) == gains_w


def test_an_away_home_is_told_when_it_leaves_and_returns() -> None:
    """Monday 07:00, leaves at 08:00 and returns at 17:00: the two instants, less the guard."""
    home = (0.0, True, 480.0, 1020.0, _GAINS_W)
    now_ts = _MONDAY_TS + 7 * 3600.0
    gains_w, until_ts = home_gains_until(now_ts, *home)
    assert gains_w == 400.0
    assert until_ts == _MONDAY_TS + 8 * 3600.0 - (UNTIL_GUARD_S + 1e-9 * now_ts)
    gains_w, until_ts = home_gains_until(_MONDAY_TS + 8 * 3600.0, *home)
    assert gains_w == 100.0
    assert until_ts == _until_for(_MONDAY_TS + 17 * 3600.0, _MONDAY_TS + 8 * 3600.0)


def test_a_home_that_is_never_away_holds_its_gains_for_ever() -> None:
    assert home_gains_until(_MONDAY_TS, 0.0, False, 480.0, 1020.0, _GAINS_W) == (400.0, math.inf)


def _until_for(change_ts: float, now_ts: float) -> float:
    """The instant ``home_gains_until`` returns for a change at ``change_ts`` seen at ``now_ts``."""
    return change_ts - (UNTIL_GUARD_S + 1e-9 * now_ts)
