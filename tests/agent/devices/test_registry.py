"""open_device builds each adapter from a configuration entry, or says which key is wrong."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest

from heatgrid.agent.devices.base import DeviceUnavailableError, HeatDevice
from heatgrid.agent.devices.cpu import CpuHeater
from heatgrid.agent.devices.mqtt_plug import MqttPlug
from heatgrid.agent.devices.pyasic_miner import PyasicMiner
from heatgrid.agent.devices.registry import DEVICE_TYPES, open_device
from heatgrid.core.errors import InputError
from heatgrid.emulators.miner_server import MinerEmulator
from heatgrid.emulators.plug import TasmotaPlugEmulator


def _refused_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    return sock, sock.getsockname()[1]


def test_the_known_types() -> None:
    assert DEVICE_TYPES == ("cpu", "mqtt_plug", "nvml", "pyasic")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"type": "foo"},
            r"^devices\[3\]\.type: unknown device type 'foo' \(known: cpu, "
            r"mqtt_plug, nvml, pyasic\)$",
        ),
        ({"name": "x"}, r"^devices\[3\]\.type: missing \(known: cpu, mqtt_plug, nvml, pyasic\)"),
        ({"type": "cpu", "max_power_w": 60}, r"^devices\[3\]\.idle_power_w: missing"),
        (
            {"type": "cpu", "idle_power_w": "10", "max_power_w": 60},
            r"^devices\[3\]\.idle_power_w: must be a number, got '10'",
        ),
        (
            {"type": "cpu", "idle_power_w": True, "max_power_w": 60},
            r"^devices\[3\]\.idle_power_w: must be a number",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 60, "worker_count": 1.5},
            r"^devices\[3\]\.worker_count: must be an integer",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 60, "max_power_kw": 1},
            r"^devices\[3\]\.max_power_kw: unknown key for type 'cpu' \(known: .*idle_power_w",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 5},
            r"^devices\[3\]: max_power_w \(5\.0\) must exceed idle_power_w",
        ),
        (
            {"type": "cpu", "name": "", "idle_power_w": 10, "max_power_w": 60},
            r"^devices\[3\]\.name: must be a non-empty string",
        ),
        (
            {"type": "pyasic", "min_power_w": 300, "max_power_w": 1200},
            r"^devices\[3\]\.host: missing",
        ),
        (
            {
                "type": "pyasic",
                "host": "10.0.0.9",
                "rpc_port": 0,
                "min_power_w": 300,
                "max_power_w": 1200,
            },
            r"^devices\[3\]\.rpc_port: must be between 1 and 65535",
        ),
        (
            {"type": "pyasic", "host": "miner.local", "min_power_w": 300, "max_power_w": 1200},
            r"^devices\[3\]: host must be an IP address, got 'miner.local'",
        ),
        (
            {"type": "pyasic", "host": "10.0.0.9", "max_power_w": 1200},
            r"^devices\[3\]\.min_power_w: missing",
        ),
        (
            {"type": "mqtt_plug", "host": "127.0.0.1", "rated_power_w": 2000},
            r"^devices\[3\]\.plug: missing",
        ),
        (
            {"type": "mqtt_plug", "plug": "a/b", "host": "127.0.0.1", "rated_power_w": 2000},
            r"^devices\[3\]: plug must be a Tasmota topic",
        ),
        ({"type": "nvml", "gpu_index": "0"}, r"^devices\[3\]\.gpu_index: must be an integer"),
    ],
)
def test_bad_entries_are_refused_naming_the_key(spec: Mapping[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        asyncio.run(open_device(3, spec))


def test_an_entry_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InputError, match=r"^devices\[0\]: must be a mapping"):
        asyncio.run(open_device(0, ["cpu"]))  # type: ignore[arg-type]


def test_a_cpu_entry_builds_a_cpu_heater(tmp_path: Path) -> None:
    async def main() -> None:
        device = await open_device(
            0, {"type": "cpu", "idle_power_w": 10, "max_power_w": 60, "worker_count": 1}
        )
        try:
            assert isinstance(device, CpuHeater)
            assert isinstance(device, HeatDevice)
            assert device.name == "cpu-0"
            assert device.capability.max_power_w == 60.0
            reading = await device.read()
            assert reading.power_target_w == 0.0
        finally:
            await device.aclose()

    asyncio.run(main())


def test_a_pyasic_entry_builds_a_miner_driven_through_pyasic() -> None:
    async def main() -> None:
        async with MinerEmulator(rpc_port=0, web_port=0) as emulator:
            spec = {
                "type": "pyasic",
                "name": "attic",
                "host": "127.0.0.1",
                "rpc_port": emulator.rpc_port,
                "web_port": emulator.web_port,
                "min_power_w": 300,
                "max_power_w": 1200,
                "min_cycle_s": 900,
            }
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
        spec = {
            "type": "pyasic",
            "host": "127.0.0.1",
            "rpc_port": port,
            "min_power_w": 300,
            "max_power_w": 1200,
            "timeout_s": 2,
        }
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
            spec = {
                "type": "mqtt_plug",
                "plug": "boost",
                "host": host,
                "port": port,
                "rated_power_w": 1500,
            }
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
        spec = {
            "type": "mqtt_plug",
            "plug": "boost",
            "host": "127.0.0.1",
            "port": port,
            "rated_power_w": 1500,
            "command_timeout_s": 0.3,
        }
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
        asyncio.run(open_device(1, {"type": "nvml", "name": "g"}))
