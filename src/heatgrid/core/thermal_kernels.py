"""Fleet kernels: many homes advanced over many steps at once.

* :func:`advance_fleet_2r2c` (and :func:`room_temp_trajectory_2r2c`) run a fused numba kernel
  over ``N`` two-node homes for ``K`` steps. Homes are cut into blocks of ``_BLOCK``; threads
  take blocks (``prange``), time runs inside a block, and the homes of the block are the
  innermost loop, so the update is SIMD across homes while the block's state and coefficients
  stay in the L1 cache for all ``K`` steps. The update is written as ``x += (A − I) x + b·u``,
  which keeps float32 accurate (``A`` is close to the identity for short steps).
* :func:`advance_fleet_1r1c_numpy` is the plain NumPy one-node fleet step: the baseline.

Both give the same numbers as :func:`heatgrid.core.thermal.simulate` (to rounding) because
they use its exact zero-order-hold coefficients (:func:`coefficients_2r2c`,
:func:`coefficients_1r1c`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange
from numpy.typing import ArrayLike, DTypeLike, NDArray

from heatgrid.core._arrays import FloatArray, checked_array
from heatgrid.core.errors import InputError
from heatgrid.core.thermal import DiscreteModel, Room1R1C, Room2R2C, _resolve

__all__ = [
    "advance_fleet_1r1c_numpy",
    "advance_fleet_2r2c",
    "coefficients_1r1c",
    "coefficients_2r2c",
    "room_temp_trajectory_2r2c",
    "step_2r2c",
]

_BLOCK = 256  # homes per block: 10 rows x 256 x 8 B = 20 KiB, stays in a 32 KiB L1 cache
_N_COEFFICIENTS_2R2C = 8


def coefficients_2r2c(
    model: Room2R2C | DiscreteModel, step_s: float, dtype: DTypeLike = np.float64
) -> NDArray[Any]:
    """Pack a fleet's exact discrete 2R2C coefficients for :func:`advance_fleet_2r2c`.

    Parameters
    ----------
    model : Room2R2C or DiscreteModel
        The homes (any batch shape, flattened in C order) or their discretization.
    step_s : float
        Step size [s], > 0.
    dtype : numpy dtype
        ``float64`` (default) or ``float32``.

    Returns
    -------
    ndarray
        Shape (8, N): rows ``a00 − 1, a01, a10, a11 − 1`` [-], ``b_power`` for air and mass
        [K/W], ``b_outdoor`` for air and mass [-].
    """
    if isinstance(model, Room1R1C):
        raise InputError("coefficients_2r2c needs a Room2R2C, got a Room1R1C")
    d = _resolve(model, step_s)
    if d.n_nodes != 2:
        raise InputError(f"coefficients_2r2c needs a two-node model, got {d.n_nodes} node(s)")
    a = d.a.reshape(-1, 2, 2)
    b = d.b.reshape(-1, 2, 3)
    rows = (
        a[:, 0, 0] - 1.0,
        a[:, 0, 1],
        a[:, 1, 0],
        a[:, 1, 1] - 1.0,
        b[:, 0, 0],
        b[:, 1, 0],
        b[:, 0, 1],
        b[:, 1, 1],
    )
    return np.ascontiguousarray(np.stack(rows), dtype=_float_dtype(dtype))


def coefficients_1r1c(model: Room1R1C | DiscreteModel, step_s: float) -> FloatArray:
    """Pack a fleet's exact discrete 1R1C coefficients for :func:`advance_fleet_1r1c_numpy`.

    Parameters
    ----------
    model : Room1R1C or DiscreteModel
        The homes (any batch shape, flattened in C order) or their discretization.
    step_s : float
        Step size [s], > 0.

    Returns
    -------
    ndarray
        Shape (3, N): ``a`` [-], ``b_power`` [K/W], ``b_outdoor`` [-].
    """
    if isinstance(model, Room2R2C):
        raise InputError("coefficients_1r1c needs a Room1R1C, got a Room2R2C")
    d = _resolve(model, step_s)
    if d.n_nodes != 1:
        raise InputError(f"coefficients_1r1c needs a one-node model, got {d.n_nodes} nodes")
    rows = (d.a[..., 0, 0].ravel(), d.b[..., 0, 0].ravel(), d.b[..., 0, 1].ravel())
    return np.ascontiguousarray(np.stack(rows))


def _float_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    kind = np.dtype(dtype)
    if kind not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise InputError(f"dtype must be float64 or float32, got {kind}")
    return kind


def advance_fleet_1r1c_numpy(
    coefficients: ArrayLike,
    room_temp_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
) -> FloatArray:
    """Advance N one-node homes over K steps with plain NumPy (the baseline kernel).

    Parameters
    ----------
    coefficients : array_like
        Shape (3, N) from :func:`coefficients_1r1c`.
    room_temp_c : array_like
        Room temperatures at the start, shape (N,) [°C].
    heat_power_w : array_like
        Constant heater power (plus gains) per home, shape (N,) or scalar [W].
    outdoor_temp_c : array_like
        Outdoor temperature per step, shared by all homes, shape (K,) [°C].

    Returns
    -------
    ndarray
        Room temperatures after K steps, shape (N,) [°C].
    """
    coef = checked_array("coefficients", coefficients)
    if coef.ndim != 2 or coef.shape[0] != 3:
        raise InputError(f"coefficients must have shape (3, N), got {coef.shape}")
    n_homes = coef.shape[1]
    x = np.array(np.broadcast_to(checked_array("room_temp_c", room_temp_c), (n_homes,)))
    power = np.broadcast_to(checked_array("heat_power_w", heat_power_w), (n_homes,))
    outdoor = _outdoor_series(outdoor_temp_c)
    a, b_outdoor = coef[0], coef[2]
    injection = coef[1] * power
    scratch = np.empty(n_homes)
    for k in range(outdoor.shape[0]):
        np.multiply(x, a, out=x)
        np.multiply(b_outdoor, outdoor[k], out=scratch)
        np.add(x, injection, out=x)
        np.add(x, scratch, out=x)
    return x


def _outdoor_series(outdoor_temp_c: ArrayLike) -> FloatArray:
    outdoor = checked_array("outdoor_temp_c", outdoor_temp_c)
    if outdoor.ndim != 1 or outdoor.size == 0:
        raise InputError(f"outdoor_temp_c must have shape (K,) with K >= 1, got {outdoor.shape}")
    return outdoor


@njit(cache=True, inline="always")
def step_2r2c(air_c, mass_c, a_minus_i, b, power_w, outdoor_c):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """One exact 2R2C step of one home: return the new (air, mass) temperatures [°C].

    ``a_minus_i`` is ``(a00 − 1, a01, a10, a11 − 1)`` [-] and ``b`` is ``(b_power_air,
    b_power_mass [K/W], b_outdoor_air, b_outdoor_mass [-])``, rows 0–7 of
    :func:`coefficients_2r2c`. The general fleet kernel and the simulator's fused fleet loop
    both step here (the update ``x += (A − I) x + b·u``).
    """
    a00, a01, a10, a11 = a_minus_i
    b_air, b_mass, o_air, o_mass = b
    new_air_c = air_c + (a00 * air_c + a01 * mass_c + b_air * power_w + o_air * outdoor_c)
    new_mass_c = mass_c + (a10 * air_c + a11 * mass_c + b_mass * power_w + o_mass * outdoor_c)
    return new_air_c, new_mass_c


@njit(fastmath=True, cache=True)
def _block_shared(work, outdoor):  # type: ignore[no-untyped-def]
    """Fast path: one outdoor series, constant injection; ``work`` rows as in the caller."""
    width = work.shape[1]
    for k in range(outdoor.shape[0]):
        to = outdoor[k, 0]
        for j in range(width):
            y0 = work[0, j]
            y1 = work[1, j]
            work[0, j] = y0 + (work[2, j] * y0 + work[3, j] * y1 + work[6, j] + work[8, j] * to)
            work[1, j] = y1 + (work[4, j] * y0 + work[5, j] * y1 + work[7, j] + work[9, j] * to)


@njit(fastmath=True, cache=True)
def _block_general(work, power, outdoor, region, record, out_room, lo, m):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """General path: power per step or per home, outdoor per region; rows 6, 7 hold b_power."""
    constant = power.shape[0] == 1
    for k in range(outdoor.shape[0]):
        row = 0 if constant else k
        for j in range(m):
            p = power[row, lo + j]
            to = outdoor[k, region[lo + j]]
            work[0, j], work[1, j] = step_2r2c(
                work[0, j],
                work[1, j],
                (work[2, j], work[3, j], work[4, j], work[5, j]),
                (work[6, j], work[7, j], work[8, j], work[9, j]),
                p,
                to,
            )
        if record:
            for j in range(m):
                out_room[k + 1, lo + j] = work[0, j]


@njit(parallel=True, fastmath=True, cache=True)
def _advance_2r2c_kernel(coef, state, power, outdoor, region, record, out_room):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """Advance ``state`` (2, N) in place over ``outdoor.shape[0]`` steps.

    ``power`` is (1, N) (constant) or (K, N); ``outdoor`` is (K, R) with ``region`` (N,) the
    column of each home. Each block of homes is packed into one small array (state, ``A − I``,
    injections, ``b_outdoor``: 10 rows) that stays in L1 for all steps; with one region and
    constant power and nothing to record, the injection ``b_power · P`` is folded in once
    (fast path).
    Writes room temperatures to ``out_room`` (K + 1, N) when ``record``.
    """
    n_homes = state.shape[1]
    fast = outdoor.shape[1] == 1 and power.shape[0] == 1 and not record
    n_blocks = (n_homes + _BLOCK - 1) // _BLOCK
    for block in prange(n_blocks):
        lo = block * _BLOCK
        hi = min(lo + _BLOCK, n_homes)
        m = hi - lo
        work = np.zeros((10, _BLOCK), dtype=coef.dtype)
        work[0, :m] = state[0, lo:hi]
        work[1, :m] = state[1, lo:hi]
        for r in range(4):
            work[2 + r, :m] = coef[r, lo:hi]
        work[8, :m] = coef[6, lo:hi]
        work[9, :m] = coef[7, lo:hi]
        if record:
            out_room[0, lo:hi] = state[0, lo:hi]
        if fast:
            work[6, :m] = coef[4, lo:hi] * power[0, lo:hi]
            work[7, :m] = coef[5, lo:hi] * power[0, lo:hi]
            _block_shared(work, outdoor)
        else:
            work[6, :m] = coef[4, lo:hi]
            work[7, :m] = coef[5, lo:hi]
            _block_general(work, power, outdoor, region, record, out_room, lo, m)
        state[0, lo:hi] = work[0, :m]
        state[1, lo:hi] = work[1, :m]


def _prepare_2r2c(
    coefficients: ArrayLike,
    state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    region_index: ArrayLike | None,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any], NDArray[np.int64]]:
    raw = np.asarray(coefficients)
    dtype = _float_dtype(raw.dtype if raw.dtype.kind == "f" else np.float64)
    coef = checked_array("coefficients", raw)
    if coef.ndim != 2 or coef.shape[0] != _N_COEFFICIENTS_2R2C:
        raise InputError(f"coefficients must have shape (8, N), got {coef.shape}")
    n_homes = coef.shape[1]
    state = checked_array("state_c", state_c)
    if state.shape != (n_homes, 2):
        raise InputError(f"state_c must have shape ({n_homes}, 2), got {state.shape}")
    power = checked_array("heat_power_w", heat_power_w)
    outdoor = checked_array("outdoor_temp_c", outdoor_temp_c)
    if outdoor.ndim == 1:
        outdoor = outdoor[:, None]
    if outdoor.ndim != 2 or outdoor.shape[0] == 0:
        raise InputError(f"outdoor_temp_c must have shape (K,) or (K, R), got {outdoor.shape}")
    n_steps, n_regions = outdoor.shape
    if power.ndim <= 1:
        power = np.broadcast_to(power, (1, n_homes))
    elif power.shape != (n_steps, n_homes):
        raise InputError(
            f"heat_power_w must have shape (), ({n_homes},) or ({n_steps}, {n_homes}), "
            f"got {power.shape}"
        )
    if region_index is None:
        if n_regions != 1:
            raise InputError("region_index is required when outdoor_temp_c has several regions")
        region = np.zeros(n_homes, dtype=np.int64)
    else:
        region = np.asarray(region_index)
        if region.shape != (n_homes,) or region.dtype.kind not in "iu":
            raise InputError(f"region_index must be ({n_homes},) integers, got {region.shape}")
        if n_homes and (region.min() < 0 or region.max() >= n_regions):
            raise InputError(f"region_index must lie in [0, {n_regions}), got out-of-range values")
        region = region.astype(np.int64)
    return (
        np.ascontiguousarray(coef, dtype=dtype),
        np.ascontiguousarray(state.T, dtype=dtype),
        np.ascontiguousarray(power, dtype=dtype),
        np.ascontiguousarray(outdoor, dtype=dtype),
        region,
    )


def advance_fleet_2r2c(
    coefficients: ArrayLike,
    state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    region_index: ArrayLike | None = None,
) -> NDArray[Any]:
    """Advance N two-node homes over K steps with the fused numba kernel.

    Parameters
    ----------
    coefficients : array_like
        Shape (8, N) from :func:`coefficients_2r2c`; its dtype (float64 or float32) is the
        dtype of the computation.
    state_c : array_like
        Node temperatures at the start, shape (N, 2), room air first [°C].
    heat_power_w : float or array_like
        Heater power plus other gains [W]: constant per home, shape () or (N,), or per step,
        shape (K, N).
    outdoor_temp_c : array_like
        Outdoor temperature per step [°C]: shared, shape (K,), or per region, shape (K, R).
    region_index : array_like, optional
        Region (column of ``outdoor_temp_c``) of each home, shape (N,) integers; required
        when R > 1.

    Returns
    -------
    ndarray
        Node temperatures after K steps, shape (N, 2) [°C], in the coefficients' dtype.
    """
    coef, state, power, outdoor, region = _prepare_2r2c(
        coefficients, state_c, heat_power_w, outdoor_temp_c, region_index
    )
    _advance_2r2c_kernel(coef, state, power, outdoor, region, False, np.empty((0, 0), coef.dtype))
    return np.ascontiguousarray(state.T)


def room_temp_trajectory_2r2c(
    coefficients: ArrayLike,
    state_c: ArrayLike,
    heat_power_w: ArrayLike,
    outdoor_temp_c: ArrayLike,
    region_index: ArrayLike | None = None,
) -> NDArray[Any]:
    """Room air temperature of N two-node homes at every step boundary (fused kernel).

    Parameters
    ----------
    coefficients : array_like
        Shape (8, N) from :func:`coefficients_2r2c`.
    state_c : array_like
        Node temperatures at the start, shape (N, 2) [°C].
    heat_power_w : float or array_like
        Heater power plus gains [W]: shape (), (N,) or (K, N).
    outdoor_temp_c : array_like
        Outdoor temperature per step [°C]: shape (K,) or (K, R).
    region_index : array_like, optional
        Region of each home, shape (N,) integers; required when R > 1.

    Returns
    -------
    ndarray
        Room air temperature, shape (K + 1, N) [°C]; row 0 is the initial state.
    """
    coef, state, power, outdoor, region = _prepare_2r2c(
        coefficients, state_c, heat_power_w, outdoor_temp_c, region_index
    )
    room = np.empty((outdoor.shape[0] + 1, coef.shape[1]), dtype=coef.dtype)
    _advance_2r2c_kernel(coef, state, power, outdoor, region, True, room)
    return room
