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
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numpy.typing import NDArray

__all__: list[str] = []


@njit(cache=True, inline="always")
def minimum(a: float, b: float) -> float:
    """Return ``np.minimum`` of two floats: NaN if either is NaN.

    Two selects and no early return (see :func:`maximum`).
    """
    low = b if b < a else a  # a when a is NaN (the comparison is false)
    return b if math.isnan(b) else low


@njit(cache=True, inline="always")
def maximum(a: float, b: float) -> float:
    """Return ``np.maximum`` of two floats: NaN if either is NaN.

    Two selects and no early return: LLVM compiles the pair to the processor's ``max`` and a
    NaN test, where an early return for NaN left a three-way join of branches (the simulator's
    fused loop ran about 3 % faster this way). Equal to the early-return form for every pair of
    floats, signed zeros included: ``a`` when they compare equal.
    """
    high = b if b > a else a  # a when a is NaN (the comparison is false)
    return b if math.isnan(b) else high


@njit(cache=True, inline="always")
def clip(value: float, low: float, high: float) -> float:
    """Return ``np.clip(value, low, high)``: ``minimum(maximum(value, low), high)``."""
    return minimum(maximum(value, low), high)


@njit(cache=True, inline="always")
def at(values: Any, index: int) -> Any:
    """Return element ``index`` of a per-home array, or its only element if it is shared."""
    return values[0] if values.shape[0] == 1 else values[index]


_ROW = types.Tuple((types.CPointer(types.float64), types.intp))  # type: ignore[no-untyped-call]
"""What :data:`row_of` gives in compiled code: a pointer to float64 and a width."""


def _row_of(typingctx: Any, table: Any, row: Any) -> Any:
    """Return ``(pointer, width)``: row ``row`` of a C-contiguous 2-D float64 ``table``, borrowed.

    ``pointer[j]`` reads ``table[row, j]`` for ``0 <= j < width``; it is valid while ``table``
    lives (the caller holds it). A loop that reads a row through it holds no array: numba
    counts a reference to an array held in a variable across a loop in and out (two atomic
    operations, and a call around which every live register is spilled), where a pointer is
    not counted.
    """
    if not (
        isinstance(table, types.Array)
        and table.ndim == 2
        and table.dtype == types.float64
        and table.layout == "C"
    ):
        raise TypingError(f"row_of needs a C-contiguous 2-D float64 array, got {table}")
    if not isinstance(row, types.Integer):
        raise TypingError(f"row_of needs an integer row, got {row}")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        array = context.make_array(table)(context, builder, args[0])
        width = builder.extract_value(array.shape, 1)
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        pointer = builder.gep(array.data, [builder.mul(index, width)])
        return context.make_tuple(builder, sig.return_type, [pointer, width])

    return _ROW(table, row), codegen


row_of: Any = intrinsic(_row_of)
"""Compiled code only: ``row_of(table, row)`` is :func:`_row_of`'s ``(pointer, width)``."""


def kernel_input(value: Any, dtype: type[np.generic]) -> NDArray[Any]:
    """Return ``value`` as an aligned, writeable, C-contiguous array of ``dtype``.

    Numba compiles one machine-code version per argument type, and an array's type includes its
    layout and whether it is read-only; passing every array in this one form keeps each kernel
    at one compiled signature. Copies only what is not in that form already.
    """
    return np.require(np.asarray(value, dtype=dtype), dtype, ["C", "W", "A"])
