"""The fused fleet loop: thermostat + arbiter + room of every home over many steps, compiled.

One numba kernel (:func:`run_burst`) runs steps ``k0 … k1 − 1`` of the simulator's step (see
:mod:`heatgrid.sim.engine`) for every home and rack while no claim can lease a task, home by
home (``prange`` over chunks of :data:`CHUNK` homes), each home's state in registers
for the whole burst. It calls core's own rules, not copies of them:

* the thermostat: ``_control_kernel.home_setpoint_until`` and ``_control_kernel.tick`` (what
  :func:`heatgrid.core.control.decide_many` runs per home; the schedule is looked up again only
  from the instant its answer may change);
* the arbiter: ``_arbiter_kernel.advance_known`` (``realize_known``,
  :func:`~heatgrid.core.arbiter.plan_many`'s ``realize_one`` with the device's kind found once
  per burst, and the state it leaves);
* the room: :func:`heatgrid.core.thermal_kernels.step_2r2c` (the update of
  :func:`~heatgrid.core.thermal_kernels.advance_fleet_2r2c`);
* the internal gains: :func:`home_gains_until`, the rule that
  :func:`heatgrid.sim.engine.internal_gains_w` also evaluates (:func:`gains_rows`), again only
  from the instant they may change;
* a leased task: :func:`task_step` (progress, checkpoints, completion; :meth:`TaskQueue.run`
  applies it too), the pause of :func:`heatgrid.core.leasing.pauses` and the end of a lease
  (:func:`lease_ends`: expired, or handed back by :func:`heatgrid.core.leasing.hands_back`),
  which ends the burst after that step (the caller runs the burst again up to there and lets
  the queue end the lease).

Results are reduced in the kernel: per home (comfort and its cold part, heater, backup and
task energy) into arrays of length ``n``, per step into ``partial[chunk, step, quantity]``
(:data:`QUANTITIES` then one column of heater energy per region) and ``task_partial``
(:data:`TASK_QUANTITIES` then rack energy per region), summed over chunks by the caller, so
memory stays ``O(n + burst · chunks)`` whatever the horizon. Chunks are fixed, so the sums
do not depend on the number of threads: a run is reproducible bit for bit.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

from heatgrid.core import leasing
from heatgrid.core._arbiter_kernel import DeviceState, advance_known, is_discrete
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
from heatgrid.core.comfort import band_excess_k
from heatgrid.core.thermal_kernels import step_2r2c

__all__: list[str] = []

CHUNK = 256
"""Homes per task of the parallel kernel."""
QUANTITIES = ("room_c", "setpoint_c", "demand_w", "heat_w", "backup_w", "mining_eur")
"""Per-step sums over homes in ``partial``, in this order; heater energy per region follows."""
ROOM, SETPOINT, DEMAND, HEAT, BACKUP, MINING = range(len(QUANTITIES))
TASK_QUANTITIES = ("rack_w", "heater_task_j", "rack_task_j")
"""Per-step sums in ``task_partial``, in this order; rack energy per region follows (racks'
mining revenue is in ``partial``'s ``mining_eur``). Apart from ``partial``, so that the homes
without a task touch as little memory per step as before."""
RACK, HEATER_TASK, RACK_TASK = range(len(TASK_QUANTITIES))
NO_STEP = np.iinfo(np.int64).max
"""``Tasks.done_step`` and ``Tasks.event_step`` of a device where nothing happened."""
_NO_TASK = (-1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""The task tuple of :func:`_load_task` of a device that holds none."""
_pauses = njit(cache=True, inline="always")(leasing.pauses)
_hands_back = njit(cache=True, inline="always")(leasing.hands_back)
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


class Lookups(NamedTuple):
    """Per-home (N,) schedule and gains lookups, kept from one burst to the next, in place.

    ``setpoint_c`` [°C] holds for every instant up to ``setpoint_until_ts`` [POSIX s] (from
    ``_control_kernel.home_setpoint_until``), ``gains_w`` [W] up to ``gains_until_ts`` (from
    :func:`home_gains_until`); an until of −inf: not looked up yet. A burst looks a home up
    again only from its until on; time only moves forward between bursts (a burst run again
    starts from the lookups saved with the rest of the state).
    """

    setpoint_c: Any
    setpoint_until_ts: Any
    gains_w: Any
    gains_until_ts: Any


class Totals(NamedTuple):
    """Per-home accumulators (N,), added to in place."""

    comfort_k_h: Any
    cold_k_h: Any
    heat_kwh: Any
    backup_kwh: Any
    task_kwh: Any


class Leases(NamedTuple):
    """The settings a leased task's steps read (:class:`heatgrid.sim.queue.TaskQueue`'s)."""

    checkpoint_every_j: float
    pause_after_s: float
    hand_back_after_s: float
    lease_s: float


class Tasks(NamedTuple):
    """The task each device holds (D,), updated in place; see :func:`task_step`.

    ``task`` is the task's index (−1: none), ``size_j``, ``progress_j``, ``checkpoint_j`` and
    ``burned_j`` its size, progress, last checkpoint and energy burned [J], ``zero_power_s`` and
    ``offline_s`` the device's time without power and offline while leased [s]. The kernel
    writes ``done_step`` and ``done_ts`` (the step and instant the task completed) and
    ``event_step`` (the step at whose end its lease ends: expired or handed back), or
    :data:`NO_STEP`; a device stops at its event, which ends the burst there.
    """

    task: Any
    size_j: Any
    progress_j: Any
    checkpoint_j: Any
    burned_j: Any
    zero_power_s: Any
    offline_s: Any
    done_step: Any
    done_ts: Any
    event_step: Any


class TaskStep(NamedTuple):
    """What :func:`task_step` returns for one leased device over one step."""

    spent_j: float
    progress_j: float
    checkpoint_j: float
    zero_power_s: float
    offline_s: float
    finished: bool
    done_after_s: float


@njit(cache=True, inline="always")
def task_step(  # noqa: PLR0917
    power_w: float,
    online: bool,
    step_s: float,
    size_j: float,
    progress_j: float,
    checkpoint_j: float,
    times_s: Any,
    leases: Any,
) -> Any:
    """One step of a leased task on its device: the rule :meth:`TaskQueue.run` applies.

    The task progresses by the energy its device burned, up to its size; a checkpoint is
    taken each ``checkpoint_every_j``; it finishes when it reaches its size with power
    (``done_after_s`` into the step). ``times_s`` is the device's (time without power, time
    offline) while leased [s], counted on. The caller then applies the pause: an online device
    without power for ``pause_after_s`` (:func:`heatgrid.core.leasing.pauses`) checkpoints
    where it is (:func:`paused_checkpoint_j`).
    """
    zero_power_s, offline_s = times_s
    left_j = size_j - progress_j
    spent_j = minimum(power_w * step_s, left_j)
    progress_j = progress_j + spent_j
    every = leases.checkpoint_every_j
    checkpoint_j = maximum(
        checkpoint_j,  # a pause's checkpoint may lie between two of them
        minimum(math.floor(progress_j / every) * every, size_j),
    )
    finished = power_w > 0.0 and spent_j >= left_j
    done_after_s = left_j / power_w if finished else 0.0
    idle = power_w <= 0.0
    zero_power_s = zero_power_s + step_s if idle else 0.0
    offline_s = offline_s + step_s if not online else 0.0
    return TaskStep(
        spent_j=spent_j,
        progress_j=progress_j,
        checkpoint_j=checkpoint_j,
        zero_power_s=zero_power_s,
        offline_s=offline_s,
        finished=finished,
        done_after_s=done_after_s,
    )


@njit(cache=True, inline="always")
def paused_checkpoint_j(done: Any, online: bool, leases: Any) -> float:
    """Return the checkpoint after a step whose :class:`TaskStep` is ``done`` [J].

    Where the task is if it pauses, else the step's checkpoint: the fused kernel's application
    of :func:`heatgrid.core.leasing.pauses` (compiled from it; a device with power has 0 s
    without and never pauses). :meth:`TaskQueue.run` applies the same rule to its arrays.
    """
    if online and _pauses(done.zero_power_s, leases.pause_after_s):
        return float(done.progress_j)
    return float(done.checkpoint_j)


@njit(cache=True, inline="always")
def lease_ends(zero_power_s: float, offline_s: float, leases: Any) -> bool:
    """Whether a leased device's lease ends (:meth:`TaskQueue.expire`): expired or handed back."""
    if offline_s >= leases.lease_s:
        return True
    return offline_s == 0.0 and bool(_hands_back(zero_power_s, leases.hand_back_after_s))


@njit(cache=True)
def run_tasks(  # noqa: PLR0917
    devices: Any,
    task: Any,
    power_w: Any,
    online: Any,
    step_s: float,
    task_arrays: Any,
    device_times_s: Any,
    leases: Any,
    out: Any,
) -> None:
    """Apply :func:`task_step` to ``devices`` (holding ``task``), as :meth:`TaskQueue.run` does.

    ``task_arrays`` is (size, progress, checkpoint, burned) by task [J], updated in place;
    ``device_times_s`` (zero power, offline) by device [s], updated in place; ``out`` is
    (spent [J], finished, done after [s]) by position in ``devices``.
    """
    size, progress, checkpoint, burned = task_arrays
    zero_power, offline = device_times_s
    spent_out, finished_out, after_out = out
    for j in range(devices.shape[0]):
        d = devices[j]
        t = task[j]
        result = task_step(
            power_w[d],
            online[d],
            step_s,
            size[t],
            progress[t],
            checkpoint[t],
            (zero_power[d], offline[d]),
            leases,
        )
        spent_out[j] = result.spent_j
        progress[t] = result.progress_j
        burned[t] += result.spent_j
        checkpoint[t] = result.checkpoint_j
        zero_power[d] = result.zero_power_s
        offline[d] = result.offline_s
        finished_out[j] = result.finished
        after_out[j] = result.done_after_s


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


@njit(cache=True)
def demand_rows(  # noqa: PLR0917
    rows: Any,
    now: float,
    homes: Any,
    cfg: Any,
    schedule: Any,
    thermostat: Any,
    rooms: Any,
    lookups: Any,
    out: Any,
) -> None:
    """Write the thermostat's heat demand at ``now`` of homes ``rows`` to ``out[rows]`` [W].

    What :func:`heatgrid.core.control.decide_many` gives them as ``heat_power_w`` on the
    reading of their room's air at ``now``, by the same rules (``home_config``,
    ``home_setpoint_until``, ``tick``), and what the burst that runs this step decides again:
    a claim step's claims read it for the heaters that may claim, without deciding every home.
    Nothing is stored (the state and the lookups are read only; a lookup no longer valid at
    ``now`` is made afresh).
    """
    air_c = rooms[0]
    setpoints, setpoints_until = lookups.setpoint_c, lookups.setpoint_until_ts
    home_mode = homes.mode
    device_temp_c, fan_ok, upright = homes.device_temp_c, homes.fan_ok, homes.upright
    integral_w, heating, since_ts = thermostat.integral_w, thermostat.heating, thermostat.since_ts
    last_tick_ts, last_command_ts = thermostat.last_tick_ts, thermostat.last_command_ts
    last_power_w, alarm = thermostat.last_power_w, thermostat.alarm
    for j in range(rows.shape[0]):
        i = rows[j]
        config = home_config(cfg, i)
        mode = home_mode[i]
        setpoint_c = setpoints[i]
        if not now < setpoints_until[i]:
            setpoint_c, _ = home_setpoint_until(i, mode, now, config.away_setpoint_c, schedule)
        seen = Observation(
            room_temp_c=air_c[i],
            reading_ts=now,
            device_temp_c=device_temp_c[i],
            fan_ok=fan_ok[i],
            upright=upright[i],
            mode=mode,
        )
        state = State(
            integral_w=integral_w[i],
            heating=heating[i],
            since_ts=since_ts[i],
            last_tick_ts=last_tick_ts[i],
            last_command_ts=last_command_ts[i],
            last_power_w=last_power_w[i],
            alarm=alarm[i],
        )
        out[i] = tick(now, seen, state, config, setpoint_c, mode == MODE_AWAY).heat_power_w


@njit(cache=True)
def _select(values: Any, lo: int, k: int) -> None:
    """Reorder ``values[lo:]`` so that ``values[k]`` holds what a sort would put there.

    Smaller or equal values end before ``k``, larger or equal after it; ``values[:lo]`` is not
    touched. Hoare's selection with a median-of-three pivot; ``k == lo`` is a scan for the
    least value. No NaN.
    """
    hi = values.shape[0] - 1
    if k == lo:
        least = lo
        for j in range(lo + 1, hi + 1):
            if values[j] < values[least]:
                least = j
        values[lo], values[least] = values[least], values[lo]
        return
    while lo < hi:
        middle = (lo + hi) // 2
        a, b, c = values[lo], values[middle], values[hi]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True, parallel=True)
