"""Thermostat: the pure ``decide(state, observation, now_ts, config)`` and its vectorized twin.

The agent calls :func:`decide` once per tick with the real clock, the simulator calls
:func:`decide_many` for many homes at once, and both run the same compiled rules
(``heatgrid.core._control_kernel.tick``, a numba kernel over the homes); :func:`decide` is
:func:`decide_many` on arrays of length one.

Rules, in order of precedence (after Home Assistant's ``generic_thermostat``):

1. **Interlocks and bad readings beat everything.** A room reading that is not finite, stale
   (``|now_ts − reading_ts| > max_age_s``) or outside ``[min_valid_temp_c, max_valid_temp_c]``,
   a room at or above ``room_limit_c``, a device at or above ``device_limit_c``, a failed fan or
   a tipped-over heater stops heating on that very tick (``heat_power_w = 0``), whatever the
   minimum on time says, and sets :class:`Alarm` flags. A bad reading is never used. The
   user's :attr:`Mode.OFF` (and any unknown mode code) stops heating the same way, without an
   alarm. The integrator is reset to 0 in these safe states.
2. **Default off, cold and hot tolerance.** Heating starts from off only when the room is at or
   below ``setpoint_c − cold_tolerance_k``; it is forced off at or above
   ``setpoint_c + hot_tolerance_k``.
3. **Minimum on and off times.** Except for rule 1, heating does not start before ``min_off_s``
   has passed since it stopped, and does not stop before ``min_on_s`` has passed since it
   started (:attr:`Reason.HOLD_OFF`, :attr:`Reason.HOLD_ON`).
4. **PI control of heat power while heating**, ``heat_power_w = clip(kp·e + I, 0, max_power_w)``
   with ``e = setpoint_c − room_temp_c``. Anti-windup by clamping: the integrator ``I`` only
   integrates while heating was on over the whole interval, and never past the value that
   saturates the output (it may grow only up to ``max_power_w − kp·e`` and shrink only down
   to ``−kp·e``), and it stays in ``[0, max_power_w]``. While off, ``I`` is frozen, so heating
   resumes near the power that held the room before (bumpless restart). The integration step
   is ``now_ts − last tick``, clipped to ``[0, max_age_s]``.
5. **Keep-alive.** ``send`` tells the caller to transmit the command to the device: when heating
   starts or stops, the alarm flags change, the power moves by more than ``power_step_w``, or
   ``keep_alive_s`` has passed since the last command sent.

The setpoint in force comes from a :class:`WeeklySchedule` (local change points, fixed UTC
offset; time is UTC inside) in :attr:`Mode.AUTO`, and is ``away_setpoint_c`` in
:attr:`Mode.AWAY`. :func:`tune_pi` derives the gains from the room's RC parameters.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heatgrid.core import _control_kernel as _kernel
from heatgrid.core._arrays import (
    FloatArray,
    FloatOrArray,
    checked_array,
    repeated,
    scalar_or_array,
)
from heatgrid.core._kernel_math import kernel_input
from heatgrid.core.defaults import DEFAULT_HOT_TOLERANCE_K
from heatgrid.core.errors import InputError, require_finite, require_positive

__all__ = [
    "Alarm",
    "HeatCommand",
    "HeatCommandArrays",
    "Mode",
    "Observation",
    "ObservationArrays",
    "PiGains",
    "Reason",
    "ThermostatConfig",
    "ThermostatConfigArrays",
    "ThermostatState",
    "ThermostatStateArrays",
    "WeeklySchedule",
    "decide",
    "decide_many",
    "next_change_ts",
    "scheduled_setpoints_c",
    "setpoint_at",
    "tune_pi",
    "tune_pi_many",
]

BoolArray: TypeAlias = NDArray[np.bool_]
IntArray: TypeAlias = NDArray[np.int64]

_SECONDS_PER_DAY = 86_400.0
_SECONDS_PER_WEEK = 7 * _SECONDS_PER_DAY
_MINUTES_PER_DAY = 1440
_MAX_UTC_OFFSET_H = 14.0
_PARALLEL_MIN_HOMES = 20_000
"""From this many homes :func:`decide_many` runs on numba's threads (below, on this one)."""


class Mode(enum.IntEnum):
    """What the user asked for."""

    AUTO = 0
    """Follow the weekly schedule."""
    AWAY = 1
    """Hold ``away_setpoint_c``."""
    OFF = 2
    """No heating (safe state, no alarm)."""


class Alarm(enum.IntFlag):
    """Why heating was stopped for safety; several flags may be set at once."""

    NONE = 0
    SENSOR_NOT_FINITE = 1
    SENSOR_STALE = 2
    SENSOR_OUT_OF_RANGE = 4
    ROOM_OVER_TEMPERATURE = 8
    DEVICE_OVER_TEMPERATURE = 16
    FAN_FAILURE = 32
    TIP_OVER = 64


