"""The fleet simulation loop: the homes' own control code, the coordinator's own policy.

Each step ``k`` starts at ``now_ts = start_ts + k · step_s`` and runs, for the whole fleet:

1. **Departures.** Devices in an offline spell burn no power and claim nothing.
2. **Thermostat.** :func:`heatgrid.core.control.decide_many` reads every room's air temperature
   (taken at ``now_ts``) and returns each home's heat demand.
3. **Arrivals and claims.** Arrived jobs are queued. Heaters that want heat (demand > 0), are
   online, compute (GPU or CPU) and hold no task claim work, and so do idle racks, in a random
   order that rotates every step. For each claim while tasks are queued, the coordinator locks
   up to ``claim_batch`` fitting candidates (oldest first for ``fifo``, by priority then age
   otherwise) and :func:`heatgrid.core.scheduling.choose` picks; under ``mining-only`` the
   coordinator answers every claim with no task, as it does. A heater offers a heat window of
   ``window_h`` hourly segments from ``now_ts``, by the agent's own rule
   (:func:`heatgrid.core.forecast.heat_window_w`: ``clip(UA · (setpoint − T_out) − gains, 0,
   max_power_w)`` with the scheduled setpoint, the weather and the gains at each segment's
   middle; :func:`heat_windows_w`).
4. **Arbiter.** :func:`heatgrid.core.arbiter.plan_many` sets each device's power: heaters follow
   the demand (ASICs mine, :meth:`~heatgrid.core.arbiter.WorkOffer.mining`; GPU and CPU heaters
   run their task, and without one have no work and stop); racks run flat out while they hold a
   task. A thermostat alarm stops its heater at once.
5. **Rooms.** :func:`heatgrid.core.thermal_kernels.advance_fleet_2r2c` advances every home one
   exact step under its heater's power plus internal gains. With ``backup_heating`` (the
   default) a home's existing heating supplies the thermostat's demand whenever its compute
   heater has no work (a GPU or CPU heater without a task, a device offline), as
   ``heatgrid economics`` models its backup.
6. **Tasks.** Leased tasks progress by the energy their device burned (:mod:`heatgrid.sim.queue`
   for checkpoints, completion, leases lost by offline devices and tasks handed back by heaters
   whose rooms are warm).

The run is deterministic: the same scenario and policy give the same result, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from heatgrid.core._arrays import FloatArray
from heatgrid.core.arbiter import DeviceStateArrays, plan_many
from heatgrid.core.comfort import add_band_excess
from heatgrid.core.control import (
    Mode,
    ObservationArrays,
    ThermostatStateArrays,
    decide_many,
    scheduled_setpoints_c,
)
from heatgrid.core.economics import mining_revenue_btc
from heatgrid.core.errors import InputError
from heatgrid.core.forecast import heat_window_w, window_instants_ts, window_starts_ts
from heatgrid.core.scheduling import (
    POLICIES,
    Claimant,
    ClaimantKind,
    FleetView,
    WindowSegment,
    choose,
)
from heatgrid.core.thermal_kernels import advance_fleet_2r2c
from heatgrid.sim._fused_kernel import gains_rows
from heatgrid.sim.fleet import Fleet, random_streams, sample_fleet
from heatgrid.sim.jobs import Jobs, sample_jobs
from heatgrid.sim.queue import TaskQueue
from heatgrid.sim.scenario import Scenario
from heatgrid.sim.verifier import Verifier

__all__ = [
    "RawRun",
    "heat_windows_w",
    "home_mining_revenue_eur",
    "internal_gains_w",
    "run_one",
    "run_policy",
]

_S_PER_H = 3600.0
_FIRST_WINDOWS = 64
"""Heat windows computed at once for the first heaters of a step's claims (then 128, …)."""
_J_PER_KWH = 3.6e6
_ROOM_PERCENTILES = (5.0, 95.0)
"""The percentiles of the room temperatures after each step (``room_p05_c``, ``room_p95_c``)."""
_GOLDEN = 0.6180339887498949
_PARALLEL_MIN_HOMES = 50_000
"""Below this many homes the thermal kernel runs on one thread: one step of a small fleet is
cheaper than waking the kernel's threads (about 10 ms on a busy machine, against 0.2 ms)."""


