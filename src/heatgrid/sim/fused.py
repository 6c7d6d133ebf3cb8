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
  :func:`heatgrid.core.scheduling.choose`, on the demand of
  :func:`~heatgrid.core.control.decide_many`), then the burst runs from that step on with the
  new leases, to the next step where a claim may lease a task (the next step, if tasks are
  still queued). The engine's own step never runs: the rest of a claim step (thermostat,
  arbiter, rooms, task progress, accounting) is the kernel's.

Per-step fleet series are kept (K values each); per-home totals are (N,). The room temperature
percentiles per step are taken over every home up to :data:`PERCENTILE_SAMPLE` homes, and over
that many evenly spaced homes above it (a 5–95 % band for the plots, which would otherwise cost
a sort of every home at every step). Memory per home: about 250 bytes (state, settings,
totals) plus the fleet's draw; see ``docs/performance.md``.
"""

from __future__ import annotations

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
    decide_many,
    kernel_config,
)
from heatgrid.core.errors import InputError
from heatgrid.core.scheduling import POLICIES
from heatgrid.sim import _fused_kernel as _kernel
from heatgrid.sim.engine import _J_PER_KWH, RawRun, _Loop
from heatgrid.sim.fleet import Fleet
from heatgrid.sim.jobs import Jobs
from heatgrid.sim.scenario import Scenario

__all__ = ["DEFAULT_BURST_STEPS", "PERCENTILE_SAMPLE", "run_policy_fused"]

DEFAULT_BURST_STEPS = 288
"""Most steps per compiled call (a day of 300 s steps); progress is reported after each."""
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

        The thermostat's demand the claims read is decided here by
        :func:`~heatgrid.core.control.decide_many` (the engine's call) and dropped: the burst
        that runs step ``k`` next decides it again from the same state with the same rule.
        """
        now = float(self.time_ts[k])
        queue = self.queue
        queue.arrive(now)
        if not queue.queued:
            return
        online = self._online(k)
        threads = numba.get_num_threads()
        if self.fleet.n_homes < _PARALLEL_MIN_HOMES:
            numba.set_num_threads(1)  # as engine.run_policy runs its steps
        try:
            _, command = decide_many(
                self.thermostat, self._observation_at(now), now, self.fleet.thermostat
            )
            self._claims(k, now, online=online, demand_w=command.heat_power_w)
        finally:
            numba.set_num_threads(threads)

    def _burst(self, k0: int, k1: int) -> int:
        """Run steps ``k0 … k1 − 1`` in the fused kernel, or up to a lease that ends; store them.

        Returns the step after the last one run: ``k1``, or the step after the first one at
        whose end a lease ends (expired or handed back; the queue applies it as the engine does).
        """
        run = self._run_burst(k0, k1)
        end = min(k1, int(np.min(run.tasks.event_step, initial=k1 - 1)) + 1)
        if end < k1:
            run = self._run_burst(k0, end)  # the same steps, up to the lease that ends
        self._keep(run, k0, end)
        return end

    def _run_burst(self, k0: int, k1: int) -> _Burst:
        """Run steps ``k0 … k1 − 1`` on copies of the state; return them and what they produced."""
        n, d, steps = self.fleet.n_homes, self.fleet.n_devices, k1 - k0
        thermostat = _control_kernel.State(
            integral_w=np.array(self.thermostat.integral_w, dtype=np.float64),
            heating=np.array(self.thermostat.heating, dtype=np.bool_),
            since_ts=np.array(self.thermostat.since_ts, dtype=np.float64),
            last_tick_ts=np.array(self.thermostat.last_tick_ts, dtype=np.float64),
            last_command_ts=np.array(self.thermostat.last_command_ts, dtype=np.float64),
            last_power_w=np.array(self.thermostat.last_power_w, dtype=np.float64),
            alarm=np.array(self.thermostat.alarm, dtype=np.int64),
        )
        arbiter = _arbiter_kernel.DeviceState(
            power_w=np.array(self.arbiter.power_w, dtype=np.float64),
            target_w=np.array(self.arbiter.target_w, dtype=np.float64),
            since_ts=np.array(self.arbiter.since_ts, dtype=np.float64),
            debt_j=np.array(self.arbiter.debt_j, dtype=np.float64),
            last_ts=np.array(self.arbiter.last_ts, dtype=np.float64),
        )
        rooms = (
            np.array(self.state_c[:, 0], dtype=np.float64),
            np.array(self.state_c[:, 1], dtype=np.float64),
        )
        queue = self.queue
        task = np.array(queue.task_of, dtype=np.int64)
        tasks = _kernel.Tasks(
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
        regions = len(self.scenario.regions)
        chunks = (n + _kernel.CHUNK - 1) // _kernel.CHUNK + (
            d - n + _kernel.CHUNK - 1
        ) // _kernel.CHUNK
        partial = np.zeros((chunks, steps, len(_kernel.QUANTITIES) + regions))
        task_partial = np.zeros((chunks, steps, len(_kernel.TASK_QUANTITIES) + regions))
        sampled = np.empty((steps, self._sample_size))
        out = (partial, task_partial, self._sample_column, sampled, self.series.room_temp_c)
        totals = _kernel.Totals(
            comfort_k_h=np.zeros(n),
            heat_kwh=np.zeros(n),
            backup_kwh=np.zeros(n),
            task_kwh=np.zeros(n),
        )
        offline_until = np.array(self.offline_until, dtype=np.int64)
        threads = numba.get_num_threads()
        if n * steps < _PARALLEL_MIN_HOMES:
            numba.set_num_threads(1)  # a short burst of a small fleet: cheaper than waking threads
        try:
            self._launch(k0, k1, thermostat, arbiter, rooms, tasks, totals, offline_until, out)
        finally:
            numba.set_num_threads(threads)
        return _Burst(
            thermostat,
            arbiter,
            rooms,
            tasks,
            totals,
            partial.sum(axis=0),
            task_partial.sum(axis=0),
            sampled,
        )

    def _launch(  # noqa: PLR0917
        self,
        k0: int,
        k1: int,
        thermostat: _control_kernel.State,
        arbiter: _arbiter_kernel.DeviceState,
        rooms: tuple[NDArray[np.float64], NDArray[np.float64]],
        tasks: _kernel.Tasks,
        totals: _kernel.Totals,
        offline_until: NDArray[np.int64],
        out: tuple[NDArray[Any], ...],
    ) -> None:
        _kernel.run_burst(
            k0,
            k1,
            self._homes,
            self._clock,
            self._config,
            self._schedule,
            thermostat,
            arbiter,
            self._devices,
            offline_until,
            rooms,
            totals,
            tasks,
            self._leases,
            np.array([k1], dtype=np.int64),
            out,
        )

    def _keep(self, run: _Burst, k0: int, k1: int) -> None:
        """Make ``run`` (steps ``k0 … k1 − 1``) the loop's state, as the engine's steps leave it."""
        self.thermostat = ThermostatStateArrays(**run.thermostat._asdict())
        self.arbiter = DeviceStateArrays(**run.arbiter._asdict())
        self.state_c = np.column_stack(run.rooms)
        self.comfort_k_h += run.totals.comfort_k_h
        self.home_heat_kwh += run.totals.heat_kwh
        self.home_backup_kwh += run.totals.backup_kwh
        self.home_task_kwh += run.totals.task_kwh
        self._online(k1 - 1)  # the engine's own record of departures catches up
        queue, tasks = self.queue, run.tasks
        leased = np.flatnonzero(queue.task_of >= 0)
        held = queue.task_of[leased]
        queue.progress_j[held] = tasks.progress_j[leased]
        queue.checkpoint_j[held] = tasks.checkpoint_j[leased]
        queue.burned_j[held] = tasks.burned_j[leased]
        queue.zero_power_s[leased] = tasks.zero_power_s[leased]
        queue.offline_s[leased] = tasks.offline_s[leased]
        done = np.flatnonzero(tasks.done_step != _kernel.NO_STEP)
        for device in done[np.lexsort((done, tasks.done_step[done]))]:  # as the steps end them
            queue.complete(int(held[np.searchsorted(leased, device)]), float(tasks.done_ts[device]))
        lost_j = queue.expire(
            float(self.time_ts[k1 - 1]) + self.scenario.step_s, self.scenario.lease_s
        )
        self._store(k0, k1, run, lost_j)

    def _store(self, k0: int, k1: int, run: _Burst, lost_j: float) -> None:
        series, n = self.series, self.fleet.n_homes
        sums, task_sums, sampled = run.sums, run.task_sums, run.sampled
        q, task_q = len(_kernel.QUANTITIES), len(_kernel.TASK_QUANTITIES)
        series.mean[k0:k1] = sums[:, _kernel.ROOM] / n
        series.p05[k0:k1], series.p95[k0:k1] = np.percentile(
            sampled, [5.0, 95.0], axis=1, overwrite_input=True
        )
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
    """The state a burst left and what it produced: per-step sums, sampled rooms."""

    thermostat: _control_kernel.State
    arbiter: _arbiter_kernel.DeviceState
    rooms: tuple[NDArray[np.float64], NDArray[np.float64]]
    tasks: _kernel.Tasks
    totals: _kernel.Totals
    sums: NDArray[np.float64]
    task_sums: NDArray[np.float64]
    sampled: NDArray[np.float64]


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
