"""PyasicMiner drives the emulated FluxOS miner through unmodified pyasic over loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from pydantic import ValidationError
from tests.agent.devices.contract import (
    Advance,
    ContractSpec,
    DeviceFactory,
    HeatDeviceContract,
    TruePower,
)

from heatgrid.agent.devices.base import DeviceCommandError, DeviceUnavailableError, HeatDevice
from heatgrid.agent.devices.pyasic_miner import PyasicMiner, connect_pyasic_miner
from heatgrid.agent.devices.settings import PyasicDeviceSpec
from heatgrid.emulators import miner_model as mm
from heatgrid.emulators.miner_server import MinerEmulator

T0 = 1_700_000_000.0
PARAMS = mm.MinerParams()  # 300-1200 W targets, 15 W idle, 30 s restart, 40 W/s ramp up
# a resume hashes after the restart delay, then power ramps from idle to the maximum
SETTLE_S = PARAMS.restart_delay_s + PARAMS.max_power_w / PARAMS.ramp_up_w_per_s + 10.0
POOL_URL = "stratum+tcp://127.0.0.1:3333"


class _Clock:
    """A clock the test moves by hand: the emulator's truth holds still between reads."""

    def __init__(self) -> None:
        self.now_ts = T0

    def __call__(self) -> float:
        return self.now_ts


async def _connect(
    emulator: MinerEmulator,
    clock: _Clock,
    *,
    min_power_w: float = PARAMS.min_power_w,
    power_step_w: float = 0.0,
) -> PyasicMiner:
    settings = PyasicDeviceSpec(
        name="attic-miner",
        host="127.0.0.1",
        rpc_port=emulator.rpc_port,
        web_port=emulator.web_port,
        min_power_w=min_power_w,
        max_power_w=PARAMS.max_power_w,
        timeout_s=5.0,
        power_step_w=power_step_w,
    )
    return await connect_pyasic_miner(settings, clock=clock)


Scenario = Callable[[PyasicMiner, MinerEmulator, _Clock], Awaitable[None]]


def _run(
    scenario: Scenario, *, min_power_w: float = PARAMS.min_power_w, power_step_w: float = 0.0
) -> None:
    async def main() -> None:
        clock = _Clock()
        async with (
            MinerEmulator(PARAMS, rpc_port=0, web_port=0, clock=clock) as emulator,
            await _connect(
                emulator, clock, min_power_w=min_power_w, power_step_w=power_step_w
            ) as miner,
        ):
            await scenario(miner, emulator, clock)

    asyncio.run(main())


def _within_one_percent(measured: float | None, truth: float) -> bool:
    return measured is not None and abs(measured - truth) <= 0.01 * abs(truth)


def test_readings_agree_with_the_emulator_within_one_percent_and_the_target_changes() -> None:
    async def scenario(miner: PyasicMiner, emulator: MinerEmulator, clock: _Clock) -> None:
        assert "Auradine" in miner.model
        for offset_s in (40.0, 600.0):  # mid-way up the first ramp, then at full power
            clock.now_ts = T0 + offset_s
            reading = await miner.read()
            truth = emulator.state
            assert truth.power_w > PARAMS.min_power_w
            assert _within_one_percent(reading.power_w, truth.power_w)
            assert _within_one_percent(reading.hashrate_ths, mm.hashrate_ths(truth, PARAMS))
            assert reading.power_measured is True
            assert reading.running is True
            assert reading.power_target_w == PARAMS.max_power_w
            assert reading.device_temp_c == round(truth.board_temp_c)
            assert reading.fans_ok is True
            assert reading.read_ts == clock.now_ts

        await miner.set_power(600.0)
        assert emulator.state.power_target_w == 600.0
        clock.now_ts += 5.0  # falling at 400 W/s: there already
        reading = await miner.read()
        assert reading.power_target_w == 600.0
        assert _within_one_percent(reading.power_w, 600.0)
        assert _within_one_percent(reading.hashrate_ths, 600.0 / PARAMS.efficiency_j_per_th)

    _run(scenario)


def test_power_zero_pauses_mining_and_a_power_resumes_it() -> None:
    async def scenario(miner: PyasicMiner, emulator: MinerEmulator, clock: _Clock) -> None:
        clock.now_ts = T0 + 600.0
        await miner.set_power(0.0)
        assert emulator.state.mining is False
        clock.now_ts += 10.0
        paused = await miner.read()
        assert paused.running is False
        assert paused.power_target_w == 0.0
        assert paused.hashrate_ths == 0.0
        assert paused.power_w == PARAMS.idle_power_w

        await miner.set_power(900.0)
        assert emulator.state.mining is True
        assert emulator.state.power_target_w == 900.0
        clock.now_ts += SETTLE_S
        resumed = await miner.read()
        assert resumed.running is True
        assert resumed.power_w == 900.0
        assert _within_one_percent(resumed.hashrate_ths, 900.0 / PARAMS.efficiency_j_per_th)

    _run(scenario)


def test_changes_smaller_than_the_power_step_are_not_sent_while_mining() -> None:
    async def scenario(miner: PyasicMiner, emulator: MinerEmulator, clock: _Clock) -> None:
        clock.now_ts = T0 + 600.0
        await miner.set_power(800.0)
        assert emulator.state.power_target_w == 800.0
        await miner.set_power(815.0)  # within 25 W of what it holds: not written
        assert emulator.state.power_target_w == 800.0
        await miner.set_power(830.0)  # a step away from the held 800 W: written
        assert emulator.state.power_target_w == 830.0
        await miner.set_power(0.0)
        await miner.set_power(840.0)  # after a pause the target is always sent, with resume
        assert emulator.state.mining is True
        assert emulator.state.power_target_w == 840.0

    _run(scenario, power_step_w=25.0)