class Reason(enum.IntEnum):
    """The rule that decided the command."""

    IDLE = 0
    """Off: the room is warm enough."""
    HEATING = 1
    """On under PI control."""
    HOLD_ON = 2
    """On past the hot tolerance because ``min_on_s`` has not passed."""
    HOLD_OFF = 3
    """Off below the cold tolerance because ``min_off_s`` has not passed."""
    USER_OFF = 4
    """Off because the user chose :attr:`Mode.OFF`."""
    ALARM = 5
    """Off because of a bad reading or an interlock (see the alarm flags)."""


class PiGains(NamedTuple):
    """Gains of the PI heat-power controller."""

    kp_w_per_k: float
    """Proportional gain [W/K]."""
    ki_w_per_k_s: float
    """Integral gain [W/(K·s)]."""
    integral_time_s: float
    """Integral time ``kp / ki`` [s]."""


def tune_pi(
    ua_w_per_k: float,
    time_constant_s: float,
    max_power_w: float,
    *,
    proportional_band_k: float = 2.0,
    damping_ratio: float = 1.0,
    max_integral_time_s: float = 7200.0,
) -> PiGains:
    """Return PI gains for a room with the 1R1C parameters ``ua_w_per_k`` and ``time_constant_s``.

    Rule: the proportional band is ``proportional_band_k``, i.e. an error of that many kelvin
    alone asks for full power: ``kp = max_power_w / proportional_band_k``. The integral time
    places the closed loop of the PI controller and the room ``G(s) = (1/UA) / (τ s + 1)`` at
    the requested damping: its characteristic polynomial is ``τ Ti s² + Ti (1 + L) s + L`` with
    loop gain ``L = kp / UA``, so ``ζ = (1 + L)/2 · √(Ti / (L τ))`` and

    ``Ti = 4 ζ² L τ / (1 + L)²``, ``ki = kp / Ti``.

    With ``ζ = 1`` the integral time is a fraction ``4L/(1+L)² ≤ 1`` of the time constant.

    It is at most ``max_integral_time_s``: a real room is not 1R1C. Its air follows the
    heater within minutes while the building mass takes a day, so an integral time that is a
    fraction of the slow time constant (22.5 h for 200 W/K, 30 h, 1.2 kW) leaves the air a
    kelvin short for a day after each setpoint step or change in the weather. Two hours
    settles such a room within 0.3 K (``tests/agent/test_closed_loop.py``).

    Parameters
    ----------
    ua_w_per_k : float
        Heat-loss coefficient of the room [W/K], > 0.
    time_constant_s : float
        Time constant ``C / UA`` of the room [s], > 0.
    max_power_w : float
        Highest heat power of the heater [W], > 0.
    proportional_band_k : float
        Error that alone asks for full power [K], > 0.
    damping_ratio : float
        Damping ratio ζ of the closed loop [dimensionless], > 0.
    max_integral_time_s : float
        Longest integral time [s], > 0 (``math.inf``: the 1R1C rule alone).

    Returns
    -------
    PiGains
        ``kp_w_per_k`` [W/K], ``ki_w_per_k_s`` [W/(K·s)] and ``integral_time_s`` [s].

    Raises
    ------
    InputError
        If a parameter is not finite or not > 0.
    """
    ua = require_positive("ua_w_per_k", ua_w_per_k)
    tau = require_positive("time_constant_s", time_constant_s)
    power = require_positive("max_power_w", max_power_w)
    shape = _pi_shape(proportional_band_k, damping_ratio, max_integral_time_s)
    kp, ki, integral_time_s = _pi_gains(np.float64(ua), np.float64(tau), np.float64(power), shape)
    return PiGains(float(kp), float(ki), float(integral_time_s))


def tune_pi_many(
    ua_w_per_k: ArrayLike,
    time_constant_s: ArrayLike,
    max_power_w: ArrayLike,
    *,
    proportional_band_k: float = 2.0,
    damping_ratio: float = 1.0,
    max_integral_time_s: float = 7200.0,
) -> tuple[FloatArray, FloatArray]:
    """Return :func:`tune_pi`'s gains for many rooms at once, the same numbers, as arrays.

    Parameters
    ----------
    ua_w_per_k, time_constant_s, max_power_w : array_like
        Per room, as :func:`tune_pi`'s [W/K], [s], [W]; each > 0, broadcast together.
    proportional_band_k, damping_ratio, max_integral_time_s : float
        As :func:`tune_pi`'s, shared by all rooms.

    Returns
    -------
    kp_w_per_k, ki_w_per_k_s : numpy.ndarray
        Proportional [W/K] and integral [W/(K·s)] gains per room.

    Raises
    ------
    InputError
        If a parameter is not finite or not > 0 (the message names it).
    """
    ua = checked_array("ua_w_per_k", ua_w_per_k, minimum=0.0, strictly_above=True)
    tau = checked_array("time_constant_s", time_constant_s, minimum=0.0, strictly_above=True)
    power = checked_array("max_power_w", max_power_w, minimum=0.0, strictly_above=True)
    shape = _pi_shape(proportional_band_k, damping_ratio, max_integral_time_s)
    kp, ki, _ = _pi_gains(ua, tau, power, shape)
    return np.asarray(kp, dtype=np.float64), np.asarray(ki, dtype=np.float64)


