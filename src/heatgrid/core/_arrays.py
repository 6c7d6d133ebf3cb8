"""Validation and scalar-or-array plumbing shared by core's modules (private)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core.errors import InputError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__: list[str] = []

FloatArray: TypeAlias = NDArray[np.float64]
FloatOrArray: TypeAlias = float | NDArray[np.float64]
_Arrays = TypeVar("_Arrays", bound="DataclassInstance")


def checked_array(
    name: str,
    value: ArrayLike,
    *,
    minimum: float | None = None,
    strictly_above: bool = False,
) -> FloatArray:
    """Return ``value`` as a float64 array after checking it, else raise :class:`InputError`.

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : float or array_like
        Number(s) to check.
    minimum : float, optional
        Lower bound; ``None`` accepts any finite value.
    strictly_above : bool
        If true the bound is exclusive (``value > minimum``), else inclusive.

    Returns
    -------
    numpy.ndarray
        ``value`` as float64; 0-d for a scalar input.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if not bool(np.all(np.isfinite(array))):
        raise InputError(f"{name} must be finite (no NaN or infinity), got {_show(array)}")
    if minimum is not None:
        bad = array <= minimum if strictly_above else array < minimum
        if bool(np.any(bad)):
            relation = "greater than" if strictly_above else "at least"
            first = float(array[bad].flat[0])
            raise InputError(f"{name} must be {relation} {minimum:g}, got {first!r}")
    return array


def scalar_or_array(result: FloatArray) -> FloatOrArray:
    """Return a Python float for a 0-d result and the array otherwise."""
    if result.ndim == 0:
        return float(result)
    return result


def repeated(one: _Arrays, count: int) -> _Arrays:
    """Return the dataclass of arrays ``one`` (one element each) repeated to ``count`` elements.

    A fleet's start state from one home's, as arrays: no Python object per home.
    """
    arrays = {
        field.name: np.repeat(getattr(one, field.name), count) for field in dataclasses.fields(one)
    }
    return type(one)(**arrays)


def _show(array: FloatArray) -> str:
    if array.ndim == 0:
        return repr(float(array))
    bad = array[~np.isfinite(array)]
    return f"{bad.size} non-finite value(s), first {float(bad.flat[0])!r}"
