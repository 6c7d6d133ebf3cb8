"""Find and fill runs of missing (NaN) values in an hourly series (private)."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__: list[str] = []

FloatArray: TypeAlias = NDArray[np.float64]


def longest_gap(values: FloatArray) -> tuple[int, int]:
    """Return ``(start_index, length)`` of the longest run of NaN; ``(0, 0)`` if there is none."""
    missing = np.concatenate(([False], np.isnan(values), [False]))
    edges = np.flatnonzero(np.diff(missing.astype(np.int8)))
    if edges.size == 0:
        return 0, 0
    starts, ends = edges[0::2], edges[1::2]
    lengths = ends - starts
    longest = int(np.argmax(lengths))
    return int(starts[longest]), int(lengths[longest])


def interpolate_gaps(values: FloatArray) -> FloatArray:
    """Fill NaN by linear interpolation between neighbours; edge runs take the nearest value.

    Parameters
    ----------
    values : numpy.ndarray
        Evenly spaced series with at least one finite value [any unit].

    Returns
    -------
    numpy.ndarray
        A new array without NaN.
    """
    missing = np.isnan(values)
    if not bool(np.any(missing)):
        return values.copy()
    index = np.arange(values.size, dtype=np.float64)
    filled = values.copy()
    filled[missing] = np.interp(index[missing], index[~missing], values[~missing])
    return filled
