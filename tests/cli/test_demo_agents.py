"""The demo's heaters: which homes have a CPU heater, and agent configurations an agent accepts."""

from __future__ import annotations

from pathlib import Path

from heatgrid.agent.config import CpuDeviceSpec, PyasicDeviceSpec, load_config
from heatgrid.agent.enroll import heater_hardware
from heatgrid.cli._demo_agents import CPU_SETPOINT_OFFSET_K, heater_plans, write_agent_config
from heatgrid.cli._demo_fleet import example_job, home_specs
from heatgrid.cli._demo_world import CPU_CORE_POWER_W, CPU_IDLE_POWER_W
from heatgrid.jobs.manifest import load_manifest

_OWNERS = ("alice", "bob")


def test_two_owners_each_have_a_cpu_heater_and_later_laps_have_none(tmp_path: Path) -> None:
    specs = home_specs(6)
    plans = heater_plans(specs, _OWNERS, tmp_path)
    cpu = [plan for plan in plans if plan.kind == "cpu"]
    assert [(plan.name, plan.owner) for plan in cpu] == [
        ("Berlin flat CPU heater", "alice"),
        ("Stockholm passive house CPU heater", "bob"),
    ]
    assert [plan.home for plan in plans if plan.kind == "miners"] == list(range(6))
    assert {plan.owner for plan in plans if plan.home == 2} == {"alice"}
    assert len({plan.directory for plan in plans}) == len(plans)


def test_the_agents_accept_their_configurations_and_only_the_cpu_heater_runs_jobs(
    tmp_path: Path,
) -> None:
    specs = home_specs(2)
    plans = heater_plans(specs, _OWNERS, tmp_path)
    configs = {
        plan.kind + str(plan.home): load_config(
            write_agent_config(
                plan, specs[plan.home], broker=("127.0.0.1", 1883), speed=60.0, miners=[(4028, 80)]
            )
        )
        for plan in plans
    }
    assert sorted(configs) == ["cpu0", "cpu1", "miners0", "miners1"]
    cpu, miners = configs["cpu0"], configs["miners0"]
    assert cpu.jobs.enabled
    assert not cpu.heat_only  # without a task the CPU stays at its idle draw
    assert cpu.mining is None
    (device,) = cpu.devices
    assert isinstance(device, CpuDeviceSpec)
    assert device.idle_power_w == CPU_IDLE_POWER_W
    assert device.max_power_w - device.idle_power_w == cpu.jobs.core_power_w == CPU_CORE_POWER_W
    assert device.workers() == 1
    assert heater_hardware(cpu)[0] == "cpu"  # leased CPU tasks
    assert cpu.thermostat.setpoint_c == specs[0].setpoint_c + CPU_SETPOINT_OFFSET_K
    assert cpu.sensor.topic == miners.sensor.topic  # one room, two heaters
    assert not miners.jobs.enabled
    assert miners.mining is not None
    assert isinstance(miners.devices[0], PyasicDeviceSpec)
    # the agent sets its miners' pool to the coordinator's Stratum proxy, as for real miners
    assert all(isinstance(d, PyasicDeviceSpec) and d.coordinator_pool for d in miners.devices)
    assert heater_hardware(miners)[0] == "asic"
    assert miners.thermostat.setpoint_c == specs[0].setpoint_c


def test_the_demo_job_is_the_deterministic_example() -> None:
    job_dir = example_job()
    assert job_dir is not None
    assert job_dir.name == "sweep"
    manifest = load_manifest(job_dir)
    assert manifest.resources.gpu_memory_gb == 0.0
    assert (job_dir / "grid.json").is_file()