def row_percentiles(values: Any, fractions: Any, out: Any) -> None:
    """Write ``np.percentile(values[t], 100 · fractions[q])`` to ``out[q, t]``, rows in parallel.

    NumPy's default ("linear") method, number for number: the order statistics below and above
    the virtual index ``(count − 1) · fraction`` and NumPy's interpolation between them (from
    the upper one when the weight is 0.5 or more); a row holding a NaN gives NaN. ``values`` is
    (T, count), count >= 1, and is reordered in place row by row; ``fractions`` (Q,) in [0, 1].
    The fused engine's per-step percentiles of the sampled rooms, where one ``np.percentile``
    call over a burst's rows ran on one core while the other waited.
    """
    steps, count = values.shape
    quantiles = fractions.shape[0]
    below = np.empty(quantiles, dtype=np.int64)
    above = np.empty(quantiles, dtype=np.int64)
    weight = np.empty(quantiles)
    for q in range(quantiles):
        virtual = (count - 1) * fractions[q]
        low = count - 1 if virtual >= count - 1 else math.floor(virtual)
        below[q] = low
        above[q] = min(low + 1, count - 1)
        weight[q] = virtual - low
    kth = np.unique(np.concatenate((below, above)))  # ascending
    for t in prange(steps):
        row = values[t]
        has_nan = False
        for j in range(count):
            if math.isnan(row[j]):
                has_nan = True
                break
        if has_nan:
            for q in range(quantiles):
                out[q, t] = math.nan
            continue
        lo = 0
        for k in kth:  # each order statistic within what the last one left above it
            _select(row, lo, k)
            lo = k + 1
        for q in range(quantiles):
            a = row[below[q]]
            b = row[above[q]]
            difference = b - a
            gamma = weight[q]
            if gamma >= 0.5:
                out[q, t] = b - difference * (1.0 - gamma)
            else:
                out[q, t] = a + difference * gamma


