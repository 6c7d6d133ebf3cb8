"""Workload arbiter: turns the room's heat demand into work and a power target per device.

:func:`plan` runs once per tick after the thermostat. Rules:

1. **Work.** Every compute device gets the most valuable work on offer that it can run
   (:class:`WorkOffer`: its device kinds, GPU memory, optional device list); an exclusive offer
   (a leased AI/ML task) goes to one device only, a shared one (Bitcoin mining) to all that fit.
   Pairs are taken by falling value, ties in the order given. A resistive device runs the
   ``"boost"`` work (no revenue). A device without work gets no power.
2. **Power.** The demand is poured into devices by falling value of their work, each up to its
   ``max_power_w``; resistive boost elements come last, so they cover only the demand above the
   compute devices' maximum. Each device's share is its average power target; the targets never
   add up to more than the demand.
3. **Hardware limits** (:func:`_realize`, a compiled kernel shared with :func:`plan_many`). A
   target the device can hold (0, a listed level, or within ``[min_power_w, max_power_w]`` for a
   continuous device) is delivered as is. Otherwise the device alternates between the feasible
   powers just below (``lo``, 0 under the floor) and just above (``hi``) the target, steered by
   its energy debt ``debt_j = ∫ (target − delivered) dt``: ``hi`` while the debt is positive,
   ``lo`` while it is negative, no change at zero. This is a sigma-delta modulator: the long-run
   average equals the target, and the debt stays within one quantum
   ``(hi − lo) · (min_cycle_s + tick)``. The debt is reset when the target is delivered exactly
   and clipped to ``± max_power_w · (min_cycle_s + tick)``, so that heat missed long ago is not
   made up in a burst (the thermostat corrects for it through the room temperature).
4. **Minimum cycle.** A device stays in each discrete state for at least ``min_cycle_s``: on and
   off for a continuous device (which moves freely within ``[min_power_w, max_power_w]`` while
   on), off and each listed level for a device with discrete levels. While held on against a
   lower target, a continuous device runs at the power nearest the target. Two exceptions stop
   a device at once: ``stop_now`` (the thermostat's safe state: interlocks beat everything) and
   a device left without work. A held device's extra power is not taken from the others' share,
   so the total may exceed the demand for at most ``min_cycle_s``.

So demand below a device's floor becomes long on/off cycles (at least ``min_cycle_s`` on and
off), and demand between discrete levels alternates between the level below and the level
above. The energy debt is the only memory; the period follows from the debt and ``min_cycle_s``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core import _arbiter_kernel as _kernel
from heatgrid.core._arrays import FloatArray, checked_array, repeated
from heatgrid.core._kernel_math import kernel_input
from heatgrid.core.catalog import Device
from heatgrid.core.errors import InputError, require_finite, require_non_negative, require_positive

__all__ = [
    "BOOST_WORK_ID",
    "ArbiterState",
    "DeviceArrays",
    "DeviceCapability",
    "DeviceKind",
    "DevicePlan",
    "DeviceState",
    "DeviceStateArrays",
    "WorkOffer",
    "plan",
    "plan_many",
]

DeviceKind: TypeAlias = Literal["asic", "gpu", "cpu", "resistive"]
_DEVICE_KINDS: tuple[str, ...] = get_args(DeviceKind)
_COMPUTE_KINDS = ("asic", "gpu", "cpu")
BOOST_WORK_ID = "boost"
"""Work id of a resistive boost element's work."""

_J_PER_KWH = 3.6e6
_S_PER_DAY = 86_400.0
_PARALLEL_MIN_DEVICES = 20_000
"""From this many devices :func:`plan_many` runs on numba's threads (below, on this one)."""


