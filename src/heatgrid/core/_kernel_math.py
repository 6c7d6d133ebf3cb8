"""Scalar helpers of the numba kernels of control and arbiter, with NumPy's NaN semantics.

:func:`minimum` and :func:`maximum` propagate NaN like ``np.minimum`` and ``np.maximum`` (the
kernels give the numbers the array code gave); :func:`at` reads a per-home array or a setting
shared by all homes (length 1); :func:`kernel_input` gives every array the one type the
kernels are compiled for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__: list[str] = []


@njit(cache=True, inline="always")
def minimum(a: float, b: float) -> float:
    """Return ``np.minimum`` of two floats: NaN if either is NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a <= b else b


@njit(cache=True, inline="always")
def maximum(a: float, b: float) -> float:
    """Return ``np.maximum`` of two floats: NaN if either is NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a >= b else b


@njit(cache=True, inline="always")
def clip(value: float, low: float, high: float) -> float:
    """Return ``np.clip(value, low, high)``: ``minimum(maximum(value, low), high)``."""
    return minimum(maximum(value, low), high)


@njit(cache=True, inline="always")
def at(values: Any, index: int) -> Any:
    """Return element ``index`` of a per-home array, or its only element if it is shared."""
    return values[0] if values.shape[0] == 1 else values[index]


def kernel_input(value: Any, dtype: type[np.generic]) -> NDArray[Any]:
    """Return ``value`` as an aligned, writeable, C-contiguous array of ``dtype``.

    Numba compiles one machine-code version per argument type, and an array's type includes its
    layout and whether it is read-only; passing every array in this one form keeps each kernel
    at one compiled signature. Copies only what is not in that form already.
    """
    return np.require(np.asarray(value, dtype=dtype), dtype, ["C", "W", "A"])
