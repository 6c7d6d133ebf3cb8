"""The comfort rule: kelvins below and above the band around the setpoint."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from heatgrid.core.comfort import add_band_excess, band_excess_k

_TEMP_C = st.floats(-40.0, 60.0)
_BAND_K = st.floats(0.0, 5.0)


@given(room_c=_TEMP_C, setpoint_c=_TEMP_C, band_k=_BAND_K)
def test_a_room_is_below_or_above_the_band_never_both(
    room_c: float, setpoint_c: float, band_k: float
) -> None:
    below_k, above_k = band_excess_k(room_c, setpoint_c, band_k)
    assert below_k >= 0.0
    assert above_k >= 0.0
    assert below_k == 0.0 or above_k == 0.0
    inside = setpoint_c - band_k <= room_c <= setpoint_c + band_k
    assert (below_k == 0.0 and above_k == 0.0) == inside or below_k + above_k < 1e-12
    if below_k > 0.0:
        assert room_c < setpoint_c
        assert below_k == setpoint_c - band_k - room_c
    if above_k > 0.0:
        assert room_c > setpoint_c
        assert above_k == room_c - setpoint_c - band_k


def test_the_numbers_of_a_cold_and_a_warm_room() -> None:
    assert band_excess_k(17.5, 20.0, 1.0) == (1.5, 0.0)
    assert band_excess_k(23.0, 20.0, 1.0) == (0.0, 2.0)
    assert band_excess_k(20.5, 20.0, 1.0) == (0.0, 0.0)


def test_a_nan_reading_gives_nan_like_numpy() -> None:
    below_k, above_k = band_excess_k(float("nan"), 20.0, 1.0)
    assert np.isnan(below_k)
    assert np.isnan(above_k)


@given(
    rooms=st.lists(_TEMP_C, min_size=1, max_size=20),
    setpoint_c=_TEMP_C,
    band_k=_BAND_K,
    step_h=st.floats(1e-3, 1.0),
)
def test_the_fleet_form_adds_each_homes_degree_hours(
    rooms: list[float], setpoint_c: float, band_k: float, step_h: float
) -> None:
    room_c = np.array(rooms)
    setpoints_c = np.full(room_c.size, setpoint_c)
    outside_k_h, below_k_h = np.ones(room_c.size), np.full(room_c.size, 2.0)
    add_band_excess(room_c, setpoints_c, band_k, step_h, outside_k_h, below_k_h)
    below_k = np.maximum(setpoints_c - band_k - room_c, 0.0)
    above_k = np.maximum(room_c - setpoints_c - band_k, 0.0)
    np.testing.assert_array_equal(outside_k_h, 1.0 + (below_k + above_k) * step_h)
    np.testing.assert_array_equal(below_k_h, 2.0 + below_k * step_h)


def test_the_fleet_form_takes_a_strided_view() -> None:
    state_c = np.array([[15.0, 0.0], [25.0, 0.0]])
    outside_k_h, below_k_h = np.zeros(2), np.zeros(2)
    add_band_excess(state_c[:, 0], np.full(2, 20.0), 1.0, 0.5, outside_k_h, below_k_h)
    np.testing.assert_array_equal(outside_k_h, [2.0, 2.0])
    np.testing.assert_array_equal(below_k_h, [2.0, 0.0])
