"""The control tick: readings in, device commands out, with time passed in (pure, no I/O).

:func:`control_tick` runs :func:`heatgrid.core.control.decide` on the room reading and then
:func:`heatgrid.core.arbiter.plan` on its heat demand; it holds no control rule of its own. What
it adds is bookkeeping: which device to command now (a change of power, the thermostat's
keep-alive, or its safe state) and what to report as telemetry. A bad or missing room reading,
an interlock or the user's off put every device in its safe state on that very tick; a device
that cannot be read is put in its safe state and left out of the plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from heatgrid.agent.devices.base import DeviceReading
from heatgrid.agent.mqtt_sensor import TemperatureReading as RoomSample
from heatgrid.core.arbiter import (
    BOOST_WORK_ID,
    ArbiterState,
    DeviceCapability,
    DevicePlan,
    WorkOffer,
    plan,
)
from heatgrid.core.control import (
    Alarm,
    HeatCommand,
    Mode,
    Observation,
    Reason,
    ThermostatConfig,
    ThermostatState,
    decide,
)
from heatgrid.protocol.v1 import TelemetrySample, Workload

__all__ = [
    "HEAT_ONLY_WORK_ID",
    "MINING_WORK_ID",
    "DeviceCommand",
    "LoopState",
    "RoomSample",
    "TickResult",
    "control_tick",
    "telemetry_sample",
]

HEAT_ONLY_WORK_ID = "heat-only"
"""Work id of compute devices heating without paid work."""
MINING_WORK_ID = "mining"
"""Work id of Bitcoin mining."""


@dataclass(frozen=True)
class LoopState:
    """What the control loop remembers between ticks.

    Attributes
    ----------
    thermostat : ThermostatState
        The thermostat's state.
    arbiter : ArbiterState
        The arbiter's state.
    applied_w : dict of str to float
        Power last commanded to each device [W]; 0 after its safe state. A device missing
        here has not been commanded yet.
    """

    thermostat: ThermostatState = field(default_factory=ThermostatState)
    arbiter: ArbiterState = field(default_factory=ArbiterState)
    applied_w: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceCommand:
    """A command for one device this tick.

    Attributes
    ----------
    device_id : str
        The device.
    power_w : float
        Power to set [W]; 0 when ``safe``.
    safe : bool
        True: put the device in its safe state (``safe_state()``) instead of ``set_power``.
    """

    device_id: str
    power_w: float
    safe: bool


@dataclass(frozen=True)
class TickResult:
    """The outcome of one tick.

    Attributes
    ----------
    state : LoopState
        The state for the next tick (assuming the commands are applied).
    command : HeatCommand
        The thermostat's command.
    plans : tuple of DevicePlan
        The arbiter's plan per readable device.
    commands : tuple of DeviceCommand
        Commands to send now, in device order.
    """

    state: LoopState
    command: HeatCommand
    plans: tuple[DevicePlan, ...]
    commands: tuple[DeviceCommand, ...]

    @property
    def safe(self) -> bool:
        """True when the thermostat stopped heating for safety or by the user's off."""
        return self.command.alarm != Alarm.NONE or self.command.reason == Reason.USER_OFF


def _observation(
    room: RoomSample | None, readings: Mapping[str, DeviceReading | None], mode: Mode
) -> Observation:
    temps_c = [r.device_temp_c for r in readings.values() if r is not None]
    known_c = [t for t in temps_c if t is not None and math.isfinite(t)]
    return Observation(
        room_temp_c=math.nan if room is None else room.room_temp_c,
        reading_ts=math.nan if room is None else room.reading_ts,
        device_temp_c=max(known_c) if known_c else math.nan,
        fan_ok=not any(r is not None and r.fans_ok is False for r in readings.values()),
        mode=mode,
    )


