"""The fused engine's per-step room percentiles are NumPy's, number for number."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from heatgrid.sim._fused_kernel import row_percentiles

_ROOMS = st.integers(1, 40).flatmap(
    lambda count: hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.just(count)),
        # few distinct values: ties, as when homes start alike
        elements=st.sampled_from([-3.5, 0.0, 17.25, 19.0, 19.5, 20.0, 21.125])
        | st.floats(-40.0, 60.0),
    )
)


@settings(max_examples=300, deadline=None)
@given(_ROOMS, st.lists(st.floats(0.0, 100.0), min_size=1, max_size=4))
def test_row_percentiles_are_numpys(rooms: np.ndarray, percents: list[float]) -> None:
    expected = np.percentile(rooms, percents, axis=1)
    got = np.empty((len(percents), rooms.shape[0]))
    row_percentiles(rooms.copy(), np.asarray(percents) / 100.0, got)
    np.testing.assert_array_equal(got, expected)


def test_a_row_with_a_nan_gives_nan_and_the_others_their_percentiles() -> None:
    rng = np.random.default_rng(3)
    rooms = rng.normal(20.0, 2.0, (3, 8192))
    rooms[1, 4000] = np.nan
    got = np.empty((2, 3))
    row_percentiles(rooms.copy(), np.array([0.05, 0.95]), got)
    np.testing.assert_array_equal(got, np.percentile(rooms, [5.0, 95.0], axis=1))
    assert np.isnan(got[:, 1]).all()
    assert np.isfinite(got[:, [0, 2]]).all()


def test_sorted_and_reversed_rows_of_a_sample_the_size_of_the_fused_engines() -> None:
    rows = np.linspace(15.0, 25.0, 8192)
    rooms = np.stack([rows, rows[::-1], np.full(8192, 19.0)])
    got = np.empty((2, 3))
    row_percentiles(rooms.copy(), np.array([0.05, 0.95]), got)
    np.testing.assert_array_equal(got, np.percentile(rooms, [5.0, 95.0], axis=1))