@dataclass(frozen=True, eq=False)
class RawRun:
    """What one policy's run produced, before summary statistics.

    Parameters
    ----------
    policy : str
        The scheduling policy.
    time_ts : numpy.ndarray
        Start of each step [POSIX s, UTC], (K,).
    comfort_k_h : numpy.ndarray
        Degree-hours outside ``setpoint ± comfort_band_k`` per home [K·h], (N,)
        (:func:`heatgrid.core.comfort.band_excess_k`).
    cold_k_h : numpy.ndarray
        The part of them below the band (the room too cold) per home [K·h], (N,); the rest is
        above it (too warm).
    home_heat_kwh, home_backup_kwh, home_task_kwh : numpy.ndarray
        Per home: its heater's electric energy (all of it heat), its own backup heating's heat,
        and the task energy its heater burned [kWh], (N,).
    home_region : numpy.ndarray
        Region index of each home, (N,).
    home_mining_revenue_eur : numpy.ndarray
        Per home: its ASIC's expected mining revenue over the run [EUR], (N,), 0 without one:
        :func:`heatgrid.core.economics.mining_revenue_btc` at the ASIC's mean hashrate
        (energy / efficiency / duration), the model of ``heatgrid economics``, at the
        scenario's market.
    room_temp_c : numpy.ndarray
        Room air temperature per step and home at the end of the step [°C], (K, N), only when
        recorded (else shape (0, N)).
    room_mean_c, room_p05_c, room_p95_c : numpy.ndarray
        Fleet mean and 5th/95th percentiles of the room temperature after each step [°C], (K,).
    setpoint_mean_c : numpy.ndarray
        Mean setpoint in force [°C], (K,).
    demand_w, heat_w, rack_w : numpy.ndarray
        Thermostats' heat demand, heaters' power and racks' power, fleet totals [W], (K,).
    backup_w : numpy.ndarray
        Power of the homes' own (backup) heating, fleet total [W], (K,).
    home_energy_kwh, rack_energy_kwh : numpy.ndarray
        Electric energy of heaters and of racks per step and region [kWh], (K, R).
    outdoor_temp_c : numpy.ndarray
        Outdoor temperature per step and region [°C], (K, R).
    mining_revenue_eur, compute_revenue_eur, compute_revenue_homes_eur : numpy.ndarray
        Revenue per step [EUR], (K,); compute revenue is on task energy kept.
    heater_task_j, rack_task_j : float
        Task energy burned in heaters and in racks [J].
    lost_j : float
        Task energy lost with lost leases [J].
    leases_lost : int
        Leases taken back (their device offline for ``lease_s``).
    leases_handed_back : int
        Tasks handed back by heaters whose rooms were warm (``hand_back_after_s``).
    tasks_dead : int
        Tasks moved to the dead letter (their attempts spent).
    claims : int
        Calls to :func:`heatgrid.core.scheduling.choose`.
    arrival_ts, done_ts : numpy.ndarray
        Per job: arrival and completion [POSIX s, UTC] (NaN if not done; with verification,
        when its result was verified).
    results_checked, results_unchecked : int
        With verification: rounds whose first result was spot-checked, and let through.
    replica_results : int
        With verification: replica results reported.
    replica_j : float
        With verification: task energy burned by replica attempts [J] (counted in
        ``heater_task_j`` and ``rack_task_j`` too).
    restarted_j : float
        With verification: progress dropped because a task restarted from scratch on a device
        other than the one that saved its newest checkpoint [J] (burned, and counted in
        ``heater_task_j`` and ``rack_task_j``).
    """

    policy: str
    time_ts: FloatArray
    comfort_k_h: FloatArray
    cold_k_h: FloatArray
    home_heat_kwh: FloatArray
    home_backup_kwh: FloatArray
    home_task_kwh: FloatArray
    home_mining_revenue_eur: FloatArray
    home_region: NDArray[np.int64]
    room_temp_c: FloatArray
    room_mean_c: FloatArray
    room_p05_c: FloatArray
    room_p95_c: FloatArray
    setpoint_mean_c: FloatArray
    demand_w: FloatArray
    heat_w: FloatArray
    rack_w: FloatArray
    backup_w: FloatArray
    home_energy_kwh: FloatArray
    rack_energy_kwh: FloatArray
    outdoor_temp_c: FloatArray
    mining_revenue_eur: FloatArray
    compute_revenue_eur: FloatArray
    compute_revenue_homes_eur: FloatArray
    heater_task_j: float
    rack_task_j: float
    lost_j: float
    leases_lost: int
    leases_handed_back: int
    tasks_dead: int
    claims: int
    arrival_ts: FloatArray
    done_ts: FloatArray
    results_checked: int
    results_unchecked: int
    replica_results: int
    replica_j: float
    restarted_j: float


