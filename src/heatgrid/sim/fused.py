"""The fused engine: the simulator's step, compiled over many steps between scheduling events.

:func:`run_policy_fused` gives what :func:`heatgrid.sim.engine.run_policy` gives (the same
:class:`~heatgrid.sim.engine.RawRun`, to rounding: ``tests/contract/test_fused_engine.py``).
The run alternates two kinds of stretches:

* **Bursts.** While no claim can lease a task (the queue is empty, or its tasks wait out a
  retry backoff, and no job arrives), the steps of different devices do not interact: every
  step of every home is thermostat, arbiter, room, leased task and accounting.
  :func:`heatgrid.sim._fused_kernel.run_burst` runs up to ``burst_steps`` such steps in one
  compiled call, parallel over homes, with core's own kernels (``_control_kernel.tick``,
  ``_arbiter_kernel.realize_one``, :func:`~heatgrid.core.thermal_kernels.step_2r2c`,
  :func:`heatgrid.core.leasing.pauses` and ``hands_back``) and the queue's own task step
  (``_fused_kernel.task_step``), and reduces the results in the kernel. Tasks completed in a
  burst are ended afterwards in the engine's order (by step, then device). A lease that ends
  (its device offline for ``lease_s``, or a warm room's hand-back) lets the task be claimed at
  the next step, so the burst ends after that step: it is run again from the same state up
  to there, and the queue ends the lease as the engine's step does. Under ``mining-only`` the
  coordinator never leases a task, so the whole run is bursts.
* **Claim steps.** At a step where a claim may lease a task (a job arrives, a requeued task
  is ready), the arrivals and claims are made first, as :meth:`heatgrid.sim.engine._Loop.step`
  makes them (its own ``_claims``: the coordinator's candidate order and
  :func:`heatgrid.core.scheduling.choose`, on the demand the rules of
  :func:`~heatgrid.core.control.decide_many` give the heaters that may claim, decided by
  ``_fused_kernel.demand_rows``), then the burst runs from that step on with the
  new leases, to the next step where a claim may lease a task (the next step, if tasks are
  still queued). The engine's own step never runs: the rest of a claim step (thermostat,
  arbiter, rooms, task progress, accounting) is the kernel's.

Per-step fleet series are kept (K values each); per-home totals are (N,). The room temperature
percentiles per step are taken over every home up to :data:`PERCENTILE_SAMPLE` homes, and over
that many evenly spaced homes above it (a 5–95 % band for the plots, which would otherwise cost
a sort of every home at every step). Memory per home: about 280 bytes (state, settings,
totals, kept lookups) plus the fleet's draw, and about 180 bytes more for the saved state once a
device holds a task; see ``docs/simulator.md`` ("A year of homes").

The kernel updates the loop's own state arrays in place (nothing is copied per burst); while a
device holds a task, the state is saved before each burst, so that a burst that ends at a
lease that ends can be run again from it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from heatgrid.core import _arbiter_kernel, _control_kernel
from heatgrid.core._kernel_math import kernel_input
from heatgrid.core.arbiter import DeviceStateArrays
from heatgrid.core.control import (
    ObservationArrays,
    ThermostatStateArrays,
    kernel_config,
)
from heatgrid.core.errors import InputError
from heatgrid.core.scheduling import POLICIES
from heatgrid.sim import _fused_kernel as _kernel
from heatgrid.sim.engine import _J_PER_KWH, _ROOM_PERCENTILES, RawRun, _Loop
from heatgrid.sim.fleet import Fleet
from heatgrid.sim.jobs import Jobs
from heatgrid.sim.scenario import Scenario

__all__ = ["DEFAULT_BURST_STEPS", "PERCENTILE_SAMPLE", "run_policy_fused"]

DEFAULT_BURST_STEPS = 288
"""Most steps per compiled call (a day of 300 s steps); progress is reported after each."""
_ROOM_FRACTIONS = np.asarray(_ROOM_PERCENTILES) / 100.0
"""The engine's percentiles as fractions, divided as ``np.percentile`` divides them."""
PERCENTILE_SAMPLE = 8192
"""Homes over which the per-step room temperature percentiles are taken (all, up to this)."""
_PARALLEL_MIN_HOMES = 50_000
"""As :mod:`heatgrid.sim.engine`: a claim step's decision and claims run on one thread below."""