@njit(cache=True, inline="always")
def _first_spell(spell_first: Any, spell_start: Any, device: int, k0: int) -> int:
    """Index of ``device``'s first offline spell starting at or after step ``k0``.

    ``spell_first``/``spell_start`` as :class:`Homes`' (a device's spells sorted by start): a
    bisection, so that a late burst of a long run does not walk every earlier spell.
    """
    low = spell_first[device]
    high = spell_first[device + 1]
    while low < high:
        middle = (low + high) // 2
        if spell_start[middle] < k0:
            low = middle + 1
        else:
            high = middle
    return int(low)


@njit(cache=True, inline="always")
def _stretch_end(time_ts: Any, first: int, k1: int, until_ts: float) -> int:
    """Return the first step after ``first`` whose start is not before ``until_ts`` (or ``k1``).

    ``time_ts`` is sorted; a bisection. With ``until_ts`` NaN, ``first + 1``: every comparison
    with NaN is false, as in the lookups' own test (``not now < until``).
    """
    low, high = first + 1, k1
    while low < high:
        middle = (low + high) // 2
        if time_ts[middle] < until_ts:
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, inline="always")
def _load_task(tasks: Any, d: int) -> Any:
    """Device ``d``'s task: (index, size, progress, checkpoint, burned, zero power, offline)."""
    return (
        tasks.task[d],
        tasks.size_j[d],
        tasks.progress_j[d],
        tasks.checkpoint_j[d],
        tasks.burned_j[d],
        tasks.zero_power_s[d],
        tasks.offline_s[d],
    )


