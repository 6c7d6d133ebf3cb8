"""``heatgrid demo``'s live fleet: a coordinator, emulated homes and one real agent per home.

What runs, all on loopback in a temporary directory, on one accelerated emulated clock
(:mod:`heatgrid.core.clock`) that starts ``speed x duration`` in the past, so that the demo's
emulated hours end at the wall clock's present (the dashboard's charts show them all):

* ``mosquitto`` on a free port (the rooms' temperature sensors);
* ``heatgrid serve`` on SQLite, migrated, with an operator (the dashboard login), two owners and
  a submitter made with ``heatgrid admin``;
* the emulated homes and the Stratum test pool in this process (:mod:`._demo_world`);
* one ``heatgrid agent`` per home, enrolled with ``heatgrid agent enroll`` and a one-time code,
  driving the home's miners through pyasic and heartbeating to the coordinator;
* a sample job submitted with ``heatgrid jobs submit``.

Where the parts being built elsewhere plug in: :func:`mining_targets` (the coordinator's Stratum
proxy), :func:`_sample_job` (``heatgrid jobs submit DIR`` with an example job), and
:func:`_agent_config` (a CPU or GPU heater, ``[[devices]] type = "cpu"``, whose agent then runs the
sample job's leased tasks: it asks for one, so until a home has one its tasks stay queued; the
emulated room then needs that heater's power too, e.g. through an emulated plug meter).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heatgrid.cli._demo_processes import (
    Child,
    Children,
    free_port,
    mosquitto_binary,
    run_heatgrid,
    wait_for_port,
)
from heatgrid.cli._demo_world import HOMES, HomeSpec, MiningTarget, World, room_topic
from heatgrid.core.clock import CLOCK_ENV, ClockSpec

__all__ = ["FleetOptions", "FleetRun", "mining_targets", "run_fleet"]

_STARTUP_TIMEOUT_S = 60.0
_OWNERS = ("alice", "bob")
_SUBMITTER = "carol"
_POLL_S = 2.0
_HEARTBEAT_INTERVAL_S = 2.0


@dataclass(frozen=True, kw_only=True)
class FleetOptions:
    """What ``heatgrid demo`` was asked for."""

    duration_s: float
    homes: int
    speed: float
    workdir: Path


@dataclass
class FleetRun:
    """A demo's state, as its live view and its summary read it."""

    options: FleetOptions
    clock: ClockSpec
    phase: str = "starting"
    url: str | None = None
    login_key: str | None = None
    world: World | None = None
    children: Children | None = None
    device_ids: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    balances: list[dict[str, Any]] = field(default_factory=list)
    dashboard_status: int | None = None
    started_real_ts: float = field(default_factory=time.time)
    running_since_ts: float | None = None

    def emulated_now_ts(self) -> float:
        """Return the shared emulated clock's present [POSIX s]."""
        return self.clock.emulated_ts(time.time())


def home_specs(count: int) -> tuple[HomeSpec, ...]:
    """Return the first ``count`` demo homes, cycling through :data:`HOMES` with numbered names."""
    specs = []
    for index in range(count):
        base = HOMES[index % len(HOMES)]
        lap = index // len(HOMES)
        name = base.name if lap == 0 else f"{base.name} {lap + 1}"
        specs.append(HomeSpec(**{**base.__dict__, "name": name}))
    return tuple(specs)


def mining_targets(world: World, device_id: str, miners: int) -> list[MiningTarget]:
    """Where a home's miners mine: the one switch between the test pool and the proxy.

    Today straight into the test pool, each miner as ``DEVICE_ID.minerN``. When the
    coordinator's Stratum proxy exists (``heatgrid serve --stratum-port``), point this at the
    proxy with the device's mining password, and the proxy at ``world.pool.url``.
    """
    return [
        MiningTarget(world.pool.url, f"{device_id}.miner{index + 1}", "x")
        for index in range(miners)
    ]


def _sample_job(workdir: Path, homes: int) -> Path:
    """Write the sample job's JSON (what ``heatgrid jobs submit`` takes today)."""
    path = workdir / "sample-job.json"
    tasks = [{"task_input": {"seed": index}, "energy_j": 1.8e6} for index in range(homes)]
    body = {"name": "demo sweep", "device_kinds": ["cpu", "gpu"], "tasks": tasks}
    path.write_text(json.dumps(body))
    return path