def run_policy_fused(
    scenario: Scenario,
    fleet: Fleet,
    jobs: Jobs,
    policy: str,
    *,
    record_rooms: bool = False,
    progress: Callable[[int], None] | None = None,
    burst_steps: int = DEFAULT_BURST_STEPS,
) -> RawRun:
    """Simulate ``scenario``'s fleet and jobs under one policy with the fused engine.

    Parameters
    ----------
    scenario, fleet, jobs, policy, record_rooms
        As :func:`heatgrid.sim.engine.run_policy`.
    progress : callable, optional
        Called with the number of steps done after each burst (a claim step starts one).
    burst_steps : int
        Most steps per compiled call, >= 1.

    Returns
    -------
    RawRun
        As :func:`heatgrid.sim.engine.run_policy` returns, to rounding.
    """
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    if burst_steps < 1:
        raise InputError(f"burst_steps must be at least 1, got {burst_steps!r}")
    loop = _FusedLoop(scenario, fleet, jobs, policy, record_rooms)
    loop.run(burst_steps, progress)
    return loop.result()


class _FusedLoop(_Loop):
    """The engine's loop, with quiet stretches run by the fused kernel."""

    def __init__(
        self, scenario: Scenario, fleet: Fleet, jobs: Jobs, policy: str, record_rooms: bool
    ) -> None:
        super().__init__(scenario, fleet, jobs, policy, record_rooms)
        n, d = fleet.n_homes, fleet.n_devices
        self._homes = _homes(scenario, fleet, self._observation, self.is_asic)
        self._config, self._schedule = kernel_config(fleet.thermostat, (n,))
        self._devices = _arbiter_kernel.Devices(
            min_power_w=kernel_input(np.broadcast_to(fleet.devices.min_power_w, d), np.float64),
            max_power_w=kernel_input(np.broadcast_to(fleet.devices.max_power_w, d), np.float64),
            power_levels_w=kernel_input(fleet.devices.power_levels_w, np.float64),
            min_cycle_s=kernel_input(np.broadcast_to(fleet.devices.min_cycle_s, d), np.float64),
        )
        self._clock = _kernel.Clock(
            time_ts=kernel_input(self.time_ts, np.float64),
            outdoor_c=kernel_input(self.outdoor, np.float64),
            step_s=float(scenario.step_s),
            comfort_band_k=float(scenario.comfort_band_k),
            backup_heating=bool(scenario.backup_heating),
        )
        sample = np.unique(np.linspace(0, n - 1, min(n, PERCENTILE_SAMPLE)).round().astype(int))
        self._sample_column = np.full(n, -1, dtype=np.int64)
        self._sample_column[sample] = np.arange(sample.size)
        self._sample_size = sample.size
        self._leases = _kernel.Leases(
            checkpoint_every_j=float(scenario.jobs.checkpoint_every_j),
            pause_after_s=float(scenario.pause_after_s),
            hand_back_after_s=float(scenario.hand_back_after_s),
            lease_s=float(scenario.lease_s),
        )
        # The state the kernel updates in place (the loop's own arrays, no copies per burst):
        # the rooms as two contiguous rows, of which ``state_c`` is the (N, 2) view.
        self._rooms = np.array(np.asarray(self.state_c, dtype=np.float64).T, order="C")
        self.state_c = self._rooms.T
        self.thermostat = ThermostatStateArrays(
            **{name: _owned(value) for name, value in _fields(self.thermostat).items()}
        )
        self.arbiter = DeviceStateArrays(
            **{name: _owned(value) for name, value in _fields(self.arbiter).items()}
        )
        self._state = _State(
            thermostat=_control_kernel.State(**_fields(self.thermostat)),
            arbiter=_arbiter_kernel.DeviceState(**_fields(self.arbiter)),
            rooms=(self._rooms[0], self._rooms[1]),
            lookups=_kernel.Lookups(
                setpoint_c=np.zeros(n),
                setpoint_until_ts=np.full(n, -math.inf),
                gains_w=np.zeros(n),
                gains_until_ts=np.full(n, -math.inf),
            ),
            totals=_kernel.Totals(
                comfort_k_h=self.comfort_k_h,
                cold_k_h=self.cold_k_h,
                heat_kwh=self.home_heat_kwh,
                backup_kwh=self.home_backup_kwh,
                task_kwh=self.home_task_kwh,
            ),
        )
        self._saved: _State | None = None
        self._no_tasks = _kernel.Tasks(
            task=np.full(d, -1, dtype=np.int64),
            size_j=np.zeros(d),
            progress_j=np.zeros(d),
            checkpoint_j=np.zeros(d),
            burned_j=np.zeros(d),
            zero_power_s=np.zeros(d),
            offline_s=np.zeros(d),
            done_step=np.full(d, _kernel.NO_STEP, dtype=np.int64),
            done_ts=np.full(d, math.nan),
            event_step=np.full(d, _kernel.NO_STEP, dtype=np.int64),
        )
        """The kernel's tasks while no device holds one: it reads only ``task`` then."""
        self._chunks = (n + _kernel.CHUNK - 1) // _kernel.CHUNK + (
            d - n + _kernel.CHUNK - 1
        ) // _kernel.CHUNK
        self._buffers: dict[str, NDArray[np.float64]] = {}

    def run(self, burst_steps: int, progress: Callable[[int], None] | None) -> None:
        """Run every step: bursts where nothing can be scheduled, else the engine's step."""
        total = self.scenario.n_steps
        k = 0
        while k < total:
            limit = min(total, k + burst_steps)
            end = self._quiet_until(k, limit)
            if end == k:  # a claim may lease a task at step k: the claims, then the burst
                self._claim(k)
                end = self._quiet_until(k + 1, limit)
            k = self._burst(k, end)
            if progress is not None:
                progress(k)

    def _quiet_until(self, k: int, limit: int) -> int:
        """Return the first step from ``k`` (at most ``limit``) where a claim may lease a task."""
        if self.policy == "mining-only":
            return limit  # the coordinator answers every claim with no task
        first = int(np.searchsorted(self.time_ts, self.queue.next_event_ts(), side="left"))
        return max(k, min(limit, first))

    def _claim(self, k: int) -> None:
        """Make step ``k``'s arrivals and claims as :meth:`_Loop.step` makes them.

        The claims read the thermostat's demand of the heaters that may claim (online, without a
        task, able to compute): :func:`heatgrid.sim._fused_kernel.demand_rows` decides it by the
        rules :func:`~heatgrid.core.control.decide_many` runs (the engine's call, which decides
        every home), and drops it: the burst that runs step ``k`` next decides it again from the
        same state with the same rule.
        """
        now = float(self.time_ts[k])
        queue = self.queue
        queue.arrive(now)
        if not queue.queued:
            return
        online = self._online(k)
        n = self.fleet.n_homes
        may_claim = np.flatnonzero(online[:n] & (queue.task_of[:n] < 0) & self.computes[:n])
        demand_w = np.zeros(n)
        state = self._state
        _kernel.demand_rows(
            may_claim,
            now,
            self._homes,
            self._config,
            self._schedule,
            state.thermostat,
            state.rooms,
            state.lookups,
            demand_w,
        )
        threads = numba.get_num_threads()
        if n < _PARALLEL_MIN_HOMES:
            numba.set_num_threads(1)  # as engine.run_policy runs its steps
        try:
            self._claims(k, now, online=online, demand_w=demand_w)
        finally:
            numba.set_num_threads(threads)

    def _burst(self, k0: int, k1: int) -> int:
        """Run steps ``k0 … k1 − 1`` in the fused kernel, or up to a lease that ends; store them.

        Returns the step after the last one run: ``k1``, or the step after the first one at
        whose end a lease ends (expired or handed back; the queue applies it as the engine does)
        or, with verification, a task is done (its result reported: a replica of it may be
        claimed at the next step).
        The kernel updates the loop's state arrays in place; only while a device holds a task
        (whose lease may end, so that the burst is run again up to there) is the state saved
        first, into arrays kept for that.
        """
        leased = bool(np.any(self.queue.task_of >= 0))
        if leased:
            self._save()
        run = self._run_burst(k0, k1)
        end = min(k1, int(np.min(run.tasks.event_step, initial=k1 - 1)) + 1)
        if self.queue.verifier is not None:  # a reported result may want a replica at once
            end = min(end, int(np.min(run.tasks.done_step, initial=k1 - 1)) + 1)
        if end < k1:
            self._restore()
            run = self._run_burst(k0, end)  # the same steps, up to the lease that ends
        self._keep(run, k0, end, leased)
        return end

    def _tasks(self) -> _kernel.Tasks:
        """Return the tasks the devices hold, for the kernel (a fresh copy), or none."""
        queue = self.queue
        if not np.any(queue.task_of >= 0):
            return self._no_tasks
        d = self.fleet.n_devices
        task = np.array(queue.task_of, dtype=np.int64)
        return _kernel.Tasks(
            task=task,
            size_j=_by_device(self.jobs.size_j, task),
            progress_j=_by_device(queue.progress_j, task),
            checkpoint_j=_by_device(queue.checkpoint_j, task),
            burned_j=_by_device(queue.burned_j, task),
            zero_power_s=np.array(queue.zero_power_s, dtype=np.float64),
            offline_s=np.array(queue.offline_s, dtype=np.float64),
            done_step=np.full(d, _kernel.NO_STEP, dtype=np.int64),
            done_ts=np.full(d, math.nan),
            event_step=np.full(d, _kernel.NO_STEP, dtype=np.int64),
        )

    def _save(self) -> None:
        """Copy the state the kernel updates into the arrays kept for a second run."""
        if self._saved is None:
            self._saved = _map_state(self._state, np.copy)
        else:
            _copy_state(self._saved, self._state)

    def _restore(self) -> None:
        """Put back the state :meth:`_save` copied (the burst is run again from it)."""
        assert self._saved is not None
        _copy_state(self._state, self._saved)

    def _buffer(self, name: str, shape: tuple[int, ...]) -> NDArray[np.float64]:
        """Return a C-contiguous array of ``shape`` on memory kept between bursts (not zeroed)."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size)
        return buffer[:size].reshape(shape)

    def _run_burst(self, k0: int, k1: int) -> _Burst:
        """Run steps ``k0 … k1 − 1`` on the loop's state, in place; return what they produced."""
        n, steps = self.fleet.n_homes, k1 - k0
        tasks = self._tasks()
        regions = len(self.scenario.regions)
        partial = self._buffer("partial", (self._chunks, steps, len(_kernel.QUANTITIES) + regions))
        task_partial = self._buffer(
            "task_partial", (self._chunks, steps, len(_kernel.TASK_QUANTITIES) + regions)
        )
        partial.fill(0.0)
        task_partial.fill(0.0)
        sampled = self._buffer("sampled", (steps, self._sample_size))
        out = (partial, task_partial, self._sample_column, sampled, self.series.room_temp_c)
        threads = numba.get_num_threads()
        if n * steps < _PARALLEL_MIN_HOMES:
            numba.set_num_threads(1)  # a short burst of a small fleet: cheaper than waking threads
        try:
            self._launch(k0, k1, tasks, out)
        finally:
            numba.set_num_threads(threads)
        return _Burst(tasks, partial.sum(axis=0), task_partial.sum(axis=0), sampled)

    def _launch(
        self, k0: int, k1: int, tasks: _kernel.Tasks, out: tuple[NDArray[Any], ...]
    ) -> None:
        state = self._state
        _kernel.run_burst(
            k0,
            k1,
            self._homes,
            self._clock,
            self._config,
            self._schedule,
            state.thermostat,
            state.arbiter,
            self._devices,
            self.offline_until,
            state.rooms,
            state.lookups,
            state.totals,
            tasks,
            self._leases,
            np.array([k1], dtype=np.int64),
            out,
        )

    def _keep(self, run: _Burst, k0: int, k1: int, leased: bool) -> None:
        """Apply ``run`` (steps ``k0 … k1 − 1``) to the queue and the series, as the engine does.

        The state arrays are the kernel's own; the queue takes the leased tasks' progress, ends
        the attempts completed in the burst and the leases that ended, if any were held.
        """
        self._online(k1 - 1)  # the engine's own record of departures catches up
        lost_j = 0.0
        if leased:
            queue, tasks = self.queue, run.tasks
            leased_devices = np.flatnonzero(queue.task_of >= 0)
            held = queue.task_of[leased_devices]
            queue.progress_j[held] = tasks.progress_j[leased_devices]
            queue.checkpoint_j[held] = tasks.checkpoint_j[leased_devices]
            queue.burned_j[held] = tasks.burned_j[leased_devices]
            queue.zero_power_s[leased_devices] = tasks.zero_power_s[leased_devices]
            queue.offline_s[leased_devices] = tasks.offline_s[leased_devices]
            done = np.flatnonzero(tasks.done_step != _kernel.NO_STEP)
            for device in done[np.lexsort((done, tasks.done_step[done]))]:  # as the steps end them
                queue.complete(
                    int(held[np.searchsorted(leased_devices, device)]), float(tasks.done_ts[device])
                )
            lost_j = queue.expire(
                float(self.time_ts[k1 - 1]) + self.scenario.step_s, self.scenario.lease_s
            )
        self._store(k0, k1, run, lost_j)

    def _store(self, k0: int, k1: int, run: _Burst, lost_j: float) -> None:
        series, n = self.series, self.fleet.n_homes
        sums, task_sums, sampled = run.sums, run.task_sums, run.sampled
        q, task_q = len(_kernel.QUANTITIES), len(_kernel.TASK_QUANTITIES)
        series.mean[k0:k1] = sums[:, _kernel.ROOM] / n
        low_high_c = np.empty((2, k1 - k0))
        _kernel.row_percentiles(sampled, _ROOM_FRACTIONS, low_high_c)
        series.p05[k0:k1], series.p95[k0:k1] = low_high_c
        series.setpoint[k0:k1] = sums[:, _kernel.SETPOINT] / n
        series.demand[k0:k1] = sums[:, _kernel.DEMAND]
        series.heat[k0:k1] = sums[:, _kernel.HEAT]
        series.rack[k0:k1] = task_sums[:, _kernel.RACK]
        series.backup[k0:k1] = sums[:, _kernel.BACKUP]
        series.home_kwh[k0:k1] = sums[:, q:]
        series.rack_kwh[k0:k1] = task_sums[:, task_q:]
        series.mining[k0:k1] = sums[:, _kernel.MINING]
        heater_j, rack_j = task_sums[:, _kernel.HEATER_TASK], task_sums[:, _kernel.RACK_TASK]
        for t in range(k1 - k0):  # as the engine adds them, step by step
            self.heater_task_j += float(heater_j[t])
            self.rack_task_j += float(rack_j[t])
        lost = np.zeros(k1 - k0)
        lost[-1] = lost_j
        price_per_j = self.scenario.compute_price_eur_per_kwh / _J_PER_KWH
        series.compute[k0:k1] = (heater_j + rack_j - lost) * price_per_j
        series.compute_homes[k0:k1] = heater_j * price_per_j


