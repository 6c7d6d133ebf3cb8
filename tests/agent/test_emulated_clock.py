"""An agent heats an emulated room that runs on a past date or faster than real time.

Real processes on a real mosquitto broker, as a user (or ``heatgrid demo``) runs them:
``heatgrid emulate room`` with ``--start``/``--speed`` prints its clock as ``HEATGRID_CLOCK=...``;
``heatgrid agent`` gets that line in its environment and judges the room's ``sample_ts`` on the
same clock. The heater is an emulated Tasmota plug that the room reads and the agent switches.
Without a shared clock every reading looked stale to the agent, which then heated nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from heatgrid.core.clock import CLOCK_ENV, ClockSpec, parse_clock
from heatgrid.emulators.plug import TasmotaPlugEmulator

_TIMEOUT_S = 120.0
_RATED_W = 1000.0
_START_2026_01_15_TS = 1_768_435_200.0
_AGENT_LATER_S = 6.0


def _agent_config(tmp_path: Path, host: str, port: int) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""
[state]
path = "{tmp_path / "agent.sqlite3"}"

[sensor]
host = "{host}"
port = {port}
topic = "t/room"
key = "room_temp_c"

[thermostat]
setpoint_c = 21.0
min_on_s = 0.0
min_off_s = 0.0

[[devices]]
type = "mqtt_plug"
name = "heater"
plug = "heater"
host = "{host}"
port = {port}
rated_power_w = {_RATED_W}
min_cycle_s = 0.0
"""
    )
    return path


def _heatgrid(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "heatgrid.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
    return out


async def _clock_line(room: subprocess.Popen[str]) -> str:
    """Return the room's ``HEATGRID_CLOCK=...`` line (its first line on stdout)."""
    assert room.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(room.stdout.readline), _TIMEOUT_S)
    assert f"{CLOCK_ENV}=" in line, line
    return line.split(f"{CLOCK_ENV}=", 1)[1].strip()


async def _heated_sample(host: str, port: int) -> dict[str, float]:
    """Wait for a room sample heated by the plug: the agent switched it on."""
    async with aiomqtt.Client(host, port) as reader:
        await reader.subscribe("t/room")
        async for message in reader.messages:
            assert isinstance(message.payload, bytes)
            sample: dict[str, float] = json.loads(message.payload)
            if sample["heat_power_w"] >= _RATED_W - 1.0:
                return sample
    raise AssertionError("the room's topic ended")


async def _scenario(
    tmp_path: Path, host: str, port: int, room_args: list[str], shared: str | None
) -> tuple[ClockSpec, dict[str, float]]:
    env = {key: value for key, value in os.environ.items() if key != CLOCK_ENV}
    if shared is not None:
        env[CLOCK_ENV] = shared
    async with TasmotaPlugEmulator("heater", host=host, port=port, rated_power_w=_RATED_W):
        room = _heatgrid(
            "emulate", "room", "--broker", f"{host}:{port}", "--topic", "t/room",
            "--plug", "heater", "--weather", "Berlin", "--initial-temp-c", "17",
            "--period-s", "0.2", *room_args, env=env,
        )  # fmt: skip
        agent = None
        try:
            clock_text = await _clock_line(room)
            # The agent starts a while after the room, as a user's would: at 60 times real
            # time the room's clock is then more than max_age_s (300 s) ahead of the wall.
            await asyncio.sleep(_AGENT_LATER_S)
            agent = _heatgrid(
                "agent", "--config", str(_agent_config(tmp_path, host, port)),
                env={**env, CLOCK_ENV: clock_text},
            )  # fmt: skip
            sample = await asyncio.wait_for(_heated_sample(host, port), _TIMEOUT_S)
        finally:
            agent_log = "" if agent is None else _stop(agent)
            room_log = _stop(room)
        assert "SENSOR_STALE" not in agent_log, agent_log
        assert room.returncode in {0, -signal.SIGTERM}, room_log
    return parse_clock(clock_text), sample


@dataclass(frozen=True)
class _Case:
    room_args: tuple[str, ...]
    shared: str | None
    speed: float
    past: bool


@pytest.mark.parametrize(
    "case",
    [
        _Case(("--speed", "60"), None, 60.0, past=False),
        _Case(("--start", "2026-01-15"), None, 1.0, past=True),
        _Case((), f"start=2026-01-15,speed=60,origin_ts={_START_2026_01_15_TS}", 60.0, past=False),
    ],
    ids=["speed-60", "past-start", "one-clock-for-all"],
)
def test_an_agent_heats_a_room_on_an_emulated_clock(
    tmp_path: Path, mosquitto_broker: tuple[str, int], case: _Case
) -> None:
    clock, sample = asyncio.run(
        _scenario(tmp_path, *mosquitto_broker, list(case.room_args), case.shared)
    )
    assert clock.speed == case.speed
    if case.past:
        assert clock.start_ts == _START_2026_01_15_TS
        assert sample["sample_ts"] < _START_2026_01_15_TS + 86_400.0
    if case.shared is not None:
        assert clock == parse_clock(case.shared)
    assert sample["heat_power_w"] == pytest.approx(_RATED_W, abs=1.0)


@pytest.mark.parametrize("emulator", ["room", "miner"])
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--clock", "start=2026-01-15,origin_ts=0", "--speed", "60"],
            "--clock (or HEATGRID_CLOCK) or --start/--speed, not both",
        ),
        (["--clock", "start=2026-01-15"], "clock: origin_ts missing"),
        (["--clock", "start=2026-01-15,origin_ts=0,speed=-1"], "speed must be greater than 0"),
    ],
)
def test_the_emulators_refuse_a_bad_or_doubled_clock(
    emulator: str, arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from heatgrid.cli.main import main  # noqa: PLC0415

    assert main(["emulate", emulator, *arguments]) == 2
    assert message in capsys.readouterr().err


def test_the_agent_refuses_a_bad_clock(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from heatgrid.cli.main import main  # noqa: PLC0415

    status = main(["agent", "--config", str(tmp_path / "none.toml"), "--clock", "speed=fast"])
    assert status == 2
    assert "clock:" in capsys.readouterr().err