@dataclass(frozen=True, kw_only=True)
class DeviceCapability:
    """What one device of a heater can do.

    Parameters
    ----------
    device_id : str
        Identifier, unique within the heater.
    kind : {"asic", "gpu", "cpu", "resistive"}
        Kind of device; ``"resistive"`` is a boost element without revenue.
    min_power_w : float
        Lowest power while on [W], in (0, max_power_w].
    max_power_w : float
        Highest power [W], > 0.
    power_levels_w : tuple of float
        Discrete power levels [W], strictly increasing from ``min_power_w`` to ``max_power_w``;
        empty if the power is continuous between them.
    min_cycle_s : float
        Shortest time in any discrete state (off, on, a level) [s], >= 0.
    vram_gb : float
        GPU memory [GB], >= 0.
    """

    device_id: str
    kind: DeviceKind
    min_power_w: float
    max_power_w: float
    power_levels_w: tuple[float, ...] = ()
    min_cycle_s: float = 0.0
    vram_gb: float = 0.0

    def __post_init__(self) -> None:
        if not self.device_id:
            raise InputError("device_id must not be empty")
        if self.kind not in _DEVICE_KINDS:
            raise InputError(f"kind must be one of {_DEVICE_KINDS}, got {self.kind!r}")
        max_w = require_positive("max_power_w", self.max_power_w)
        min_w = require_positive("min_power_w", self.min_power_w)
        if min_w > max_w:
            raise InputError(f"min_power_w {min_w!r} must not exceed max_power_w {max_w!r}")
        require_non_negative("min_cycle_s", self.min_cycle_s)
        require_non_negative("vram_gb", self.vram_gb)
        levels = tuple(
            require_finite(f"power_levels_w[{i}]", v) for i, v in enumerate(self.power_levels_w)
        )
        if levels and (
            any(b <= a for a, b in itertools.pairwise(levels))
            or not math.isclose(levels[0], min_w)
            or not math.isclose(levels[-1], max_w)
        ):
            raise InputError(
                f"power_levels_w of {self.device_id!r} must rise strictly from min_power_w "
                f"{min_w:g} to max_power_w {max_w:g}, got {levels!r}"
            )
        object.__setattr__(self, "power_levels_w", levels)

    @classmethod
    def from_catalog(
        cls, device: Device, device_id: str, *, min_cycle_s: float
    ) -> DeviceCapability:
        """Return the capability of a catalog device.

        Parameters
        ----------
        device : heatgrid.core.catalog.Device
            Catalog entry.
        device_id : str
            Identifier of this unit within the heater.
        min_cycle_s : float
            Shortest time in any discrete state [s], >= 0.
        """
        return cls(
            device_id=device_id,
            kind=device.kind,
            min_power_w=device.min_power_w,
            max_power_w=device.max_power_w,
            power_levels_w=device.power_levels_w,
            min_cycle_s=min_cycle_s,
            vram_gb=device.vram_gb,
        )