def _pi_shape(band_k: float, damping_ratio: float, max_integral_time_s: float) -> tuple[float, ...]:
    """Check :func:`tune_pi`'s shared settings; return (band [K], ζ, longest integral time [s])."""
    band = require_positive("proportional_band_k", band_k)
    zeta = require_positive("damping_ratio", damping_ratio)
    if not (max_integral_time_s > 0.0):
        raise InputError(f"max_integral_time_s must be > 0, got {max_integral_time_s!r}")
    return band, zeta, float(max_integral_time_s)


def _pi_gains(ua: Any, tau: Any, power: Any, shape: tuple[float, ...]) -> tuple[Any, Any, Any]:
    """Apply :func:`tune_pi`'s rule to float64 scalars or arrays; return (kp, ki, integral time).

    Squares are products (``np.square``), in both forms alike: ``x ** 2`` on a Python float
    calls the C library's ``pow``, which differed from ``x * x`` in the last bit for about one
    room in 30,000.
    """
    band, zeta, max_integral_time_s = shape
    kp = power / band
    loop_gain = kp / ua
    integral_time_s = np.minimum(
        4.0 * np.square(zeta) * loop_gain * tau / np.square(1.0 + loop_gain), max_integral_time_s
    )
    return kp, kp / integral_time_s, integral_time_s


@dataclass(frozen=True)
class WeeklySchedule:
    """A weekly setpoint schedule in local time with a fixed UTC offset.

    Parameters
    ----------
    change_points : tuple of (int, int, float)
        ``(weekday, minute_of_day, setpoint_c)``: from local ``weekday`` (0 is Monday, 6 is
        Sunday) at ``minute_of_day`` (0–1439, local) on, the setpoint is ``setpoint_c`` [°C],
        until the next change point; the last one of the week runs on into the first. At least
        one; any order (stored sorted); no two at the same time.
    utc_offset_h : float
        Local time minus UTC [h], in [-14, 14]; fixed (daylight saving time is not followed).
    """

    change_points: tuple[tuple[int, int, float], ...]
    utc_offset_h: float = 0.0

    def __post_init__(self) -> None:
        offset = require_finite("utc_offset_h", self.utc_offset_h)
        if abs(offset) > _MAX_UTC_OFFSET_H:
            raise InputError(f"utc_offset_h must be within ±14 h, got {self.utc_offset_h!r}")
        points = tuple(self.change_points)
        if not points:
            raise InputError("change_points must hold at least one (weekday, minute, setpoint_c)")
        checked = sorted(_checked_point(index, point) for index, point in enumerate(points))
        for (day_a, minute_a, _), (day_b, minute_b, _) in itertools.pairwise(checked):
            if (day_a, minute_a) == (day_b, minute_b):
                raise InputError(
                    f"change_points: two change points at weekday {day_a} minute {minute_a}"
                )
        object.__setattr__(self, "change_points", tuple(checked))
        object.__setattr__(self, "utc_offset_h", offset)

    @classmethod
    def constant(cls, setpoint_c: float) -> WeeklySchedule:
        """Return a schedule that holds ``setpoint_c`` [°C] all week."""
        return cls(((0, 0, setpoint_c),))


def _checked_point(index: int, point: tuple[int, int, float]) -> tuple[int, int, float]:
    name = f"change_points[{index}]"
    try:
        weekday, minute, setpoint_c = point
    except (TypeError, ValueError):
        raise InputError(f"{name} must be (weekday, minute_of_day, setpoint_c)") from None
    if not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise InputError(f"{name}: weekday must be an integer 0 (Monday) to 6, got {weekday!r}")
    if not isinstance(minute, int) or not 0 <= minute < _MINUTES_PER_DAY:
        raise InputError(f"{name}: minute_of_day must be an integer 0 to 1439, got {minute!r}")
    return weekday, minute, require_finite(f"{name} setpoint_c", setpoint_c)


def _schedule_table(schedules: Sequence[WeeklySchedule]) -> tuple[FloatArray, FloatArray]:
    """Return start times [s of the local week] and setpoints [°C], one row per schedule.

    Rows shorter than the longest repeat their last change point, which changes nothing.
    """
    width = max(len(schedule.change_points) for schedule in schedules)
    start_s = np.empty((len(schedules), width))
    setpoint_c = np.empty((len(schedules), width))
    for row, schedule in enumerate(schedules):
        points = list(schedule.change_points)
        points += [points[-1]] * (width - len(points))
        start_s[row] = [(day * _MINUTES_PER_DAY + minute) * 60.0 for day, minute, _ in points]
        setpoint_c[row] = [value for _, _, value in points]
    return start_s, setpoint_c


