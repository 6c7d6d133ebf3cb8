"""Unmodified pyasic reads and controls the emulated FluxOS miner over loopback TCP."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from heatgrid.emulators import miner_model as mm
from heatgrid.emulators.miner_server import MinerEmulator

with warnings.catch_warnings():
    # pyasic 0.79 declares pydantic models with a class-based Config, and passlib imports the
    # deprecated crypt module: third-party deprecations raised once, at import.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(pyasic|passlib)\b")
    from pyasic.config import MinerConfig
    from pyasic.config.pools import Pool, PoolConfig
    from pyasic.device.algorithm.hashrate.unit.sha256 import SHA256Unit
    from pyasic.errors import APIError
    from pyasic.miners.auradine import AuradineFluxAT1500
    from pyasic.miners.factory import MinerFactory, MinerTypes

T0 = 1_700_000_000.0
POOL_URL = "stratum+tcp://127.0.0.1:3333"


class _Clock:
    """A clock the test moves by hand, so the emulator's truth holds still between reads."""

    def __init__(self) -> None:
        self.now_ts = T0

    def __call__(self) -> float:
        return self.now_ts


def _pyasic_miner(emulator: MinerEmulator) -> AuradineFluxAT1500:
    miner = AuradineFluxAT1500("127.0.0.1")
    miner.rpc.port = emulator.rpc_port
    miner.web.port = emulator.web_port
    return miner