@dataclass(frozen=True, kw_only=True)
class WorkOffer:
    """Work that devices may run, and what it pays per kWh burned.

    Parameters
    ----------
    work_id : str
        Identifier (a task lease id, ``"mining"``).
    value_eur_per_kwh : float
        Revenue per kWh of electricity the work burns [EUR/kWh], >= 0.
    device_kinds : tuple of str
        Kinds of device it runs on.
    min_vram_gb : float
        GPU memory it needs [GB], >= 0.
    exclusive : bool
        True if one device runs it (a leased task), False if every fitting device may (mining).
    device_ids : tuple of str
        If not empty, only these devices may run it.
    """

    work_id: str
    value_eur_per_kwh: float
    device_kinds: tuple[DeviceKind, ...]
    min_vram_gb: float = 0.0
    exclusive: bool = True
    device_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.work_id or self.work_id == BOOST_WORK_ID:
            raise InputError(f"work_id must be a non-empty id other than {BOOST_WORK_ID!r}")
        require_non_negative("value_eur_per_kwh", self.value_eur_per_kwh)
        require_non_negative("min_vram_gb", self.min_vram_gb)
        bad = [kind for kind in self.device_kinds if kind not in _COMPUTE_KINDS]
        if not self.device_kinds or bad:
            raise InputError(
                f"device_kinds must be among {_COMPUTE_KINDS}, got {self.device_kinds!r}"
            )

    @classmethod
    def mining(
        cls,
        hashprice_eur_per_th_day: float,
        efficiency_j_per_th: float,
        *,
        work_id: str = "mining",
        device_ids: tuple[str, ...] = (),
    ) -> WorkOffer:
        """Return a shared Bitcoin-mining offer for ASICs of one efficiency.

        ``value_eur_per_kwh = hashprice / efficiency · 3.6e6 J/kWh / 86400 s/day``.

        Parameters
        ----------
        hashprice_eur_per_th_day : float
            Revenue per TH/s per day [EUR/(TH/s·day)], >= 0.
        efficiency_j_per_th : float
            Energy per terahash of the ASICs [J/TH], > 0.
        work_id : str
            Identifier of the offer.
        device_ids : tuple of str
            ASICs of that efficiency; empty for all.
        """
        hashprice = require_non_negative("hashprice_eur_per_th_day", hashprice_eur_per_th_day)
        efficiency = require_positive("efficiency_j_per_th", efficiency_j_per_th)
        return cls(
            work_id=work_id,
            value_eur_per_kwh=hashprice / efficiency * _J_PER_KWH / _S_PER_DAY,
            device_kinds=("asic",),
            exclusive=False,
            device_ids=device_ids,
        )

    def fits(self, device: DeviceCapability) -> bool:
        """Return whether ``device`` can run this work."""
        return (
            device.kind in self.device_kinds
            and device.vram_gb >= self.min_vram_gb
            and (not self.device_ids or device.device_id in self.device_ids)
        )


@dataclass(frozen=True)
class DeviceState:
    """What the arbiter remembers about one device between ticks.

    Parameters
    ----------
    device_id : str
        Identifier of the device.
    power_w : float
        Power it was set to on the last tick [W].
    target_w : float
        Average power it was asked for on the last tick [W].
    since_ts : float
        When its discrete state (off, on, a level) last changed, UTC [s]; ``-inf``: never.
    debt_j : float
        Energy asked minus energy delivered [J].
    last_ts : float
        When it was last planned, UTC [s]; ``-inf``: never.
    """

    device_id: str
    power_w: float = 0.0
    target_w: float = 0.0
    since_ts: float = -math.inf
    debt_j: float = 0.0
    last_ts: float = -math.inf


@dataclass(frozen=True)
class ArbiterState:
    """What the arbiter remembers between ticks: one :class:`DeviceState` per device."""

    devices: tuple[DeviceState, ...] = ()


@dataclass(frozen=True)
class DevicePlan:
    """What one device does until the next tick.

    Parameters
    ----------
    device_id : str
        Identifier of the device.
    work_id : str or None
        Work to run; None when the device is off (``power_w == 0``).
    power_w : float
        Power to set now [W]: 0, a listed level, or within ``[min_power_w, max_power_w]``.
    target_w : float
        Average power asked of the device [W]; ``power_w`` cycles around it.
    value_eur_per_kwh : float
        Revenue of the work per kWh [EUR/kWh]; 0 when off or boosting.
    """

    device_id: str
    work_id: str | None
    power_w: float
    target_w: float
    value_eur_per_kwh: float


