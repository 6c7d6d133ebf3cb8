"""The fused loop's stretches: the first step at or past an instant, by bisection."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.sim._fused_kernel import _stretch_end


@given(
    gaps=st.lists(st.floats(0.0, 600.0), min_size=1, max_size=40),
    first_frac=st.floats(0.0, 1.0),
    until_ts=st.floats(-100.0, 30_000.0),
)
def test_a_stretch_ends_at_the_first_step_at_or_past_the_instant(
    gaps: list[float], first_frac: float, until_ts: float
) -> None:
    time_ts = np.cumsum(np.array(gaps))
    k1 = time_ts.size
    first = min(int(first_frac * k1), k1 - 1)
    end = _stretch_end(time_ts, first, k1, until_ts)
    expected = next((k for k in range(first + 1, k1) if not time_ts[k] < until_ts), k1)
    assert end == expected


def test_a_nan_instant_ends_the_stretch_after_one_step_and_inf_runs_to_the_end() -> None:
    time_ts = np.arange(10, dtype=np.float64) * 60.0
    assert _stretch_end(time_ts, 3, 10, math.nan) == 4
    assert _stretch_end(time_ts, 3, 10, math.inf) == 10
    assert _stretch_end(time_ts, 3, 10, -math.inf) == 4
    assert _stretch_end(time_ts, 9, 10, 0.0) == 10
