"""The agent's configuration: TOML, environment overrides, errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.ports import free_port

from heatgrid.agent.config import load_config, parse_config
from heatgrid.agent.devices.settings import NvmlDeviceSpec
from heatgrid.agent.enroll import enroll_request
from heatgrid.cli.main import main
from heatgrid.core.control import Mode
from heatgrid.core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "agent.toml.example"

MINIMAL = """
[sensor]
topic = "room/temp"

[[devices]]
type = "cpu"
idle_power_w = 10.0
max_power_w = 100.0
"""


def test_the_documented_example_is_valid() -> None:
    config = load_config(EXAMPLE, environ={})
    assert [device.type for device in config.devices] == ["cpu", "mqtt_plug"]
    assert config.max_power_w == 1120.0
    assert config.thermostat_config().max_power_w == 1120.0


def test_defaults_and_tuned_gains() -> None:
    config = parse_config(MINIMAL, environ={})
    assert not config.jobs.enabled, "jobs are opt-in"
    thermostat = config.thermostat_config()
    assert config.mode is Mode.AUTO
    assert thermostat.kp_w_per_k > 0.0
    assert thermostat.ki_w_per_k_s > 0.0
    assert thermostat.schedule.change_points == ((0, 0, 21.0),)


def test_home_assistant_defaults_come_from_the_heater_and_the_sensor() -> None:
    config = parse_config(
        MINIMAL + '\n[heater]\nname = "Salon, 1er étage"\n',
        environ={"HEATGRID_AGENT__SENSOR__HOST": "broker.home"},
    )
    assert not config.homeassistant.enabled
    assert config.home_assistant_broker() == ("broker.home", 1883)
    identity = config.home_assistant_identity()
    assert identity.node_id == "Salon_1er_etage"
    assert identity.name == "Salon, 1er étage"
    assert identity.discovery_prefix == "homeassistant"
    example = load_config(EXAMPLE, environ={})
    assert example.homeassistant.enabled
    assert example.home_assistant_identity().node_id == "living_room"
    overridden = parse_config(
        MINIMAL,
        environ={
            "HEATGRID_AGENT__HOMEASSISTANT__PORT": "1884",
            "HEATGRID_AGENT__HOMEASSISTANT__NODE_ID": "heater-2",
        },
    )
    assert overridden.home_assistant_broker() == ("127.0.0.1", 1884)
    assert overridden.home_assistant_identity().node_id == "heater-2"


def test_environment_overrides_a_key_and_a_device() -> None:
    config = parse_config(
        MINIMAL,
        environ={
            "HEATGRID_AGENT__THERMOSTAT__SETPOINT_C": "19.5",
            "HEATGRID_AGENT__THERMOSTAT__MODE": "away",
            "HEATGRID_AGENT__DEVICES__0__MAX_POWER_W": "250",
            "HEATGRID_AGENT__SENSOR__HOST": "broker.home",
            "UNRELATED": "1",
        },
    )
    assert config.thermostat.setpoint_c == 19.5
    assert config.mode is Mode.AWAY
    assert config.devices[0].max_power_w == 250.0  # type: ignore[union-attr]
    assert config.sensor.host == "broker.home"


@pytest.mark.parametrize(
    ("text", "environ", "named"),
    [
        (MINIMAL.replace('topic = "room/temp"', ""), {}, "sensor.topic: Field required"),
        (
            MINIMAL.replace('"cpu"', '"heatpump"'),
            {},
            "devices[0]: unknown device type 'heatpump' (known: cpu, mqtt_plug, nvml, pyasic)",
        ),
        (MINIMAL.replace("100.0", '"100"'), {}, "devices[0].max_power_w"),
        (MINIMAL + "\n[thermostat]\nsetpoint = 21\n", {}, "thermostat.setpoint: Extra inputs"),
        (MINIMAL, {"HEATGRID_AGENT__THERMOSTAT__TICK_S": "-1"}, "thermostat.tick_s"),
        (MINIMAL, {"HEATGRID_AGENT__DEVICES__3__NAME": "x"}, "HEATGRID_AGENT__DEVICES__3__NAME"),
        (MINIMAL.replace("[sensor]", "[sensor"), {}, "not valid TOML"),
        (
            MINIMAL + "\n[thermostat]\nschedule = [[0, 60, 21.0], [9, 0, 18.0]]\n",
            {},
            "thermostat.schedule",
        ),
        (MINIMAL.replace("[sensor]", "[[devices]]\ntype = 'cpu'\n[sensor]"), {}, "devices"),
        (MINIMAL + "\n[jobs]\nenabled = true\npause_after_s = -1\n", {}, "jobs.pause_after_s"),
        (MINIMAL + "\n[jobs]\nmax_tasks = 0\n", {}, "jobs.max_tasks"),
    ],
)
def test_bad_configuration_names_the_key(text: str, environ: dict[str, str], named: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_config(text, source="agent.toml", environ=environ)
    assert named in str(caught.value)
    assert str(caught.value).startswith("agent.toml: ") or named.startswith("HEATGRID")


_SENSOR = '[sensor]\ntopic = "room/temp"\n'


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x"}, "devices[0]: each device needs a 'type' (known: cpu, mqtt_plug, nvml,"),
        ({"type": "cpu", "max_power_w": 60}, "devices[0].idle_power_w: Field required"),
        (
            {"type": "cpu", "idle_power_w": "10", "max_power_w": 60},
            "devices[0].idle_power_w: Input should be a valid number",
        ),
        (
            {"type": "cpu", "idle_power_w": True, "max_power_w": 60},
            "devices[0].idle_power_w: Input should be a valid number",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 60, "worker_count": 1.5},
            "devices[0].worker_count: Input should be a valid integer",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 60, "max_power_kw": 1},
            "devices[0].max_power_kw: Extra inputs are not permitted",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 5},
            "devices[0].max_power_w: must exceed idle_power_w (10 W), got 5 W",
        ),
        (
            {"type": "cpu", "idle_power_w": 10, "max_power_w": 60, "min_power_w": 70},
            "devices[0].min_power_w: must lie within [idle_power_w, max_power_w] = [10, 60] W",
        ),
        (
            {"type": "cpu", "name": "", "idle_power_w": 10, "max_power_w": 60},
            "devices[0].name: String should have at least 1 character",
        ),
        (
            {"type": "pyasic", "min_power_w": 300, "max_power_w": 1200},
            "devices[0].host: Field required",
        ),
        (
            {
                "type": "pyasic",
                "host": "10.0.0.9",
                "rpc_port": 0,
                "min_power_w": 300,
                "max_power_w": 1200,
            },
            "devices[0].rpc_port: Input should be greater than or equal to 1",
        ),
        (
            {"type": "pyasic", "host": "miner.local", "min_power_w": 300, "max_power_w": 1200},
            "devices[0].host: must be an IP address, got 'miner.local'",
        ),
        (
            {"type": "pyasic", "host": "10.0.0.9", "min_power_w": 1300, "max_power_w": 1200},
            "devices[0].max_power_w: must be at least min_power_w (1300 W), got 1200 W",
        ),
        (
            {"type": "mqtt_plug", "host": "127.0.0.1", "rated_power_w": 2000},
            "devices[0].plug: Field required",
        ),
        (
            {"type": "mqtt_plug", "plug": "a/b", "rated_power_w": 2000},
            "devices[0].plug: must be a Tasmota topic without '/', '+' or '#', got 'a/b'",
        ),
        (
            {"type": "nvml", "gpu_index": "0", "max_power_w": 350},
            "devices[0].gpu_index: Input should be a valid integer",
        ),
        (
            {"type": "nvml", "gpu_index": -1, "max_power_w": 350},
            "devices[0].gpu_index: Input should be greater than or equal to 0",
        ),
        ({"type": "nvml"}, "devices[0].max_power_w: Field required"),
    ],
)
def test_a_bad_device_entry_names_its_key(entry: dict[str, object], message: str) -> None:
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in entry.items())
    with pytest.raises(InputError) as caught:
        parse_config(f"{_SENSOR}[[devices]]\n{table}", source="agent.toml", environ={})
    assert f"agent.toml: {message}" in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_config(tmp_path / "nowhere.toml", environ={})


def _cli(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(["agent", "--config", str(config)])
    return status, capsys.readouterr().err


def test_cli_refuses_an_unknown_device_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL.replace('"cpu"', '"heatpump"'))
    status, err = _cli(path, capsys)
    assert status == 2
    assert "devices[0]" in err
    assert "heatpump" in err
    assert "Traceback" not in err


def test_cli_refuses_an_unreachable_device_before_heating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    path = tmp_path / "agent.toml"
    path.write_text(
        MINIMAL
        + f"""