@dataclass(frozen=True)
class DeviceArrays:
    """Capabilities of many devices, struct of arrays of shape ``(n,)``.

    ``power_levels_w`` is ``(n, k)``, each row rising, padded with NaN (``k`` may be 0); a row
    of NaN means a continuous device. See :class:`DeviceCapability` for the fields.
    """

    min_power_w: FloatArray
    max_power_w: FloatArray
    power_levels_w: FloatArray
    min_cycle_s: FloatArray

    def __post_init__(self) -> None:
        max_w = checked_array("max_power_w", self.max_power_w, minimum=0.0, strictly_above=True)
        min_w = checked_array("min_power_w", self.min_power_w, minimum=0.0, strictly_above=True)
        cycle_s = checked_array("min_cycle_s", self.min_cycle_s, minimum=0.0)
        if max_w.ndim != 1 or min_w.shape != max_w.shape or cycle_s.shape != max_w.shape:
            raise InputError(
                "min_power_w, max_power_w and min_cycle_s must be arrays of shape (n,)"
            )
        if bool(np.any(min_w > max_w)):
            raise InputError("min_power_w must not exceed max_power_w")
        levels = np.asarray(self.power_levels_w, dtype=np.float64)
        if levels.ndim != 2 or levels.shape[0] != max_w.shape[0]:
            raise InputError("power_levels_w must be an array of shape (n, k)")
        listed = ~np.isnan(levels)
        outside = listed & ((levels < min_w[:, None] - 1e-9) | (levels > max_w[:, None] + 1e-9))
        if bool(np.any(outside)) or bool(np.any(np.isinf(levels))):
            raise InputError("power_levels_w must lie within [min_power_w, max_power_w]")
        for name, value in (("min_power_w", min_w), ("max_power_w", max_w)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "min_cycle_s", cycle_s)
        object.__setattr__(self, "power_levels_w", levels)

    @classmethod
    def from_capabilities(cls, devices: Sequence[DeviceCapability]) -> DeviceArrays:
        """Stack device capabilities."""
        width = max((len(d.power_levels_w) for d in devices), default=0)
        levels = np.full((len(devices), width), np.nan)
        for row, device in enumerate(devices):
            levels[row, : len(device.power_levels_w)] = device.power_levels_w
        return cls(
            min_power_w=np.array([d.min_power_w for d in devices], dtype=np.float64),
            max_power_w=np.array([d.max_power_w for d in devices], dtype=np.float64),
            power_levels_w=levels,
            min_cycle_s=np.array([d.min_cycle_s for d in devices], dtype=np.float64),
        )


@dataclass(frozen=True)
class DeviceStateArrays:
    """:class:`DeviceState` of many devices (without ids), struct of arrays of shape ``(n,)``."""

    power_w: FloatArray
    target_w: FloatArray
    since_ts: FloatArray
    debt_j: FloatArray
    last_ts: FloatArray

    @classmethod
    def initial(cls, count: int) -> DeviceStateArrays:
        """Return the start state (off, never switched, no debt) of ``count`` devices."""
        return repeated(cls.from_states([DeviceState("")]), count)

    @classmethod
    def from_states(cls, states: Sequence[DeviceState]) -> DeviceStateArrays:
        """Stack scalar device states."""
        return cls(
            power_w=np.array([s.power_w for s in states], dtype=np.float64),
            target_w=np.array([s.target_w for s in states], dtype=np.float64),
            since_ts=np.array([s.since_ts for s in states], dtype=np.float64),
            debt_j=np.array([s.debt_j for s in states], dtype=np.float64),
            last_ts=np.array([s.last_ts for s in states], dtype=np.float64),
        )

    def state(self, index: int, device_id: str) -> DeviceState:
        """Return the state of device ``index`` under the id ``device_id``."""
        return DeviceState(
            device_id=device_id,
            power_w=float(self.power_w[index]),
            target_w=float(self.target_w[index]),
            since_ts=float(self.since_ts[index]),
            debt_j=float(self.debt_j[index]),
            last_ts=float(self.last_ts[index]),
        )


