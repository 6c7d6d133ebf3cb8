"""MqttPlug drives the emulated Tasmota plug over a real mosquitto broker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
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

from heatgrid.agent.devices.base import (
    DeviceCommandError,
    DeviceUnavailableError,
    HeatDevice,
)
from heatgrid.agent.devices.mqtt_plug import MqttPlug
from heatgrid.agent.devices.settings import MqttPlugDeviceSpec
from heatgrid.emulators.plug import TasmotaPlugEmulator

T0 = 1_767_225_600.0
RATED_W = 2000.0


class _Clock:
    def __init__(self) -> None:
        self.now_ts = T0

    def __call__(self) -> float:
        return self.now_ts


def _plug(name: str, *, clock: Callable[[], float] = time.time, **settings: object) -> MqttPlug:
    return MqttPlug(MqttPlugDeviceSpec.model_validate({"name": name, **settings}), clock=clock)


Scenario = Callable[[MqttPlug, TasmotaPlugEmulator, _Clock], Awaitable[None]]


def _run(broker: tuple[str, int], scenario: Scenario, *, timeout_s: float = 2.0) -> None:
    host, port = broker

    async def main() -> None:
        clock = _Clock()
        async with TasmotaPlugEmulator(
            "boost", host=host, port=port, rated_power_w=RATED_W, clock=clock
        ) as emulator:
            plug = _plug(
                "boost-element",
                plug="boost",
                host=host,
                port=port,
                rated_power_w=RATED_W,
                min_cycle_s=120.0,
                command_timeout_s=timeout_s,
                clock=clock,
            )
            async with plug:
                await scenario(plug, emulator, clock)

    asyncio.run(main())


def test_capability_is_one_resistive_level() -> None:
    plug = _plug("b", plug="boost", host="127.0.0.1", port=1, rated_power_w=1500.0)
    assert isinstance(plug, HeatDevice)
    cap = plug.capability
    assert cap.kind == "resistive"
    assert cap.device_id == "b"
    assert cap.power_levels_w == (1500.0,)
    assert cap.min_power_w == cap.max_power_w == 1500.0
    assert cap.min_cycle_s == 300.0


@pytest.mark.parametrize("plug", ["", "a/b", "x#", "+"])
def test_a_bad_plug_topic_is_refused(plug: str) -> None:
    with pytest.raises(ValidationError, match="plug"):
        MqttPlugDeviceSpec(plug=plug, host="127.0.0.1", port=1, rated_power_w=1500.0)


def test_switching_on_and_off_is_confirmed_and_read_back(
    mosquitto_broker: tuple[str, int],
) -> None:
    async def scenario(plug: MqttPlug, emulator: TasmotaPlugEmulator, clock: _Clock) -> None:
        off = await plug.read()
        assert off.power_w == 0.0
        assert off.running is False
        assert off.power_target_w == 0.0
        await plug.set_power(RATED_W)
        assert emulator.power_w == RATED_W
        on = await plug.read()
        assert on.power_w == RATED_W
        assert on.power_measured is True
        assert on.running is True
        assert on.power_target_w == RATED_W
        assert on.read_ts == T0
        clock.now_ts += 1800.0  # half an hour at 2 kW: 1 kWh
        later = await plug.read()
        assert on.energy_j is not None
        assert later.energy_j is not None
        assert later.energy_j - on.energy_j == pytest.approx(3.6e6, abs=36.0)
        await plug.safe_state()
        assert emulator.power_w == 0.0
        assert (await plug.read()).power_w == 0.0

    _run(mosquitto_broker, scenario)


@pytest.mark.parametrize("power_w", [1000.0, 2500.0, -5.0, float("nan"), float("inf")])
def test_a_power_between_levels_is_refused_and_nothing_changes(
    mosquitto_broker: tuple[str, int], power_w: float
) -> None:
    async def scenario(plug: MqttPlug, emulator: TasmotaPlugEmulator, _clock: _Clock) -> None:
        await plug.set_power(RATED_W)
        with pytest.raises(DeviceCommandError, match="boost-element"):
            await plug.set_power(power_w)
        assert emulator.power_w == RATED_W

    _run(mosquitto_broker, scenario)


def test_an_unconfirmed_command_raises_and_a_silent_meter_is_unavailable(
    mosquitto_broker: tuple[str, int],
) -> None:
    async def scenario(plug: MqttPlug, emulator: TasmotaPlugEmulator, _clock: _Clock) -> None:
        await plug.read()
        await emulator.stop()  # the plug drops off the network; the broker still answers
        with pytest.raises(DeviceCommandError, match=r"not confirmed on stat/boost/POWER"):
            await plug.set_power(RATED_W)
        with pytest.raises(DeviceCommandError, match="not confirmed"):
            await plug.safe_state()
        with pytest.raises(DeviceUnavailableError, match="STATUS 10"):
            await plug.read()

    _run(mosquitto_broker, scenario, timeout_s=0.3)


def test_close_leaves_the_element_off(mosquitto_broker: tuple[str, int]) -> None:
    host, port = mosquitto_broker

    async def main() -> None:
        async with TasmotaPlugEmulator(
            "boost", host=host, port=port, rated_power_w=RATED_W, clock=_Clock()
        ) as emulator:
            async with _plug(
                "b", plug="boost", host=host, port=port, rated_power_w=RATED_W
            ) as plug:
                await plug.set_power(RATED_W)
                assert emulator.power_w == RATED_W
            assert emulator.power_w == 0.0

    asyncio.run(main())


def test_no_broker_is_unavailable() -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, not listening: connections are refused
            plug = _plug(
                "b",
                plug="boost",
                host="127.0.0.1",
                port=port,
                rated_power_w=RATED_W,
                command_timeout_s=0.3,
            )
            with pytest.raises(DeviceUnavailableError, match="not reachable"):
                await plug.start()

    asyncio.run(main())


class TestMqttPlugContract(HeatDeviceContract):
    """The HeatDevice contract, against the emulated plug on a real broker."""

    @pytest.fixture
    def clock(self) -> _Clock:
        return _Clock()

    @pytest.fixture
    def emulators(self) -> list[TasmotaPlugEmulator]:
        return []

    @pytest.fixture
    def device_factory(
        self,
        mosquitto_broker: tuple[str, int],
        clock: _Clock,
        emulators: list[TasmotaPlugEmulator],
    ) -> DeviceFactory:
        host, port = mosquitto_broker

        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[HeatDevice]:
            async with TasmotaPlugEmulator(
                "boost", host=host, port=port, rated_power_w=RATED_W, clock=clock
            ) as emulator:
                emulators.append(emulator)
                async with _plug(
                    "boost-element",
                    plug="boost",
                    host=host,
                    port=port,
                    rated_power_w=RATED_W,
                    clock=clock,
                ) as plug:
                    yield plug

        return factory

    @pytest.fixture
    def true_power_w(self, emulators: list[TasmotaPlugEmulator]) -> TruePower:
        return lambda: emulators[-1].power_w

    @pytest.fixture
    def advance(self, clock: _Clock) -> Advance:
        async def move(duration_s: float) -> None:
            clock.now_ts += duration_s

        return move

    @pytest.fixture
    def contract_spec(self) -> ContractSpec:
        return ContractSpec(settle_s=1.0, power_tolerance_w=0.5, off_power_w=0.0)