def _agent_config(run: FleetRun, home: int, spec: HomeSpec, broker: tuple[str, int]) -> Path:
    world = run.world
    assert world is not None
    home_dir = run.options.workdir / f"home{home + 1}"
    home_dir.mkdir(exist_ok=True)
    speed = run.options.speed
    tick_s = max(10.0, speed)  # about one control tick per real second
    devices = "".join(
        f"""
[[devices]]
type = "pyasic"
name = "miner{index + 1}"
host = "127.0.0.1"
rpc_port = {miner.rpc_port}
web_port = {miner.web_port}
min_power_w = {spec.min_power_w}
max_power_w = {max_power_w}
min_cycle_s = 600.0
"""
        for index, (miner, max_power_w) in enumerate(
            zip(world.homes[home].miners, spec.miners_max_power_w, strict=True)
        )
    )
    path = home_dir / "agent.toml"
    path.write_text(
        f"""
[state]
path = "{home_dir / "agent.sqlite3"}"

[heater]
name = "{spec.name}"
model = "emulated Auradine FluxOS miner"

[sensor]
type = "mqtt"
host = "{broker[0]}"
port = {broker[1]}
topic = "{room_topic(home)}"
key = "room_temp_c"
timestamp_key = "sample_ts"

[thermostat]
setpoint_c = {spec.setpoint_c}
tick_s = {tick_s}
telemetry_interval_s = {2.0 * tick_s}
max_age_s = {max(300.0, 10.0 * speed)}
keep_alive_s = {max(300.0, 5.0 * tick_s)}

[mining]
hashprice_eur_per_th_day = 0.045
efficiency_j_per_th = 25.0

[forecast]
internal_gains_w = {spec.gains_w}

[room]
ua_w_per_k = {spec.ua_w_per_k}
time_constant_h = {spec.time_constant_h}
learn = false
{devices}"""
    )
    return path


async def _start_broker(run: FleetRun, env: dict[str, str]) -> tuple[str, int]:
    binary = mosquitto_binary()
    assert binary is not None
    assert run.children is not None
    port = free_port()
    config = run.options.workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    config.write_text("\n".join(lines) + "\n")
    broker = run.children.start("mosquitto", [binary, "-c", str(config)], env)
    await wait_for_port(port, broker, _STARTUP_TIMEOUT_S)
    return "127.0.0.1", port


async def _start_coordinator(run: FleetRun, env: dict[str, str]) -> Child:
    assert run.children is not None
    port = free_port()
    skew_s = run.options.speed * run.options.duration_s + 3600.0
    serve = run.children.start(
        "coordinator",
        [
            sys.executable, "-m", "heatgrid.cli.main", "serve", "--port", str(port),
            "--heartbeat-interval-s", str(_HEARTBEAT_INTERVAL_S),
            "--online-window-s", "30", "--max-clock-skew-s", str(skew_s),
            "--log-level", "warning",
        ],
        env,
    )  # fmt: skip
    await wait_for_port(port, serve, _STARTUP_TIMEOUT_S)
    run.url = f"http://127.0.0.1:{port}"
    return serve


async def _operator_key(env: dict[str, str]) -> str:
    """Migrate the database and make the operator's key, as an operator does on the server."""
    await run_heatgrid("db", "upgrade", env=env)
    out = await run_heatgrid(
        "admin", "create-key", "--role", "operator", "--name", "operator", "--json", env=env
    )
    return str(json.loads(out)["api_key"])


async def _accounts(http: Any, operator: str, homes: int) -> tuple[str, list[str]]:
    """Make the owners' and the submitter's keys, and each home's one-time enrollment code.

    Over the API, as people do: the operator creates the keys, each owner asks for a code.
    Returns the submitter's key and the codes, one per home.
    """
    keys = {}
    for name, role in (*((owner, "owner") for owner in _OWNERS), (_SUBMITTER, "submitter")):
        answer = await http.post(
            "/v1/admin/keys",
            json={"name": name, "role": role},
            headers={"Authorization": f"Bearer {operator}"},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"creating {name}'s key: {answer.status_code} {answer.text}")
        keys[name] = str(answer.json()["api_key"])
    codes = []
    for home in range(homes):
        owner = _OWNERS[home % len(_OWNERS)]
        answer = await http.post(
            "/v1/admin/enrollment-codes",
            json={"ttl_s": 600},
            headers={"Authorization": f"Bearer {keys[owner]}"},
        )
        if answer.status_code != 201:
            raise RuntimeError(f"{owner}'s enrollment code: {answer.status_code} {answer.text}")
        codes.append(str(answer.json()["enrollment_code"]))
    return keys[_SUBMITTER], codes