@overload
def setpoint_at(schedule: WeeklySchedule, now_ts: float) -> float: ...
@overload
def setpoint_at(schedule: WeeklySchedule, now_ts: ArrayLike) -> FloatOrArray: ...
def setpoint_at(schedule: WeeklySchedule, now_ts: ArrayLike) -> FloatOrArray:
    """Return the scheduled setpoint at UTC timestamps.

    Parameters
    ----------
    schedule : WeeklySchedule
        Weekly change points in local time.
    now_ts : float or array_like
        POSIX timestamps, UTC [s].

    Returns
    -------
    float or numpy.ndarray
        Setpoint in force [°C], shaped like ``now_ts``.

    Raises
    ------
    InputError
        If a timestamp is not finite.
    """
    now = checked_array("now_ts", now_ts)
    start_s, setpoint_c = _schedule_table([schedule])
    result = np.empty(now.size)
    _kernel.setpoints(start_s, setpoint_c, schedule.utc_offset_h, now.reshape(-1), result)
    return scalar_or_array(result.reshape(now.shape))


def scheduled_setpoints_c(
    config: ThermostatConfigArrays, homes: ArrayLike, timestamps_ts: ArrayLike
) -> FloatArray:
    """Return the scheduled setpoint of some homes at some instants.

    Parameters
    ----------
    config : ThermostatConfigArrays
        Settings of the fleet (its schedule tables and UTC offsets).
    homes : array_like of int
        Indices of the homes, shape ``(m,)``.
    timestamps_ts : array_like
        POSIX timestamps, UTC [s], shape ``(k,)``.

    Returns
    -------
    numpy.ndarray
        Setpoint in force [°C], shape ``(m, k)``: what :func:`setpoint_at` gives for each
        home's own schedule.
    """
    rows = np.asarray(homes, dtype=np.int64).reshape(-1)
    instants = checked_array("timestamps_ts", timestamps_ts).reshape(-1)
    start_s, table_c = config.schedule_start_s, config.schedule_setpoint_c
    width = start_s.shape[-1]
    table_rows = math.prod(start_s.shape[:-1])
    start_s, table_c = start_s.reshape(table_rows, width), table_c.reshape(table_rows, width)
    offsets_h = np.asarray(config.utc_offset_h, dtype=np.float64).reshape(-1)
    offset_of = offsets_h[rows] if offsets_h.size > 1 else np.full(rows.size, offsets_h[0])
    out = np.empty((rows.size, instants.size))
    _kernel.setpoint_rows(
        kernel_input(start_s, np.float64),
        kernel_input(table_c, np.float64),
        kernel_input(offset_of, np.float64),
        kernel_input(rows if table_rows > 1 else np.zeros_like(rows), np.int64),
        kernel_input(instants, np.float64),
        out,
    )
    return out


def next_change_ts(schedule: WeeklySchedule, now_ts: float) -> float:
    """Return the first change point of ``schedule`` strictly after ``now_ts``.

    A setpoint set by hand holds until then, as on most smart thermostats.

    Parameters
    ----------
    schedule : WeeklySchedule
        The weekly schedule (local time at its ``utc_offset_h``).
    now_ts : float
        The present [POSIX s, UTC].

    Returns
    -------
    float
        The next change point [POSIX s, UTC], less than a week after ``now_ts``.
    """
    now = require_finite("now_ts", now_ts)
    start_s, _ = _schedule_table([schedule])
    week_s = (now + schedule.utc_offset_h * 3600.0 + _kernel.EPOCH_WEEKDAY * _SECONDS_PER_DAY) % (
        _SECONDS_PER_WEEK
    )
    later_s = [float(s) for s in start_s[0] if s > week_s]
    next_s = later_s[0] if later_s else float(start_s[0][0]) + _SECONDS_PER_WEEK
    return now + (next_s - week_s)