@njit(cache=True, inline="always")
def _store_task(tasks: Any, d: int, held: Any) -> None:
    """Write device ``d``'s task back (the tuple of :func:`_load_task`)."""
    task, _, progress_j, checkpoint_j, burned_j, zero_power_s, offline_s = held
    tasks.task[d] = task
    tasks.progress_j[d] = progress_j
    tasks.checkpoint_j[d] = checkpoint_j
    tasks.burned_j[d] = burned_j
    tasks.zero_power_s[d] = zero_power_s
    tasks.offline_s[d] = offline_s


@njit(cache=True, inline="always")
def _advance(  # noqa: PLR0917
    now: float, power_w: float, online: bool, step_s: float, held: Any, leases: Any
) -> Any:
    """Step a device's task (``held``, the tuple of :func:`_load_task`) by one step.

    Returns (held, spent [J], done (the task completed in this step), done_ts [POSIX s], ends
    (its lease ends at the end of this step)); the caller records a completion.
    """
    task, size_j, progress_j, checkpoint_j, burned_j, zero_power_s, offline_s = held
    if task < 0:
        return held, 0.0, False, 0.0, False
    result = task_step(
        power_w, online, step_s, size_j, progress_j, checkpoint_j, (zero_power_s, offline_s), leases
    )
    done = result.finished
    ends = not done and lease_ends(result.zero_power_s, result.offline_s, leases)
    updated = (
        -1 if done else task,
        size_j,
        result.progress_j,
        paused_checkpoint_j(result, online, leases),
        burned_j + result.spent_j,
        result.zero_power_s,
        result.offline_s,
    )
    return updated, result.spent_j, done, now + result.done_after_s, ends


