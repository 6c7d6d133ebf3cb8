"""The emulated room: exact stepping by an injected clock, and its MQTT shell on a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import aiomqtt
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.mqtt_broker import running_broker

from heatgrid.cli._emulate_room import RoomOptions, build_room
from heatgrid.cli.main import main
from heatgrid.core.errors import InputError
from heatgrid.core.thermal import HOUSE_PRESETS, Room1R1C, simulate, steady_state_c
from heatgrid.emulators import miner_model as mm
from heatgrid.emulators.miner_server import MinerEmulator
from heatgrid.emulators.plug import TasmotaPlugEmulator
from heatgrid.emulators.room import OutdoorSeries, RoomEmulator
from heatgrid.emulators.room_mqtt import MinerAddress, RoomService
from heatgrid.weather import load_weather

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ROOM = Room1R1C(ua_w_per_k=200.0, capacity_j_per_k=200.0 * 20.0 * 3600.0)


class _Clock:
    def __init__(self) -> None:
        self.now_ts = T0

    def __call__(self) -> float:
        return self.now_ts


def _constant(outdoor_c: float) -> OutdoorSeries:
    return OutdoorSeries([outdoor_c], T0, 3600.0)


def test_outdoor_series_interpolates_and_repeats() -> None:
    series = OutdoorSeries([0.0, 10.0, 4.0], T0, 3600.0)
    assert series.at(T0) == 0.0
    assert series.at(T0 + 1800.0) == pytest.approx(5.0)
    assert series.at(T0 + 2.5 * 3600.0) == pytest.approx(2.0)  # back towards the first value
    assert series.at(T0 + 3 * 3600.0 + 1800.0) == pytest.approx(5.0)  # next period
    assert series.at(T0 - 3600.0) == pytest.approx(4.0)
    with pytest.raises(InputError, match="outdoor_temp_c"):
        OutdoorSeries([], T0)
    with pytest.raises(InputError, match="interval_s"):
        OutdoorSeries([1.0], T0, 0.0)


def test_the_room_reaches_the_steady_state_of_its_heat() -> None:
    room = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=10.0)
    room_temp_c = room.advance(T0 + 20 * 24 * 3600.0, 3000.0)  # 24 time constants
    assert room_temp_c == pytest.approx(float(steady_state_c(ROOM, 3000.0, 0.0)[0]), abs=1e-6)
    assert room_temp_c == pytest.approx(15.0, abs=1e-6)  # 0 °C + 3000 W / 200 W/K


def test_the_room_agrees_with_the_core_simulation_hour_by_hour() -> None:
    preset = HOUSE_PRESETS["terraced"]
    outdoor_c = np.array([-3.0, -2.0, 0.5, 4.0, 2.0, -1.0, -5.0, -4.0])
    power_w = np.array([0.0, 1500.0, 1500.0, 0.0, 800.0, 3000.0, 3000.0, 0.0])
    # Core: outdoor held constant over each hour. Emulator: the same when the series is a step
    # function, i.e. one sub-step per hour sampling the hour's middle of a doubled series.
    stepwise = np.repeat(outdoor_c, 2)
    series = OutdoorSeries(stepwise, T0 + 900.0, 1800.0)
    room = RoomEmulator(preset, series, now_ts=T0, initial_temp_c=19.0, max_step_s=3600.0)
    expected = simulate(preset, np.array([19.0, 19.0]), power_w, outdoor_c, 3600.0)
    for hour, p_w in enumerate(power_w):
        room.advance(T0 + (hour + 1) * 3600.0, float(p_w))
        np.testing.assert_allclose(room.state_c, expected[hour + 1], atol=1e-9)


@given(
    splits=st.lists(st.floats(min_value=1.0, max_value=20_000.0), min_size=1, max_size=8),
    power_w=st.floats(min_value=0.0, max_value=5000.0),
)
def test_advancing_in_pieces_equals_advancing_at_once(splits: list[float], power_w: float) -> None:
    whole = RoomEmulator(ROOM, _constant(5.0), now_ts=T0, initial_temp_c=18.0)
    pieces = RoomEmulator(ROOM, _constant(5.0), now_ts=T0, initial_temp_c=18.0)
    now_ts = T0
    for duration_s in splits:
        now_ts += duration_s
        pieces.advance(now_ts, power_w)
    whole.advance(now_ts, power_w)
    assert pieces.room_temp_c == pytest.approx(whole.room_temp_c, abs=1e-9)
    assert pieces.now_ts == whole.now_ts == now_ts


@given(low_w=st.floats(0.0, 4000.0), extra_w=st.floats(1.0, 4000.0))
def test_more_heat_gives_a_warmer_room(low_w: float, extra_w: float) -> None:
    rooms = [
        RoomEmulator(HOUSE_PRESETS["apartment"], _constant(0.0), now_ts=T0, initial_temp_c=18.0)
        for _ in range(2)
    ]
    cool_c = rooms[0].advance(T0 + 7200.0, low_w)
    warm_c = rooms[1].advance(T0 + 7200.0, low_w + extra_w)
    assert warm_c > cool_c


def test_bad_steps_are_refused() -> None:
    room = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=20.0)
    room.advance(T0 + 60.0, 100.0)
    with pytest.raises(InputError, match="backwards"):
        room.advance(T0, 100.0)
    with pytest.raises(InputError, match="heat_power_w"):
        room.advance(T0 + 120.0, -1.0)
    with pytest.raises(InputError, match="heat_power_w"):
        room.advance(T0 + 120.0, float("nan"))
    with pytest.raises(InputError, match="one room"):
        RoomEmulator(
            Room1R1C(ua_w_per_k=np.array([1.0, 2.0]), capacity_j_per_k=1e6),
            _constant(0.0),
            now_ts=T0,
            initial_temp_c=20.0,
        )


def test_the_service_reads_miner_and_plug_and_publishes_retained(
    mosquitto_broker: tuple[str, int],
) -> None:
    host, port = mosquitto_broker

    async def main_() -> None:
        clock = _Clock()
        room = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=15.0)
        async with (
            MinerEmulator(mm.MinerParams(), rpc_port=0, web_port=0, clock=clock) as miner,
            TasmotaPlugEmulator(
                "boost", host=host, port=port, rated_power_w=1000.0, clock=clock
            ) as plug,
            aiomqtt.Client(host, port) as switcher,
        ):
            clock.now_ts += 3600.0  # the miner has ramped to its power target
            address = MinerAddress("127.0.0.1", miner.rpc_port, miner.web_port)
            async with RoomService(
                room,
                clock=clock,
                host=host,
                port=port,
                topic="home/living/temperature",
                miners=[address],
                plugs=["boost"],
            ) as service:
                await service.tick()
                miner_w = miner.state.power_w
                assert miner_w > 0.0
                assert service.heat_power_w == pytest.approx(miner_w, abs=1.0)
                await switcher.publish("cmnd/boost/POWER", "ON")
                for _ in range(200):  # the plug's telemetry reaches the room's listener
                    if await service.read_heat_power_w() > miner_w + 500.0:
                        break
                    await asyncio.sleep(0.01)
                assert plug.power_w == 1000.0
                assert await service.read_heat_power_w() == pytest.approx(miner_w + 1000.0, abs=1)
                await service.tick()
                clock.now_ts += 1800.0
                published_c = await service.tick()
            expected = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=15.0)
            expected.advance(T0 + 3600.0, 0.0)
            expected.advance(T0 + 5400.0, miner_w + 1000.0)
            assert published_c == pytest.approx(expected.room_temp_c, abs=0.01)
        async with aiomqtt.Client(host, port) as reader:  # a late subscriber gets the retained
            await reader.subscribe("home/living/temperature")
            message = await asyncio.wait_for(anext(aiter(reader.messages)), 5.0)
            assert message.retain
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            assert body["room_temp_c"] == pytest.approx(published_c, abs=1e-3)
            assert body["sample_ts"] == T0 + 5400.0
            assert body["heat_power_w"] == pytest.approx(miner_w + 1000.0, abs=1.0)
            assert body["outdoor_temp_c"] == 0.0

    asyncio.run(main_())


def test_the_cli_room_publishes_an_accelerated_room(mosquitto_broker: tuple[str, int]) -> None:
    host, port = mosquitto_broker
    executable = Path(sys.executable).with_name("heatgrid")
    process = subprocess.Popen(
        [
            str(executable), "emulate", "room", "--broker", f"{host}:{port}",
            "--topic", "t/room", "--weather", "Oslo", "--start", "2026-01-15",
            "--initial-temp-c", "21", "--speed", "3600", "--period-s", "0.05",
            "--model", "1r1c", "--preset", "detached-1970s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        async def read_two() -> list[dict[str, float]]:
            async with aiomqtt.Client(host, port) as reader:
                await reader.subscribe("t/room")
                samples: list[dict[str, float]] = []
                async for message in reader.messages:
                    assert isinstance(message.payload, bytes)
                    samples.append(json.loads(message.payload))
                    if len(samples) == 20:
                        return samples
            return samples

        samples = asyncio.run(asyncio.wait_for(read_two(), 60.0))
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode in {0, -15}, stderr
    start_ts = 1_768_435_200.0  # 2026-01-15T00:00:00Z
    assert samples[0]["sample_ts"] >= start_ts
    assert samples[-1]["sample_ts"] > samples[0]["sample_ts"] + 600.0  # accelerated
    assert samples[-1]["room_temp_c"] < samples[0]["room_temp_c"]  # unheated, Oslo in January
    assert samples[-1]["heat_power_w"] == 0.0


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["--model", "3r3c"], "--model"),
        (["--preset", "castle"], "--preset"),
        (["--ua-w-per-k", "-1"], "--ua-w-per-k"),
        (["--capacity-j-per-k", "0"], "--capacity-j-per-k"),
        (["--weather", "Atlantis"], "--weather"),
        (["--start", "someday"], "--start"),
        (["--broker", "localhost:notaport"], "--broker"),
        (["--broker", "localhost:70000"], "--broker"),
        (["--miner", "127.0.0.1:4028"], "--miner"),
        (["--plug", "a/b"], "--plug"),
        (["--topic", "a/#"], "--topic"),
        (["--speed", "0"], "--speed"),
        (["--initial-temp-c", "nan"], "--initial-temp-c"),
        (["--gains-w", "inf"], "--gains-w"),
        (["--period-s", "-1"], "--period-s"),
        (["--weather", "/nonexistent/x.epw"], "--weather"),
    ],
)
def test_the_cli_refuses_bad_input_naming_the_option(
    arguments: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulate", "room", *arguments]) == 2
    assert option in capsys.readouterr().err


def test_the_room_takes_its_weather_from_an_epw_file(lyon_epw: Path) -> None:
    options = RoomOptions(
        model="2r2c",
        preset="apartment",
        ua_w_per_k=None,
        capacity_j_per_k=None,
        weather=str(lyon_epw),
        start="2026-01-15T06:00:00",
        initial_temp_c=19.0,
        gains_w=0.0,
    )
    room = build_room(options, now_ts=0.0)
    start_ts = 1_768_456_800.0  # 2026-01-15T06:00:00Z
    assert room.now_ts == start_ts
    weather = load_weather(lyon_epw, year=2026)
    hour = int(np.searchsorted(weather.timestamps_ts, start_ts))
    assert weather.timestamps_ts[hour] == start_ts
    assert room.outdoor_temp_c(start_ts) == pytest.approx(weather.outdoor_temp_c[hour])
    assert room.state_c.shape == (2,)  # 2R2C: room air and building mass
    heated_c = room.advance(start_ts + 6 * 3600.0, 2000.0)
    assert heated_c > 19.0 > float(np.max(weather.outdoor_temp_c[hour : hour + 7]))


def test_the_service_asks_the_plugs_at_start_and_outlives_its_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main_() -> None:
        clock = _Clock()
        room = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=15.0)
        with running_broker() as (host, port):
            service = RoomService(
                room, clock=clock, host=host, port=port, topic="r/t", plugs=["boost"]
            )
            async with TasmotaPlugEmulator(
                "boost", host=host, port=port, rated_power_w=1500.0, clock=clock
            ) as plug:
                plug.meter.switch(True, clock())  # on before the room listens: no telemetry
                await service.start()
                for _ in range(500):  # until the plug answers the room's STATUS 10
                    if await service.read_heat_power_w() > 0.0:
                        break
                    await asyncio.sleep(0.01)
                assert await service.read_heat_power_w() == 1500.0
                await service.tick()
        # The broker is gone: the room keeps its physics and its heaters' last power.
        clock.now_ts += 1800.0
        alone_c = await service.tick()
        expected = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=15.0)
        assert alone_c == pytest.approx(expected.advance(T0 + 1800.0, 1500.0), abs=1e-9)
        with running_broker(port):  # a broker is back where the old one was
            clock.now_ts += 1800.0
            await service.tick()
            async with aiomqtt.Client(host, port) as reader:
                await reader.subscribe("r/t")
                message = await asyncio.wait_for(anext(aiter(reader.messages)), 5.0)
            await service.stop()
        assert isinstance(message.payload, bytes)
        body = json.loads(message.payload)
        assert body["sample_ts"] == T0 + 3600.0
        assert body["heat_power_w"] == 1500.0
        assert body["room_temp_c"] == pytest.approx(expected.advance(T0 + 3600.0, 1500.0), abs=1e-3)

    with caplog.at_level(logging.WARNING, logger="heatgrid.emulators.room_mqtt"):
        asyncio.run(main_())
    assert any("MQTT broker" in record.getMessage() for record in caplog.records)


def test_the_cli_room_is_heated_by_a_real_miner_and_plug(mosquitto_broker: tuple[str, int]) -> None:
    host, port = mosquitto_broker
    executable = Path(sys.executable).with_name("heatgrid")

    async def main_() -> tuple[float, list[dict[str, float]]]:
        clock = _Clock()
        async with (
            MinerEmulator(mm.MinerParams(), rpc_port=0, web_port=0, clock=clock) as miner,
            TasmotaPlugEmulator(
                "boost", host=host, port=port, rated_power_w=1500.0, clock=clock
            ) as plug,
        ):
            clock.now_ts += 3600.0  # the miner has ramped to its power target
            plug.meter.switch(True, clock())  # switched on before the room starts
            process = subprocess.Popen(
                [
                    str(executable), "emulate", "room", "--broker", f"{host}:{port}",
                    "--topic", "t/heated", "--weather", "Madrid", "--start", "2026-03-01",
                    "--speed", "600", "--period-s", "0.05", "--initial-temp-c", "15",
                    "--miner", f"127.0.0.1:{miner.rpc_port}:{miner.web_port}",
                    "--plug", "boost",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                miner_w = miner.state.power_w
                expected_w = miner_w + 1500.0
                samples: list[dict[str, float]] = []
                async with aiomqtt.Client(host, port) as reader:
                    await reader.subscribe("t/heated")
                    async for message in reader.messages:
                        assert isinstance(message.payload, bytes)
                        samples.append(json.loads(message.payload))
                        full = [s for s in samples if abs(s["heat_power_w"] - expected_w) < 1]
                        if len(full) >= 5 or len(samples) >= 400:
                            break
            finally:
                process.terminate()  # by its PID
                _, stderr = process.communicate(timeout=30)
            assert process.returncode in {0, -15}, stderr
            return miner_w, samples

    miner_w, samples = asyncio.run(asyncio.wait_for(main_(), 60.0))
    # Until the room has read both heaters it counts those it has read, and nothing else.
    sums_w = [0.0, miner_w, 1500.0, miner_w + 1500.0]
    for sample in samples:
        assert min(abs(sample["heat_power_w"] - w) for w in sums_w) < 1.0, sample
    full = [s for s in samples if s["heat_power_w"] == pytest.approx(miner_w + 1500.0, abs=1.0)]
    assert len(full) >= 5, samples[-3:]
    # Heated by ~2.7 kW, the room warms from 15 °C although it is cooler outside.
    assert full[-1]["room_temp_c"] > full[0]["room_temp_c"]
    assert full[-1]["outdoor_temp_c"] < full[-1]["room_temp_c"]


def test_the_cli_names_the_broker_it_cannot_reach(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        assert main(["emulate", "room", "--broker", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"--broker: cannot connect to 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_other_heaters_heat_the_room_and_a_bad_reading_counts_nothing(
    mosquitto_broker: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    host, port = mosquitto_broker

    def broken_meter() -> float:
        raise OSError("the meter is unplugged")

    async def main_() -> tuple[float, float, float]:
        clock = _Clock()
        room = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=15.0)
        async with RoomService(
            room, clock=clock, host=host, port=port, topic="r/other", heaters=[lambda: 700.0]
        ) as service:
            await service.tick()
            first_w = service.heat_power_w
            service.heaters.extend([broken_meter, lambda: float("nan"), lambda: 300.0])
            clock.now_ts += 1800.0
            heated_c = await service.tick()
            return first_w, service.heat_power_w, heated_c

    with caplog.at_level(logging.WARNING, logger="heatgrid.emulators.room_mqtt"):
        first_w, then_w, heated_c = asyncio.run(main_())
    assert first_w == 700.0
    assert then_w == 1000.0  # the unplugged meter and the NaN count 0 W
    expected = RoomEmulator(ROOM, _constant(0.0), now_ts=T0, initial_temp_c=15.0)
    assert heated_c == pytest.approx(expected.advance(T0 + 1800.0, 700.0), abs=1e-9)
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "the meter is unplugged" in messages
    assert "is not a power" in messages
