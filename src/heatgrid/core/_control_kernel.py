"""The thermostat's rules as one numba kernel (private to :mod:`heatgrid.core.control`).

Every bundle that crosses the kernel's boundary is a named tuple (:class:`Config`,
:class:`Observation`, :class:`State`, :class:`Schedule`, :class:`Outputs`, and :class:`Tick`,
what :func:`tick` returns), built and read by field name on both sides: reordering a
validation group in :mod:`heatgrid.core.control` cannot swap two settings.

:func:`tick` applies the rules of :mod:`heatgrid.core.control` to one home; it is the only
implementation of them. :func:`decide_serial` and :func:`decide_parallel` run it over every home
(``range`` or ``prange``); :func:`decide` (one home) and :func:`decide_many` (a fleet) both
end here. Per-home inputs are 1-D arrays of length ``n``; a setting shared by all homes is an
array of length 1 (``_kernel_math.at`` reads it for every home). :func:`scheduled_setpoint` is the
schedule lookup of :func:`tick` and of :func:`heatgrid.core.control.setpoint_at`.

NaN follows NumPy (``_kernel_math``: ``minimum`` and ``maximum`` propagate it like
``np.minimum`` and ``np.maximum``), and every comparison with NaN is false. No ``fastmath``:
it would assume that there is no NaN, and a NaN reading must raise an alarm.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from heatgrid.core._kernel_math import at, clip, maximum, minimum

__all__: list[str] = []


class Config(NamedTuple):
    """The numbers of ``control._CONFIG_NUMBERS`` (per-home arrays, or one home's floats)."""

    max_power_w: Any
    keep_alive_s: Any
    max_age_s: Any
    kp_w_per_k: Any
    ki_w_per_k_s: Any
    cold_tolerance_k: Any
    hot_tolerance_k: Any
    min_on_s: Any
    min_off_s: Any
    power_step_w: Any
    away_setpoint_c: Any
    min_valid_temp_c: Any
    max_valid_temp_c: Any
    room_limit_c: Any
    device_limit_c: Any


class Observation(NamedTuple):
    """What the thermostat sees (per-home arrays, or one home's values)."""

    room_temp_c: Any
    reading_ts: Any
    device_temp_c: Any
    fan_ok: Any
    upright: Any
    mode: Any


class State(NamedTuple):
    """What the thermostat remembers (per-home arrays, or one home's values)."""

    integral_w: Any
    heating: Any
    since_ts: Any
    last_tick_ts: Any
    last_command_ts: Any
    last_power_w: Any
    alarm: Any


class Schedule(NamedTuple):
    """Schedule tables ``(rows, k)`` and the homes' UTC offsets [h]."""

    start_s: Any
    setpoint_c: Any
    utc_offset_h: Any


class Tick(NamedTuple):
    """What :func:`tick` returns for one home: the new state, then the command."""

    integral_w: Any
    heating: Any
    since_ts: Any
    last_tick_ts: Any
    last_command_ts: Any
    last_power_w: Any
    alarm: Any
    heat_power_w: Any
    reason: Any
    send: Any


class Outputs(NamedTuple):
    """Arrays the kernel writes, one element per home: the new state and the command."""

    integral_w: Any
    heating: Any
    since_ts: Any
    last_tick_ts: Any
    last_command_ts: Any
    last_power_w: Any
    alarm: Any
    heat_power_w: Any
    setpoint_c: Any
    reason: Any
    send: Any
    heating_command: Any
    alarm_command: Any


# Codes of heatgrid.core.control's Mode, Alarm and Reason (tests check that they agree).
MODE_AUTO = 0
MODE_AWAY = 1
ALARM_SENSOR_NOT_FINITE = 1
ALARM_SENSOR_STALE = 2
ALARM_SENSOR_OUT_OF_RANGE = 4
ALARM_ROOM_OVER_TEMPERATURE = 8
ALARM_DEVICE_OVER_TEMPERATURE = 16
ALARM_FAN_FAILURE = 32
ALARM_TIP_OVER = 64
REASON_IDLE = 0
REASON_HEATING = 1
REASON_HOLD_ON = 2
REASON_HOLD_OFF = 3
REASON_USER_OFF = 4
REASON_ALARM = 5

CHUNK = 4096
"""Homes per task of the parallel kernel."""
_SECONDS_PER_DAY = 86_400.0
_SECONDS_PER_WEEK = 7 * _SECONDS_PER_DAY
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0
UNTIL_GUARD_S = 1.0
"""Margin [s] kept before a change point by :func:`scheduled_setpoint_until`."""


@njit(cache=True, inline="always")
def scheduled_setpoint_until(
    start_s: Any, setpoint_c: Any, row: int, utc_offset_h: float, now_ts: float
) -> Any:
    """Return the setpoint in force at ``now_ts`` [°C] and an instant it holds until [POSIX s].

    The setpoint is that of row ``row`` of a schedule table: ``start_s`` [s since local
    Monday 00:00] and ``setpoint_c`` [°C] are 2-D of the same shape, one schedule per row, each
    row sorted (``ThermostatConfigArrays`` checks it); before the week's first change point the
    last one is in force. For every instant ``t`` with ``now_ts <= t < until_ts`` this function
    gives the same setpoint: ``until_ts`` is the next change point (or the week's end) less
    :data:`UNTIL_GUARD_S` and a part in 1e9 of ``now_ts``, far more than the rounding of the
    instant's time of week. A loop that steps forward in time looks the table up again only
    from ``until_ts`` on (NaN when ``now_ts`` is not finite: look up every time).
    """
    local_s = now_ts + utc_offset_h * 3600.0
    week_s = np.mod(local_s + EPOCH_WEEKDAY * _SECONDS_PER_DAY, _SECONDS_PER_WEEK)
    width = start_s.shape[1]
    count = 0  # change points at or before week_s: bisect_right in the sorted row
    high = width
    while count < high:
        middle = (count + high) // 2
        if start_s[row, middle] <= week_s:
            count = middle + 1
        else:
            high = middle
    end_s = start_s[row, count] if count < width else _SECONDS_PER_WEEK
    until_ts = now_ts + (end_s - week_s) - (UNTIL_GUARD_S + 1e-9 * abs(now_ts))
    return float(setpoint_c[row, (count - 1) % width]), until_ts


@njit(cache=True)
def scheduled_setpoint(
    start_s: Any, setpoint_c: Any, row: int, utc_offset_h: float, now_ts: float
) -> float:
    """Return the setpoint in force at ``now_ts`` [°C] in row ``row`` of a schedule table.

    The rule of :func:`scheduled_setpoint_until` (its first result).
    """
    setpoint, _ = scheduled_setpoint_until(start_s, setpoint_c, row, utc_offset_h, now_ts)
    return float(setpoint)


@njit(cache=True)
def setpoints(start_s: Any, setpoint_c: Any, utc_offset_h: float, now_ts: Any, out: Any) -> None:
    """Write :func:`scheduled_setpoint` of schedule row 0 at each of ``now_ts`` to ``out``."""
    for i in range(now_ts.shape[0]):
        out[i] = scheduled_setpoint(start_s, setpoint_c, 0, utc_offset_h, now_ts[i])


@njit(cache=True)
def setpoint_rows(  # noqa: PLR0917
    start_s: Any, setpoint_c: Any, utc_offset_h: Any, rows: Any, now_ts: Any, out: Any
) -> None:
    """Write row ``rows[i]``'s setpoint (offset ``utc_offset_h[i]``) at ``now_ts`` to ``out[i]``."""
    for i in range(rows.shape[0]):
        for j in range(now_ts.shape[0]):
            out[i, j] = scheduled_setpoint(start_s, setpoint_c, rows[i], utc_offset_h[i], now_ts[j])


@njit(cache=True, inline="always")
def _alarm(now_ts: float, obs: Any, limits: Any) -> Any:
    """Rule 1: alarm flags of a reading and the interlocks, and whether the reading is usable.

    ``limits`` is ``(max_age_s, min_valid_temp_c, max_valid_temp_c, room_limit_c,
    device_limit_c)``.
    """
    temp_c, reading_ts, device_temp_c, fan_ok, upright = obs
    max_age_s, min_valid_temp_c, max_valid_temp_c, room_limit_c, device_limit_c = limits
    temp_finite = math.isfinite(temp_c)
    finite = temp_finite and math.isfinite(reading_ts)
    stale = finite and abs(now_ts - reading_ts) > max_age_s
    out_of_range = temp_finite and (temp_c < min_valid_temp_c or temp_c > max_valid_temp_c)
    alarm = 0
    if not finite:
        alarm |= ALARM_SENSOR_NOT_FINITE
    if stale:
        alarm |= ALARM_SENSOR_STALE
    if out_of_range:
        alarm |= ALARM_SENSOR_OUT_OF_RANGE
    if temp_finite and temp_c >= room_limit_c:
        alarm |= ALARM_ROOM_OVER_TEMPERATURE
    if device_temp_c >= device_limit_c:
        alarm |= ALARM_DEVICE_OVER_TEMPERATURE
    if not fan_ok:
        alarm |= ALARM_FAN_FAILURE
    if not upright:
        alarm |= ALARM_TIP_OVER
    return alarm, finite and not stale and not out_of_range


@njit(cache=True, inline="always")
def _integrate(was_on: bool, heating: bool, safe: bool, error_k: float, pi: Any) -> Any:
    """Rule 4: the new integral term [W] and the heat power [W].

    ``pi`` is ``(integral_w, dt_s, kp_w_per_k, ki_w_per_k_s, max_power_w)``.
    """
    integral_w, dt_s, kp_w_per_k, ki_w_per_k_s, max_power_w = pi
    proportional_w = kp_w_per_k * error_k
    new_integral_w = integral_w
    if was_on and heating:
        candidate_w = integral_w + ki_w_per_k_s * error_k * dt_s
        if error_k > 0.0:
            new_integral_w = minimum(candidate_w, maximum(integral_w, max_power_w - proportional_w))
        else:
            new_integral_w = maximum(candidate_w, minimum(integral_w, -proportional_w))
    new_integral_w = 0.0 if safe else clip(new_integral_w, 0.0, max_power_w)
    power_w = clip(proportional_w + new_integral_w, 0.0, max_power_w) if heating else 0.0
    return new_integral_w, power_w


@njit(cache=True, inline="always")
def _reason(alarm: int, user_off: bool, was_on: bool, heating: bool, wants: Any) -> int:
    """Return the rule that decided, by precedence; ``wants`` is ``(want_on, want_off)``."""
    want_on, want_off = wants
    if alarm != 0:
        return REASON_ALARM
    if user_off:
        return REASON_USER_OFF
    if was_on and heating and want_off:
        return REASON_HOLD_ON
    if not was_on and not heating and want_on:
        return REASON_HOLD_OFF
    if heating:
        return REASON_HEATING
    return REASON_IDLE


@njit(cache=True, inline="always")
def tick(now_ts: float, obs: Any, state: Any, cfg: Any, setpoint_c: float, away: bool) -> Any:  # noqa: PLR0917
    """Apply the rules to one home (see :mod:`heatgrid.core.control`); return a :class:`Tick`.

    ``obs`` is an :class:`Observation`, ``state`` a :class:`State` and ``cfg`` a
    :class:`Config` of one home's values; ``setpoint_c`` is the setpoint in force and ``away``
    whether the mode is away.
    """
    alarm, valid = _alarm(
        now_ts,
        (obs.room_temp_c, obs.reading_ts, obs.device_temp_c, obs.fan_ok, obs.upright),
        (
            cfg.max_age_s,
            cfg.min_valid_temp_c,
            cfg.max_valid_temp_c,
            cfg.room_limit_c,
            cfg.device_limit_c,
        ),
    )
    was_on = state.heating
    user_off = not (obs.mode == MODE_AUTO or away)
    safe = alarm != 0 or user_off
    error_k = setpoint_c - obs.room_temp_c if valid else 0.0

    # Rules 2 and 3: tolerances, minimum on and off times; rule 1 beats them.
    elapsed_s = now_ts - state.since_ts
    want_on = error_k >= cfg.cold_tolerance_k
    want_off = error_k <= -cfg.hot_tolerance_k
    if was_on:
        heating = not (want_off and elapsed_s >= cfg.min_on_s)
    else:
        heating = want_on and elapsed_s >= cfg.min_off_s
    heating = heating and not safe

    last_tick_ts = state.last_tick_ts
    dt_s = clip(now_ts - last_tick_ts, 0.0, cfg.max_age_s) if math.isfinite(last_tick_ts) else 0.0
    new_integral_w, power_w = _integrate(
        was_on,
        heating,
        safe,
        error_k,
        (state.integral_w, dt_s, cfg.kp_w_per_k, cfg.ki_w_per_k_s, cfg.max_power_w),
    )
    reason = _reason(alarm, user_off, was_on, heating, (want_on, want_off))

    # Rule 5: send on a change or at the keep-alive.
    switched = heating != was_on
    send = (
        switched
        or alarm != state.alarm
        or abs(power_w - state.last_power_w) > cfg.power_step_w
        or not (now_ts - state.last_command_ts < cfg.keep_alive_s)
    )
    return Tick(
        integral_w=new_integral_w,
        heating=heating,
        since_ts=now_ts if switched else state.since_ts,
        last_tick_ts=now_ts,
        last_command_ts=now_ts if send else state.last_command_ts,
        last_power_w=power_w if send else state.last_power_w,
        alarm=alarm,
        heat_power_w=power_w,
        reason=reason,
        send=send,
    )


@njit(cache=True, inline="always")
def home_setpoint_until(
    i: int, mode: int, now_ts: float, away_setpoint_c: float, schedule: Any
) -> Any:
    """Return home ``i``'s setpoint in force at ``now_ts`` [°C] and an instant it holds until.

    The away setpoint in away mode (held for ever: ``until_ts`` is +inf), else its schedule's
    (:func:`scheduled_setpoint_until`). ``schedule`` is a :class:`Schedule` of one row shared by
    all homes or one row per home. :func:`home_setpoint` and the simulator's fused fleet loop
    (which looks the schedule up again only once ``until_ts`` is reached) both take it here.
    """
    if mode == MODE_AWAY:
        return float(away_setpoint_c), math.inf
    row = 0 if schedule.start_s.shape[0] == 1 else i
    return scheduled_setpoint_until(
        schedule.start_s, schedule.setpoint_c, row, at(schedule.utc_offset_h, i), now_ts
    )


@njit(cache=True, inline="always")
def home_setpoint(i: int, mode: int, now_ts: float, away_setpoint_c: float, schedule: Any) -> float:
    """Return home ``i``'s setpoint in force at ``now_ts`` [°C] (:func:`home_setpoint_until`)."""
    setpoint, _ = home_setpoint_until(i, mode, now_ts, away_setpoint_c, schedule)
    return float(setpoint)


@njit(cache=True, inline="always")
def home_config(cfg: Any, i: int) -> Any:
    """Return home ``i``'s :class:`Config` of floats from a :class:`Config` of arrays."""
    return Config(
        max_power_w=at(cfg.max_power_w, i),
        keep_alive_s=at(cfg.keep_alive_s, i),
        max_age_s=at(cfg.max_age_s, i),
        kp_w_per_k=at(cfg.kp_w_per_k, i),
        ki_w_per_k_s=at(cfg.ki_w_per_k_s, i),
        cold_tolerance_k=at(cfg.cold_tolerance_k, i),
        hot_tolerance_k=at(cfg.hot_tolerance_k, i),
        min_on_s=at(cfg.min_on_s, i),
        min_off_s=at(cfg.min_off_s, i),
        power_step_w=at(cfg.power_step_w, i),
        away_setpoint_c=at(cfg.away_setpoint_c, i),
        min_valid_temp_c=at(cfg.min_valid_temp_c, i),
        max_valid_temp_c=at(cfg.max_valid_temp_c, i),
        room_limit_c=at(cfg.room_limit_c, i),
        device_limit_c=at(cfg.device_limit_c, i),
    )


@njit(cache=True)
def _decide_range(  # noqa: PLR0917
    lo: int, hi: int, now_ts: float, obs: Any, state: Any, cfg: Any, schedule: Any, out: Any
) -> None:
    """Run :func:`tick` over homes ``lo`` to ``hi − 1``: load, decide, store (by field name)."""
    for i in range(lo, hi):
        home_mode = at(obs.mode, i)
        away = home_mode == MODE_AWAY
        setpoint_c = home_setpoint(i, home_mode, now_ts, at(cfg.away_setpoint_c, i), schedule)
        result = tick(
            now_ts,
            Observation(
                room_temp_c=at(obs.room_temp_c, i),
                reading_ts=at(obs.reading_ts, i),
                device_temp_c=at(obs.device_temp_c, i),
                fan_ok=at(obs.fan_ok, i),
                upright=at(obs.upright, i),
                mode=home_mode,
            ),
            State(
                integral_w=at(state.integral_w, i),
                heating=at(state.heating, i),
                since_ts=at(state.since_ts, i),
                last_tick_ts=at(state.last_tick_ts, i),
                last_command_ts=at(state.last_command_ts, i),
                last_power_w=at(state.last_power_w, i),
                alarm=at(state.alarm, i),
            ),
            home_config(cfg, i),
            setpoint_c,
            away,
        )
        out.integral_w[i] = result.integral_w
        out.heating[i] = result.heating
        out.heating_command[i] = result.heating
        out.since_ts[i] = result.since_ts
        out.last_tick_ts[i] = result.last_tick_ts
        out.last_command_ts[i] = result.last_command_ts
        out.last_power_w[i] = result.last_power_w
        out.alarm[i] = result.alarm
        out.alarm_command[i] = result.alarm
        out.heat_power_w[i] = result.heat_power_w
        out.setpoint_c[i] = setpoint_c
        out.reason[i] = result.reason
        out.send[i] = result.send


@njit(cache=True)
def decide_serial(  # noqa: PLR0917
    n: int, now_ts: float, obs: Any, state: Any, cfg: Any, schedule: Any, out: Any
) -> None:
    """Run :func:`tick` over ``n`` homes on this thread."""
    _decide_range(0, n, now_ts, obs, state, cfg, schedule, out)


@njit(cache=True, parallel=True)
def decide_parallel(  # noqa: PLR0917
    n: int, now_ts: float, obs: Any, state: Any, cfg: Any, schedule: Any, out: Any
) -> None:
    """Run :func:`tick` over ``n`` homes on numba's threads, ``CHUNK`` homes per task."""
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        lo = chunk * CHUNK
        _decide_range(lo, min(lo + CHUNK, n), now_ts, obs, state, cfg, schedule, out)