def test_the_pool_is_set_to_the_coordinator_and_the_power_target_is_kept() -> None:
    async def scenario(miner: PyasicMiner, emulator: MinerEmulator, clock: _Clock) -> None:
        await miner.set_power(800.0)
        await miner.set_pool(POOL_URL, "heatgrid.attic")
        config = await miner._miner.get_config()
        (pool,) = config.pools.groups[0].pools
        assert str(pool.url) == POOL_URL
        assert pool.user == "heatgrid.attic"
        rpc_pools = await miner._miner.rpc.send_command("pools")
        assert rpc_pools["POOLS"][0]["URL"] == POOL_URL
        assert emulator.state.power_target_w == 800.0

    _run(scenario)


def test_a_target_the_firmware_refuses_raises_and_the_old_target_is_kept() -> None:
    # configured wider than the firmware allows: pyasic reports the refusal with False
    async def scenario(miner: PyasicMiner, emulator: MinerEmulator, clock: _Clock) -> None:
        await miner.set_power(700.0)
        with pytest.raises(
            DeviceCommandError, match=r"attic-miner: set_power\(200.0 W\).*did not apply"
        ):
            await miner.set_power(200.0)
        assert emulator.state.power_target_w == 700.0

    _run(scenario, min_power_w=100.0)


def test_a_miner_gone_after_start_is_unavailable_and_commands_raise() -> None:
    async def scenario(miner: PyasicMiner, emulator: MinerEmulator, clock: _Clock) -> None:
        await miner.read()
        await emulator.stop()
        with pytest.raises(DeviceUnavailableError, match=r"attic-miner: read: .*127\.0\.0\.1"):
            await miner.read()
        with pytest.raises(DeviceCommandError, match=r"attic-miner: set_power\(500.0 W\)"):
            await miner.set_power(500.0)
        with pytest.raises(DeviceCommandError, match="attic-miner: safe_state"):
            await miner.safe_state()

    async def main() -> None:
        clock = _Clock()
        async with MinerEmulator(PARAMS, rpc_port=0, web_port=0, clock=clock) as emulator:
            miner = await _connect(emulator, clock)
            try:
                await scenario(miner, emulator, clock)
            finally:
                with contextlib.suppress(DeviceCommandError):
                    await miner.aclose()
            with pytest.raises(DeviceUnavailableError, match="closed"):
                await miner.read()

    asyncio.run(main())


def test_nothing_listening_is_reported_with_the_address() -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, not listening: connections are refused
            with pytest.raises(
                DeviceUnavailableError, match=f"no miner answers at 127.0.0.1:{port}"
            ):
                await connect_pyasic_miner(
                    PyasicDeviceSpec(
                        host="127.0.0.1", rpc_port=port, min_power_w=300.0, max_power_w=1200.0
                    )
                )

    asyncio.run(main())


def test_a_service_that_is_not_a_miner_is_reported_with_the_address() -> None:
    async def main() -> None:
        async with MinerEmulator(PARAMS, rpc_port=0, web_port=0) as emulator:
            port = emulator.web_port  # an HTTP server, not a miner's RPC
            with pytest.raises(DeviceUnavailableError, match=f"127.0.0.1:{port}"):
                await connect_pyasic_miner(
                    PyasicDeviceSpec(
                        host="127.0.0.1", rpc_port=port, min_power_w=300.0, max_power_w=1200.0
                    )
                )

    asyncio.run(main())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"host": "miner.local"}, r"host\n  Value error, must be an IP address"),
        ({"rpc_port": 0}, "rpc_port"),
        ({"web_port": 70000}, "web_port"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"min_power_w": 1500.0}, r"max_power_w\n  Value error, must be at least min_power_w"),
    ],
)
def test_bad_settings_are_refused_naming_them(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "host": "127.0.0.1",
        "min_power_w": 300.0,
        "max_power_w": 1200.0,
    }
    arguments.update(options)
    with pytest.raises(ValidationError, match=message):
        PyasicDeviceSpec.model_validate(arguments)


class TestPyasicMinerContract(HeatDeviceContract):
    """The HeatDevice contract, against the emulated miner through pyasic."""

    @pytest.fixture
    def clock(self) -> _Clock:
        return _Clock()

    @pytest.fixture
    def emulators(self) -> list[MinerEmulator]:
        return []

    @pytest.fixture
    def device_factory(self, clock: _Clock, emulators: list[MinerEmulator]) -> DeviceFactory:
        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[HeatDevice]:
            async with MinerEmulator(PARAMS, rpc_port=0, web_port=0, clock=clock) as emulator:
                emulators.append(emulator)
                async with await _connect(emulator, clock) as miner:
                    yield miner

        return factory

    @pytest.fixture
    def true_power_w(self, emulators: list[MinerEmulator]) -> TruePower:
        return lambda: emulators[-1].state.power_w

    @pytest.fixture
    def advance(self, clock: _Clock) -> Advance:
        async def move(duration_s: float) -> None:
            clock.now_ts += duration_s

        return move

    @pytest.fixture
    def contract_spec(self) -> ContractSpec:
        # pyasic reads FluxOS's power as whole watts
        return ContractSpec(
            settle_s=SETTLE_S, power_tolerance_w=1.0, off_power_w=PARAMS.idle_power_w
        )
