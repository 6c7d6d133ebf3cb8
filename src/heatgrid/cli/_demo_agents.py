"""The heaters of ``heatgrid demo``'s homes, as their agents' configuration files.

Every home has a miner heater: one ``heatgrid agent`` driving the home's emulated miners through
pyasic. A home whose :class:`~heatgrid.cli._demo_world.HomeSpec` has a CPU heater also has a
second heater in the same room: another ``heatgrid agent`` with a ``[[devices]] type = "cpu"``
and ``[jobs] enabled``, which claims the demo job's tasks and runs them in the bubblewrap
sandbox. A heater is one device at the coordinator, of one kind (``asic`` or ``cpu``), which is
why the CPU is a heater of its own: only a ``cpu`` device is leased CPU tasks.

The two thermostats share the room's sensor. The CPU heater's setpoint is
:data:`CPU_SETPOINT_OFFSET_K` above the home's, so that while it has a task it heats first and
the miners fill in, and without a task (``heat_only = false``) it stays at its idle draw and the
miners keep the room at the home's setpoint alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from heatgrid.cli._demo_world import CPU_CORE_POWER_W, CPU_IDLE_POWER_W, HomeSpec, room_topic

__all__ = ["CPU_SETPOINT_OFFSET_K", "HeaterPlan", "heater_plans", "write_agent_config"]

CPU_SETPOINT_OFFSET_K = 0.3
"""The CPU heater's setpoint over the home's [K]: it runs its tasks first, the miners fill in."""


@dataclass(frozen=True, kw_only=True)
class HeaterPlan:
    """One heater of the demo: which home, what kind, whose, and where its agent's files go.

    Attributes
    ----------
    home : int
        Index of its home.
    kind : str
        ``miners`` (the home's miners) or ``cpu`` (its CPU heater).
    name : str
        Its name, as the dashboard shows it.
    owner : str
        Its owner's name.
    directory : pathlib.Path
        Its agent's configuration, state and jobs directory.
    """

    home: int
    kind: str
    name: str
    owner: str
    directory: Path


def heater_plans(
    specs: tuple[HomeSpec, ...], owners: tuple[str, ...], workdir: Path
) -> list[HeaterPlan]:
    """Return the heaters of ``specs``: each home's miners, then its CPU heater if it has one.

    Home ``i`` belongs to ``owners[i % len(owners)]``, both its heaters alike.
    """
    plans = []
    for index, spec in enumerate(specs):
        owner = owners[index % len(owners)]
        plans.append(
            HeaterPlan(
                home=index,
                kind="miners",
                name=spec.name,
                owner=owner,
                directory=workdir / f"home{index + 1}",
            )
        )
        if spec.cpu_heater_max_power_w > 0.0:
            plans.append(
                HeaterPlan(
                    home=index,
                    kind="cpu",
                    name=f"{spec.name} CPU heater",
                    owner=owner,
                    directory=workdir / f"home{index + 1}-cpu",
                )
            )
    return plans


def _common(
    plan: HeaterPlan, spec: HomeSpec, broker: tuple[str, int], speed: float, setpoint_c: float
) -> str:
    """Return the sections both heaters share: state, sensor, thermostat, forecast, room."""
    tick_s = max(10.0, speed)  # about one control tick per real second
    return f"""
[state]
path = "{plan.directory / "agent.sqlite3"}"

[sensor]
type = "mqtt"
host = "{broker[0]}"
port = {broker[1]}
topic = "{room_topic(plan.home)}"
key = "room_temp_c"
timestamp_key = "sample_ts"

[thermostat]
setpoint_c = {setpoint_c}
tick_s = {tick_s}
telemetry_interval_s = {2.0 * tick_s}
max_age_s = {max(300.0, 10.0 * speed)}
keep_alive_s = {max(300.0, 5.0 * tick_s)}

[forecast]
internal_gains_w = {spec.gains_w}

[room]
ua_w_per_k = {spec.ua_w_per_k}
time_constant_h = {spec.time_constant_h}
learn = false
"""


def _miners_config(
    plan: HeaterPlan, spec: HomeSpec, miners: list[tuple[int, int]], common: str
) -> str:
    devices = "".join(
        f"""
[[devices]]
type = "pyasic"
name = "miner{index + 1}"
host = "127.0.0.1"
rpc_port = {rpc_port}
web_port = {web_port}
min_power_w = {spec.min_power_w}
max_power_w = {max_power_w}
min_cycle_s = 600.0
# coordinator_pool = true (the default): the agent issues the heater's mining password and
# sets this miner's pool to the coordinator's Stratum proxy through pyasic
"""
        for index, ((rpc_port, web_port), max_power_w) in enumerate(
            zip(miners, spec.miners_max_power_w, strict=True)
        )
    )
    return f"""
[heater]
name = "{plan.name}"
model = "emulated Auradine FluxOS miner"
{common}
[mining]
hashprice_eur_per_th_day = 0.045
efficiency_j_per_th = 25.0
{devices}"""


def _cpu_config(plan: HeaterPlan, spec: HomeSpec, speed: float, common: str) -> str:
    # Emulated seconds on the room's clock; real seconds for the reports (asyncio sleeps).
    return f"""
heat_only = false

[heater]
name = "{plan.name}"
model = "emulated CPU heater (one core of this machine stands for {CPU_CORE_POWER_W:g} W)"
{common}
[jobs]
enabled = true
dir = "{plan.directory / "jobs"}"
core_power_w = {CPU_CORE_POWER_W}
pause_after_s = {max(300.0, 10.0 * speed)}
hand_back_after_s = {max(1800.0, 40.0 * speed)}
progress_interval_s = 2.0
pause_grace_s = 10.0
term_grace_s = 3.0

[[devices]]
type = "cpu"
name = "cpu"
idle_power_w = {CPU_IDLE_POWER_W}
max_power_w = {spec.cpu_heater_max_power_w}
worker_count = 1
min_cycle_s = 0.0
"""


def write_agent_config(
    plan: HeaterPlan,
    spec: HomeSpec,
    *,
    broker: tuple[str, int],
    speed: float,
    miners: list[tuple[int, int]],
) -> Path:
    """Write ``plan``'s agent configuration; return its path.

    ``miners`` are the home's miners' ``(rpc_port, web_port)``, for a ``miners`` heater.
    """
    plan.directory.mkdir(parents=True, exist_ok=True)
    if plan.kind == "cpu":
        setpoint_c = spec.setpoint_c + CPU_SETPOINT_OFFSET_K
        text = _cpu_config(plan, spec, speed, _common(plan, spec, broker, speed, setpoint_c))
    else:
        common = _common(plan, spec, broker, speed, spec.setpoint_c)
        text = _miners_config(plan, spec, miners, common)
    path = plan.directory / "agent.toml"
    path.write_text(text)
    return path
