"""The control tick (pure): thermostat and arbiter wired together, safe state on bad readings."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from heatgrid.agent.devices.base import DeviceReading
from heatgrid.agent.loop import (
    HEAT_ONLY_WORK_ID,
    LoopState,
    TickResult,
    control_tick,
    telemetry_sample,
)
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.core.arbiter import DeviceCapability, WorkOffer
from heatgrid.core.control import Mode, ThermostatConfig, WeeklySchedule

T0_TS = 1_767_225_600.0
TICK_S = 10.0
DEVICES = (
    DeviceCapability(device_id="cpu", kind="cpu", min_power_w=50.0, max_power_w=800.0),
    DeviceCapability(
        device_id="boost",
        kind="resistive",
        min_power_w=1000.0,
        max_power_w=1000.0,
        power_levels_w=(1000.0,),
        min_cycle_s=300.0,
    ),
)
CONFIG = ThermostatConfig(
    max_power_w=1800.0,
    kp_w_per_k=900.0,
    ki_w_per_k_s=0.5,
    schedule=WeeklySchedule.constant(21.0),
    min_on_s=0.0,
    min_off_s=0.0,
)
OFFERS = (
    WorkOffer(
        work_id=HEAT_ONLY_WORK_ID,
        value_eur_per_kwh=0.0,
        device_kinds=("cpu", "gpu", "asic"),
        exclusive=False,
    ),
)


def _readings(now_ts: float) -> dict[str, DeviceReading | None]:
    return {
        d.device_id: DeviceReading(read_ts=now_ts, power_w=0.0, power_measured=True)
        for d in DEVICES
    }


def _tick(state: LoopState, room_temp_c: float, reading_ts: float, now_ts: float) -> TickResult:
    room = TemperatureReading(room_temp_c=room_temp_c, reading_ts=reading_ts, received_ts=now_ts)
    return control_tick(
        state,
        thermostat=CONFIG,
        mode=Mode.AUTO,
        devices=DEVICES,
        readings=_readings(now_ts),
        room=room,
        offers=OFFERS,
        now_ts=now_ts,
    )


def _heating_state(ticks: int, room_temp_c: float) -> tuple[LoopState, float]:
    state, now_ts = LoopState(), T0_TS
    for _ in range(ticks):
        state = _tick(state, room_temp_c, now_ts, now_ts).state
        now_ts += TICK_S
    return state, now_ts


def _feasible(device: DeviceCapability, power_w: float) -> bool:
    if power_w == 0.0:
        return True
    if device.power_levels_w:
        return any(math.isclose(power_w, level) for level in device.power_levels_w)
    return device.min_power_w <= power_w <= device.max_power_w


def test_a_cold_room_heats_with_the_cpu_first() -> None:
    state, now_ts = _heating_state(3, 19.0)
    result = _tick(state, 20.0, now_ts, now_ts)
    powers = {p.device_id: p.power_w for p in result.plans}
    assert result.command.heating
    assert powers["cpu"] == 800.0
    assert not result.safe
    sample = telemetry_sample(result, _readings(now_ts), None, now_ts)
    assert sample.workload == "boost"
    assert sample.setpoint_c == 21.0


bad_room = st.one_of(
    st.tuples(st.just(math.nan), st.just(0.0)),  # NaN reading
    st.tuples(st.floats(15.0, 25.0), st.floats(301.0, 10_000.0)),  # stale reading (age)
    st.tuples(st.floats(60.5, 200.0), st.just(0.0)),  # out of range
    st.tuples(st.floats(30.0, 59.0), st.just(0.0)),  # over-temperature interlock
)


@given(ticks=st.integers(1, 30), room=st.floats(15.0, 20.5), bad=bad_room)
def test_a_bad_sensor_makes_every_device_safe_on_the_next_tick(
    ticks: int, room: float, bad: tuple[float, float]
) -> None:
    state, now_ts = _heating_state(ticks, room)
    bad_temp_c, age_s = bad
    result = _tick(state, bad_temp_c, now_ts - age_s, now_ts)
    assert result.safe
    assert all(p.power_w == 0.0 for p in result.plans)
    assert {c.device_id for c in result.commands if c.safe} == {d.device_id for d in DEVICES}
    # and it stays safe, without repeating the safe command before the keep-alive
    again = _tick(result.state, bad_temp_c, now_ts - age_s, now_ts + TICK_S)
    assert all(p.power_w == 0.0 for p in again.plans)
    assert all(c.safe for c in again.commands)


@given(temps=st.lists(st.floats(10.0, 28.0), min_size=1, max_size=60))
def test_commands_are_feasible_and_sent_only_on_change_or_keep_alive(temps: list[float]) -> None:
    state, now_ts = LoopState(), T0_TS
    applied: dict[str, float] = {}
    for room_temp_c in temps:
        result = _tick(state, room_temp_c, now_ts, now_ts)
        for command in result.commands:
            device = next(d for d in DEVICES if d.device_id == command.device_id)
            assert _feasible(device, command.power_w)
            applied[command.device_id] = command.power_w
        planned = {p.device_id: p.power_w for p in result.plans}
        assert applied == planned  # what the devices hold is what the arbiter planned
        assert sum(planned.values()) <= CONFIG.max_power_w + 1000.0  # a held boost may add
        state, now_ts = result.state, now_ts + TICK_S


def test_an_unreadable_device_is_made_safe_and_left_out() -> None:
    state, now_ts = _heating_state(3, 19.0)
    readings = _readings(now_ts)
    readings["cpu"] = None
    room = TemperatureReading(room_temp_c=19.0, reading_ts=now_ts, received_ts=now_ts)
    result = control_tick(
        state,
        thermostat=CONFIG,
        mode=Mode.AUTO,
        devices=DEVICES,
        readings=readings,
        room=room,
        offers=OFFERS,
        now_ts=now_ts,
    )
    assert [p.device_id for p in result.plans] == ["boost"]
    assert any(c.device_id == "cpu" and c.safe for c in result.commands)


def test_user_off_is_safe_without_alarm() -> None:
    state, now_ts = _heating_state(3, 19.0)
    room = TemperatureReading(room_temp_c=19.0, reading_ts=now_ts, received_ts=now_ts)
    result = control_tick(
        state,
        thermostat=CONFIG,
        mode=Mode.OFF,
        devices=DEVICES,
        readings=_readings(now_ts),
        room=room,
        offers=OFFERS,
        now_ts=now_ts,
    )
    assert result.safe
    assert not result.command.alarm
    assert all(c.safe for c in result.commands)
