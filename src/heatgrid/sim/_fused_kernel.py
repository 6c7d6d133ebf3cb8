"""The fused fleet loop: thermostat + arbiter + room of every home over many steps, compiled.

One numba kernel (:func:`run_burst`) runs steps ``k0 … k1 − 1`` of the simulator's step (see
:mod:`heatgrid.sim.engine`) for every home while no task is leased and no claim can happen,
home by home (``prange`` over chunks of :data:`CHUNK` homes), each home's state in registers
for the whole burst. It calls core's own rules, not copies of them:

* the thermostat: ``_control_kernel.home_setpoint_until`` and ``_control_kernel.tick`` (what
  :func:`heatgrid.core.control.decide_many` runs per home; the schedule is looked up again only
  from the instant its answer may change);
* the arbiter: ``_arbiter_kernel.realize_known``, :func:`~heatgrid.core.arbiter.plan_many`'s
  ``realize_one`` with the device's kind (discrete or continuous) found once per burst;
* the room: :func:`heatgrid.core.thermal_kernels.step_2r2c` (the update of
  :func:`~heatgrid.core.thermal_kernels.advance_fleet_2r2c`);
* the internal gains: :func:`home_gains_until`, the rule that
  :func:`heatgrid.sim.engine.internal_gains_w` also evaluates (:func:`gains_rows`), again only
  from the instant they may change.

Results are reduced in the kernel: per home (comfort, heater and backup energy) into arrays of
length ``n``, per step into ``partial[chunk, step, quantity]`` (:data:`QUANTITIES` then one
column of heater energy per region), summed over chunks by the caller, so memory stays
``O(n + burst · chunks)`` whatever the horizon. Chunks are fixed, so the sums do not depend on
the number of threads: a run is reproducible bit for bit.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from heatgrid.core._arbiter_kernel import DeviceState, is_discrete, realize_known
from heatgrid.core._control_kernel import (
    MODE_AWAY,
    UNTIL_GUARD_S,
    Observation,
    State,
    home_config,
    home_setpoint_until,
    tick,
)
from heatgrid.core._kernel_math import maximum, minimum
from heatgrid.core.thermal_kernels import step_2r2c

__all__: list[str] = []

CHUNK = 256
"""Homes per task of the parallel kernel."""
QUANTITIES = ("room_c", "setpoint_c", "demand_w", "heat_w", "backup_w", "mining_eur")
"""Per-step sums over homes in ``partial``, in this order; heater energy per region follows."""
ROOM, SETPOINT, DEMAND, HEAT, BACKUP, MINING = range(len(QUANTITIES))
_S_PER_H = 3600.0
_S_PER_DAY = 86_400.0
_J_PER_KWH = 3.6e6
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0
_WORKDAYS = 5


class Homes(NamedTuple):
    """What the kernel reads about the homes (N,) and devices (D,), constant over a run."""

    coefficients: Any
    region: Any
    tz_s: Any
    occupied_gains_w: Any
    away_gains_w: Any
    away_home: Any
    leave_minute: Any
    return_minute: Any
    mode: Any
    device_temp_c: Any
    fan_ok: Any
    upright: Any
    is_asic: Any
    mining_value_eur_per_kwh: Any
    spell_first: Any
    spell_start: Any
    spell_end: Any


class Clock(NamedTuple):
    """Step starts (K,) [POSIX s], outdoor temperature (K, R) [°C] and the run's settings."""

    time_ts: Any
    outdoor_c: Any
    step_s: float
    comfort_band_k: float
    backup_heating: bool


class Totals(NamedTuple):
    """Per-home accumulators (N,), added to in place."""

    comfort_k_h: Any
    heat_kwh: Any
    backup_kwh: Any