def control_tick(
    state: LoopState,
    *,
    thermostat: ThermostatConfig,
    mode: Mode,
    devices: Sequence[DeviceCapability],
    readings: Mapping[str, DeviceReading | None],
    room: RoomSample | None,
    offers: Sequence[WorkOffer],
    now_ts: float,
) -> TickResult:
    """Decide one tick of the heater.

    Parameters
    ----------
    state : LoopState
        State from the previous tick; ``LoopState()`` at first.
    thermostat : ThermostatConfig
        The thermostat's settings.
    mode : Mode
        What the user asked for.
    devices : sequence of DeviceCapability
        Every device of the heater.
    readings : mapping of str to DeviceReading or None
        This tick's reading of each device by id; None (or missing) when it could not be read.
    room : RoomSample or None
        The latest room reading; None when there is none.
    offers : sequence of WorkOffer
        Work available now.
    now_ts : float
        Current time, POSIX UTC [s].

    Returns
    -------
    TickResult
        New state, the thermostat's command, the plan and the device commands to send.
    """
    seen = {d.device_id: readings.get(d.device_id) for d in devices}
    thermostat_state, command = decide(
        state.thermostat, _observation(room, seen, mode), now_ts, thermostat
    )
    stop_now = command.alarm != Alarm.NONE or command.reason == Reason.USER_OFF
    readable = [d for d in devices if seen[d.device_id] is not None]
    arbiter_state, plans = plan(
        state.arbiter, command.heat_power_w, readable, offers, now_ts, stop_now=stop_now
    )
    planned = {p.device_id: p.power_w for p in plans}
    applied = dict(state.applied_w)
    commands = []
    for device in devices:
        device_id = device.device_id
        if stop_now or device_id not in planned:
            if applied.get(device_id) != 0.0 or command.send or device_id not in planned:
                commands.append(DeviceCommand(device_id, 0.0, safe=True))
            applied[device_id] = 0.0
        elif planned[device_id] != applied.get(device_id) or command.send:
            commands.append(DeviceCommand(device_id, planned[device_id], safe=False))
            applied[device_id] = planned[device_id]
    return TickResult(
        state=LoopState(thermostat_state, arbiter_state, applied),
        command=command,
        plans=tuple(plans),
        commands=tuple(commands),
    )


def _workload(plans: Sequence[DevicePlan]) -> tuple[Workload, str | None]:
    work_ids = [p.work_id for p in plans if p.work_id is not None]
    for work_id in work_ids:
        if work_id not in {MINING_WORK_ID, BOOST_WORK_ID, HEAT_ONLY_WORK_ID}:
            return "task", work_id
    if MINING_WORK_ID in work_ids:
        return "mining", None
    return ("boost", None) if work_ids else ("idle", None)


def _within(value: float | None, low: float, high: float) -> float | None:
    if value is None or not math.isfinite(value) or not low <= value <= high:
        return None
    return value


def telemetry_sample(
    result: TickResult,
    readings: Mapping[str, DeviceReading | None],
    room: RoomSample | None,
    now_ts: float,
) -> TelemetrySample:
    """Return the telemetry sample of a tick.

    Parameters
    ----------
    result : TickResult
        The tick's outcome.
    readings : mapping of str to DeviceReading or None
        The tick's device readings.
    room : RoomSample or None
        The room reading used.
    now_ts : float
        Time of the tick, POSIX UTC [s]; the sample's ``sample_ts``.

    Returns
    -------
    TelemetrySample
        Power is the sum of the devices' read power [W]; values outside the protocol's ranges
        (a failed sensor) are reported as None.
    """
    read = [r for r in readings.values() if r is not None]
    workload, task_id = _workload(result.plans)
    temps_c = [r.device_temp_c for r in read if r.device_temp_c is not None]
    rates = [r.hashrate_ths for r in read if r.hashrate_ths is not None]
    room_c = None if room is None or result.command.alarm != Alarm.NONE else room.room_temp_c
    return TelemetrySample(
        sample_ts=now_ts,
        room_temp_c=_within(room_c, -50.0, 80.0),
        setpoint_c=_within(result.command.setpoint_c, 0.0, 40.0),
        power_w=max(0.0, sum(r.power_w for r in read)),
        device_temp_c=_within(max(temps_c) if temps_c else None, -50.0, 150.0),
        workload=workload,
        hashrate_ths=sum(rates) if rates else None,
        task_id=task_id if task_id is not None and task_id.isalnum() else None,
    )