@njit(cache=True, inline="always")
def _ended(leased: Any, d: int, k: int) -> None:
    """Record that device ``d``'s lease ends at the end of step ``k`` (the burst ends there)."""
    tasks, _, limit = leased
    tasks.event_step[d] = k
    limit[0] = min(limit[0], k)  # the others stop after this step: the run is done again to here


@njit(cache=True)
def _home_range(  # noqa: PLR0912, PLR0915, PLR0917
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
    lookups: Any,
    totals: Any,
    leased: Any,
    out: Any,
) -> None:
    """Run homes ``chunk · CHUNK …`` over steps ``k0 … k1 − 1``; see :func:`run_burst`.

    Every array is taken out of its bundle once per chunk, before the loop over homes, and the
    home's step is written in that loop rather than inlined from a function: a function inlined
    per home binds its bundles of arrays afresh for each home, and numba then counts a
    reference to every array of them in and out (about 140 atomic operations per home and
    burst, some 250 ns: most of what a burst cost per home whatever its length). The calls
    left in the loop are core's rules on one home's numbers (their array arguments are bound
    and released within one step, where LLVM removes the counting).

    A home that holds no task at the start gets none in the burst (no claim happens in one),
    and its steps skip the task's work (``with_task``).

    A home's steps run in stretches over which its setpoint and gains lookups hold and it
    stays online or offline (:func:`_stretch_end`, the next offline spell, the end of this
    one): the lookups and spells are done at a stretch's first step, out of the loop over its
    steps, whose registers then no longer spill around them (3–15 % of a step, the most in
    summer). The numbers are those of a lookup at every step where it falls due.
    """
    tasks, leases, limit = leased
    partial, task_partial, sample_column, sampled, recorded = out
    air_c, mass_c = rooms
    setpoints, setpoints_until, gains, gains_until_ts = lookups
    time_ts, outdoor_c = clock.time_ts, clock.outdoor_c
    step_s = clock.step_s
    band_k = clock.comfort_band_k
    backup_heating = clock.backup_heating
    step_h = step_s / _S_PER_H
    step_kwh_per_w = step_s / _J_PER_KWH
    record = recorded.shape[0] > 0
    q = len(QUANTITIES)
    coef = homes.coefficients
    home_mode, home_region, tz_s = homes.mode, homes.region, homes.tz_s
    occupied_gains_w, away_gains_w = homes.occupied_gains_w, homes.away_gains_w
    away_home, leave_minute, return_minute = (
        homes.away_home,
        homes.leave_minute,
        homes.return_minute,
    )
    device_temp_c, fan_ok, upright = homes.device_temp_c, homes.fan_ok, homes.upright
    home_is_asic, mining_value_eur_per_kwh = homes.is_asic, homes.mining_value_eur_per_kwh
    spell_first, spell_start, spell_end_step = homes.spell_first, homes.spell_start, homes.spell_end
    max_power = devices.max_power_w
    integral_w, heating, since_ts = thermostat.integral_w, thermostat.heating, thermostat.since_ts
    last_tick_ts, last_command_ts = thermostat.last_tick_ts, thermostat.last_command_ts
    last_power_w, alarm = thermostat.last_power_w, thermostat.alarm
    power_arr, target_arr, device_since = arbiter.power_w, arbiter.target_w, arbiter.since_ts
    debt_arr, device_last = arbiter.debt_j, arbiter.last_ts
    task_of, done_step, done_ts_arr = tasks.task, tasks.done_step, tasks.done_ts
    comfort_total, cold_total, heat_total = totals.comfort_k_h, totals.cold_k_h, totals.heat_kwh
    backup_total, task_total = totals.backup_kwh, totals.task_kwh
    lo = chunk * CHUNK
    chunk_at = np.uint64(chunk)
    for i in range(lo, min(lo + CHUNK, air_c.shape[0])):
        with_task = task_of[i] >= 0
        config = home_config(cfg, i)
        mode = home_mode[i]
        away = mode == MODE_AWAY
        a_minus_i = (coef[0, i], coef[1, i], coef[2, i], coef[3, i])
        b = (coef[4, i], coef[5, i], coef[6, i], coef[7, i])
        region = home_region[i]
        region_at, region_column = np.uint64(region), np.uint64(q + region)
        gains_pair = (occupied_gains_w[i], away_gains_w[i])
        home_tz_s, home_away = tz_s[i], away_home[i]
        leave, back = leave_minute[i], return_minute[i]
        seen_device_c, seen_fan_ok, seen_upright = device_temp_c[i], fan_ok[i], upright[i]
        mining_value = mining_value_eur_per_kwh[i]
        is_asic = home_is_asic[i]
        max_power_w = max_power[i]
        column = sample_column[i]
        which = (i, is_discrete(devices, i))
        state = State(
            integral_w=integral_w[i],
            heating=heating[i],
            since_ts=since_ts[i],
            last_tick_ts=last_tick_ts[i],
            last_command_ts=last_command_ts[i],
            last_power_w=last_power_w[i],
            alarm=alarm[i],
        )
        device = DeviceState(
            power_w=power_arr[i],
            target_w=target_arr[i],
            since_ts=device_since[i],
            debt_j=debt_arr[i],
            last_ts=device_last[i],
        )
        held = _load_task(tasks, i) if with_task else _NO_TASK
        air, mass = air_c[i], mass_c[i]
        until = offline_until[i]
        spell = _first_spell(spell_first, spell_start, i, k0)
        spell_end = spell_first[i + 1]
        setpoint_c, setpoint_until = setpoints[i], setpoints_until[i]
        gains_w, gains_until = gains[i], gains_until_ts[i]
        comfort = 0.0
        cold = 0.0
        heat_kwh = 0.0
        backup_kwh = 0.0
        task_kwh = 0.0
        first = k0
        stopped = False
        while first < k1 and not stopped:
            # A stretch of steps where the home's lookups and its being online hold.
            now = time_ts[first]
            while spell < spell_end and spell_start[spell] <= first:
                until = max(until, spell_end_step[spell])
                spell += 1
            online = until <= first
            if not now < setpoint_until:  # the schedule's value may change from here on
                setpoint_c, setpoint_until = home_setpoint_until(
                    i, mode, now, config.away_setpoint_c, schedule
                )
            if not now < gains_until:
                gains_w, gains_until = home_gains_until(
                    now, home_tz_s, home_away, leave, back, gains_pair
                )
            last = _stretch_end(time_ts, first, k1, minimum(setpoint_until, gains_until))
            if spell < spell_end:
                last = min(last, spell_start[spell])
            if not online:
                last = min(last, until)
            for k in range(first, last):
                if with_task and k > limit[0]:
                    stopped = True
                    break  # a lease ended before: the burst ends there and runs again
                t = k - k0
                # numba wraps a negative signed index around, at a few instructions per index;
                # these are never negative, and unsigned ones skip it (3-4 % of a step).
                at_k, at_t = np.uint64(k), np.uint64(t)
                now = time_ts[at_k]
                seen = Observation(
                    room_temp_c=air,
                    reading_ts=now,
                    device_temp_c=seen_device_c,
                    fan_ok=seen_fan_ok,
                    upright=seen_upright,
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

                # A heater works if it mines or runs its leased task.
                has_work = online and (is_asic or (with_task and held[0] >= 0))
                target_w = minimum(demand_w, max_power_w)
                stop = (not has_work) or result.alarm != 0
                device = advance_known(now, target_w, stop, device, devices, which)
                power_w = device.power_w
                backup_w = demand_w if backup_heating and not has_work else 0.0 * demand_w
                air, mass = step_2r2c(
                    air,
                    mass,
                    a_minus_i,
                    b,
                    power_w + backup_w + gains_w,
                    outdoor_c[at_k, region_at],
                )
                spent_j, ends = 0.0, False
                if with_task:
                    held, spent_j, done, done_ts, ends = _advance(
                        now, power_w, online, step_s, held, leases
                    )
                    if done:
                        done_step[i] = k
                        done_ts_arr[i] = done_ts

                below_k, above_k = band_excess_k(air, setpoint_c, band_k)
                comfort += (below_k + above_k) * step_h
                cold += below_k * step_h
                energy_kwh = power_w * step_kwh_per_w
                heat_kwh += energy_kwh
                backup_kwh += backup_w * step_kwh_per_w
                if with_task:
                    task_kwh += spent_j / _J_PER_KWH
                    task_partial[chunk_at, at_t, HEATER_TASK] += spent_j
                partial[chunk_at, at_t, ROOM] += air
                partial[chunk_at, at_t, SETPOINT] += setpoint_c
                partial[chunk_at, at_t, DEMAND] += demand_w
                partial[chunk_at, at_t, HEAT] += power_w
                partial[chunk_at, at_t, BACKUP] += backup_w
                partial[chunk_at, at_t, MINING] += energy_kwh * mining_value
                partial[chunk_at, at_t, region_column] += energy_kwh
                if column >= 0:
                    sampled[at_t, np.uint64(column)] = air
                if record:
                    recorded[at_k, np.uint64(i)] = air
                if with_task and ends:
                    _ended(leased, i, k)
                    stopped = True
                    break
            first = last

        integral_w[i] = state.integral_w
        heating[i] = state.heating
        since_ts[i] = state.since_ts
        last_tick_ts[i] = state.last_tick_ts
        last_command_ts[i] = state.last_command_ts
        last_power_w[i] = state.last_power_w
        alarm[i] = state.alarm
        power_arr[i] = device.power_w
        target_arr[i] = device.target_w
        device_since[i] = device.since_ts
        debt_arr[i] = device.debt_j
        device_last[i] = device.last_ts
        if with_task:
            _store_task(tasks, i, held)
        air_c[i], mass_c[i] = air, mass
        setpoints[i], setpoints_until[i] = setpoint_c, setpoint_until
        gains[i], gains_until_ts[i] = gains_w, gains_until
        comfort_total[i] += comfort
        cold_total[i] += cold
        heat_total[i] += heat_kwh
        backup_total[i] += backup_kwh
        if with_task:
            task_total[i] += task_kwh


@njit(cache=True)
def _rack_range(  # noqa: PLR0915, PLR0917
    chunk: int,
    lo: int,
    hi: int,
    k0: int,
    k1: int,
    homes: Any,
    clock: Any,
    arbiter: Any,
    devices: Any,
    offline_until: Any,
    leased: Any,
    out: Any,
) -> None:
    """Run racks ``lo … hi − 1`` (device indices): flat out while they hold a task, else 0 W.

    A rack without a task at the start stays without one (no claim happens in a burst): each
    step is the arbiter's stop (its state still moves on), and its sums (0 W, 0 J) are left
    out, which adds nothing to them; its offline spells change nothing here (the caller keeps
    the record of departures). Arrays are taken out of their bundles once, before the loop
    over racks (see :func:`_home_range`).
    """
    tasks, leases, limit = leased
    step_s = clock.step_s
    time_ts = clock.time_ts
    step_kwh_per_w = step_s / _J_PER_KWH
    partial, task_partial = out
    home_region, mining_value_eur_per_kwh = homes.region, homes.mining_value_eur_per_kwh
    spell_first, spell_start, spell_end_step = homes.spell_first, homes.spell_start, homes.spell_end
    max_power = devices.max_power_w
    power_arr, target_arr, device_since = arbiter.power_w, arbiter.target_w, arbiter.since_ts
    debt_arr, device_last = arbiter.debt_j, arbiter.last_ts
    task_of, done_step, done_ts_arr = tasks.task, tasks.done_step, tasks.done_ts
    for i in range(lo, hi):
        device = DeviceState(
            power_w=power_arr[i],
            target_w=target_arr[i],
            since_ts=device_since[i],
            debt_j=debt_arr[i],
            last_ts=device_last[i],
        )
        max_power_w = max_power[i]
        which = (i, is_discrete(devices, i))
        if task_of[i] < 0:
            target_w = minimum(0.0, max_power_w)
            for k in range(k0, k1):
                now = time_ts[k]
                device = advance_known(now, target_w, True, device, devices, which)
        else:
            held = _load_task(tasks, i)
            column = len(TASK_QUANTITIES) + home_region[i]
            mining_value = mining_value_eur_per_kwh[i]
            until = offline_until[i]
            spell = _first_spell(spell_first, spell_start, i, k0)
            spell_end = spell_first[i + 1]
            for k in range(k0, k1):
                if k > limit[0]:
                    break
                t = k - k0
                now = time_ts[k]
                while spell < spell_end and spell_start[spell] <= k:
                    until = max(until, spell_end_step[spell])
                    spell += 1
                online = until <= k
                has_task = held[0] >= 0
                target_w = minimum(max_power_w if has_task else 0.0, max_power_w)
                stop = not (online and has_task)
                device = advance_known(now, target_w, stop, device, devices, which)
                power_w = device.power_w
                held, spent_j, done, done_ts, ends = _advance(
                    now, power_w, online, step_s, held, leases
                )
                if done:
                    done_step[i] = k
                    done_ts_arr[i] = done_ts
                energy_kwh = power_w * step_kwh_per_w
                task_partial[chunk, t, RACK] += power_w
                partial[chunk, t, MINING] += energy_kwh * mining_value
                task_partial[chunk, t, RACK_TASK] += spent_j
                task_partial[chunk, t, column] += energy_kwh
                if ends:
                    _ended(leased, i, k)
                    break
            _store_task(tasks, i, held)
        power_arr[i] = device.power_w
        target_arr[i] = device.target_w
        device_since[i] = device.since_ts
        debt_arr[i] = device.debt_j
        device_last[i] = device.last_ts


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
    lookups: Any,
    totals: Any,
    tasks: Any,
    leases: Any,
    limit: Any,
    out: Any,
) -> None:
    """Run steps ``k0 … k1 − 1`` of every home and rack; update the state arrays in place.

    ``cfg``/``schedule`` are the control kernel's ``Config``/``Schedule`` of the homes,
    ``thermostat`` its ``State`` of arrays (N,), ``arbiter`` the arbiter kernel's
    ``DeviceState`` of arrays (D,) and ``devices`` its ``Devices``; ``offline_until`` (D,) the
    first step each device is back online (read only: the caller keeps the record of
    departures); ``rooms`` is (air (N,), mass (N,)) [°C]; ``lookups`` a :class:`Lookups`;
    ``tasks`` is a :class:`Tasks` (D,), ``leases`` the :class:`Leases`, ``limit`` (1,) the
    earliest step at whose end a lease was seen to end (``k1`` or more at the call); ``out`` is
    (``partial`` (home chunks + rack chunks, k1 − k0, Q + R) and ``task_partial`` (the same
    chunks and steps, :data:`TASK_QUANTITIES` + R) zeroed, ``sample_column`` (N,)
    column of a home in ``sampled`` or −1, ``sampled`` (k1 − k0, S) room air per step of the
    sampled homes, ``recorded`` (K, N) room air of every home, or (0, N) to record none).

    No claim may happen in steps ``k0 … k1 − 1``. A lease that ends (expired or handed back,
    :func:`lease_ends`) ends the burst after that step: where ``min(tasks.event_step) < k1 −
    1``, the caller discards this run and runs ``k0 … min(tasks.event_step)`` again from the
    same state (devices stop early once another's lease has ended, to save time).
    """
    n = rooms[0].shape[0]
    d = arbiter.power_w.shape[0]
    home_chunks = (n + CHUNK - 1) // CHUNK
    rack_chunks = (d - n + CHUNK - 1) // CHUNK
    # Homes, then racks, each loop split evenly between the threads: in one loop over both,
    # one thread got the racks' chunks (next to nothing without tasks) and fewer homes.
    for chunk in prange(home_chunks):
        leased = (tasks, leases, limit)
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
            lookups,
            totals,
            leased,
            out,
        )
    for rack_chunk in prange(rack_chunks):
        leased = (tasks, leases, limit)
        lo = n + rack_chunk * CHUNK
        _rack_range(
            home_chunks + rack_chunk,
            lo,
            min(lo + CHUNK, d),
            k0,
            k1,
            homes,
            clock,
            arbiter,
            devices,
            offline_until,
            leased,
            (out[0], out[1]),
        )
