"""The agent daemon: controls the room every tick and talks to the coordinator when it can.

Loops run side by side in :meth:`AgentDaemon.run`:

* the **control loop** (:meth:`AgentDaemon.tick`, every ``thermostat.tick_s``): read the devices,
  run :func:`heatgrid.agent.loop.control_tick`, apply its commands, persist the controller state
  and queue a telemetry sample every ``telemetry_interval_s``. It never waits on the network,
  so the room is controlled whether or not the coordinator answers. With a :class:`Workload`
  its tasks are offers to the arbiter, and after the commands :meth:`Workload.follow` turns the
  plan into the tasks' throttle (it only sets flags: tasks run in threads of their own). A CPU
  the plan gives to a task keeps its adapter's own workers stopped: the task is its heat.
* the **sync loop** (:meth:`AgentDaemon.sync`): a heartbeat carrying the queued telemetry (in
  batches, oldest first, until the queue is empty) and the heat window; then, when heat is wanted
  and a :class:`Workload` has free slots, a claim. A failure is retried after a jittered
  exponential backoff; the queue waits in the state file, so nothing is lost.
* the **room model** (:meth:`AgentDaemon.update_room_model`, at the start of each sync, acting
  once a day): a room sample (room and outdoor temperature, delivered power) is recorded every
  ``_HISTORY_INTERVAL_S`` in the state file's history (``room.history_days`` kept); once a day
  the room's UA and time constant are fitted to it, off the event loop, and kept when the fit is
  accepted (see :mod:`heatgrid.agent.room_model`). The heat window uses the learned UA, else
  ``[room]``. The outdoor forecast hook is also called off the event loop (it may do HTTP).
* the **Home Assistant loop** (when :attr:`AgentDaemon.home_assistant` holds a bridge, see
  :func:`heatgrid.agent.open_devices.open_home_assistant`): every ``telemetry_interval_s``,
  :meth:`~AgentDaemon.publish_home_assistant` publishes the room temperature, the setpoint in
  force, the mode (``heat``/``off``), the action (``heating``/``idle``/``off``), the power, the
  hash rate (with a miner) and what the heat computes. A broker that is away only skips the
  publication; the control loop never waits on it.

The user's commands (Home Assistant, through the bridge's callbacks):

* :meth:`~AgentDaemon.hold_setpoint` holds a manual setpoint **until the next change point of the
  weekly schedule** (``thermostat.schedule``), as most smart thermostats do; then the schedule
  takes over again. Without a schedule it holds until another setpoint is given. In away mode it
  replaces ``away_setpoint_c`` for as long.
* :meth:`~AgentDaemon.set_mode` switches the mode: :attr:`Mode.OFF` puts every device in its
  safe state on the spot (a tick runs at once); Home Assistant's ``heat`` resumes
  ``thermostat.mode`` (``auto`` if that is ``off``).

Both are kept in the state file, so a restart keeps the held setpoint (until it ends) and the
mode last chosen, which wins over ``thermostat.mode``.

Time comes from the injected ``clock``; tests call :meth:`~AgentDaemon.tick`,
:meth:`~AgentDaemon.sync` and :meth:`~AgentDaemon.publish_home_assistant` themselves with a
simulated clock. A device that refuses a command puts every device in its safe state.
:meth:`~AgentDaemon.shutdown` (on SIGTERM) pauses the workload and puts every device in its safe
state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from heatgrid.agent.backoff import Backoff
from heatgrid.agent.challenge import FEATURES, answer_challenge
from heatgrid.agent.client import (
    CoordinatorClient,
    CoordinatorRefusedError,
    CoordinatorUnavailableError,
)
from heatgrid.agent.config import AgentConfig
from heatgrid.agent.devices.base import (
    DeviceCommandError,
    DeviceReading,
    DeviceUnavailableError,
    HeatDevice,
    PoolMiner,
)
from heatgrid.agent.enroll import heater_hardware
from heatgrid.agent.forecast import heat_window, segment_count
from heatgrid.agent.homeassistant import Action, HomeAssistantBridge, MqttUnavailableError
from heatgrid.agent.loop import (
    HEAT_ONLY_WORK_ID,
    MINING_WORK_ID,
    DeviceCommand,
    LoopState,
    RoomSample,
    TickResult,
    control_tick,
    telemetry_sample,
)
from heatgrid.agent.mining_pool import PoolPointer
from heatgrid.agent.room_model import RoomParameters, fit_room
from heatgrid.agent.state_store import StateStore
from heatgrid.core.arbiter import BOOST_WORK_ID, ArbiterState, DevicePlan, DeviceState, WorkOffer
from heatgrid.core.control import (
    Alarm,
    Mode,
    ThermostatConfig,
    ThermostatState,
    WeeklySchedule,
    next_change_ts,
)
from heatgrid.core.errors import InputError, require_finite, require_positive
from heatgrid.protocol import v1

__all__ = ["AgentDaemon", "Workload", "manual_setpoint_until_ts"]

_log = logging.getLogger(__name__)
_STATE_KEY = "loop_state"
_HOLD_KEY = "setpoint_hold"
_MODE_KEY = "user_mode"
_ROOM_KEY = "room_model"
_ENERGY_KEY = "heat_energy_j"
_ENERGY_MAX_GAP_TICKS = 3.0  # a longer silence (agent stopped, clock jump) counts no energy
_MINING_INTERVAL_S = 300.0  # how often the proxy's count is read for Home Assistant [s]
_ROOM_FIT_TRIED_KEY = "room_model_tried_ts"
_HISTORY_INTERVAL_S = 60.0
_ROOM_FIT_INTERVAL_S = 86_400.0
_S_PER_DAY = 86_400.0
_JOB_NAMES = {"mining": "bitcoin", "boost": "heat only", "idle": "idle"}
_NOT_TASKS = frozenset({MINING_WORK_ID, HEAT_ONLY_WORK_ID, BOOST_WORK_ID})


class Workload(Protocol):
    """The seam to the jobs runtime that runs leased tasks (:mod:`heatgrid.agent.workload`).

    The daemon claims tasks only through an implementation of this interface; without one it
    heats with mining or heat-only work and never claims.
    """

    def free_slots(self) -> int:
        """Return how many more tasks it can run now."""
        ...

    def offers(self, now_ts: float) -> list[WorkOffer]:
        """Return the running tasks as work the arbiter may give power to."""
        ...

    def follow(self, plans: Sequence[DevicePlan], now_ts: float) -> None:
        """Follow a tick's plan (throttle, freeze or pause the tasks); must never wait."""
        ...

    def task_power_w(self, device_id: str) -> float:
        """Return the power its tasks draw on ``device_id`` above its idle power [W]."""
        ...

    async def start(self, lease: v1.TaskLease) -> None:
        """Start (or resume from its checkpoint) a leased task; return at once."""
        ...

    async def pause_all(self) -> None:
        """Checkpoint and pause every running task (shutdown)."""
        ...


