"""open_device builds each adapter from its validated model, the one source of its settings."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from heatgrid.agent.config import parse_config
from heatgrid.agent.devices.base import DeviceUnavailableError, HeatDevice
from heatgrid.agent.devices.cpu import CpuHeater
from heatgrid.agent.devices.mqtt_plug import MqttPlug
from heatgrid.agent.devices.nvml_gpu import NvmlGpu, open_nvml_gpu
from heatgrid.agent.devices.pyasic_miner import PyasicMiner, connect_pyasic_miner
from heatgrid.agent.devices.registry import DEVICE_TYPES, open_device
from heatgrid.agent.devices.settings import (
    CpuDeviceSpec,
    MqttPlugDeviceSpec,
    NvmlDeviceSpec,
    PyasicDeviceSpec,
)
from heatgrid.emulators.miner_server import MinerEmulator
from heatgrid.emulators.plug import TasmotaPlugEmulator


def _refused_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    return sock, sock.getsockname()[1]


def test_the_known_types() -> None:
    assert DEVICE_TYPES == ("cpu", "mqtt_plug", "nvml", "pyasic")


_ADAPTER_ENTRIES = (
    CpuHeater.__init__,
    MqttPlug.__init__,
    PyasicMiner.__init__,
    connect_pyasic_miner,
    NvmlGpu.__init__,
    open_nvml_gpu,
    open_device,
)
_MODELS = (CpuDeviceSpec, MqttPlugDeviceSpec, PyasicDeviceSpec, NvmlDeviceSpec)


@pytest.mark.parametrize("entry", _ADAPTER_ENTRIES, ids=lambda entry: entry.__qualname__)
def test_adapters_take_their_settings_only_from_the_validated_model(
    entry: Callable[..., object],
) -> None:
    """No adapter entry point has a default of its own for a setting, nor reads one but from
    the model (NvmlGpu's constructor takes the powers its opener resolved against the board)."""
    settings = {name for model in _MODELS for name in model.model_fields}
    parameters = inspect.signature(entry).parameters
    overlap = settings & set(parameters)
    assert all(parameters[name].default is inspect.Parameter.empty for name in overlap)
    if entry is not NvmlGpu.__init__:
        assert overlap == set()
    else:
        assert overlap == {"min_power_w", "max_power_w", "idle_power_w", "vram_gb"}


def test_the_configuration_uses_the_registry_models() -> None:
    config = parse_config(
        '[sensor]\ntopic = "t"\n[[devices]]\ntype = "cpu"\nidle_power_w = 10\nmax_power_w = 60\n',
        environ={},
    )
    assert type(config.devices[0]) is CpuDeviceSpec


def test_an_adapter_built_with_every_default_uses_the_model_defaults() -> None:
    def default(model: type[BaseModel], field: str) -> object:
        return model.model_fields[field].default

    cpu = CpuHeater(CpuDeviceSpec(idle_power_w=10.0, max_power_w=60.0))
    assert cpu.name == default(CpuDeviceSpec, "name")
    assert cpu.capability.min_cycle_s == default(CpuDeviceSpec, "min_cycle_s")
    assert cpu.capability.min_power_w == 10.0 + 0.05 * 50.0
    plug = MqttPlug(MqttPlugDeviceSpec(plug="boost", rated_power_w=1500.0))
    assert plug.name == default(MqttPlugDeviceSpec, "name")
    assert plug.capability.min_cycle_s == default(MqttPlugDeviceSpec, "min_cycle_s")

    async def main() -> None:
        async with MinerEmulator(rpc_port=0, web_port=0) as emulator:
            miner_settings = PyasicDeviceSpec(
                host="127.0.0.1",
                rpc_port=emulator.rpc_port,
                web_port=emulator.web_port,
                min_power_w=300,
                max_power_w=1200,
            )
            miner = await connect_pyasic_miner(miner_settings)
            try:
                assert miner.name == default(PyasicDeviceSpec, "name")
                assert miner.capability.min_cycle_s == default(PyasicDeviceSpec, "min_cycle_s")
                await miner.set_power(700.0)
                step_w = default(PyasicDeviceSpec, "power_step_w")
                assert isinstance(step_w, float)
                await miner.set_power(700.0 + step_w / 2)  # below the default step: not sent
                assert emulator.state.power_target_w == 700.0
                await miner.set_power(700.0 + step_w)
                assert emulator.state.power_target_w == 700.0 + step_w
            finally:
                await miner.aclose()

    asyncio.run(main())


def test_a_cpu_entry_builds_a_cpu_heater(tmp_path: Path) -> None:
    async def main() -> None:
        device = await open_device(
            0, CpuDeviceSpec(idle_power_w=10, max_power_w=60, worker_count=1)
        )
        try:
            assert isinstance(device, CpuHeater)
            assert isinstance(device, HeatDevice)
            assert device.name == "cpu"
            assert device.capability.max_power_w == 60.0
            reading = await device.read()
            assert reading.power_target_w == 0.0
        finally:
            await device.aclose()

    asyncio.run(main())


def test_a_pyasic_entry_builds_a_miner_driven_through_pyasic() -> None:
    async def main() -> None:
        async with MinerEmulator(rpc_port=0, web_port=0) as emulator:
            spec = PyasicDeviceSpec(
                name="attic",
                host="127.0.0.1",
                rpc_port=emulator.rpc_port,
                web_port=emulator.web_port,
                min_power_w=300,
                max_power_w=1200,
                min_cycle_s=900,
            )
            device = await open_device(1, spec)
            try:
                assert isinstance(device, PyasicMiner)
                assert device.name == "attic"
                assert device.capability.min_cycle_s == 900.0
                await device.set_power(700)
                assert emulator.state.power_target_w == 700.0
            finally:
                await device.aclose()
            assert emulator.state.mining is False  # closed in the safe state

    asyncio.run(main())


def test_an_unreachable_miner_is_reported_with_the_key_and_the_address() -> None:
    sock, port = _refused_port()
    with sock:
        spec = PyasicDeviceSpec(
            host="127.0.0.1", rpc_port=port, min_power_w=300, max_power_w=1200, timeout_s=2
        )
        with pytest.raises(
            DeviceUnavailableError,
            match=rf"^devices\[2\]\.host: miner at 127\.0\.0\.1:{port} is unreachable: ",
        ):
            asyncio.run(open_device(2, spec))


def test_a_plug_entry_builds_a_started_plug(mosquitto_broker: tuple[str, int]) -> None:
    host, port = mosquitto_broker

    async def main() -> None:
        async with TasmotaPlugEmulator(
            "boost", host=host, port=port, rated_power_w=1500.0
        ) as emulator:
            spec = MqttPlugDeviceSpec(plug="boost", host=host, port=port, rated_power_w=1500)
            device = await open_device(0, spec)
            try:
                assert isinstance(device, MqttPlug)
                await device.set_power(1500.0)
                assert emulator.power_w == 1500.0
            finally:
                await device.aclose()
            assert emulator.power_w == 0.0

    asyncio.run(main())


def test_an_unreachable_broker_is_reported_with_the_key_and_the_address() -> None:
    sock, port = _refused_port()
    with sock:
        spec = MqttPlugDeviceSpec(
            plug="boost", host="127.0.0.1", port=port, rated_power_w=1500, command_timeout_s=0.3
        )
        with pytest.raises(
            DeviceUnavailableError,
            match=rf"^devices\[0\]\.host: MQTT broker at 127\.0\.0\.1:{port} is unreachable",
        ):
            asyncio.run(open_device(0, spec))


def test_an_nvml_entry_without_a_driver_is_reported_with_the_key() -> None:
    import pynvml  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML works on this machine")
    with pytest.raises(
        DeviceUnavailableError, match=r"^devices\[1\]\.gpu_index: GPU 0 is unavailable: .*NVML"
    ):
        asyncio.run(open_device(1, NvmlDeviceSpec(name="g", max_power_w=350.0)))