@njit(cache=True, inline="always")
def home_gains_until(  # noqa: PLR0917
    now_ts: float,
    tz_s: float,
    away_home: bool,
    leave_minute: float,
    return_minute: float,
    gains_w: Any,
) -> Any:
    """Return a home's internal gains at ``now_ts`` [W] and an instant they hold until [POSIX s].

    ``gains_w`` is (occupied, away): away gains while an away home is empty (weekdays between
    its leave and return minutes, local time), else occupied gains. The gains are the same for
    every instant from ``now_ts`` up to ``until_ts``: the next leave or return minute or local
    midnight, less ``UNTIL_GUARD_S`` and a part in 1e9 of ``now_ts`` (far more than the
    rounding of the local time of day); +inf for a home that is never away.
    """
    local_s = now_ts + tz_s
    weekday = math.floor(local_s / _S_PER_DAY + _EPOCH_WEEKDAY) % 7
    day_s = np.mod(local_s, _S_PER_DAY)
    minute = day_s / 60.0
    away = away_home and weekday < _WORKDAYS and leave_minute <= minute < return_minute
    if not away_home:
        return float(gains_w[0]), math.inf
    if minute < leave_minute:
        end_s = leave_minute * 60.0
    elif minute < return_minute:
        end_s = return_minute * 60.0
    else:
        end_s = _S_PER_DAY
    until_ts = now_ts + (end_s - day_s) - (UNTIL_GUARD_S + 1e-9 * abs(now_ts))
    return float(gains_w[1] if away else gains_w[0]), until_ts


@njit(cache=True, inline="always")
def home_gains_w(  # noqa: PLR0917
    now_ts: float,
    tz_s: float,
    away_home: bool,
    leave_minute: float,
    return_minute: float,
    gains_w: Any,
) -> float:
    """Return a home's internal gains at ``now_ts`` [W]: the rule of :func:`home_gains_until`."""
    gains, _ = home_gains_until(now_ts, tz_s, away_home, leave_minute, return_minute, gains_w)
    return float(gains)


@njit(cache=True)
def gains_rows(  # noqa: PLR0917
    rows: Any,
    tz_s: Any,
    away_home: Any,
    minutes: Any,
    gains_w: Any,
    timestamps_ts: Any,
    out: Any,
) -> None:
    """Write :func:`home_gains_w` of home ``rows[i]`` at ``timestamps_ts[j]`` to ``out[i, j]``.

    ``minutes`` is (leave, return) and ``gains_w`` (occupied, away), arrays over all homes.
    """
    leave, back = minutes
    occupied, away = gains_w
    for i in range(rows.shape[0]):
        h = rows[i]
        pair = (occupied[h], away[h])
        for j in range(timestamps_ts.shape[0]):
            out[i, j] = home_gains_w(
                timestamps_ts[j], tz_s[h], away_home[h], leave[h], back[h], pair
            )


@njit(cache=True, inline="always")
def _first_spell(homes: Any, device: int, k0: int) -> int:
    """Index of ``device``'s first offline spell starting at or after step ``k0``."""
    j = homes.spell_first[device]
    end = homes.spell_first[device + 1]
    while j < end and homes.spell_start[j] < k0:
        j += 1
    return int(j)