@dataclass(frozen=True, kw_only=True)
class ThermostatConfig:
    """Settings of one thermostat.

    Parameters
    ----------
    max_power_w : float
        Highest heat power the thermostat asks for [W], > 0.
    kp_w_per_k : float
        Proportional gain [W/K], >= 0 (see :func:`tune_pi`).
    ki_w_per_k_s : float
        Integral gain [W/(K·s)], >= 0.
    schedule : WeeklySchedule
        Setpoints in :attr:`Mode.AUTO`.
    away_setpoint_c : float
        Setpoint in :attr:`Mode.AWAY` [°C].
    cold_tolerance_k : float
        Heating starts at or below ``setpoint_c − cold_tolerance_k`` [K], >= 0.
    hot_tolerance_k : float
        Heating stops at or above ``setpoint_c + hot_tolerance_k`` [K], >= 0.
    min_on_s : float
        Shortest heating period, except for safety stops [s], >= 0.
    min_off_s : float
        Shortest pause between heating periods [s], >= 0.
    keep_alive_s : float
        Longest time between two commands sent [s], > 0.
    max_age_s : float
        Oldest room reading that is still used [s], > 0; also the longest integration step.
    min_valid_temp_c, max_valid_temp_c : float
        Plausible range of room readings [°C]; outside it a reading is rejected.
    room_limit_c : float
        Room over-temperature interlock [°C].
    device_limit_c : float
        Device over-temperature interlock [°C].
    power_step_w : float
        A heat-power change larger than this is sent at once, not at the keep-alive [W], >= 0.
    """

    max_power_w: float
    kp_w_per_k: float
    ki_w_per_k_s: float
    schedule: WeeklySchedule
    away_setpoint_c: float = 16.0
    cold_tolerance_k: float = 0.3
    hot_tolerance_k: float = DEFAULT_HOT_TOLERANCE_K
    min_on_s: float = 600.0
    min_off_s: float = 600.0
    keep_alive_s: float = 300.0
    max_age_s: float = 300.0
    min_valid_temp_c: float = -30.0
    max_valid_temp_c: float = 60.0
    room_limit_c: float = 30.0
    device_limit_c: float = 90.0
    power_step_w: float = 10.0
    # The same settings as arrays for decide(); set on each instance by __post_init__. Not a
    # dataclass field, so that asdict(), ==, repr() and replace() see only the settings.
    _arrays: ClassVar[ThermostatConfigArrays]

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, WeeklySchedule):
            raise InputError(f"schedule must be a WeeklySchedule, got {self.schedule!r}")
        # Validates every number; kept for decide(), which runs the array code.
        object.__setattr__(self, "_arrays", ThermostatConfigArrays.from_configs([self]))


_POSITIVE = ("max_power_w", "keep_alive_s", "max_age_s")
_NON_NEGATIVE = (
    "kp_w_per_k",
    "ki_w_per_k_s",
    "cold_tolerance_k",
    "hot_tolerance_k",
    "min_on_s",
    "min_off_s",
    "power_step_w",
)
_FINITE = (
    "away_setpoint_c",
    "min_valid_temp_c",
    "max_valid_temp_c",
    "room_limit_c",
    "device_limit_c",
)
_CONFIG_NUMBERS = _POSITIVE + _NON_NEGATIVE + _FINITE
_FLOAT_OUTPUTS = (
    "integral_w",
    "since_ts",
    "last_tick_ts",
    "last_command_ts",
    "last_power_w",
    "heat_power_w",
    "setpoint_c",
)
_BOOL_OUTPUTS = ("heating", "send", "heating_command")
_CODE_OUTPUTS = ("alarm", "reason", "alarm_command")


def _validate_config_values(values: dict[str, ArrayLike]) -> dict[str, FloatArray]:
    checked = {name: checked_array(name, values[name], minimum=0.0) for name in _NON_NEGATIVE}
    for name in _POSITIVE:
        checked[name] = checked_array(name, values[name], minimum=0.0, strictly_above=True)
    for name in _FINITE:
        checked[name] = checked_array(name, values[name])
    if bool(np.any(checked["min_valid_temp_c"] >= checked["max_valid_temp_c"])):
        raise InputError("min_valid_temp_c must be below max_valid_temp_c")
    return checked