def plan(
    state: ArbiterState,
    demand_w: float,
    devices: Sequence[DeviceCapability],
    offers: Sequence[WorkOffer],
    now_ts: float,
    *,
    stop_now: bool = False,
) -> tuple[ArbiterState, list[DevicePlan]]:
    """Plan work and power for each device of one heater for this tick.

    Parameters
    ----------
    state : ArbiterState
        State returned by the previous call; ``ArbiterState()`` at first. Devices not in it
        start off; devices no longer in ``devices`` are forgotten.
    demand_w : float
        Heat demand of the room [W], >= 0 (the thermostat's ``heat_power_w``).
    devices : sequence of DeviceCapability
        Devices of the heater, unique ids.
    offers : sequence of WorkOffer
        Work available now, unique ids.
    now_ts : float
        Current time, POSIX UTC [s].
    stop_now : bool
        Stop every device at once, whatever ``min_cycle_s`` says: pass True when the thermostat
        reports an alarm or the user's off (its safe state). A device without work is always
        stopped at once too: there is nothing for it to run.

    Returns
    -------
    tuple of (ArbiterState, list of DevicePlan)
        The state for the next call and one plan per device, in the order of ``devices``.

    Raises
    ------
    InputError
        If ``demand_w`` or ``now_ts`` is bad, or ids repeat.
    """
    demand = require_non_negative("demand_w", demand_w)
    now = require_finite("now_ts", now_ts)
    _require_unique("devices", [d.device_id for d in devices])
    _require_unique("offers", [o.work_id for o in offers])
    if not devices:
        return ArbiterState(), []
    work = _assign_work(devices, offers)
    targets = _pour(demand, devices, work)
    known = {s.device_id: s for s in state.devices}
    old = DeviceStateArrays.from_states([known.get(d.device_id, DeviceState("")) for d in devices])
    stop = np.array([stop_now or work_id is None for work_id, _ in work])
    new, power_w = _realize(old, targets, DeviceArrays.from_capabilities(devices), now, stop)
    plans = []
    for i, device in enumerate(devices):
        on = bool(power_w[i] > 0.0)
        plans.append(
            DevicePlan(
                device_id=device.device_id,
                work_id=work[i][0] if on else None,
                power_w=float(power_w[i]),
                target_w=float(targets[i]),
                value_eur_per_kwh=work[i][1] if on else 0.0,
            )
        )
    states = tuple(new.state(i, d.device_id) for i, d in enumerate(devices))
    return ArbiterState(states), plans


def plan_many(
    state: DeviceStateArrays,
    demand_w: ArrayLike,
    devices: DeviceArrays,
    now_ts: float,
    *,
    stop_now: ArrayLike = False,
) -> tuple[DeviceStateArrays, FloatArray]:
    """Plan the power of many single-device heaters at once, by the rules of :func:`plan`.

    Each heater has one compute device with work to run, so its target is
    ``min(demand_w, max_power_w)``.

    Parameters
    ----------
    state : DeviceStateArrays
        States of shape ``(n,)``; ``DeviceStateArrays.initial(n)`` at first.
    demand_w : array_like
        Heat demand of each room [W], >= 0, broadcastable to ``(n,)``.
    devices : DeviceArrays
        Capabilities, shape ``(n,)``.
    now_ts : float
        Current time, POSIX UTC [s].
    stop_now : bool or array_like of bool
        Stop these heaters at once, whatever ``min_cycle_s`` says (thermostat safe state).

    Returns
    -------
    tuple of (DeviceStateArrays, numpy.ndarray)
        New states and the power to set now [W], shape ``(n,)``.

    Raises
    ------
    InputError
        If ``demand_w`` is negative or not finite, or ``now_ts`` not finite.
    """
    demand = checked_array("demand_w", demand_w, minimum=0.0)
    now = require_finite("now_ts", now_ts)
    shape = devices.max_power_w.shape
    targets = np.minimum(np.broadcast_to(demand, shape), devices.max_power_w)
    stop = np.broadcast_to(np.asarray(stop_now, dtype=np.bool_), shape)
    return _realize(state, targets, devices, now, stop)


def _require_unique(name: str, ids: list[str]) -> None:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InputError(f"{name}: ids must be unique, repeated {repeated!r}")


