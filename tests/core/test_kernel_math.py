"""The kernels' scalar helpers: NumPy's NaN rules, and a level row read without an array."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit
from numba.core.errors import TypingError

from heatgrid.core._kernel_math import clip, maximum, minimum, row_of

_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf]),
)


def _same(got: float, expected: float) -> bool:
    return (math.isnan(got) and math.isnan(expected)) or got == expected


@given(_FLOATS, _FLOATS)
def test_minimum_and_maximum_follow_numpy_nan_included(a: float, b: float) -> None:
    assert _same(minimum(a, b), float(np.minimum(a, b)))
    assert _same(maximum(a, b), float(np.maximum(a, b)))


@given(_FLOATS, _FLOATS)
def test_equal_values_give_the_first_argument_signed_zeros_included(a: float, b: float) -> None:
    # What the early-return form gave (a when a <= b, or a >= b): the kernels' numbers do not
    # depend on how the helpers are written.
    if a == b:
        assert math.copysign(1.0, minimum(a, b)) == math.copysign(1.0, a)
        assert math.copysign(1.0, maximum(a, b)) == math.copysign(1.0, a)


@given(_FLOATS, _FLOATS, _FLOATS)
def test_clip_follows_numpy(value: float, low: float, high: float) -> None:
    expected = float(np.minimum(np.maximum(value, low), high))
    assert _same(clip(value, low, high), expected)


@njit
def _read_row(table: np.ndarray, row: int) -> tuple[list[float], int]:
    pointer, width = row_of(table, row)
    values = [pointer[j] for j in range(width)]
    return values, width


def test_row_of_reads_the_row_it_names() -> None:
    table = np.arange(12.0).reshape(4, 3)
    table[2, 2] = math.nan
    for row in range(4):
        values, width = _read_row(table, row)
        assert width == 3
        np.testing.assert_array_equal(np.asarray(values), table[row])


def test_row_of_of_a_table_without_columns_is_empty() -> None:
    values, width = _read_row(np.empty((2, 0)), 1)
    assert (values, width) == ([], 0)


def test_row_of_refuses_a_table_that_is_not_c_contiguous() -> None:
    columns = np.arange(12.0).reshape(3, 4)[:, ::2]
    with pytest.raises(TypingError, match="C-contiguous"):
        _read_row(columns, 0)
