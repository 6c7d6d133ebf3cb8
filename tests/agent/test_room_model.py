"""Learning the room's 1R1C parameters from recorded samples, and the heat window using them.

The samples come from the core thermal model (an emulated room) with sensor noise; the daemon
records them through its real ticks and state file, and fits them with the real fit.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.agent.config import parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.room_model import FitOutcome, RoomParameters, fit_room
from heatgrid.agent.state_store import StateStore
from heatgrid.core.errors import InputError
from heatgrid.core.thermal import Room1R1C, simulate

T0_TS = 1_767_225_600.0  # 2026-01-01T00:00Z
STEP_S = 60.0
CONFIG = """
[sensor]
topic = "unused: read in-process"

[thermostat]
setpoint_c = 21.0

[room]
ua_w_per_k = 150.0
time_constant_h = 20.0

[forecast]
horizon_h = 4.0

[[devices]]
type = "cpu"
name = "cpu"
idle_power_w = 10.0
max_power_w = 6000.0
"""


def _samples(
    ua_w_per_k: float, time_constant_h: float, days: float, noise_k: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One-minute samples of an emulated room: power in 3 h blocks, a daily outdoor cycle."""
    rng = np.random.default_rng(seed)
    n = int(days * 86_400.0 / STEP_S)
    steps = np.arange(n)
    power_w = np.where((steps // 180) % 2 == 0, 3000.0, 300.0)
    outdoor_c = 5.0 + 4.0 * np.sin(2.0 * np.pi * steps * STEP_S / 86_400.0)
    room = Room1R1C(ua_w_per_k, ua_w_per_k * time_constant_h * 3600.0)
    room_c = simulate(room, [18.0], power_w, outdoor_c, STEP_S)[:-1, 0]
    room_c = room_c + rng.normal(0.0, noise_k, n)
    return T0_TS + STEP_S * steps, room_c, outdoor_c, power_w


@settings(max_examples=12, deadline=None)
@given(
    ua_w_per_k=st.floats(100.0, 500.0),
    time_constant_h=st.floats(10.0, 60.0),
    seed=st.integers(0, 2**16),
)
def test_fit_recovers_ua_and_time_constant(
    ua_w_per_k: float, time_constant_h: float, seed: int
) -> None:
    ts, room_c, outdoor_c, power_w = _samples(ua_w_per_k, time_constant_h, 3.0, 0.05, seed)
    outcome = fit_room(ts, room_c, outdoor_c, power_w, now_ts=ts[-1])
    assert outcome.parameters is not None, outcome.reason
    assert outcome.parameters.ua_w_per_k == pytest.approx(ua_w_per_k, rel=0.05)
    assert outcome.parameters.time_constant_h == pytest.approx(time_constant_h, rel=0.10)
    assert outcome.parameters.rms_error_k is not None
    assert outcome.parameters.rms_error_k < 0.1
    assert outcome.parameters.fitted_ts == ts[-1]


def test_implausible_poor_short_and_broken_data_are_rejected() -> None:
    ts, room_c, outdoor_c, power_w = _samples(4000.0, 30.0, 3.0, 0.01, 1)
    implausible = fit_room(ts, room_c, outdoor_c, power_w, now_ts=ts[-1])
    assert implausible.parameters is None
    assert "implausible" in implausible.reason
    assert "UA" in implausible.reason

    ts, room_c, outdoor_c, power_w = _samples(200.0, 30.0, 3.0, 1.0, 2)
    poor = fit_room(ts, room_c, outdoor_c, power_w, now_ts=ts[-1])
    assert poor.parameters is None
    assert "RMS error" in poor.reason

    ts, room_c, outdoor_c, power_w = _samples(200.0, 30.0, 3.0, 0.05, 3)
    short = fit_room(ts[:600], room_c[:600], outdoor_c[:600], power_w[:600], now_ts=ts[600])
    assert short == FitOutcome(None, "too little data: 10.0 h without gaps < 24.0 h")

    # An unknown outdoor temperature 20 h ago splits the data: the latest run is too short.
    outdoor_c = outdoor_c.copy()
    outdoor_c[-1200] = math.nan
    split = fit_room(ts, room_c, outdoor_c, power_w, now_ts=ts[-1])
    assert split.parameters is None
    assert "too little data" in split.reason
    with pytest.raises(InputError, match="sample_ts must increase"):
        fit_room(ts[::-1], room_c, outdoor_c, power_w, now_ts=ts[-1])


def test_parameters_round_trip_and_implausible_stored_values_are_ignored() -> None:
    learned = RoomParameters(
        ua_w_per_k=210.0, time_constant_h=33.0, fitted_ts=T0_TS, rms_error_k=0.04
    )
    assert RoomParameters.from_json(learned.to_json()) == learned
    assert RoomParameters.from_json({"ua_w_per_k": 1e6, "time_constant_h": 30.0}) is None
    assert RoomParameters.from_json("junk") is None


class _Clock:
    def __init__(self, now_ts: float) -> None:
        self.now_ts = now_ts

    def __call__(self) -> float:
        return self.now_ts


def test_daemon_records_history_learns_the_room_and_windows_with_learned_ua(
    tmp_path: Path,
) -> None:
    asyncio.run(_learning_scenario(tmp_path))


async def _learning_scenario(tmp_path: Path) -> None:
    config = parse_config(CONFIG, environ={})
    clock = _Clock(T0_TS)
    ts, room_c, outdoor_c, power_w = _samples(250.0, 40.0, 3.0, 0.05, 7)
    index = 0

    def room() -> TemperatureReading:
        return TemperatureReading(
            room_temp_c=float(room_c[index]), reading_ts=clock(), received_ts=clock()
        )

    def outdoor() -> float:
        return float(outdoor_c[index])

    with StateStore(tmp_path / "agent.sqlite3") as store:
        daemon = AgentDaemon(
            config, devices=[], room=room, store=store, client=None, clock=clock, outdoor=outdoor
        )
        assert daemon.room_parameters == RoomParameters(ua_w_per_k=150.0, time_constant_h=20.0)
        # Ticks every 10 s record one sample a minute.
        for tick in range(13):
            clock.now_ts = T0_TS + 10.0 * tick
            await daemon.tick()
        recorded = store.history(0.0)
        assert list(recorded.sample_ts) == [T0_TS, T0_TS + 60.0, T0_TS + 120.0]
        assert list(recorded.room_temp_c) == [room_c[0]] * 3
        assert list(recorded.outdoor_temp_c) == [outdoor_c[0]] * 3
        assert list(recorded.power_w) == [0.0] * 3  # no device: nothing delivered

        # Too little history: rejected, configured values stay, no second try within a day.
        assert not await daemon.update_room_model()
        assert daemon.room_parameters.ua_w_per_k == 150.0

        # Three days of the emulated room's samples (the devices' delivered power).
        for k in range(ts.size):
            store.record_history(float(ts[k]), float(room_c[k]), float(outdoor_c[k]), power_w[k])
        clock.now_ts = T0_TS + 3600.0
        assert not await daemon.update_room_model()  # tried less than a day ago
        clock.now_ts = T0_TS + 86_400.0 * 3.0 + 60.0
        assert await daemon.update_room_model()
        learned = daemon.room_parameters
        assert learned.ua_w_per_k == pytest.approx(250.0, rel=0.05)
        assert learned.time_constant_h == pytest.approx(40.0, rel=0.10)
        assert learned.fitted_ts == clock.now_ts

        # The heat window uses the learned UA: UA · (21 − outdoor), outdoor held.
        index = 100
        window = daemon.heat_window(clock.now_ts)
        assert len(window) == 4
        for segment in window:
            expected_w = learned.ua_w_per_k * (21.0 - outdoor_c[100])
            assert segment.heat_power_w == pytest.approx(expected_w)

        # A restart keeps the learned parameters; with learning off, the configured ones rule.
        again = AgentDaemon(config, devices=[], room=room, store=store, client=None, clock=clock)
        assert again.room_parameters == learned
        off = parse_config(CONFIG + "", environ={"HEATGRID_AGENT__ROOM__LEARN": "false"})
        unlearned = AgentDaemon(off, devices=[], room=room, store=store, client=None, clock=clock)
        assert unlearned.room_parameters.ua_w_per_k == 150.0

        # History older than room.history_days is pruned as new samples come.
        clock.now_ts = T0_TS + 86_400.0 * 9.0
        await daemon.tick()
        kept = store.history(0.0).sample_ts
        assert kept[0] >= clock.now_ts - 7.0 * 86_400.0
        assert kept[-1] == clock.now_ts


def test_a_rejected_fit_keeps_the_configured_values(tmp_path: Path) -> None:
    asyncio.run(_rejection_scenario(tmp_path))


async def _rejection_scenario(tmp_path: Path) -> None:
    config = parse_config(CONFIG, environ={})
    ts, room_c, outdoor_c, power_w = _samples(200.0, 30.0, 3.0, 1.5, 11)  # far too noisy
    clock = _Clock(float(ts[-1]) + 60.0)
    with StateStore(tmp_path / "agent.sqlite3") as store:
        for k in range(ts.size):
            store.record_history(float(ts[k]), float(room_c[k]), float(outdoor_c[k]), power_w[k])
        daemon = AgentDaemon(
            config, devices=[], room=lambda: None, store=store, client=None, clock=clock
        )
        assert not await daemon.update_room_model()
        assert daemon.room_parameters == RoomParameters(ua_w_per_k=150.0, time_constant_h=20.0)
        assert store.get("room_model") is None
        window = daemon.heat_window(clock.now_ts)
        assert window[0].heat_power_w == pytest.approx(150.0 * (21.0 - 5.0))


def test_room_history_settings_are_checked() -> None:
    with pytest.raises(InputError, match=r"room\.history_days"):
        parse_config(CONFIG, environ={"HEATGRID_AGENT__ROOM__HISTORY_DAYS": "0.5"})