def _assign_work(
    devices: Sequence[DeviceCapability], offers: Sequence[WorkOffer]
) -> list[tuple[str | None, float]]:
    """Give each device the most valuable work it fits; exclusive offers to one device."""
    work: list[tuple[str | None, float]] = [
        (BOOST_WORK_ID, 0.0) if d.kind == "resistive" else (None, 0.0) for d in devices
    ]
    pairs = [
        (offer_index, device_index)
        for offer_index, offer in enumerate(offers)
        for device_index, device in enumerate(devices)
        if device.kind != "resistive" and offer.fits(device)
    ]
    pairs.sort(key=lambda pair: -offers[pair[0]].value_eur_per_kwh)  # stable: ties keep order
    taken: set[str] = set()
    busy: set[int] = set()
    for offer_index, device_index in pairs:
        offer = offers[offer_index]
        if device_index in busy or (offer.exclusive and offer.work_id in taken):
            continue
        work[device_index] = (offer.work_id, offer.value_eur_per_kwh)
        busy.add(device_index)
        taken.add(offer.work_id)
    return work


def _pour(
    demand_w: float,
    devices: Sequence[DeviceCapability],
    work: list[tuple[str | None, float]],
) -> FloatArray:
    """Share the demand out by falling value of work, boost elements last [W]."""
    with_work = [i for i, (work_id, _) in enumerate(work) if work_id is not None]
    order = sorted(
        with_work, key=lambda i: (devices[i].kind == "resistive", -work[i][1])
    )  # stable: ties keep the order of devices
    targets = np.zeros(len(devices))
    left_w = demand_w
    for i in order:
        targets[i] = min(left_w, devices[i].max_power_w)
        left_w -= targets[i]
    return targets


def _realize(
    state: DeviceStateArrays,
    target_w: FloatArray,
    devices: DeviceArrays,
    now_ts: float,
    stop: NDArray[np.bool_],
) -> tuple[DeviceStateArrays, FloatArray]:
    """Turn average power targets into powers the hardware can hold now (rules 3 and 4).

    Devices where ``stop`` is set go off at once, with their debt cleared. The rules run in
    ``heatgrid.core._arbiter_kernel.realize_one``, compiled, one device at a time.
    """
    count = devices.max_power_w.shape[0]
    targets = _vector(target_w, count)
    old = _kernel.DeviceState(
        power_w=_vector(state.power_w, count),
        target_w=_vector(state.target_w, count),
        since_ts=_vector(state.since_ts, count),
        debt_j=_vector(state.debt_j, count),
        last_ts=_vector(state.last_ts, count),
    )
    capabilities = _kernel.Devices(
        min_power_w=_vector(devices.min_power_w, count),
        max_power_w=_vector(devices.max_power_w, count),
        power_levels_w=kernel_input(devices.power_levels_w, np.float64),
        min_cycle_s=_vector(devices.min_cycle_s, count),
    )
    out = _kernel.DeviceState(*(np.empty(count) for _ in _kernel.DeviceState._fields))
    stops = _vector(stop, count, np.bool_)
    kernel = _kernel.realize_parallel if count >= _PARALLEL_MIN_DEVICES else _kernel.realize_serial
    kernel(now_ts, targets, stops, old, capabilities, out)
    new_state = DeviceStateArrays(
        power_w=out.power_w,
        target_w=out.target_w,
        since_ts=out.since_ts,
        debt_j=out.debt_j,
        last_ts=out.last_ts,
    )
    power_w: FloatArray = out.power_w
    return new_state, power_w


def _vector(values: ArrayLike, count: int, dtype: type[np.generic] = np.float64) -> NDArray[Any]:
    """Return ``values`` broadcast to ``(count,)`` for the kernel (see ``kernel_input``)."""
    array = np.asarray(values, dtype=dtype)
    if array.shape != (count,):
        array = np.broadcast_to(array, (count,)).copy()
    return kernel_input(array, dtype)
