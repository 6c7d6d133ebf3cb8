"""The arbiter's hardware rules as one numba kernel (private to :mod:`heatgrid.core.arbiter`).

:func:`realize_one` applies rules 3 and 4 of :mod:`heatgrid.core.arbiter` (feasible powers,
sigma-delta on the energy debt, minimum cycle, stops) to one device; it is the only
implementation of them. :func:`realize_serial` and :func:`realize_parallel` run it over every
device (``range`` or ``prange``); :func:`heatgrid.core.arbiter.plan` (one heater) and
:func:`heatgrid.core.arbiter.plan_many` (a fleet) both end here.

NaN follows NumPy (``_kernel_math``), as in the array code this replaces; no ``fastmath``.
Bundles cross the kernel's boundary as named tuples (:class:`DeviceState`, :class:`Devices`,
:class:`Realized`), built and read by field name, so a reorder cannot swap two of them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from numba import njit, prange

from heatgrid.core._kernel_math import clip, maximum, minimum, row_of

__all__: list[str] = []

CHUNK = 4096
"""Devices per task of the parallel kernel."""
LEVEL_TOLERANCE_W = 1e-9
"""Two powers closer than this are the same level [W]."""


class DeviceState(NamedTuple):
    """A device's state after its last tick (per-device arrays, or one device's floats)."""

    power_w: Any
    target_w: Any
    since_ts: Any
    debt_j: Any
    last_ts: Any


class Devices(NamedTuple):
    """Capabilities: per-device arrays, and the NaN-padded table of levels, one row each."""

    min_power_w: Any
    max_power_w: Any
    power_levels_w: Any
    min_cycle_s: Any


class Realized(NamedTuple):
    """What :func:`realize_one` returns for one device."""

    power_w: Any
    since_ts: Any
    debt_j: Any


@njit(cache=True, inline="always")
def _same_state(power_a_w: float, power_b_w: float, discrete: bool) -> bool:
    """Whether two powers are the same discrete state (the level; on/off if continuous)."""
    if discrete:
        return abs(power_a_w - power_b_w) <= LEVEL_TOLERANCE_W
    return (power_a_w > 0.0) == (power_b_w > 0.0)


@njit(cache=True, inline="always")
def _bracket(target_w: float, min_power_w: float, levels: Any, discrete: bool) -> Any:
    """Return the feasible powers just below and just above the target [W] (equal if feasible).

    A discrete device holds 0 or a listed level (``levels``, the device's NaN-padded row of the
    level table as :func:`~heatgrid.core._kernel_math.row_of` gives it); a continuous one 0 or
    any power in ``[min_power_w, max_power_w]``.
    """
    if not discrete:
        below_w = target_w if target_w >= min_power_w else 0.0
        above_w = 0.0 if target_w <= 0.0 else maximum(target_w, min_power_w)
        return below_w, above_w
    on_level = abs(target_w) <= LEVEL_TOLERANCE_W  # the level 0 (off)
    level_w = 0.0 if on_level else -math.inf
    below_w = 0.0 if target_w > 0.0 else -math.inf
    above_w = 0.0 if target_w < 0.0 else math.inf
    row_w, width = levels
    for j in range(width):
        value = row_w[j]
        if abs(value - target_w) <= LEVEL_TOLERANCE_W:
            on_level = True
            level_w = maximum(level_w, value)
        if value < target_w:
            below_w = maximum(below_w, value)
        if value > target_w:
            above_w = minimum(above_w, value)
    if on_level:
        return level_w, level_w
    return below_w, (above_w if math.isfinite(above_w) else below_w)


@njit(cache=True, inline="always")
def is_discrete(device: Any, row: int) -> bool:
    """Whether device ``row`` of a :class:`Devices` holds listed power levels (else continuous)."""
    levels_w = device.power_levels_w
    discrete = False
    for j in range(levels_w.shape[1]):
        if not math.isnan(levels_w[row, j]):
            discrete = True
    return discrete


@njit(cache=True, inline="always")
def realize_one(  # noqa: PLR0917
    now_ts: float, target_w: float, stop: bool, state: Any, device: Any, row: int
) -> Any:
    """Apply rules 3 and 4 to one device; return a :class:`Realized`.

    ``state`` is the :class:`DeviceState` of its last tick (floats), ``device`` the
    :class:`Devices` of the fleet (arrays): the device is row ``row`` of them.
    """
    return realize_known(now_ts, target_w, stop, state, device, (row, is_discrete(device, row)))


@njit(cache=True, inline="always")
def realize_known(  # noqa: PLR0917
    now_ts: float, target_w: float, stop: bool, state: Any, device: Any, which: Any
) -> Any:
    """:func:`realize_one` of device ``which = (row, is_discrete(device, row))``.

    A loop that ticks one device many times finds out once whether it is discrete. A stop
    returns at once, with the numbers the whole rule gives it (power 0, no debt, the state's
    start moved if it left a level): in a simulated fleet every heater without work is
    stopped at every step, and this saved 5–11 % of the fused simulator's step.
    """
    row, discrete = which
    current_w, last_target_w, since_ts = state.power_w, state.target_w, state.since_ts
    if stop:
        stopped = not _same_state(0.0, current_w, discrete)
        return Realized(power_w=0.0, since_ts=now_ts if stopped else since_ts, debt_j=0.0)
    last_ts = state.last_ts
    min_power_w, max_power_w = device.min_power_w[row], device.max_power_w[row]
    min_cycle_s = device.min_cycle_s[row]
    dt_s = maximum(now_ts - last_ts, 0.0) if math.isfinite(last_ts) else 0.0
    debt_j = state.debt_j + (last_target_w - current_w) * dt_s
    below_w, above_w = _bracket(target_w, min_power_w, row_of(device.power_levels_w, row), discrete)
    exact = below_w == above_w

    # Sigma-delta on the energy debt; at zero debt keep the current state.
    if debt_j > 0.0:
        up = True
    elif debt_j < 0.0:
        up = False
    else:
        up = _same_state(current_w, above_w, discrete)
    wanted_w = above_w if exact or up else below_w

    # Minimum time in each discrete state; a stop beats it.
    settled = now_ts - since_ts >= min_cycle_s
    on_w = clip(target_w, min_power_w, max_power_w)  # a continuous device held on
    held_w = current_w if discrete or current_w <= 0.0 else on_w
    changes = not _same_state(wanted_w, current_w, discrete)
    power_w = held_w if changes and not settled else wanted_w
    if stop:
        power_w = 0.0

    cap_j = max_power_w * (min_cycle_s + dt_s)
    delivered = exact and power_w == above_w
    debt_j = 0.0 if delivered or stop else clip(debt_j, -cap_j, cap_j)
    switched = not _same_state(power_w, current_w, discrete)
    return Realized(power_w=power_w, since_ts=now_ts if switched else since_ts, debt_j=debt_j)


@njit(cache=True, inline="always")
def advance_known(  # noqa: PLR0917
    now_ts: float, target_w: float, stop: bool, state: Any, device: Any, which: Any
) -> Any:
    """Return the :class:`DeviceState` after :func:`realize_known` at ``now_ts``.

    What the device's next tick reads: the realized power, the target it was given, the state's
    start and debt, and ``now_ts`` as the last tick. A loop that ticks devices in place (the
    simulator's fused loop) carries this from step to step.
    """
    realized = realize_known(now_ts, target_w, stop, state, device, which)
    return DeviceState(
        power_w=realized.power_w,
        target_w=target_w,
        since_ts=realized.since_ts,
        debt_j=realized.debt_j,
        last_ts=now_ts,
    )


@njit(cache=True)
def _realize_range(  # noqa: PLR0917
    lo: int, hi: int, now_ts: float, target_w: Any, stop: Any, state: Any, devices: Any, out: Any
) -> None:
    """Run :func:`realize_one` over devices ``lo`` to ``hi − 1``: load, realize, store by name."""
    for i in range(lo, hi):
        result = realize_one(
            now_ts,
            target_w[i],
            stop[i],
            DeviceState(
                power_w=state.power_w[i],
                target_w=state.target_w[i],
                since_ts=state.since_ts[i],
                debt_j=state.debt_j[i],
                last_ts=state.last_ts[i],
            ),
            devices,
            i,
        )
        out.power_w[i] = result.power_w
        out.target_w[i] = target_w[i]
        out.since_ts[i] = result.since_ts
        out.debt_j[i] = result.debt_j
        out.last_ts[i] = now_ts


@njit(cache=True)
def realize_serial(  # noqa: PLR0917
    now_ts: float, target_w: Any, stop: Any, state: Any, devices: Any, out: Any
) -> None:
    """Run :func:`realize_one` over every device on this thread."""
    _realize_range(0, target_w.shape[0], now_ts, target_w, stop, state, devices, out)


@njit(cache=True, parallel=True)
def realize_parallel(  # noqa: PLR0917
    now_ts: float, target_w: Any, stop: Any, state: Any, devices: Any, out: Any
) -> None:
    """Run :func:`realize_one` over every device on numba's threads, ``CHUNK`` per task."""
    n = target_w.shape[0]
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        lo = chunk * CHUNK
        _realize_range(lo, min(lo + CHUNK, n), now_ts, target_w, stop, state, devices, out)