def _run(test: Callable[[MinerEmulator, _Clock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = _Clock()
        async with MinerEmulator(rpc_port=0, web_port=0, clock=clock) as emulator:
            await test(emulator, clock)

    asyncio.run(main())


def _ths(hashrate: Any) -> float:
    return float(hashrate.into(SHA256Unit.TH).rate)


def _within_one_percent(measured: float, truth: float) -> bool:
    return abs(measured - truth) <= 0.01 * abs(truth) + 1e-9


def test_pyasic_reads_hashrate_power_temperatures_and_fans() -> None:
    async def check(emulator: MinerEmulator, clock: _Clock) -> None:
        miner = _pyasic_miner(emulator)
        params = emulator.params
        for offset_s in (40.0, 600.0):  # mid-way up the first ramp, then at full power
            clock.now_ts = T0 + offset_s
            data = await miner.get_data()
            truth = emulator.state
            assert truth.power_w > params.min_power_w
            assert data.wattage is not None
            assert _within_one_percent(data.wattage, truth.power_w)
            assert data.hashrate is not None
            truth_ths = mm.hashrate_ths(truth, params)
            assert _within_one_percent(_ths(data.hashrate), truth_ths)
            assert data.wattage_limit == round(truth.power_target_w)
            assert len(data.hashboards) == params.hashboard_count
            for board in data.hashboards:
                assert board.temp == round(truth.board_temp_c)
                assert board.hashrate is not None
            assert [fan.speed for fan in data.fans] == [
                round(mm.fan_rpm(truth, params))
            ] * params.fan_count
            assert data.is_mining is True
            assert data.uptime == int(offset_s)
        assert truth.chip_temp_c > truth.board_temp_c > params.ambient_temp_c

    _run(check)


def test_pyasic_sets_the_power_target_and_power_ramps_to_it() -> None:
    async def check(emulator: MinerEmulator, clock: _Clock) -> None:
        miner = _pyasic_miner(emulator)
        clock.now_ts = T0 + 600.0
        for target_w in (600, 1000):
            assert await miner.set_power_limit(target_w) is True
            assert await miner.get_wattage_limit() == target_w
            readings_w: list[float] = []
            for _ in range(40):
                clock.now_ts += 0.5
                wattage = await miner.get_wattage()
                assert wattage is not None
                assert _within_one_percent(wattage, emulator.state.power_w)
                readings_w.append(wattage)
            gaps_w = [abs(target_w - reading) for reading in readings_w]
            assert gaps_w[0] > 0.05 * target_w  # the change takes seconds, not one step
            assert gaps_w == sorted(gaps_w, reverse=True)
            assert _within_one_percent(readings_w[-1], target_w)

    _run(check)


def test_a_power_target_outside_the_range_is_refused() -> None:
    async def check(emulator: MinerEmulator, clock: _Clock) -> None:
        miner = _pyasic_miner(emulator)
        assert await miner.set_power_limit(700) is True
        for refused_w in (100, 5000):
            assert await miner.set_power_limit(refused_w) is False
            assert await miner.get_wattage_limit() == 700
        with pytest.raises(APIError):  # pyasic reports the refusal as a failed command
            await miner.web.set_mode(mode="custom", tune="power", power=100)

    _run(check)


def test_pyasic_pauses_and_resumes_mining() -> None:
    async def check(emulator: MinerEmulator, clock: _Clock) -> None:
        miner = _pyasic_miner(emulator)
        params = emulator.params
        clock.now_ts = T0 + 600.0
        assert await miner.stop_mining() is True
        clock.now_ts += 10.0
        assert await miner.is_mining() is False
        assert await miner.get_wattage() == round(params.idle_power_w)
        hashrate = await miner.get_hashrate()
        assert hashrate is not None
        assert float(hashrate) == 0.0

        assert await miner.resume_mining() is True
        assert await miner.is_mining() is True
        clock.now_ts += params.restart_delay_s - 1.0
        hashrate = await miner.get_hashrate()
        assert hashrate is not None
        assert float(hashrate) == 0.0  # still re-initialising the hashboards
        clock.now_ts += 1.0 + params.max_power_w / params.ramp_up_w_per_s
        assert await miner.get_wattage() == round(params.max_power_w)
        hashrate = await miner.get_hashrate()
        assert hashrate is not None
        expected_ths = params.max_power_w / params.efficiency_j_per_th
        assert _within_one_percent(_ths(hashrate), expected_ths)

    _run(check)


def test_pyasic_sets_the_pool_and_reads_it_back() -> None:
    async def check(emulator: MinerEmulator, clock: _Clock) -> None:
        miner = _pyasic_miner(emulator)
        assert await miner.set_power_limit(800) is True
        current = await miner.get_config()
        pools = PoolConfig.simple([Pool(url=POOL_URL, user="heatgrid.worker1", password="x")])
        await miner.send_config(MinerConfig(pools=pools, mining_mode=current.mining_mode))

        config = await miner.get_config()
        (pool,) = config.pools.groups[0].pools
        assert str(pool.url) == POOL_URL
        assert pool.user == "heatgrid.worker1"
        assert config.mining_mode.mode == "power_tuning"
        assert await miner.get_wattage_limit() == 800
        rpc_pools = await miner.rpc.send_command("pools")
        assert rpc_pools["POOLS"][0]["URL"] == POOL_URL

    _run(check)


def test_errors_are_answered_and_the_server_keeps_serving() -> None:
    async def check(emulator: MinerEmulator, clock: _Clock) -> None:
        miner = _pyasic_miner(emulator)
        with pytest.raises(APIError, match="Invalid command"):
            await miner.rpc.send_command("ascset", parameters="0,softoff")
        for raw in (b"{not json", b"\xff\xfe", b"summary|\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", emulator.rpc_port)
            writer.write(raw)
            await writer.drain()
            answer = json.loads((await reader.read()).rstrip(b"\x00"))
            writer.close()
            await writer.wait_closed()
            assert answer["STATUS"][0]["STATUS"] in {"S", "E"}
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.web_port)
        writer.write(b"NONSENSE\r\n\r\n")
        await writer.drain()
        assert (await reader.read()).startswith(b"HTTP/1.1 400")
        writer.close()
        await writer.wait_closed()

        intruder = _pyasic_miner(emulator)
        intruder.web.pwd = "not-the-password"
        with pytest.raises(APIError):
            await intruder.web.get_psu()
        assert await miner.get_wattage() is not None

        version = await miner.rpc.send_command("version")
        assert MinerFactory._parse_socket_type(json.dumps(version)) == MinerTypes.AURADINE
        details = await miner.rpc.send_command("devdetails")
        assert details["DEVDETAILS"][0]["Model"] == "AT1500"

    _run(check)


def _heatgrid_executable() -> str:
    candidate = Path(sys.executable).with_name("heatgrid")
    if not candidate.is_file():
        pytest.fail(f"{candidate} is missing; install the project (pip install -e .)")
    return str(candidate)


async def _eventually(probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool]) -> Any:
    deadline_s = time.monotonic() + 60.0
    while True:
        value = await probe()
        if accept(value) or time.monotonic() > deadline_s:
            return value
        await asyncio.sleep(0.05)


def test_the_cli_emulator_is_driven_by_pyasic() -> None:
    process = subprocess.Popen(
        [
            _heatgrid_executable(),
            "emulate",
            "miner",
            "--port",
            "0",
            "--web-port",
            "0",
            "--max-power-w",
            "1200",
            "--min-power-w",
            "300",
            "--speed",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        found = re.search(r"rpc=127\.0\.0\.1:(\d+) web=127\.0\.0\.1:(\d+)", banner)
        assert found, f"no banner; stderr: {process.stderr.read() if process.stderr else ''}"
        rpc_port, web_port = int(found.group(1)), int(found.group(2))

        async def drive() -> None:
            miner = AuradineFluxAT1500("127.0.0.1")
            miner.rpc.port = rpc_port
            miner.web.port = web_port
            hashrate = await _eventually(miner.get_hashrate, lambda rate: rate and float(rate))
            assert float(hashrate) > 0.0
            assert await miner.set_power_limit(600) is True
            wattage = await _eventually(miner.get_wattage, lambda w: w == 600)
            assert wattage == 600
            hashrate = await miner.get_hashrate()
            assert _within_one_percent(_ths(hashrate), 600 / 25.0)
            assert await miner.stop_mining() is True
            assert await _eventually(miner.get_wattage, lambda w: w == 15) == 15
            assert await miner.set_power_limit(100) is False

        asyncio.run(drive())
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["--port", "70000"], "--port"),
        (["--min-power-w", "1500"], "--min-power-w"),
        (["--max-power-w", "-5"], "--max-power-w"),
    ],
)
def test_the_cli_refuses_bad_input_naming_the_option(
    arguments: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from heatgrid.cli.main import main  # noqa: PLC0415

    assert main(["emulate", "miner", *arguments]) == 2
    assert option in capsys.readouterr().err
