"""The physics of an emulated ASIC miner: a pure function of its state and the time.

The state is a frozen dataclass; :func:`advance` moves it to a later time, and the commands
(:func:`set_power_target`, :func:`pause`, :func:`resume`, :func:`restart`,
:func:`set_fan_percent`) return a new state. Nothing here reads a clock: the time is an
argument, so the same model runs under the real clock, an accelerated clock or a test's
hand-moved clock, and ``advance(advance(s, t1), t2) == advance(s, t2)`` up to rounding.

Behaviour, as the hardware shows it:

* Electric power moves toward its goal at a finite rate (``ramp_up_w_per_s``,
  ``ramp_down_w_per_s``): the power target while hashing, ``idle_power_w`` (controller and
  fans) while paused or restarting.
* The power target must lie in ``[min_power_w, max_power_w]``; a target outside it is refused
  (:class:`~heatgrid.core.errors.InputError`) and the running target is kept, as Braiins OS and
  Whatsminer firmware refuse an out-of-range power target rather than clamping it.
* Resuming or restarting hashes nothing for ``restart_delay_s`` (the hashboards re-initialise),
  then power ramps up from idle.
* While hashing, ``hashrate_ths = power_w / efficiency_j_per_th``; while paused or restarting it
  is 0 (the boards stop at once, while power falls at ``ramp_down_w_per_s``).
* Chip and board temperatures follow first-order lags toward ``ambient_temp_c + k · power_w``,
  integrated exactly along the piecewise-linear power path (no Euler step). ``k``, the thermal
  resistance from chip (or board) to intake air, follows the miner's power class: a maker sizes
  heat sinks and fans so that the chips run at about the same temperature at rated power,
  whatever the rated power (an Antminer S9 at 1.3 kW and an S21 at 3.5 kW both report 60-80 °C
  chips). So ``k = rise at rated power / max_power_w``: 60 K for the chips and 42 K for the
  boards by default, 80 °C and 62 °C at 20 °C intake, for a 300 W or a 3 kW miner alike.
* Fan speed follows chip temperature between two set points, unless a fixed percentage is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from heatgrid.core.errors import (
    InputError,
    require_finite,
    require_non_negative,
    require_positive,
)

__all__ = [
    "MinerParams",
    "MinerState",
    "advance",
    "fan_rpm",
    "hashrate_ths",
    "initial_state",
    "is_hashing",
    "pause",
    "restart",
    "resume",
    "set_fan_percent",
    "set_power_target",
]


@dataclass(frozen=True)
class MinerParams:
    """Fixed properties of one emulated miner; the defaults describe a 1.2 kW heater.

    Parameters
    ----------
    max_power_w : float
        Highest power target the firmware accepts [W].
    min_power_w : float
        Lowest power target the firmware accepts while hashing [W].
    idle_power_w : float
        Draw of controller and fans while paused or restarting [W].
    efficiency_j_per_th : float
        Energy per terahash while hashing [J/TH].
    ramp_up_w_per_s : float
        Rate at which power rises toward its goal [W/s].
    ramp_down_w_per_s : float
        Rate at which power falls toward its goal [W/s].
    restart_delay_s : float
        Time without hashing after a resume or restart [s].
    ambient_temp_c : float
        Temperature of the air the miner draws in [°C].
    chip_rise_at_max_power_k : float
        Steady-state chip temperature rise above intake air at ``max_power_w`` [K].
    board_rise_at_max_power_k : float
        Steady-state board temperature rise above intake air at ``max_power_w`` [K].
    chip_time_constant_s : float
        Time constant of the chip temperature lag [s].
    board_time_constant_s : float
        Time constant of the board temperature lag [s].
    fan_min_rpm, fan_max_rpm : float
        Fan speed at or below ``fan_low_temp_c`` and at or above ``fan_high_temp_c`` [rpm].
    fan_low_temp_c, fan_high_temp_c : float
        Chip temperatures between which automatic fan speed rises linearly [°C].
    hashboard_count : int
        Number of hashboards; the hashrate is shared equally between them [-].
    fan_count : int
        Number of fans, all at the same speed [-].
    """

    max_power_w: float = 1200.0
    min_power_w: float = 300.0
    idle_power_w: float = 15.0
    efficiency_j_per_th: float = 25.0
    ramp_up_w_per_s: float = 40.0
    ramp_down_w_per_s: float = 400.0
    restart_delay_s: float = 30.0
    ambient_temp_c: float = 20.0
    chip_rise_at_max_power_k: float = 60.0
    board_rise_at_max_power_k: float = 42.0
    chip_time_constant_s: float = 20.0
    board_time_constant_s: float = 90.0
    fan_min_rpm: float = 1500.0
    fan_max_rpm: float = 6000.0
    fan_low_temp_c: float = 40.0
    fan_high_temp_c: float = 80.0
    hashboard_count: int = 3
    fan_count: int = 4

    def __post_init__(self) -> None:
        for field in fields(self):
            require_finite(field.name, getattr(self, field.name))
        for name in (
            "max_power_w",
            "efficiency_j_per_th",
            "ramp_up_w_per_s",
            "ramp_down_w_per_s",
            "chip_time_constant_s",
            "board_time_constant_s",
            "chip_rise_at_max_power_k",
            "board_rise_at_max_power_k",
        ):
            require_positive(name, getattr(self, name))
        for name in ("min_power_w", "idle_power_w", "restart_delay_s", "fan_min_rpm"):
            require_non_negative(name, getattr(self, name))
        if self.min_power_w > self.max_power_w:
            raise InputError(
                f"min_power_w ({self.min_power_w:g}) must not exceed "
                f"max_power_w ({self.max_power_w:g})"
            )
        if self.idle_power_w > self.min_power_w:
            raise InputError(
                f"idle_power_w ({self.idle_power_w:g}) must not exceed "
                f"min_power_w ({self.min_power_w:g})"
            )
        if self.fan_min_rpm > self.fan_max_rpm:
            raise InputError("fan_min_rpm must not exceed fan_max_rpm")
        if self.fan_low_temp_c >= self.fan_high_temp_c:
            raise InputError("fan_low_temp_c must be below fan_high_temp_c")
        if self.hashboard_count < 1 or self.fan_count < 0:
            raise InputError("hashboard_count must be >= 1 and fan_count >= 0")

    @property
    def chip_temp_rise_k_per_w(self) -> float:
        """Steady-state chip temperature rise per watt [K/W], from the power class."""
        return self.chip_rise_at_max_power_k / self.max_power_w

    @property
    def board_temp_rise_k_per_w(self) -> float:
        """Steady-state board temperature rise per watt [K/W], from the power class."""
        return self.board_rise_at_max_power_k / self.max_power_w


@dataclass(frozen=True)
class MinerState:
    """Everything that changes in an emulated miner, at one instant.

    Parameters
    ----------
    now_ts : float
        The instant this state describes [POSIX s].
    mining : bool
        True unless paused (sleep mode).
    power_target_w : float
        Power target while hashing [W].
    power_w : float
        Electric power drawn now [W]; all of it becomes heat.
    hashing_start_ts : float
        Hashing starts (or started) at this instant once mining [POSIX s].
    chip_temp_c : float
        Chip temperature [°C].
    board_temp_c : float
        Hashboard temperature [°C].
    fan_percent : float or None
        Fixed fan speed as a share of ``fan_max_rpm`` [%]; None for automatic.
    started_ts : float
        When the mining process last (re)started, for its uptime [POSIX s].
    energy_wh : float
        Electric energy drawn since ``initial_state`` [Wh].
    work_th : float
        Hashes computed since ``initial_state`` [TH].
    """

    now_ts: float
    mining: bool
    power_target_w: float
    power_w: float
    hashing_start_ts: float
    chip_temp_c: float
    board_temp_c: float
    fan_percent: float | None
    started_ts: float
    energy_wh: float = 0.0
    work_th: float = 0.0


def initial_state(
    now_ts: float, params: MinerParams, *, power_target_w: float | None = None
) -> MinerState:
    """Return a miner just switched on at ``now_ts``: cold, booting, hashing after the delay.

    Parameters
    ----------
    now_ts : float
        Power-on instant [POSIX s].
    params : MinerParams
        The miner's properties.
    power_target_w : float, optional
        Initial power target [W]; ``params.max_power_w`` if omitted.

    Returns
    -------
    MinerState
        The state at ``now_ts``.
    """
    now_ts = require_finite("now_ts", now_ts)
    target_w = params.max_power_w if power_target_w is None else power_target_w
    _check_target(target_w, params)
    return MinerState(
        now_ts=now_ts,
        mining=True,
        power_target_w=float(target_w),
        power_w=params.idle_power_w,
        hashing_start_ts=now_ts + params.restart_delay_s,
        chip_temp_c=params.ambient_temp_c,
        board_temp_c=params.ambient_temp_c,
        fan_percent=None,
        started_ts=now_ts,
    )


def is_hashing(state: MinerState) -> bool:
    """Return True when the miner computes hashes at ``state.now_ts``."""
    return state.mining and state.now_ts >= state.hashing_start_ts


def hashrate_ths(state: MinerState, params: MinerParams) -> float:
    """Return the hashrate [TH/s]: ``power_w / efficiency_j_per_th`` while hashing, else 0."""
    if not is_hashing(state):
        return 0.0
    return state.power_w / params.efficiency_j_per_th


def fan_rpm(state: MinerState, params: MinerParams) -> float:
    """Return the speed of each fan [rpm], from chip temperature or the fixed percentage."""
    if state.fan_percent is not None:
        return params.fan_max_rpm * state.fan_percent / 100.0
    span_k = params.fan_high_temp_c - params.fan_low_temp_c
    share = min(1.0, max(0.0, (state.chip_temp_c - params.fan_low_temp_c) / span_k))
    return params.fan_min_rpm + share * (params.fan_max_rpm - params.fan_min_rpm)


def set_power_target(state: MinerState, power_target_w: float, params: MinerParams) -> MinerState:
    """Return ``state`` with a new power target; outside the accepted range it is refused.

    Raises
    ------
    InputError
        If ``power_target_w`` is not finite or lies outside ``[min_power_w, max_power_w]``.
    """
    _check_target(power_target_w, params)
    return replace(state, power_target_w=float(power_target_w))


def pause(state: MinerState) -> MinerState:
    """Return ``state`` paused: hashing stops, power falls to idle."""
    return replace(state, mining=False)


def resume(state: MinerState, params: MinerParams) -> MinerState:
    """Return ``state`` mining again; a paused miner hashes after ``restart_delay_s``."""
    if state.mining:
        return state
    return replace(state, mining=True, hashing_start_ts=state.now_ts + params.restart_delay_s)


def restart(state: MinerState, params: MinerParams) -> MinerState:
    """Return ``state`` after a restart of the mining process: no hashing for the delay.

    A paused miner stays paused; its uptime counts from the restart.
    """
    return replace(
        state, hashing_start_ts=state.now_ts + params.restart_delay_s, started_ts=state.now_ts
    )


def set_fan_percent(state: MinerState, fan_percent: float | None) -> MinerState:
    """Return ``state`` with fixed fans at ``fan_percent`` [%] (0-100), or automatic (None)."""
    if fan_percent is not None:
        fan_percent = require_finite("fan_percent", fan_percent)
        if not 0.0 <= fan_percent <= 100.0:
            raise InputError(f"fan_percent must be between 0 and 100, got {fan_percent!r}")
    return replace(state, fan_percent=fan_percent)


def advance(state: MinerState, now_ts: float, params: MinerParams) -> MinerState:
    """Return the state at ``now_ts``; a time before ``state.now_ts`` changes nothing.

    Parameters
    ----------
    state : MinerState
        The state at ``state.now_ts``.
    now_ts : float
        The instant to move to [POSIX s].
    params : MinerParams
        The miner's properties.

    Returns
    -------
    MinerState
        The state at ``now_ts``: power moved along its ramps, temperatures integrated exactly
        along the piecewise-linear power path, energy and work accumulated.
    """
    now_ts = require_finite("now_ts", now_ts)
    if now_ts <= state.now_ts:
        return state
    chip_c, board_c = state.chip_temp_c, state.board_temp_c
    energy_j = 0.0
    work_th = 0.0
    power_w = state.power_w
    for start_ts, end_ts, goal_w, hashing in _phases(state, now_ts, params):
        for duration_s, from_w, to_w in _ramp(power_w, goal_w, end_ts - start_ts, params):
            chip_c = _lag(chip_c, from_w, to_w, duration_s, params, chip=True)
            board_c = _lag(board_c, from_w, to_w, duration_s, params, chip=False)
            segment_j = 0.5 * (from_w + to_w) * duration_s
            energy_j += segment_j
            if hashing:
                work_th += segment_j / params.efficiency_j_per_th
            power_w = to_w
    return replace(
        state,
        now_ts=now_ts,
        power_w=power_w,
        chip_temp_c=chip_c,
        board_temp_c=board_c,
        energy_wh=state.energy_wh + energy_j / 3600.0,
        work_th=state.work_th + work_th,
    )


def _check_target(power_target_w: float, params: MinerParams) -> None:
    target_w = require_finite("power_target_w", power_target_w)
    if not params.min_power_w <= target_w <= params.max_power_w:
        raise InputError(
            f"power_target_w must be between {params.min_power_w:g} and "
            f"{params.max_power_w:g} W, got {power_target_w!r}"
        )


def _phases(
    state: MinerState, now_ts: float, params: MinerParams
) -> list[tuple[float, float, float, bool]]:
    """Split ``[state.now_ts, now_ts]`` into (start, end, power goal, hashing) phases."""
    idle_goal = params.idle_power_w
    phases: list[tuple[float, float, float, bool]] = []
    start_ts = state.now_ts
    if not state.mining:
        return [(start_ts, now_ts, idle_goal, False)]
    if state.hashing_start_ts > start_ts:
        boundary_ts = min(now_ts, state.hashing_start_ts)
        phases.append((start_ts, boundary_ts, idle_goal, False))
        start_ts = boundary_ts
    if now_ts > start_ts:
        phases.append((start_ts, now_ts, state.power_target_w, True))
    return phases


def _ramp(
    from_w: float, goal_w: float, duration_s: float, params: MinerParams
) -> list[tuple[float, float, float]]:
    """Return linear (duration, start power, end power) pieces moving toward ``goal_w``."""
    if duration_s <= 0.0:
        return []
    rate_w_per_s = params.ramp_up_w_per_s if goal_w > from_w else params.ramp_down_w_per_s
    reach_s = abs(goal_w - from_w) / rate_w_per_s
    if reach_s >= duration_s:
        step_w = math.copysign(rate_w_per_s * duration_s, goal_w - from_w)
        return [(duration_s, from_w, from_w + step_w)]
    pieces = [(reach_s, from_w, goal_w)] if reach_s > 0.0 else []
    pieces.append((duration_s - reach_s, goal_w, goal_w))
    return pieces


def _lag(
    temp_c: float,
    from_w: float,
    to_w: float,
    duration_s: float,
    params: MinerParams,
    *,
    chip: bool,
) -> float:
    """Exact first-order lag toward ``ambient + k·P(t)`` for P linear over ``duration_s``."""
    if chip:
        rise_k_per_w, tau_s = params.chip_temp_rise_k_per_w, params.chip_time_constant_s
    else:
        rise_k_per_w, tau_s = params.board_temp_rise_k_per_w, params.board_time_constant_s
    if duration_s <= 0.0:
        return temp_c
    slope_k_per_s = rise_k_per_w * (to_w - from_w) / duration_s
    start_eq_c = params.ambient_temp_c + rise_k_per_w * from_w
    end_eq_c = params.ambient_temp_c + rise_k_per_w * to_w
    decay = math.exp(-duration_s / tau_s)
    return end_eq_c - slope_k_per_s * tau_s + (temp_c - start_eq_c + slope_k_per_s * tau_s) * decay