class _Burst(NamedTuple):
    """What a burst produced: the tasks' state after it, per-step sums, sampled rooms."""

    tasks: _kernel.Tasks
    sums: NDArray[np.float64]
    task_sums: NDArray[np.float64]
    sampled: NDArray[np.float64]


class _State(NamedTuple):
    """The state the kernel updates in place: the loop's own arrays."""

    thermostat: _control_kernel.State
    arbiter: _arbiter_kernel.DeviceState
    rooms: tuple[NDArray[np.float64], NDArray[np.float64]]
    lookups: _kernel.Lookups
    totals: _kernel.Totals


def _fields(arrays: ThermostatStateArrays | DeviceStateArrays) -> dict[str, NDArray[Any]]:
    """Return the arrays of a dataclass of arrays by field name (the arrays themselves)."""
    return {field.name: getattr(arrays, field.name) for field in dataclasses.fields(arrays)}


def _owned(value: NDArray[Any]) -> NDArray[Any]:
    """Return a C-contiguous, writeable copy of ``value`` in its dtype (the kernel writes it)."""
    return np.array(value, order="C", copy=True)


def _arrays(state: _State) -> list[NDArray[Any]]:
    return [*state.thermostat, *state.arbiter, *state.rooms, *state.lookups, *state.totals]