@njit(cache=True)
def _home_range(  # noqa: PLR0915, PLR0917
    chunk: int,
    k0: int,
    k1: int,
    homes: Any,
    clock: Any,
    cfg: Any,
    schedule: Any,
    thermostat: Any,
    arbiter: Any,
    devices: Any,
    offline_until: Any,
    rooms: Any,
    totals: Any,
    out: Any,
) -> None:
    """Run homes ``chunk · CHUNK …`` over steps ``k0 … k1 − 1``; see :func:`run_burst`."""
    partial, sample_column, sampled, recorded = out
    air_c, mass_c = rooms
    n = air_c.shape[0]
    lo = chunk * CHUNK
    hi = min(lo + CHUNK, n)
    step_s = clock.step_s
    band_k = clock.comfort_band_k
    step_h = step_s / _S_PER_H
    step_kwh_per_w = step_s / _J_PER_KWH
    record = recorded.shape[0] > 0
    for i in range(lo, hi):
        config = home_config(cfg, i)
        mode = homes.mode[i]
        away = mode == MODE_AWAY
        coef = homes.coefficients
        a_minus_i = (coef[0, i], coef[1, i], coef[2, i], coef[3, i])
        b = (coef[4, i], coef[5, i], coef[6, i], coef[7, i])
        region = homes.region[i]
        gains_pair = (homes.occupied_gains_w[i], homes.away_gains_w[i])
        mining_value = homes.mining_value_eur_per_kwh[i]
        is_asic = homes.is_asic[i]
        max_power_w = devices.max_power_w[i]
        column = sample_column[i]
        which = (i, is_discrete(devices, i))
        state = State(
            integral_w=thermostat.integral_w[i],
            heating=thermostat.heating[i],
            since_ts=thermostat.since_ts[i],
            last_tick_ts=thermostat.last_tick_ts[i],
            last_command_ts=thermostat.last_command_ts[i],
            last_power_w=thermostat.last_power_w[i],
            alarm=thermostat.alarm[i],
        )
        device = DeviceState(
            power_w=arbiter.power_w[i],
            target_w=arbiter.target_w[i],
            since_ts=arbiter.since_ts[i],
            debt_j=arbiter.debt_j[i],
            last_ts=arbiter.last_ts[i],
        )
        air, mass = air_c[i], mass_c[i]
        until = offline_until[i]
        spell = _first_spell(homes, i, k0)
        spell_end = homes.spell_first[i + 1]
        setpoint_c, setpoint_until = 0.0, -math.inf
        gains_w, gains_until = 0.0, -math.inf
        comfort = 0.0
        heat_kwh = 0.0
        backup_kwh = 0.0
        for k in range(k0, k1):
            t = k - k0
            now = clock.time_ts[k]
            while spell < spell_end and homes.spell_start[spell] <= k:
                until = max(until, homes.spell_end[spell])
                spell += 1
            online = until <= k

            if not now < setpoint_until:  # the schedule's value may change from here on
                setpoint_c, setpoint_until = home_setpoint_until(
                    i, mode, now, config.away_setpoint_c, schedule
                )
            seen = Observation(
                room_temp_c=air,
                reading_ts=now,
                device_temp_c=homes.device_temp_c[i],
                fan_ok=homes.fan_ok[i],
                upright=homes.upright[i],
                mode=mode,
            )
            result = tick(now, seen, state, config, setpoint_c, away)
            state = State(
                integral_w=result.integral_w,
                heating=result.heating,
                since_ts=result.since_ts,
                last_tick_ts=result.last_tick_ts,
                last_command_ts=result.last_command_ts,
                last_power_w=result.last_power_w,
                alarm=result.alarm,
            )
            demand_w = result.heat_power_w
            if not now < gains_until:
                gains_w, gains_until = home_gains_until(
                    now,
                    homes.tz_s[i],
                    homes.away_home[i],
                    homes.leave_minute[i],
                    homes.return_minute[i],
                    gains_pair,
                )

            # No task is leased in a burst: a heater works only if it mines.
            has_work = online and is_asic
            target_w = minimum(demand_w, max_power_w)
            stop = (not has_work) or result.alarm != 0
            realized = realize_known(now, target_w, stop, device, devices, which)
            power_w = realized.power_w
            device = DeviceState(
                power_w=power_w,
                target_w=target_w,
                since_ts=realized.since_ts,
                debt_j=realized.debt_j,
                last_ts=now,
            )
            backup_w = demand_w if clock.backup_heating and not has_work else 0.0 * demand_w
            air, mass = step_2r2c(
                air,
                mass,
                a_minus_i,
                b,
                power_w + backup_w + gains_w,
                clock.outdoor_c[k, region],
            )

            outside_k = maximum(setpoint_c - band_k - air, 0.0) + maximum(
                air - setpoint_c - band_k, 0.0
            )
            comfort += outside_k * step_h
            energy_kwh = power_w * step_kwh_per_w
            heat_kwh += energy_kwh
            backup_kwh += backup_w * step_kwh_per_w
            partial[chunk, t, ROOM] += air
            partial[chunk, t, SETPOINT] += setpoint_c
            partial[chunk, t, DEMAND] += demand_w
            partial[chunk, t, HEAT] += power_w
            partial[chunk, t, BACKUP] += backup_w
            partial[chunk, t, MINING] += energy_kwh * mining_value
            partial[chunk, t, len(QUANTITIES) + region] += energy_kwh
            if column >= 0:
                sampled[t, column] = air
            if record:
                recorded[k, i] = air

        thermostat.integral_w[i] = state.integral_w
        thermostat.heating[i] = state.heating
        thermostat.since_ts[i] = state.since_ts
        thermostat.last_tick_ts[i] = state.last_tick_ts
        thermostat.last_command_ts[i] = state.last_command_ts
        thermostat.last_power_w[i] = state.last_power_w
        thermostat.alarm[i] = state.alarm
        arbiter.power_w[i] = device.power_w
        arbiter.target_w[i] = device.target_w
        arbiter.since_ts[i] = device.since_ts
        arbiter.debt_j[i] = device.debt_j
        arbiter.last_ts[i] = device.last_ts
        air_c[i], mass_c[i] = air, mass
        offline_until[i] = until
        totals.comfort_k_h[i] += comfort
        totals.heat_kwh[i] += heat_kwh
        totals.backup_kwh[i] += backup_kwh