def _state_to_json(state: LoopState) -> dict[str, Any]:
    thermostat = asdict(state.thermostat)
    thermostat["alarm"] = int(state.thermostat.alarm)
    return {
        "thermostat": thermostat,
        "arbiter": [asdict(device) for device in state.arbiter.devices],
    }


def _state_from_json(value: Any) -> LoopState:
    if not isinstance(value, dict):
        return LoopState()
    try:
        thermostat = dict(value["thermostat"])
        thermostat["alarm"] = Alarm(int(thermostat["alarm"]))
        devices = tuple(DeviceState(**device) for device in value["arbiter"])
        # Devices start in their safe state, so nothing counts as applied after a restart.
        return LoopState(ThermostatState(**thermostat), ArbiterState(devices), {})
    except (KeyError, TypeError, ValueError):
        _log.warning("state file: the saved controller state is unreadable; starting afresh")
        return LoopState()


def _hold_end_text(until_ts: float) -> str:
    """Say how long a setpoint set by hand holds, for the log: no end, or the schedule's next."""
    if not math.isfinite(until_ts):
        return "until another setpoint is set (no schedule to return to)"
    when = datetime.fromtimestamp(until_ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"until the schedule's next change, {when}"


def manual_setpoint_until_ts(schedule: WeeklySchedule | None, now_ts: float) -> float:
    """Return when a setpoint set by hand at ``now_ts`` gives way to the schedule.

    Parameters
    ----------
    schedule : WeeklySchedule or None
        The weekly schedule; None when the configuration has none.
    now_ts : float
        When the setpoint was set, POSIX UTC [s].

    Returns
    -------
    float
        The next change point of ``schedule`` strictly after ``now_ts``, POSIX UTC [s]; within
        one week. ``inf`` without a schedule: the setpoint holds until changed.
    """
    if schedule is None:
        return math.inf
    return next_change_ts(schedule, now_ts)


def _hold_from_json(value: Any) -> tuple[float, float] | None:
    try:
        setpoint_c, until_ts = float(value["setpoint_c"]), float(value["until_ts"])
    except (KeyError, TypeError, ValueError):
        return None
    return (setpoint_c, until_ts) if math.isfinite(setpoint_c) else None


def _mode_from_json(value: Any, default: Mode) -> Mode:
    return Mode[value] if isinstance(value, str) and value in Mode.__members__ else default


def _ha_action(mode: Mode, result: TickResult) -> Action:
    if mode == Mode.OFF:
        return "off"
    return "heating" if result.command.heating else "idle"


class AgentDaemon:
    """One heater's agent.

    Parameters
    ----------
    config : AgentConfig
        The validated configuration.
    devices : sequence of HeatDevice
        The opened devices.
    room : callable
        Returns the latest room reading, or None.
    store : StateStore
        The local state file (identity, controller state, telemetry queue).
    client : CoordinatorClient or None
        The coordinator; None runs local-only (no enrollment yet).
    clock : callable
        Returns the present, POSIX UTC [s].
    speed : float
        Seconds of ``clock`` per real second [-]: above 1 on an accelerated emulated clock
        (:mod:`heatgrid.core.clock`), where the control loop ticks every ``tick_s / speed``
        real seconds, so that ``tick_s`` stays a period of the room's (emulated) time.
    outdoor : callable, optional
        Returns the latest outdoor temperature [°C] or None; held over the forecast horizon.
    outdoor_forecast : callable, optional
        ``(start_ts, count, segment_s) -> temperatures [°C]`` from a weather forecast, or None
        when it has none; preferred over persistence of ``outdoor``.
    workload : Workload, optional
        The jobs runtime; without it no task is claimed.
    rng : random.Random, optional
        Source of the backoff jitter.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        devices: Sequence[HeatDevice],
        room: Callable[[], RoomSample | None],
        store: StateStore,
        client: CoordinatorClient | None,
        clock: Callable[[], float],
        speed: float = 1.0,
        outdoor: Callable[[], float | None] | None = None,
        outdoor_forecast: Callable[[float, int, float], Sequence[float] | None] | None = None,
        workload: Workload | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.devices = {device.name: device for device in devices}
        self._room = room
        self.store = store
        self._client = client
        self._clock = clock
        self._speed = require_positive("speed", speed)
        self._outdoor = outdoor
        self._outdoor_forecast = outdoor_forecast
        self._workload = workload
        self._thermostat = config.thermostat_config()
        coordinator = config.coordinator
        self.backoff = Backoff(coordinator.backoff_initial_s, coordinator.backoff_max_s, rng)
        self._heartbeat_s = coordinator.heartbeat_interval_s
        self.state = _state_from_json(store.get(_STATE_KEY))
        self.last_result: TickResult | None = None
        self._last_sample_ts = -math.inf
        self.mode: Mode = _mode_from_json(store.get(_MODE_KEY), config.mode)
        """What the user asked for; may be changed while running (see :meth:`set_mode`)."""
        self.home_assistant: HomeAssistantBridge | None = None
        """The Home Assistant bridge whose state :meth:`run` publishes; None: no publishing."""
        stored_j = store.get(_ENERGY_KEY)
        self._energy_j = (
            float(stored_j)
            if isinstance(stored_j, int | float) and math.isfinite(stored_j) and stored_j >= 0
            else 0.0
        )
        self._energy_ts: float | None = None
        self.mining: v1.DeviceMining | None = None
        """The coordinator's count of this heater's mining, read for Home Assistant (or None)."""
        self._mining_ts = -math.inf
        self.pools = PoolPointer(
            [device for device in devices if isinstance(device, PoolMiner)], store, clock
        )
        """Points the heater's miners at the coordinator's Stratum proxy once enrolled."""
        self._hold = _hold_from_json(store.get(_HOLD_KEY))
        self._held_thermostat: ThermostatConfig | None = None
        self._last_readings: Mapping[str, DeviceReading | None] = {}
        self._last_room: RoomSample | None = None
        self._lock = asyncio.Lock()
        self._stopped = False
        self._lent: set[str] = set()
        try:
            self._hardware: tuple[v1.DeviceKind, v1.Hardware] | None = heater_hardware(config)
        except (InputError, ValueError):  # nothing to compute on, or beyond the protocol's range
            self._hardware = None  # the heartbeat does not say; enrollment's description stays
        self._last_history_ts = -math.inf
        learned = RoomParameters.from_json(store.get(_ROOM_KEY)) if config.room.learn else None
        self.room_parameters: RoomParameters = learned or RoomParameters(
            ua_w_per_k=config.room.ua_w_per_k, time_constant_h=config.room.time_constant_h
        )
        """The room's parameters in use: the last accepted fit, else ``[room]``."""

    # ------------------------------------------------------------------ user commands

    @property
    def resume_mode(self) -> Mode:
        """The mode Home Assistant's ``heat`` resumes: ``thermostat.mode``, AUTO if that is OFF."""
        return Mode.AUTO if self.config.mode == Mode.OFF else self.config.mode

    @property
    def held_setpoint_c(self) -> float | None:
        """The setpoint held by hand [°C], or None while the schedule rules."""
        return None if self._hold is None else self._hold[0]

    async def hold_setpoint(self, setpoint_c: float) -> None:
        """Hold ``setpoint_c`` [°C] until the schedule's next change point; tick at once.

        Raises
        ------
        InputError
            If ``setpoint_c`` is not finite.
        """
        setpoint_c = require_finite("setpoint_c", setpoint_c)
        async with self._lock:
            now_ts = self._clock()
            schedule = self._thermostat.schedule if self.config.thermostat.schedule else None
            until_ts = manual_setpoint_until_ts(schedule, now_ts)
            self._hold = (setpoint_c, until_ts)
            self._held_thermostat = None
            self.store.put(_HOLD_KEY, {"setpoint_c": setpoint_c, "until_ts": until_ts})
            _log.info("setpoint %.1f °C held by hand %s", setpoint_c, _hold_end_text(until_ts))
            if not self._stopped:
                await self._tick()

    async def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode`` and keep it in the state file; tick at once (OFF: devices safe)."""
        async with self._lock:
            self.mode = mode
            self.store.put(_MODE_KEY, mode.name)
            _log.info("mode set to %s", mode.name.lower())
            if not self._stopped:
                await self._tick()

    def _thermostat_at(self, now_ts: float) -> ThermostatConfig:
        """Return the thermostat's settings at ``now_ts``, with the setpoint held by hand."""
        if self._hold is None:
            return self._thermostat
        setpoint_c, until_ts = self._hold
        if now_ts >= until_ts:
            _log.info("the schedule takes over from the setpoint held by hand")
            self._hold, self._held_thermostat = None, None
            self.store.put(_HOLD_KEY, None)
            return self._thermostat
        if self._held_thermostat is None:
            self._held_thermostat = replace(
                self._thermostat,
                schedule=WeeklySchedule.constant(setpoint_c),
                away_setpoint_c=setpoint_c,
            )
        return self._held_thermostat

    # ------------------------------------------------------------------ control

    def _offers(self, now_ts: float) -> list[WorkOffer]:
        offers = [] if self._workload is None else list(self._workload.offers(now_ts))
        if self.config.mining is not None:
            offers.append(
                WorkOffer.mining(
                    self.config.mining.hashprice_eur_per_th_day,
                    self.config.mining.efficiency_j_per_th,
                    work_id=MINING_WORK_ID,
                )
            )
        if self.config.heat_only:
            offers.append(
                WorkOffer(
                    work_id=HEAT_ONLY_WORK_ID,
                    value_eur_per_kwh=0.0,
                    device_kinds=("asic", "gpu", "cpu"),
                    exclusive=False,
                )
            )
        return offers

    async def _read(self, device: HeatDevice) -> DeviceReading | None:
        try:
            return await device.read()
        except DeviceUnavailableError as error:
            _log.warning("device %s could not be read: %s", device.name, error)
            return None

    async def tick(self) -> TickResult:
        """Run one control tick at the clock's present; return what was decided."""
        async with self._lock:
            return await self._tick()

    async def _tick(self) -> TickResult:
        now_ts = self._clock()
        readings = {name: await self._read(device) for name, device in self.devices.items()}
        readings = self._with_task_power(readings)
        room = self._room()
        result = control_tick(
            self.state,
            thermostat=self._thermostat_at(now_ts),
            mode=self.mode,
            devices=[device.capability for device in self.devices.values()],
            readings=readings,
            room=room,
            offers=self._offers(now_ts),
            now_ts=now_ts,
        )
        self.state = result.state
        alarm_changed = (
            self.last_result is not None and self.last_result.command.alarm != result.command.alarm
        )
        if result.command.alarm != Alarm.NONE and (alarm_changed or self.last_result is None):
            _log.warning("heating stopped for safety: %s", ", ".join(result.command.reasons))
            self._hint_clock(room)
        if not await self._apply(result):
            await self.safe_all()
        if self._workload is not None:
            try:
                self._workload.follow(result.plans, now_ts)
            except Exception:  # a bug in the jobs runtime must not stop the room's control
                _log.exception("the workload could not follow the plan")
        self.last_result, self._last_readings, self._last_room = result, readings, room
        self.store.put(_STATE_KEY, _state_to_json(self.state))
        sample = telemetry_sample(result, readings, room, now_ts)
        self._count_energy(sample.power_w, now_ts)
        interval_s = self.config.thermostat.telemetry_interval_s
        if alarm_changed or now_ts - self._last_sample_ts >= interval_s:
            self.store.enqueue(sample)
            self._last_sample_ts = now_ts
        if now_ts - self._last_history_ts >= _HISTORY_INTERVAL_S:
            self._record_history(now_ts, readings, room)
        return result

    @property
    def heat_energy_kwh(self) -> float:
        """Electric energy drawn, all of it heat, since the state file was made [kWh]."""
        return self._energy_j / 3.6e6

    def _count_energy(self, power_w: float, now_ts: float) -> None:
        """Add the power read now times the time since the previous tick (kept in the state).

        A device reads the power it has drawn since the previous tick's command. A gap of more
        than three ticks (the agent stopped, the clock jumped) adds nothing.
        """
        last_ts, self._energy_ts = self._energy_ts, now_ts
        if last_ts is None or not (math.isfinite(power_w) and power_w > 0.0):
            return
        elapsed_s = now_ts - last_ts
        if 0.0 < elapsed_s <= _ENERGY_MAX_GAP_TICKS * self.config.thermostat.tick_s:
            self._energy_j += power_w * elapsed_s
            self.store.put(_ENERGY_KEY, self._energy_j)

    def _hint_clock(self, room: RoomSample | None) -> None:
        """Say so when the sensor stamps its readings on another clock than the agent's.

        A reading that arrived just now but is stamped far from the time it arrived comes from a
        sensor on another clock: an emulated room on a past date or sped up.
        """
        if room is None or not math.isfinite(room.reading_ts):
            return
        offset_s = room.reading_ts - room.received_ts
        if abs(offset_s) > self._thermostat.max_age_s:
            _log.warning(
                "the room sensor stamps its readings %.0f s %s this agent's clock although they "
                "arrive fresh: an emulated room on a past date or sped up? Run the agent on the "
                "room's clock (heatgrid agent --clock, or HEATGRID_CLOCK, as heatgrid emulate "
                "room prints it), or drop sensor.timestamp_key to judge readings by arrival",
                abs(offset_s),
                "ahead of" if offset_s > 0 else "behind",
            )

    # ------------------------------------------------------------------ room model

    def _record_history(
        self, now_ts: float, readings: Mapping[str, DeviceReading | None], room: RoomSample | None
    ) -> None:
        if room is None or not math.isfinite(room.room_temp_c):
            return
        outdoor_c = None if self._outdoor is None else self._outdoor()
        if outdoor_c is not None and not math.isfinite(outdoor_c):
            outdoor_c = None
        power_w = sum(r.power_w for r in readings.values() if r is not None)
        self.store.record_history(now_ts, room.room_temp_c, outdoor_c, power_w)
        self.store.prune_history(now_ts - self.config.room.history_days * _S_PER_DAY)
        self._last_history_ts = now_ts

    async def update_room_model(self) -> bool:
        """Fit the room to its recorded history, at most once a day; keep an accepted fit.

        The fit runs in a worker thread. A rejected fit (too little data, implausible or poor)
        is logged and leaves :attr:`room_parameters` as they are.

        Returns
        -------
        bool
            True if a fit was accepted now.
        """
        if not self.config.room.learn:
            return False
        now_ts = self._clock()
        tried_ts = self.store.get(_ROOM_FIT_TRIED_KEY)
        if isinstance(tried_ts, float) and 0.0 <= now_ts - tried_ts < _ROOM_FIT_INTERVAL_S:
            return False
        self.store.put(_ROOM_FIT_TRIED_KEY, now_ts)
        history = self.store.history(now_ts - self.config.room.history_days * _S_PER_DAY)
        try:
            outcome = await asyncio.to_thread(
                fit_room,
                history.sample_ts,
                history.room_temp_c,
                history.outdoor_temp_c,
                history.power_w,
                now_ts=now_ts,
            )
        except InputError as error:
            _log.warning("room model kept (the history is unusable: %s)", error)
            return False
        if outcome.parameters is None:
            _log.info("room model kept (fit rejected: %s)", outcome.reason)
            return False
        self.room_parameters = outcome.parameters
        self.store.put(_ROOM_KEY, outcome.parameters.to_json())
        _log.info("room model learned: %s", outcome.reason)
        return True

    def _with_task_power(
        self, readings: dict[str, DeviceReading | None]
    ) -> dict[str, DeviceReading | None]:
        """Add the power of the tasks heating a lent CPU to its model-based reading.

        A CPU adapter without a power meter computes its power from its own workers, which are
        stopped while a task heats the CPU; the task's share comes from its cgroup's CPU time.
        """
        if self._workload is None:
            return readings
        for name in self._lent:
            reading = readings.get(name)
            if reading is None or reading.power_measured:
                continue
            try:
                extra_w = self._workload.task_power_w(name)
            except Exception:  # a bug in the jobs runtime must not stop the room's control
                _log.exception("the workload could not say its tasks' power")
                continue
            readings[name] = replace(
                reading, power_w=reading.power_w + extra_w, running=reading.running or extra_w > 0
            )
        return readings

    def _lent_cpus(self, result: TickResult) -> dict[str, DevicePlan]:
        """Return the CPUs the plan gives to a task, by name: the task's processes heat them."""
        return {
            plan.device_id: plan
            for plan in result.plans
            if plan.work_id is not None
            and plan.work_id not in _NOT_TASKS
            and self.devices[plan.device_id].capability.kind == "cpu"
        }

    async def _apply(self, result: TickResult) -> bool:
        """Send the tick's commands. A CPU lent to a task keeps its own workers stopped.

        The task's processes are then the CPU's heat and the runner throttles them (the cgroup
        freezer); when the CPU returns to other work its planned power is set again.
        """
        lent = self._lent_cpus(result)
        planned = {plan.device_id: plan.power_w for plan in result.plans}
        commands = {command.device_id: command for command in result.commands}
        for name in self._lent - lent.keys():
            if name not in commands and planned.get(name, 0.0) > 0.0:
                commands[name] = DeviceCommand(name, planned[name], safe=False)
        for name in lent.keys() - self._lent:
            commands.setdefault(name, DeviceCommand(name, 0.0, safe=True))
        self._lent = set(lent)
        for command in commands.values():
            device = self.devices[command.device_id]
            try:
                if command.safe or command.device_id in lent:
                    await device.safe_state()
                else:
                    await device.set_power(command.power_w)
            except DeviceCommandError as error:
                _log.error("device %s refused a command: %s", device.name, error)
                return False
        return True

    async def safe_all(self) -> bool:
        """Put every device in its safe state; return True if every one took it."""
        ok = True
        for device in self.devices.values():
            try:
                await device.safe_state()
            except (DeviceCommandError, DeviceUnavailableError) as error:
                _log.error("device %s: safe state failed: %s", device.name, error)
                ok = False
        self.state = LoopState(
            self.state.thermostat, self.state.arbiter, dict.fromkeys(self.devices, 0.0)
        )
        return ok

    # ------------------------------------------------------------------ coordinator

    def _segments(self) -> tuple[int, float]:
        settings = self.config.forecast
        return segment_count(settings.horizon_h * 3600.0, settings.segment_s), settings.segment_s

    def _forecast_c(self, now_ts: float) -> list[float] | None:
        """Return the forecast hook's temperatures [°C], or None (no hook, answer or failure)."""
        if self._outdoor_forecast is None:
            return None
        count, segment_s = self._segments()
        try:
            forecast = self._outdoor_forecast(now_ts, count, segment_s)
        except Exception:  # the hook is outside the daemon; persistence takes over
            _log.warning("the outdoor forecast failed; holding the last outdoor temperature")
            return None
        if forecast is None or len(forecast) < count:
            return None
        values = [float(value) for value in forecast[:count]]
        return values if all(math.isfinite(value) for value in values) else None

    def heat_window(
        self, now_ts: float, forecast_c: Sequence[float] | None = None
    ) -> list[v1.HeatWindowSegment]:
        """Return the heat window from ``now_ts`` over the configured horizon.

        Parameters
        ----------
        now_ts : float
            Start of the window, POSIX UTC [s].
        forecast_c : sequence of float, optional
            Outdoor temperature per segment [°C], already asked of the forecast hook; when
            omitted the hook is called here (it may block).

        Returns
        -------
        list of HeatWindowSegment
            Steady-state heat loss with :attr:`room_parameters`' UA, from the forecast, else
            the last outdoor reading held, else ``forecast.outdoor_temp_c``.
        """
        count, segment_s = self._segments()
        outdoor_c = list(forecast_c) if forecast_c is not None else self._forecast_c(now_ts)
        if outdoor_c is None or len(outdoor_c) < count:
            latest = None if self._outdoor is None else self._outdoor()
            if latest is None or not math.isfinite(latest):
                latest = self.config.forecast.outdoor_temp_c
            outdoor_c = [latest] * count
        return heat_window(
            now_ts,
            outdoor_c[:count],
            ua_w_per_k=self.room_parameters.ua_w_per_k,
            thermostat=self._thermostat_at(now_ts),
            segment_s=segment_s,
            gains_w=self.config.forecast.internal_gains_w,
            heating_allowed=self.mode != Mode.OFF,
        )

    async def sync(self) -> float:
        """Send the queued telemetry and the heat window, claim if heat is wanted.

        Returns
        -------
        float
            Seconds until the next sync should start [s]: the heartbeat interval after a
            success, a jittered backoff after a failure.
        """
        await self.update_room_model()
        identity = self.store.identity
        # the owner's pools go back to miners no longer meant to mine at the proxy: those
        # with coordinator_pool off, and every miner once the heater has left its coordinator
        await self.pools.restore(every_miner=identity is None)
        if self._client is None or identity is None:
            return self._heartbeat_s
        try:
            await self._upload(identity.device_id, identity.device_token)
            await self._claim(identity.device_id, identity.device_token)
        except CoordinatorUnavailableError as error:
            delay_s = self.backoff.next_delay_s()
            _log.warning("coordinator unreachable (retry in %.0f s): %s", delay_s, error)
            return delay_s
        except CoordinatorRefusedError as error:
            self.backoff.failures = max(self.backoff.failures, 30)  # no hammering
            delay_s = self.backoff.next_delay_s()
            _log.error("coordinator refused the heartbeat (retry in %.0f s): %s", delay_s, error)
            return delay_s
        self.backoff.reset()
        await self.pools.sync(self._client, identity.device_id, identity.device_token)
        await self._read_mining(identity.device_id, identity.device_token)
        return self._heartbeat_s

    async def _read_mining(self, device_id: str, token: str) -> None:
        """Read the proxy's count of this heater's mining for Home Assistant, now and then."""
        now_ts = self._clock()
        if self.home_assistant is None or now_ts - self._mining_ts < _MINING_INTERVAL_S:
            return
        self._mining_ts = now_ts
        assert self._client is not None
        try:
            self.mining = await self._client.mining(device_id, token)
        except (CoordinatorUnavailableError, CoordinatorRefusedError) as error:
            _log.info("mining figures not read from the coordinator: %s", error)

    async def _upload(self, device_id: str, token: str) -> None:
        assert self._client is not None
        while True:
            samples = self.store.pending(v1.MAX_SAMPLES_PER_HEARTBEAT)
            now_ts = self._clock()
            forecast_c = await asyncio.to_thread(self._forecast_c, now_ts)
            kind, hardware = self._hardware or (None, None)
            heartbeat = v1.Heartbeat(
                sent_ts=now_ts,
                telemetry=samples,
                heat_window=self.heat_window(now_ts, forecast_c),
                device_kind=kind,
                hardware=hardware,
                features=sorted(FEATURES),
            )
            # A coordinator older than ``features`` refuses it: the client sends the heartbeat
            # again without it (an informational field, heatgrid.protocol.informational).
            answer = await self._client.heartbeat(device_id, token, heartbeat)
            received = time.monotonic()
            self.store.acknowledge(samples)
            self._heartbeat_s = answer.next_heartbeat_s
            if answer.challenge is not None:
                try:
                    await answer_challenge(
                        self._client,
                        device_id,
                        token,
                        answer.challenge,
                        received_monotonic=received,
                        on_gpu=heartbeat.device_kind == "gpu",
                    )
                except CoordinatorRefusedError as error:  # the heartbeat itself went through
                    _log.error("coordinator refused the hardware challenge's answer: %s", error)
            if len(samples) < v1.MAX_SAMPLES_PER_HEARTBEAT:
                return

    async def _claim(self, device_id: str, token: str) -> None:
        workload, result = self._workload, self.last_result
        if workload is None or result is None or not result.command.heating:
            return
        slots = min(workload.free_slots(), v1.MAX_CLAIM_SLOTS)
        if slots < 1:
            return
        assert self._client is not None
        answer = await self._client.claim(device_id, token, v1.ClaimRequest(slots=slots))
        for lease in answer.leases:
            await workload.start(lease)

    # ------------------------------------------------------------------ home assistant

    async def publish_home_assistant(self) -> bool:
        """Publish the last tick's state to Home Assistant.

        Returns
        -------
        bool
            True if published; False without a bridge or a tick yet, or while the broker is
            away (logged; the next call publishes fresh values).
        """
        bridge, result, mining = self.home_assistant, self.last_result, self.mining
        if bridge is None or result is None:
            return False
        sample = telemetry_sample(result, self._last_readings, self._last_room, self._clock())
        job = (
            (sample.task_id or "task") if sample.workload == "task" else _JOB_NAMES[sample.workload]
        )
        try:
            await bridge.publish_state(
                room_temp_c=sample.room_temp_c,
                setpoint_c=sample.setpoint_c,
                mode="off" if self.mode == Mode.OFF else "heat",
                action=_ha_action(self.mode, result),
                power_w=sample.power_w,
                hashrate_ths=sample.hashrate_ths,
                job=job,
                energy_kwh=self.heat_energy_kwh,
                accepted_work_diff1=None if mining is None else mining.accepted_work_diff1,
                mining_earnings_sat=None if mining is None else mining.credited_sat,
            )
        except MqttUnavailableError as error:
            _log.info("Home Assistant state not published: %s", error)
            return False
        return True

    async def _home_assistant_loop(self, stop: asyncio.Event) -> None:
        delay_s = self.config.thermostat.tick_s  # after the first tick
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await stop.wait()
            try:
                await self.publish_home_assistant()
            except Exception:  # a bug here must not stop the room's control
                _log.exception("publishing to Home Assistant failed")
            delay_s = self.config.thermostat.telemetry_interval_s

    # ------------------------------------------------------------------ running

    async def _control_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.thermostat.tick_s / self._speed):
                    await stop.wait()

    async def _sync_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                delay_s = await self.sync()
            except Exception:  # a bug here must not stop the room's control
                delay_s = self.backoff.next_delay_s()
                _log.exception("sync failed (retry in %.0f s)", delay_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await stop.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Control and sync until ``stop`` is set; then :meth:`shutdown`."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._control_loop(stop))
                group.create_task(self._sync_loop(stop))
                if self.home_assistant is not None:
                    group.create_task(self._home_assistant_loop(stop))
        finally:
            await self.shutdown()

    async def shutdown(self) -> bool:
        """Pause the workload and put every device in its safe state; True if all took it.

        Commands that arrive afterwards are kept for the next start but drive no device.
        """
        self._stopped = True
        if self._workload is not None:
            try:
                await self._workload.pause_all()
            except Exception:
                _log.exception("pausing the running tasks failed")
        async with self._lock:  # after a tick that a command started, never before it
            ok = await self.safe_all()
            self.store.put(_STATE_KEY, _state_to_json(self.state))
        return ok