async def _enroll_and_start_agents(
    run: FleetRun, env: dict[str, str], codes: list[str], broker: tuple[str, int]
) -> None:
    world, children = run.world, run.children
    assert world is not None
    assert children is not None
    assert run.url is not None
    specs = [home.spec for home in world.homes]
    configs = [_agent_config(run, i, spec, broker) for i, spec in enumerate(specs)]
    url = run.url
    enrolls = [
        run_heatgrid("agent", "enroll", "--config", str(c), "--code", code, "--url", url, env=env)
        for c, code in zip(configs, codes, strict=True)
    ]
    outputs = await asyncio.gather(*enrolls)
    run.device_ids = [out.strip().rsplit(" ", 1)[-1] for out in outputs]
    agent_env = {**env, CLOCK_ENV: run.clock.text()}
    for index, config in enumerate(configs):
        argv = [sys.executable, "-m", "heatgrid.cli.main", "agent", "--config", str(config)]
        children.start(f"agent {index + 1}", [*argv, "--log-level", "warning"], agent_env)
    for index, (spec, device_id) in enumerate(zip(specs, run.device_ids, strict=True)):
        world.mine(index, mining_targets(world, device_id, len(spec.miners_max_power_w)))


async def _poll(run: FleetRun, http: Any, operator: str) -> None:
    """Read the fleet, the jobs and the balances back through the API; try the dashboard."""
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {operator}"}
    try:
        devices = await http.get("/v1/devices", params={"limit": 100}, headers=headers)
        jobs = await http.get("/v1/jobs", params={"limit": 100}, headers=headers)
        balances = await http.get("/v1/ledger/balances", headers=headers)
        page = await http.get("/")
    except httpx.HTTPError:
        return
    if devices.status_code == 200:
        run.devices = devices.json()["items"]
    if jobs.status_code == 200:
        run.jobs = jobs.json()["items"]
    if balances.status_code == 200:
        body = balances.json()
        run.balances = body.get("items", body) if isinstance(body, dict) else body
    run.dashboard_status = page.status_code


async def run_fleet(run: FleetRun, refresh: Callable[[], None]) -> None:
    """Run the live fleet for ``options.duration_s`` of wall time, then stop what it started.

    ``refresh`` is called about once a second for the live view. Every process is stopped by
    its PID when this returns or is cancelled (Ctrl-C).
    """
    import httpx  # noqa: PLC0415 - keeps `heatgrid --help` fast

    options = run.options
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEATGRID_")},
        "HEATGRID_DATABASE_URL": f"sqlite:///{options.workdir / 'coordinator.sqlite3'}",
    }
    deadline = time.monotonic() + options.duration_s
    run.children = Children(options.workdir)
    world: World | None = None
    try:
        run.phase = "starting the MQTT broker"
        refresh()
        broker = await _start_broker(run, env)
        run.phase = "migrating the database, the operator's key (heatgrid db, heatgrid admin)"
        refresh()
        operator = await _operator_key(env)
        run.login_key = operator
        run.phase = "starting the coordinator (heatgrid serve)"
        refresh()
        await _start_coordinator(run, env)
        assert run.url is not None
        async with httpx.AsyncClient(base_url=run.url, timeout=30.0) as http:
            run.phase = "owners' and submitter's keys, enrollment codes (over the API)"
            refresh()
            submitter, codes = await _accounts(http, operator, options.homes)
            run.phase = "starting the emulated homes and the test pool"
            refresh()
            world = World(
                home_specs(options.homes),
                clock=lambda: run.clock.emulated_ts(time.time()),
                broker=broker,
                warmup_s=1800.0,
            )
            run.world = world
            await world.start()
            run.phase = "enrolling one agent per home (heatgrid agent enroll)"
            refresh()
            await _enroll_and_start_agents(run, env, codes, broker)
            job_file = _sample_job(options.workdir, options.homes)
            await run_heatgrid(
                "jobs", "submit", str(job_file), "--url", run.url, "--api-key", submitter,
                "--json", env=env,
            )  # fmt: skip
            await _run_until(deadline, run, http, operator, refresh)
        run.phase = "done"
    finally:
        await _shutdown(run, world)


async def _run_until(
    deadline: float, run: FleetRun, http: Any, operator: str, refresh: Callable[[], None]
) -> None:
    """Tick the rooms every second and read the coordinator back until ``deadline``."""
    world, children = run.world, run.children
    assert world is not None
    assert children is not None
    run.phase = "running"
    run.running_since_ts = time.time()
    next_poll = 0.0
    while time.monotonic() < deadline:
        failed = children.failed()
        if failed is not None:
            raise RuntimeError(f"{failed.name} exited: {failed.log_tail()}")
        await world.tick()
        if time.monotonic() >= next_poll:
            await _poll(run, http, operator)
            next_poll = time.monotonic() + _POLL_S
        refresh()
        await asyncio.sleep(1.0)
    await _poll(run, http, operator)


async def _shutdown(run: FleetRun, world: World | None) -> None:
    """Stop agents first (they put the miners in their safe state), then the rest."""
    children = run.children
    assert children is not None
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(children.stop_all(("agent",)))
    if world is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(world.stop())
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(children.stop_all())