def _map_state(state: _State, copy: Callable[[NDArray[Any]], NDArray[Any]]) -> _State:
    """Return ``state`` with ``copy`` of every array."""
    return _State(
        thermostat=_control_kernel.State(*(copy(a) for a in state.thermostat)),
        arbiter=_arbiter_kernel.DeviceState(*(copy(a) for a in state.arbiter)),
        rooms=(copy(state.rooms[0]), copy(state.rooms[1])),
        lookups=_kernel.Lookups(*(copy(a) for a in state.lookups)),
        totals=_kernel.Totals(*(copy(a) for a in state.totals)),
    )


def _copy_state(to: _State, source: _State) -> None:
    """Copy every array of ``source`` into the same array of ``to``."""
    for target, value in zip(_arrays(to), _arrays(source), strict=True):
        np.copyto(target, value)


def _by_device(values: NDArray[np.float64], task: NDArray[np.int64]) -> NDArray[np.float64]:
    """Return ``values`` (by task) of the task each device holds, 0 where it holds none."""
    out = np.zeros(task.shape)
    leased = task >= 0
    out[leased] = values[task[leased]]
    return out


def _homes(
    scenario: Scenario, fleet: Fleet, obs: ObservationArrays, is_asic: NDArray[np.bool_]
) -> _kernel.Homes:
    """Return the kernel's constant per-home and per-device inputs, offline spells by device."""
    n, d = fleet.n_homes, fleet.n_devices
    order = np.lexsort((fleet.offline_start_step, fleet.offline_device))
    counts = np.bincount(fleet.offline_device, minlength=d)
    first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    offsets_s = np.array([region.tz_offset_h for region in scenario.regions]) * 3600.0
    return _kernel.Homes(
        coefficients=kernel_input(fleet.coefficients, np.float64),
        region=kernel_input(fleet.region, np.int64),
        tz_s=kernel_input(offsets_s[fleet.region[:n]], np.float64),
        occupied_gains_w=kernel_input(fleet.occupied_gains_w, np.float64),
        away_gains_w=kernel_input(fleet.away_gains_w, np.float64),
        away_home=kernel_input(fleet.away_home, np.bool_),
        leave_minute=kernel_input(fleet.leave_minute, np.float64),
        return_minute=kernel_input(fleet.return_minute, np.float64),
        mode=kernel_input(obs.mode, np.int64),
        device_temp_c=kernel_input(obs.device_temp_c, np.float64),
        fan_ok=kernel_input(obs.fan_ok, np.bool_),
        upright=kernel_input(obs.upright, np.bool_),
        is_asic=kernel_input(is_asic, np.bool_),
        mining_value_eur_per_kwh=kernel_input(fleet.mining_value_eur_per_kwh, np.float64),
        spell_first=first,
        spell_start=kernel_input(fleet.offline_start_step[order], np.int64),
        spell_end=kernel_input(fleet.offline_end_step[order], np.int64),
    )