class _Series:
    """Per-step accumulators."""

    def __init__(self, n_steps: int, n_regions: int, n_homes: int, record_rooms: bool) -> None:
        self.room_temp_c = np.empty((n_steps if record_rooms else 0, n_homes))
        self.mean = np.empty(n_steps)
        self.p05 = np.empty(n_steps)
        self.p95 = np.empty(n_steps)
        self.setpoint = np.empty(n_steps)
        self.demand = np.empty(n_steps)
        self.heat = np.empty(n_steps)
        self.rack = np.empty(n_steps)
        self.backup = np.empty(n_steps)
        self.home_kwh = np.zeros((n_steps, n_regions))
        self.rack_kwh = np.zeros((n_steps, n_regions))
        self.mining = np.empty(n_steps)
        self.compute = np.empty(n_steps)
        self.compute_homes = np.empty(n_steps)


def run_policy(
    scenario: Scenario,
    fleet: Fleet,
    jobs: Jobs,
    policy: str,
    *,
    record_rooms: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RawRun:
    """Simulate ``scenario``'s fleet and jobs under one scheduling policy.

    Parameters
    ----------
    scenario : Scenario
        Time span, regions, lease and claim settings.
    fleet : Fleet
        From :func:`heatgrid.sim.fleet.sample_fleet`.
    jobs : Jobs
        From :func:`heatgrid.sim.jobs.sample_jobs`.
    policy : str
        One of :data:`heatgrid.core.scheduling.POLICIES`.
    record_rooms : bool
        Keep every home's room temperature at every step (memory K·N·8 bytes).
    progress : callable, optional
        Called with the number of steps done after each step.

    Returns
    -------
    RawRun
        Series, totals and per-job times.
    """
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    loop = _Loop(scenario, fleet, jobs, policy, record_rooms)
    threads = numba.get_num_threads()
    if fleet.n_homes < _PARALLEL_MIN_HOMES:
        numba.set_num_threads(1)  # this thread's kernel launches only; restored below
    try:
        for k in range(scenario.n_steps):
            loop.step(k)
            if progress is not None:
                progress(k + 1)
    finally:
        numba.set_num_threads(threads)
    return loop.result()


def run_one(
    scenario: Scenario,
    policy: str,
    *,
    record_rooms: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RawRun:
    """Draw the fleet and jobs of ``scenario`` (from its seed) and run them under ``policy``."""
    fleet = sample_fleet(scenario)
    jobs = sample_jobs(scenario)
    return run_policy(scenario, fleet, jobs, policy, record_rooms=record_rooms, progress=progress)


class _Loop:
    """State of one run; :meth:`step` is one tick of the whole fleet."""

    def __init__(
        self, scenario: Scenario, fleet: Fleet, jobs: Jobs, policy: str, record_rooms: bool
    ) -> None:
        self.scenario, self.fleet, self.jobs, self.policy = scenario, fleet, jobs, policy
        n, d, r = fleet.n_homes, fleet.n_devices, len(scenario.regions)
        k_steps = scenario.n_steps
        self.time_ts: FloatArray = scenario.start_ts + np.arange(k_steps, dtype=np.float64) * float(
            scenario.step_s
        )
        self.outdoor = np.column_stack([reg.outdoor_at(self.time_ts) for reg in scenario.regions])
        self.state_c = np.array(fleet.initial_state_c)
        self.thermostat = ThermostatStateArrays.initial(n)
        self.arbiter = DeviceStateArrays.initial(d)
        self.queue = TaskQueue(
            jobs,
            d,
            scenario.jobs.checkpoint_every_j,
            max_attempts=scenario.max_attempts,
            retry_base_s=scenario.retry_base_s,
            retry_max_s=scenario.retry_max_s,
            pause_after_s=scenario.pause_after_s,
            hand_back_after_s=scenario.hand_back_after_s,
            verifier=_verifier(scenario, jobs),
        )
        self.offline_until = np.zeros(d, dtype=np.int64)
        self._next_departure = 0
        kinds = fleet.kind
        self.is_asic = kinds == "asic"
        self.computes = (kinds == "gpu") | (kinds == "cpu")
        self.is_rack = kinds == "rack"
        self.home_region = fleet.region[:n]
        self.comfort_k_h = np.zeros(n)
        self.cold_k_h = np.zeros(n)
        self.home_heat_kwh = np.zeros(n)
        self.home_backup_kwh = np.zeros(n)
        self.home_task_kwh = np.zeros(n)
        self.series = _Series(k_steps, r, n, record_rooms)
        self.record_rooms = record_rooms
        self.claims = 0
        self.heater_task_j = 0.0
        self.rack_task_j = 0.0
        self._observation = ObservationArrays(
            room_temp_c=self.state_c[:, 0],
            reading_ts=np.zeros(n),
            device_temp_c=np.full(n, math.nan),
            fan_ok=np.ones(n, dtype=np.bool_),
            upright=np.ones(n, dtype=np.bool_),
            mode=np.full(n, int(Mode.AUTO), dtype=np.int64),
        )

    def _online(self, k: int) -> NDArray[np.bool_]:
        fleet = self.fleet
        first = self._next_departure
        last = int(np.searchsorted(fleet.offline_start_step, k, side="right"))
        if last > first:  # the departures up to step k, each device to its latest return
            np.maximum.at(
                self.offline_until,
                fleet.offline_device[first:last],
                fleet.offline_end_step[first:last],
            )
            self._next_departure = last
        online: NDArray[np.bool_] = self.offline_until <= k
        return online

    def _observation_at(self, now_ts: float) -> ObservationArrays:
        """Return what every thermostat reads at ``now_ts``: its room's air now (a copy)."""
        obs = self._observation
        return ObservationArrays(
            room_temp_c=self.state_c[:, 0].copy(),
            reading_ts=np.full(self.fleet.n_homes, now_ts),
            device_temp_c=obs.device_temp_c,
            fan_ok=obs.fan_ok,
            upright=obs.upright,
            mode=obs.mode,
        )

    def step(self, k: int) -> None:
        """Run step ``k`` (see the module docstring)."""
        scenario, fleet, queue = self.scenario, self.fleet, self.queue
        n, step_s = fleet.n_homes, scenario.step_s
        now = float(self.time_ts[k])
        online = self._online(k)
        self.thermostat, command = decide_many(
            self.thermostat, self._observation_at(now), now, fleet.thermostat
        )
        demand_w = command.heat_power_w
        gains_w = internal_gains_w(scenario, fleet, np.arange(n), np.array([now]))[:, 0]

        queue.arrive(now)
        if queue.queued and self.policy != "mining-only":
            # The coordinator answers a mining-only claim without looking at the queue.
            self._claims(k, now, online=online, demand_w=demand_w)

        has_task = queue.task_of >= 0
        has_work = online & (self.is_asic | has_task)
        rack_demand = np.where(has_task[n:], fleet.devices.max_power_w[n:], 0.0)
        stop = ~has_work
        stop[:n] |= command.alarm != 0
        self.arbiter, power_w = plan_many(
            self.arbiter,
            np.concatenate([demand_w, rack_demand]),
            fleet.devices,
            now,
            stop_now=stop,
        )
        backup_w = (
            np.where(has_work[:n], 0.0, demand_w) if scenario.backup_heating else 0.0 * demand_w
        )
        self.series.backup[k] = float(np.sum(backup_w))
        self.home_backup_kwh += backup_w * (step_s / _J_PER_KWH)
        self.state_c = advance_fleet_2r2c(
            fleet.coefficients,
            self.state_c,
            power_w[:n] + backup_w + gains_w,
            self.outdoor[k][np.newaxis, :],
            self.home_region,
        )
        used_j = queue.run(power_w, now, step_s, online=online)
        lost_j = queue.expire(now + step_s, scenario.lease_s)
        self._account(
            k,
            setpoint_c=command.setpoint_c,
            demand_w=demand_w,
            power_w=power_w,
            used_j=used_j,
            lost_j=lost_j,
        )

    def _account(
        self,
        k: int,
        *,
        setpoint_c: FloatArray,
        demand_w: FloatArray,
        power_w: FloatArray,
        used_j: FloatArray,
        lost_j: float,
    ) -> None:
        scenario, fleet, series = self.scenario, self.fleet, self.series
        n, step_s = fleet.n_homes, scenario.step_s
        room_c = self.state_c[:, 0]
        add_band_excess(
            room_c,
            setpoint_c,
            scenario.comfort_band_k,
            step_s / _S_PER_H,
            self.comfort_k_h,
            self.cold_k_h,
        )
        if self.record_rooms:
            series.room_temp_c[k] = room_c
        series.mean[k] = float(np.mean(room_c))
        series.p05[k], series.p95[k] = np.percentile(room_c, _ROOM_PERCENTILES)
        series.setpoint[k] = float(np.mean(setpoint_c))
        series.demand[k] = float(np.sum(demand_w))
        series.heat[k] = float(np.sum(power_w[:n]))
        series.rack[k] = float(np.sum(power_w[n:]))
        energy_kwh = power_w * (step_s / _J_PER_KWH)
        self.home_heat_kwh += energy_kwh[:n]
        self.home_task_kwh += used_j[:n] / _J_PER_KWH
        regions = len(scenario.regions)
        series.home_kwh[k] = np.bincount(self.home_region, energy_kwh[:n], minlength=regions)
        series.rack_kwh[k] = np.bincount(fleet.region[n:], energy_kwh[n:], minlength=regions)
        series.mining[k] = float(np.dot(energy_kwh, fleet.mining_value_eur_per_kwh))
        heater_j, rack_j = float(np.sum(used_j[:n])), float(np.sum(used_j[n:]))
        self.heater_task_j += heater_j
        self.rack_task_j += rack_j
        price_per_j = scenario.compute_price_eur_per_kwh / _J_PER_KWH
        series.compute[k] = (heater_j + rack_j - lost_j) * price_per_j
        series.compute_homes[k] = heater_j * price_per_j

    def _claims(
        self,
        k: int,
        now: float,
        *,
        online: NDArray[np.bool_],
        demand_w: FloatArray,
    ) -> None:
        scenario, fleet, queue = self.scenario, self.fleet, self.queue
        n = fleet.n_homes
        idle = online & (queue.task_of < 0)
        wanting = idle[:n] & self.computes[:n] & (demand_w > 0.0)
        claiming = np.concatenate([wanting, idle[n:] & self.is_rack[n:]])
        devices = np.flatnonzero(claiming)
        if devices.size == 0:
            return
        rotation = np.mod(fleet.claim_key[devices] + k * _GOLDEN, 1.0)
        heaters_left = int(np.count_nonzero(wanting))
        order = queue.lock_order(self.policy, now)
        ordered = devices[np.argsort(rotation, kind="stable")]
        windows = _Windows(scenario, fleet, ordered[ordered < n], now)
        starts_ts = window_starts_ts(now, scenario.window_h, _S_PER_H)
        for device in ordered:
            if not queue.queued:
                break
            is_heater = device < n
            claimant = self._claimant(
                int(device), starts_ts, windows.next_w() if is_heater else None
            )
            candidates = queue.candidates(claimant, order, scenario.claim_batch, device=int(device))
            if not candidates:
                continue
            view = FleetView(
                running_by_submitter=queue.running_by_submitter,
                heaters_wanting_work=heaters_left - int(is_heater),
            )
            self.claims += 1
            chosen = choose(
                self.policy,
                claimant,
                candidates,
                view,
                now_ts=now,
                max_wait_s=scenario.max_wait_s,
            )
            for task in chosen:
                queue.lease(int(task[1:]), int(device))
            if is_heater and chosen:
                heaters_left -= 1

    def _claimant(
        self, device: int, starts_ts: FloatArray, window_w: FloatArray | None
    ) -> Claimant:
        fleet = self.fleet
        kind = str(fleet.kind[device])
        max_w = float(fleet.devices.max_power_w[device])
        if window_w is None:
            return Claimant(
                device_id=f"d{device}",
                kind="rack",
                vram_gb=float(fleet.vram_gb[device]),
                has_room=False,
                max_power_w=max_w,
            )
        window = tuple(
            WindowSegment(float(start), _S_PER_H, float(w))
            for start, w in zip(starts_ts, window_w, strict=True)
        )
        return Claimant(
            device_id=f"d{device}",
            kind=_claimant_kind(kind),
            vram_gb=float(fleet.vram_gb[device]),
            has_room=True,
            max_power_w=max_w,
            window=window,
        )

    def result(self) -> RawRun:
        """Return what the run produced."""
        series, queue = self.series, self.queue
        verifier = queue.verifier
        return RawRun(
            policy=self.policy,
            time_ts=self.time_ts,
            comfort_k_h=self.comfort_k_h,
            cold_k_h=self.cold_k_h,
            home_heat_kwh=self.home_heat_kwh,
            home_backup_kwh=self.home_backup_kwh,
            home_task_kwh=self.home_task_kwh,
            home_mining_revenue_eur=home_mining_revenue_eur(
                self.scenario, self.fleet, self.home_heat_kwh
            ),
            home_region=self.home_region,
            room_temp_c=series.room_temp_c,
            room_mean_c=series.mean,
            room_p05_c=series.p05,
            room_p95_c=series.p95,
            setpoint_mean_c=series.setpoint,
            demand_w=series.demand,
            heat_w=series.heat,
            rack_w=series.rack,
            backup_w=series.backup,
            home_energy_kwh=series.home_kwh,
            rack_energy_kwh=series.rack_kwh,
            outdoor_temp_c=self.outdoor,
            mining_revenue_eur=series.mining,
            compute_revenue_eur=series.compute,
            compute_revenue_homes_eur=series.compute_homes,
            heater_task_j=self.heater_task_j,
            rack_task_j=self.rack_task_j,
            lost_j=queue.lost_j,
            leases_lost=queue.leases_lost,
            leases_handed_back=queue.leases_handed_back,
            tasks_dead=queue.dead,
            claims=self.claims,
            arrival_ts=self.jobs.arrival_ts,
            done_ts=queue.done_ts,
            results_checked=0 if verifier is None else verifier.checked,
            results_unchecked=0 if verifier is None else verifier.unchecked,
            replica_results=0 if verifier is None else verifier.replicas,
            replica_j=queue.replica_j,
            restarted_j=queue.restarted_j,
        )


def _verifier(scenario: Scenario, jobs: Jobs) -> Verifier | None:
    """Return the run's verifier (its spot checks on the seed's own stream), or None."""
    if scenario.verification is None:
        return None
    return Verifier(scenario.verification, jobs.submitter, random_streams(scenario.seed)[4])


def home_mining_revenue_eur(
    scenario: Scenario, fleet: Fleet, home_heat_kwh: FloatArray
) -> FloatArray:
    """Return each home's expected mining revenue over the run [EUR], (N,).

    Its ASIC's mean hashrate over the run, ``energy / efficiency_j_per_th / duration`` [TH/s],
    through :func:`heatgrid.core.economics.mining_revenue_btc` at the scenario's market
    (difficulty, subsidy, fees, BTC price, EUR rate): the model ``heatgrid economics`` uses.
    Homes without an ASIC earn 0.
    """
    n = fleet.n_homes
    efficiency = np.array([device.efficiency_j_per_th or math.nan for device in fleet.models])
    efficiency_j_per_th = efficiency[fleet.model[:n]]
    asic = (fleet.kind[:n] == "asic") & np.isfinite(efficiency_j_per_th)
    duration_s = scenario.n_steps * scenario.step_s
    hashrate_ths = np.where(
        asic & (home_heat_kwh > 0.0),
        home_heat_kwh * _J_PER_KWH / np.where(asic, efficiency_j_per_th, 1.0) / duration_s,
        0.0,
    )
    market = scenario.market
    btc = mining_revenue_btc(
        hashrate_ths, duration_s, market.difficulty, market.subsidy_btc, market.fees_btc_per_block
    )
    revenue: FloatArray = np.asarray(btc) * market.btc_price_usd / market.usd_per_eur
    return revenue


def internal_gains_w(
    scenario: Scenario, fleet: Fleet, homes: NDArray[np.int64], timestamps_ts: FloatArray
) -> FloatArray:
    """Return the internal gains of some homes at some instants [W], shape ``(m, k)``.

    Occupied gains, or away gains while an away home is empty (weekdays, local time): the rule
    of ``heatgrid.sim._fused_kernel.home_gains_w``, which the fused loop evaluates too.
    """
    rows = np.asarray(homes, dtype=np.int64)
    gains: FloatArray = np.empty((rows.size, np.size(timestamps_ts)))
    gains_rows(
        rows,
        _home_tz_s(scenario, fleet),
        fleet.away_home,
        (fleet.leave_minute, fleet.return_minute),
        (fleet.occupied_gains_w, fleet.away_gains_w),
        np.asarray(timestamps_ts, dtype=np.float64),
        gains,
    )
    return gains


def _home_tz_s(scenario: Scenario, fleet: Fleet) -> FloatArray:
    """UTC offset of each home's region [s], (N,)."""
    offsets_s = np.array([region.tz_offset_h for region in scenario.regions]) * 3600.0
    result: FloatArray = offsets_s[fleet.region[: fleet.n_homes]]
    return result


def heat_windows_w(
    scenario: Scenario, fleet: Fleet, homes: NDArray[np.int64], now_ts: float
) -> FloatArray:
    """Return the heat window the heaters of ``homes`` offer at ``now_ts`` [W], ``(m, window_h)``.

    The agent's rule (:func:`heatgrid.core.forecast.heat_window_w`) over ``window_h`` hourly
    segments from ``now_ts``, each taken at its middle: the home's scheduled setpoint, its
    region's outdoor temperature, its internal gains; its UA and its heater's maximum power.
    """
    instants_ts = window_instants_ts(now_ts, scenario.window_h, _S_PER_H)
    outdoor_c = np.stack([region.outdoor_at(instants_ts) for region in scenario.regions])
    return heat_window_w(
        fleet.ua_w_per_k[homes, np.newaxis],
        scheduled_setpoints_c(fleet.thermostat, homes, instants_ts),
        outdoor_c[fleet.region[homes]],
        internal_gains_w(scenario, fleet, homes, instants_ts),
        fleet.devices.max_power_w[homes, np.newaxis],
    )


class _Windows:
    """The heat windows of heaters in their claim order, computed a block at a time.

    A step's claims stop once the queue is empty, often after a few heaters: the windows of the
    others are not computed (each row of :func:`heat_windows_w` is its home's alone, so the
    rows are the same in blocks as all at once). Blocks start at ``_FIRST_WINDOWS`` heaters
    and double.
    """

    def __init__(
        self, scenario: Scenario, fleet: Fleet, heaters: NDArray[np.int64], now_ts: float
    ) -> None:
        self._scenario, self._fleet, self._heaters, self._now_ts = scenario, fleet, heaters, now_ts
        self._rows: FloatArray = np.empty((0, scenario.window_h))
        self._done = 0  # heaters whose windows were computed
        self._taken = 0  # windows handed out
        self._block = _FIRST_WINDOWS

    def next_w(self) -> FloatArray:
        """Return the window of the next heater in claim order [W], ``(window_h,)``."""
        if self._taken == self._done:
            block = self._heaters[self._done : self._done + self._block]
            self._rows = heat_windows_w(self._scenario, self._fleet, block, self._now_ts)
            self._done += block.size
            self._block *= 2
        row: FloatArray = self._rows[self._taken - (self._done - self._rows.shape[0])]
        self._taken += 1
        return row


def _claimant_kind(kind: str) -> ClaimantKind:
    if kind == "gpu":
        return "gpu"
    if kind == "cpu":
        return "cpu"
    if kind == "asic":
        return "asic"
    return "rack"