@njit(cache=True)
def _rack_range(  # noqa: PLR0917
    lo: int, hi: int, k0: int, k1: int, clock: Any, arbiter: Any, devices: Any
) -> None:
    """Run racks ``lo … hi − 1`` (device indices): without a task each is stopped (0 W)."""
    for i in range(lo, hi):
        device = DeviceState(
            power_w=arbiter.power_w[i],
            target_w=arbiter.target_w[i],
            since_ts=arbiter.since_ts[i],
            debt_j=arbiter.debt_j[i],
            last_ts=arbiter.last_ts[i],
        )
        target_w = minimum(0.0, devices.max_power_w[i])
        which = (i, is_discrete(devices, i))
        for k in range(k0, k1):
            now = clock.time_ts[k]
            realized = realize_known(now, target_w, True, device, devices, which)
            device = DeviceState(
                power_w=realized.power_w,
                target_w=target_w,
                since_ts=realized.since_ts,
                debt_j=realized.debt_j,
                last_ts=now,
            )
        arbiter.power_w[i] = device.power_w
        arbiter.target_w[i] = device.target_w
        arbiter.since_ts[i] = device.since_ts
        arbiter.debt_j[i] = device.debt_j
        arbiter.last_ts[i] = device.last_ts


@njit(cache=True, parallel=True)
def run_burst(  # noqa: PLR0917
    k0: int,
    k1: int,
    homes: Any,
    clock: Any,
    cfg: Any,
    schedule: Any,
    thermostat: Any,
    arbiter: Any,
    devices: Any,
    offline_until: Any,
    rooms: Any,
    totals: Any,
    out: Any,
) -> None:
    """Run steps ``k0 … k1 − 1`` of every home and rack; update the state arrays in place.

    ``cfg``/``schedule`` are the control kernel's ``Config``/``Schedule`` of the homes,
    ``thermostat`` its ``State`` of arrays (N,), ``arbiter`` the arbiter kernel's
    ``DeviceState`` of arrays (D,) and ``devices`` its ``Devices``; ``offline_until`` (D,) the
    first step each device is back online; ``rooms`` is (air (N,), mass (N,)) [°C]; ``out`` is
    (``partial`` (chunks, k1 − k0, Q) zeroed, ``sample_column`` (N,) column of a home in
    ``sampled`` or −1, ``sampled`` (k1 − k0, S) room air per step of the sampled homes,
    ``recorded`` (K, N) room air of every home, or (0, N) to record none).
    """
    n = rooms[0].shape[0]
    d = arbiter.power_w.shape[0]
    home_chunks = (n + CHUNK - 1) // CHUNK
    rack_chunks = (d - n + CHUNK - 1) // CHUNK
    for chunk in prange(home_chunks + rack_chunks):
        if chunk < home_chunks:
            _home_range(
                chunk,
                k0,
                k1,
                homes,
                clock,
                cfg,
                schedule,
                thermostat,
                arbiter,
                devices,
                offline_until,
                rooms,
                totals,
                out,
            )
        else:
            lo = n + (chunk - home_chunks) * CHUNK
            _rack_range(lo, min(lo + CHUNK, d), k0, k1, clock, arbiter, devices)