[[devices]]
type = "mqtt_plug"
name = "boost"
plug = "heater"
port = {port}
rated_power_w = 1000.0
command_timeout_s = 0.5

[state]
path = "{tmp_path / "state.sqlite3"}"
"""
    )
    status, err = _cli(path, capsys)
    assert status == 2
    assert "devices[1]" in err
    assert "cannot be reached" in err
    assert "Traceback" not in err


def test_cli_refuses_an_unreachable_sensor_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    sensor = f'topic = "room/temp"\nport = {free_port()}\nconnect_timeout_s = 0.5'
    path.write_text(
        MINIMAL.replace('topic = "room/temp"', sensor)
        + f'\n[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
    )
    status, err = _cli(path, capsys)
    assert status == 2
    assert "sensor.host" in err


def test_cli_refuses_a_device_the_adapter_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        MINIMAL.replace("idle_power_w = 10.0", "idle_power_w = 150.0")
        + f'\n[state]\npath = "{tmp_path / "state.sqlite3"}"\n'
    )
    status, err = _cli(path, capsys)
    assert status == 2
    assert "devices[0]" in err
    assert "idle_power_w" in err


def test_the_documented_miner_and_gpu_entries_are_valid_and_enroll_by_the_gpu() -> None:
    text = EXAMPLE.read_text()
    blocks = text[text.index("# An ASIC miner") :]
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and not line.startswith("# #") else line
        for line in blocks.splitlines()
        if not line.startswith("# An ") and not line.startswith("# # ")
    )
    config = parse_config(text[: text.index("# An ASIC miner")] + uncommented, environ={})
    assert [device.type for device in config.devices] == ["cpu", "mqtt_plug", "pyasic", "nvml"]
    assert config.max_power_w == 120.0 + 1000.0 + 1200.0 + 350.0
    gpu = config.devices[3]
    assert gpu == NvmlDeviceSpec(name="gpu", gpu_index=0, max_power_w=350.0, vram_gb=24.0)
    request = enroll_request(config, "hge_0123456789abcdef_secret")
    assert request.device_kind == "gpu"
    assert request.hardware.vram_gb == 24.0
    assert request.hardware.max_power_w == config.max_power_w