@dataclass(frozen=True, kw_only=True)
class ThermostatConfigArrays:
    """Settings of many thermostats, struct of arrays (see :class:`ThermostatConfig`).

    Every number field is an array broadcastable to the number of homes ``(n,)``. The schedule
    is a table: ``schedule_start_s`` holds the change points' starts [s since local Monday
    00:00], sorted along the last axis, and ``schedule_setpoint_c`` their setpoints [°C], both
    ``(n, k)`` or ``(k,)``; ``utc_offset_h`` is local time minus UTC [h]. Build one with
    :meth:`from_configs`.
    """

    max_power_w: FloatArray
    kp_w_per_k: FloatArray
    ki_w_per_k_s: FloatArray
    schedule_start_s: FloatArray
    schedule_setpoint_c: FloatArray
    utc_offset_h: FloatArray
    away_setpoint_c: FloatArray
    cold_tolerance_k: FloatArray
    hot_tolerance_k: FloatArray
    min_on_s: FloatArray
    min_off_s: FloatArray
    keep_alive_s: FloatArray
    max_age_s: FloatArray
    min_valid_temp_c: FloatArray
    max_valid_temp_c: FloatArray
    room_limit_c: FloatArray
    device_limit_c: FloatArray
    power_step_w: FloatArray

    def __post_init__(self) -> None:
        checked = _validate_config_values({name: getattr(self, name) for name in _CONFIG_NUMBERS})
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        start_s = checked_array("schedule_start_s", self.schedule_start_s, minimum=0.0)
        setpoint_c = checked_array("schedule_setpoint_c", self.schedule_setpoint_c)
        if start_s.ndim == 0 or start_s.shape != setpoint_c.shape:
            raise InputError("schedule_start_s and schedule_setpoint_c must have the same shape")
        if bool(np.any(start_s[..., 1:] < start_s[..., :-1])) or bool(
            np.any(start_s >= _SECONDS_PER_WEEK)
        ):
            raise InputError("schedule_start_s must be sorted and within one week")
        object.__setattr__(self, "schedule_start_s", start_s)
        object.__setattr__(self, "schedule_setpoint_c", setpoint_c)
        object.__setattr__(self, "utc_offset_h", checked_array("utc_offset_h", self.utc_offset_h))

    @classmethod
    def from_configs(cls, configs: Sequence[ThermostatConfig]) -> ThermostatConfigArrays:
        """Stack scalar configurations, one per home."""
        if not configs:
            raise InputError("configs must hold at least one ThermostatConfig")
        start_s, setpoint_c = _schedule_table([config.schedule for config in configs])
        numbers = {
            name: np.array([getattr(config, name) for config in configs], dtype=np.float64)
            for name in _CONFIG_NUMBERS
        }
        offsets = np.array([config.schedule.utc_offset_h for config in configs])
        return cls(
            schedule_start_s=start_s,
            schedule_setpoint_c=setpoint_c,
            utc_offset_h=offsets,
            **numbers,
        )

    def config(self, index: int) -> ThermostatConfig:
        """Return home ``index``'s settings as one :class:`ThermostatConfig`.

        The inverse of :meth:`from_configs`; a setting shared by every home is that home's too.
        """

        def number(name: str) -> float:
            values = np.asarray(getattr(self, name)).reshape(-1)
            return float(values[index if values.size > 1 else 0])

        start_s, setpoint_c = self.schedule_start_s, self.schedule_setpoint_c
        if start_s.ndim == 2:
            start_s, setpoint_c = start_s[index], setpoint_c[index]
        points: dict[tuple[int, int], float] = {}
        for start, value in zip(start_s, setpoint_c, strict=True):
            minute = round(float(start) / 60.0)  # padded rows repeat their last point
            points.setdefault((minute // _MINUTES_PER_DAY, minute % _MINUTES_PER_DAY), float(value))
        schedule = WeeklySchedule(
            tuple((day, minute, value) for (day, minute), value in points.items()),
            number("utc_offset_h"),
        )
        return ThermostatConfig(
            schedule=schedule, **{name: number(name) for name in _CONFIG_NUMBERS}
        )


@dataclass(frozen=True)
class ThermostatState:
    """What the thermostat remembers between ticks.

    Parameters
    ----------
    integral_w : float
        Integral term of the PI controller [W].
    heating : bool
        Whether heating is on.
    since_ts : float
        When heating last started or stopped, UTC [s]; ``-inf``: never.
    last_tick_ts : float
        When :func:`decide` last ran, UTC [s]; ``-inf``: never.
    last_command_ts : float
        When a command was last to be sent, UTC [s]; ``-inf``: never.
    last_power_w : float
        Heat power of the last command sent [W].
    alarm : Alarm
        Alarm flags of the last tick.
    """

    integral_w: float = 0.0
    heating: bool = False
    since_ts: float = -math.inf
    last_tick_ts: float = -math.inf
    last_command_ts: float = -math.inf
    last_power_w: float = 0.0
    alarm: Alarm = Alarm.NONE


@dataclass(frozen=True)
class ThermostatStateArrays:
    """:class:`ThermostatState` of many homes, struct of arrays of shape ``(n,)``."""

    integral_w: FloatArray
    heating: BoolArray
    since_ts: FloatArray
    last_tick_ts: FloatArray
    last_command_ts: FloatArray
    last_power_w: FloatArray
    alarm: IntArray

    @classmethod
    def initial(cls, count: int) -> ThermostatStateArrays:
        """Return the start state (off, never switched) of ``count`` homes."""
        return repeated(cls.from_states([ThermostatState()]), count)

    @classmethod
    def from_states(cls, states: Sequence[ThermostatState]) -> ThermostatStateArrays:
        """Stack scalar states."""
        return cls(
            integral_w=np.array([s.integral_w for s in states], dtype=np.float64),
            heating=np.array([s.heating for s in states], dtype=np.bool_),
            since_ts=np.array([s.since_ts for s in states], dtype=np.float64),
            last_tick_ts=np.array([s.last_tick_ts for s in states], dtype=np.float64),
            last_command_ts=np.array([s.last_command_ts for s in states], dtype=np.float64),
            last_power_w=np.array([s.last_power_w for s in states], dtype=np.float64),
            alarm=np.array([int(s.alarm) for s in states], dtype=np.int64),
        )

    def state(self, index: int) -> ThermostatState:
        """Return the state of home ``index``."""
        return ThermostatState(
            integral_w=float(self.integral_w[index]),
            heating=bool(self.heating[index]),
            since_ts=float(self.since_ts[index]),
            last_tick_ts=float(self.last_tick_ts[index]),
            last_command_ts=float(self.last_command_ts[index]),
            last_power_w=float(self.last_power_w[index]),
            alarm=Alarm(int(self.alarm[index])),
        )


@dataclass(frozen=True)
class Observation:
    """What the thermostat sees on one tick.

    Parameters
    ----------
    room_temp_c : float
        Room air temperature reading [°C]; may be NaN (a failed sensor raises an alarm).
    reading_ts : float
        When the room reading was taken, UTC [s].
    device_temp_c : float
        Hottest device temperature [°C]; NaN if the device reports none.
    fan_ok : bool
        False if a fan has failed.
    upright : bool
        False if the heater has tipped over.
    mode : Mode
        What the user asked for.
    """

    room_temp_c: float
    reading_ts: float
    device_temp_c: float = math.nan
    fan_ok: bool = True
    upright: bool = True
    mode: Mode = Mode.AUTO


@dataclass(frozen=True)
class ObservationArrays:
    """:class:`Observation` of many homes, struct of arrays of shape ``(n,)``.

    ``mode`` holds :class:`Mode` codes; an unknown code counts as :attr:`Mode.OFF`.
    """

    room_temp_c: FloatArray
    reading_ts: FloatArray
    device_temp_c: FloatArray
    fan_ok: BoolArray
    upright: BoolArray
    mode: IntArray

    @classmethod
    def from_observations(cls, observations: Sequence[Observation]) -> ObservationArrays:
        """Stack scalar observations."""
        return cls(
            room_temp_c=np.array([o.room_temp_c for o in observations], dtype=np.float64),
            reading_ts=np.array([o.reading_ts for o in observations], dtype=np.float64),
            device_temp_c=np.array([o.device_temp_c for o in observations], dtype=np.float64),
            fan_ok=np.array([o.fan_ok for o in observations], dtype=np.bool_),
            upright=np.array([o.upright for o in observations], dtype=np.bool_),
            mode=np.array([int(o.mode) for o in observations], dtype=np.int64),
        )


@dataclass(frozen=True)
class HeatCommand:
    """What the thermostat asks of the heater on one tick.

    Parameters
    ----------
    heat_power_w : float
        Continuous heat demand [W], in ``[0, max_power_w]``; 0 unless ``heating``.
    heating : bool
        Whether heating is on.
    setpoint_c : float
        Setpoint in force (schedule or away) [°C].
    alarm : Alarm
        Alarm flags; heating is off when any is set.
    reason : Reason
        The rule that decided.
    send : bool
        Whether to transmit the command now (a change or the keep-alive).
    """

    heat_power_w: float
    heating: bool
    setpoint_c: float
    alarm: Alarm
    reason: Reason
    send: bool

    @property
    def reasons(self) -> tuple[str, ...]:
        """Names of the alarm flags set, then of the reason, e.g. ``("FAN_FAILURE", "ALARM")``."""
        flags = tuple(flag.name or "" for flag in Alarm if flag and flag in self.alarm)
        return (*flags, self.reason.name)


@dataclass(frozen=True)
class HeatCommandArrays:
    """:class:`HeatCommand` of many homes, struct of arrays; ``alarm`` and ``reason`` as codes."""

    heat_power_w: FloatArray
    heating: BoolArray
    setpoint_c: FloatArray
    alarm: IntArray
    reason: IntArray
    send: BoolArray

    def command(self, index: int) -> HeatCommand:
        """Return the command of home ``index``."""
        return HeatCommand(
            heat_power_w=float(self.heat_power_w[index]),
            heating=bool(self.heating[index]),
            setpoint_c=float(self.setpoint_c[index]),
            alarm=Alarm(int(self.alarm[index])),
            reason=Reason(int(self.reason[index])),
            send=bool(self.send[index]),
        )


def decide(
    state: ThermostatState, observation: Observation, now_ts: float, config: ThermostatConfig
) -> tuple[ThermostatState, HeatCommand]:
    """Decide one tick of one thermostat (see the module docstring for the rules).

    Parameters
    ----------
    state : ThermostatState
        State returned by the previous call; ``ThermostatState()`` at first.
    observation : Observation
        Readings of this tick.
    now_ts : float
        Current time, POSIX UTC [s].
    config : ThermostatConfig
        Settings.

    Returns
    -------
    tuple of (ThermostatState, HeatCommand)
        The state to pass to the next call and the command for the heater.

    Raises
    ------
    InputError
        If ``now_ts`` is not finite.
    """
    states, commands = decide_many(
        ThermostatStateArrays.from_states([state]),
        ObservationArrays.from_observations([observation]),
        now_ts,
        config._arrays,
    )
    return states.state(0), commands.command(0)


def decide_many(
    state: ThermostatStateArrays,
    observation: ObservationArrays,
    now_ts: float,
    config: ThermostatConfigArrays,
) -> tuple[ThermostatStateArrays, HeatCommandArrays]:
    """Decide one tick of many thermostats at once; the same rules as :func:`decide`.

    Parameters
    ----------
    state : ThermostatStateArrays
        States of shape ``(n,)``; ``ThermostatStateArrays.initial(n)`` at first.
    observation : ObservationArrays
        Readings of shape ``(n,)``.
    now_ts : float
        Current time, POSIX UTC [s], shared by all homes.
    config : ThermostatConfigArrays
        Settings, broadcastable to ``(n,)``.

    Returns
    -------
    tuple of (ThermostatStateArrays, HeatCommandArrays)
        New states and commands, arrays of shape ``(n,)``.

    Raises
    ------
    InputError
        If ``now_ts`` is not finite.
    """
    now = require_finite("now_ts", now_ts)
    shape = np.broadcast_shapes(
        *(np.shape(getattr(state, f.name)) for f in fields(state)),
        *(np.shape(getattr(observation, f.name)) for f in fields(observation)),
        *(np.shape(getattr(config, name)) for name in _CONFIG_NUMBERS),
        np.shape(config.utc_offset_h),
        np.shape(config.schedule_start_s)[:-1],
    )
    total = math.prod(shape)
    obs = _kernel.Observation(
        room_temp_c=_flat(observation.room_temp_c, shape, np.float64),
        reading_ts=_flat(observation.reading_ts, shape, np.float64),
        device_temp_c=_flat(observation.device_temp_c, shape, np.float64),
        fan_ok=_flat(observation.fan_ok, shape, np.bool_),
        upright=_flat(observation.upright, shape, np.bool_),
        mode=_flat(observation.mode, shape, np.int64),
    )
    old = _kernel.State(
        integral_w=_flat(state.integral_w, shape, np.float64),
        heating=_flat(state.heating, shape, np.bool_),
        since_ts=_flat(state.since_ts, shape, np.float64),
        last_tick_ts=_flat(state.last_tick_ts, shape, np.float64),
        last_command_ts=_flat(state.last_command_ts, shape, np.float64),
        last_power_w=_flat(state.last_power_w, shape, np.float64),
        alarm=_flat(state.alarm, shape, np.int64),
    )
    numbers, schedule = kernel_config(config, shape)
    floats = {name: np.empty(total) for name in _FLOAT_OUTPUTS}
    flags = {name: np.empty(total, dtype=np.bool_) for name in _BOOL_OUTPUTS}
    codes = {name: np.empty(total, dtype=np.int64) for name in _CODE_OUTPUTS}
    out = _kernel.Outputs(**floats, **flags, **codes)
    kernel = _kernel.decide_parallel if total >= _PARALLEL_MIN_HOMES else _kernel.decide_serial
    kernel(total, now, obs, old, numbers, schedule, out)
    new_state = ThermostatStateArrays(
        integral_w=out.integral_w.reshape(shape),
        heating=out.heating.reshape(shape),
        since_ts=out.since_ts.reshape(shape),
        last_tick_ts=out.last_tick_ts.reshape(shape),
        last_command_ts=out.last_command_ts.reshape(shape),
        last_power_w=out.last_power_w.reshape(shape),
        alarm=out.alarm.reshape(shape),
    )
    command = HeatCommandArrays(
        heat_power_w=out.heat_power_w.reshape(shape),
        heating=out.heating_command.reshape(shape),
        setpoint_c=out.setpoint_c.reshape(shape),
        alarm=out.alarm_command.reshape(shape),
        reason=out.reason.reshape(shape),
        send=out.send.reshape(shape),
    )
    return new_state, command


def kernel_config(
    config: ThermostatConfigArrays, shape: tuple[int, ...]
) -> tuple[_kernel.Config, _kernel.Schedule]:
    """Return ``config`` as the control kernel's bundles for homes of ``shape``.

    Settings shared by all homes stay one element long, per-home ones are flattened (C order);
    :func:`decide_many` and the simulator's fused fleet loop (``heatgrid.sim.fused``) both pass
    their homes' settings to ``_control_kernel.tick`` this way.
    """
    numbers = _kernel.Config(
        **{name: _flat(getattr(config, name), shape, np.float64) for name in _CONFIG_NUMBERS}
    )
    schedule = _kernel.Schedule(
        start_s=_rows(config.schedule_start_s, shape),
        setpoint_c=_rows(config.schedule_setpoint_c, shape),
        utc_offset_h=_flat(config.utc_offset_h, shape, np.float64),
    )
    return numbers, schedule


def _flat(value: ArrayLike, shape: tuple[int, ...], dtype: type[np.generic]) -> NDArray[Any]:
    """Return ``value`` as a 1-D array for the kernel.

    One element if it is shared by all homes, else one per home of ``shape`` (C order).
    """
    array = np.asarray(value, dtype=dtype)
    if array.size == 1:
        return kernel_input(array.reshape(1), dtype)
    if array.size == math.prod(shape):
        return kernel_input(array, dtype).reshape(-1)
    return np.broadcast_to(array, shape).flatten()


def _rows(table: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Return a schedule table ``(..., k)`` as rows ``(1, k)`` or one per home, for the kernel."""
    width = table.shape[-1]
    rows = math.prod(table.shape[:-1])
    if rows == 1:
        return kernel_input(table.reshape(1, width), np.float64)
    if rows == math.prod(shape):
        return kernel_input(table, np.float64).reshape(rows, width)
    return kernel_input(np.broadcast_to(table, (*shape, width)).reshape(-1, width), np.float64)
