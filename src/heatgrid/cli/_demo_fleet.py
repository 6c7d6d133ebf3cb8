"""``heatgrid demo``'s live fleet: a coordinator, its Stratum proxy, emulated homes, real agents.

What runs, all on loopback in a temporary directory, on one accelerated emulated clock
(:mod:`heatgrid.core.clock`, given to every child as ``HEATGRID_CLOCK``) that starts on a fixed
winter morning (:func:`._demo_world.demo_clock`), whatever today's date: the coordinator, its
Stratum proxy and the agents stamp and judge times on it alike, as the rooms and miners do, so
the dashboard shows the demo's emulated hours as they happen:

* ``mosquitto`` on a free port (the rooms' temperature sensors);
* the emulated homes and the Stratum test pool in this process (:mod:`._demo_world`);
* ``heatgrid serve`` on SQLite, migrated, with an operator (the dashboard login) made with
  ``heatgrid admin``, and two owners and a submitter whose keys the operator makes over the API;
* ``heatgrid stratum``, the coordinator's Stratum proxy on the same database, whose upstream is
  the test pool (the operator's pool account); each miner heater's agent issues its mining
  password and sets its miners' pool to the proxy through pyasic (``coordinator_pool``), as it
  does for real miners; the proxy records and credits each share to the owner and forwards it
  to the pool;
* one ``heatgrid agent`` per heater (:mod:`._demo_agents`), enrolled with ``heatgrid agent
  enroll`` and its owner's one-time code: each home's miner heater, and in the first two homes
  (alice's and bob's) a CPU heater that runs job tasks in the bubblewrap sandbox, whose power
  the room reads from an emulated meter on its agent's processes;
* the deterministic example job, ``examples/sweep``, submitted with ``heatgrid jobs submit DIR``.

The coordinator, the proxy and the agents run as children stopped by their PIDs
(:mod:`._demo_processes`); what the summary says is read back through the coordinator's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heatgrid.cli._demo_agents import HeaterPlan, heater_plans, write_agent_config
from heatgrid.cli._demo_processes import Children, free_port, run_heatgrid
from heatgrid.cli._demo_services import (
    POOL_USER,
    Accounts,
    create_accounts,
    operator_key,
    start_broker,
    start_coordinator,
    start_proxy,
)
from heatgrid.cli._demo_world import HOMES, HomeSpec, World
from heatgrid.core.clock import CLOCK_ENV, ClockSpec
from heatgrid.core.errors import InputError
from heatgrid.jobs.examples import example_dir

__all__ = [
    "FleetOptions",
    "FleetRun",
    "Heater",
    "example_job",
    "home_specs",
    "run_fleet",
]

_OWNERS = ("alice", "bob")
_POLL_S = 2.0
_JOB_ENERGY_KWH = 0.01  # the estimate per task the scheduler matches with heat windows


@dataclass(frozen=True, kw_only=True)
class FleetOptions:
    """What ``heatgrid demo`` was asked for."""

    duration_s: float
    homes: int
    speed: float
    workdir: Path


@dataclass(frozen=True, kw_only=True)
class Heater:
    """An enrolled heater: its plan (home, kind, name, owner) and its device id."""

    plan: HeaterPlan
    device_id: str


@dataclass
class FleetRun:
    """A demo's state, as its live view and its summary read it."""

    options: FleetOptions
    clock: ClockSpec
    phase: str = "starting"
    url: str | None = None
    proxy_url: str | None = None
    login_key: str | None = None
    world: World | None = None
    children: Children | None = None
    heaters: list[Heater] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    job_tasks: list[dict[str, Any]] = field(default_factory=list)
    job_problem: str | None = None
    balances: list[dict[str, Any]] = field(default_factory=list)
    mining: dict[str, Any] | None = None
    dashboard_status: int | None = None
    dashboard_answered: bool = False
    started_real_ts: float = field(default_factory=time.time)
    running_since_ts: float | None = None

    @property
    def device_ids(self) -> list[str]:
        """Every heater's device id, in the order they were enrolled."""
        return [heater.device_id for heater in self.heaters]

    def emulated_now_ts(self) -> float:
        """Return the shared emulated clock's present [POSIX s]."""
        return self.clock.emulated_ts(time.time())


def home_specs(count: int) -> tuple[HomeSpec, ...]:
    """Return the first ``count`` demo homes, cycling through :data:`HOMES` with numbered names.

    Only the first lap has CPU heaters (each runs a task on one core of this machine).
    """
    specs = []
    for index in range(count):
        base = HOMES[index % len(HOMES)]
        lap = index // len(HOMES)
        if lap == 0:
            specs.append(base)
            continue
        name = f"{base.name} {lap + 1}"
        specs.append(HomeSpec(**{**base.__dict__, "name": name, "cpu_heater_max_power_w": 0.0}))
    return tuple(specs)


def example_job() -> Path | None:
    """Return the deterministic example job's directory (``examples/sweep``), if installed."""
    try:
        return example_dir("sweep")
    except InputError:
        return None


async def _enroll(
    run: FleetRun, env: dict[str, str], accounts: Accounts, broker: tuple[str, int]
) -> list[Path]:
    """Write each heater's agent configuration and enroll it with its owner's one-time code."""
    world = run.world
    assert world is not None
    assert run.url is not None
    specs = tuple(home.spec for home in world.homes)
    plans = heater_plans(specs, _OWNERS, run.options.workdir)
    configs = []
    for plan in plans:
        miners = [(m.rpc_port, m.web_port) for m in world.homes[plan.home].miners]
        configs.append(
            write_agent_config(
                plan, specs[plan.home], broker=broker, speed=run.options.speed, miners=miners
            )
        )
    codes = [await accounts.enrollment_code(plan.owner) for plan in plans]
    url = run.url
    enrolls = [
        run_heatgrid("agent", "enroll", "--config", str(c), "--code", code, "--url", url, env=env)
        for c, code in zip(configs, codes, strict=True)
    ]
    outputs = await asyncio.gather(*enrolls)
    run.heaters = [
        Heater(plan=plan, device_id=out.strip().rsplit(" ", 1)[-1])
        for plan, out in zip(plans, outputs, strict=True)
    ]
    return configs


async def _start_agents(run: FleetRun, env: dict[str, str], configs: list[Path]) -> None:
    """Start one agent per heater; meter the CPU heaters; let the miners mine where set."""
    world, children = run.world, run.children
    assert world is not None
    assert children is not None
    for index, (heater, config) in enumerate(zip(run.heaters, configs, strict=True)):
        argv = [sys.executable, "-m", "heatgrid.cli.main", "agent", "--config", str(config)]
        agent = children.start(f"agent {index + 1}", [*argv, "--log-level", "warning"], env)
        if heater.plan.kind == "cpu":
            world.add_cpu_heater(heater.plan.home, agent.pid)
    for heater in run.heaters:
        if heater.plan.kind != "miners":
            continue
        world.mine(heater.plan.home, f"{POOL_USER}.{heater.device_id}")


async def _submit_job(run: FleetRun, env: dict[str, str], accounts: Accounts) -> None:
    """Submit ``examples/sweep`` (one task per point of its grid) as the submitter."""
    assert run.url is not None
    job_dir = example_job()
    if job_dir is None:
        run.job_problem = (
            "no job submitted: this heatgrid has no examples/sweep (install it from its wheel "
            "or run the demo from a clone of the project)"
        )
        return
    await run_heatgrid(
        "jobs", "submit", str(job_dir), "--param-grid", str(job_dir / "grid.json"),
        "--name", "examples/sweep", "--energy-kwh", str(_JOB_ENERGY_KWH),
        "--url", run.url, "--api-key", accounts.submitter, "--json", env=env,
    )  # fmt: skip


async def _poll(run: FleetRun, http: Any, operator: str) -> None:
    """Read the fleet, the jobs, the mining and the balances through the API; try the dashboard."""
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {operator}"}
    try:
        devices = await http.get("/v1/devices", params={"limit": 100}, headers=headers)
        jobs = await http.get("/v1/jobs", params={"limit": 100}, headers=headers)
        balances = await http.get("/v1/ledger/balances", headers=headers)
        mining = await http.get("/v1/mining/report", headers=headers)
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
    if mining.status_code == 200:
        run.mining = mining.json()
    run.dashboard_status = page.status_code
    run.dashboard_answered = run.dashboard_answered or page.status_code in {200, 303}


async def _read_tasks(run: FleetRun, http: Any, operator: str) -> None:
    """Read every task of the demo's jobs, with its state and result, through the API."""
    import httpx  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {operator}"}
    tasks: list[dict[str, Any]] = []
    for job in run.jobs:
        try:
            answer = await http.get(
                f"/v1/jobs/{job['job_id']}/tasks", params={"limit": 1000}, headers=headers
            )
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            tasks.extend(answer.json()["items"])
    run.job_tasks = tasks


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
        CLOCK_ENV: run.clock.text(),
    }
    deadline = time.monotonic() + options.duration_s
    run.children = Children(options.workdir)
    world: World | None = None
    ticker: asyncio.Task[None] | None = None

    def step(phase: str) -> None:
        run.phase = phase
        refresh()

    try:
        step("starting the MQTT broker")
        broker = await start_broker(run.children, options.workdir, env)
        step("migrating the database, the operator's key (heatgrid db, heatgrid admin)")
        operator = await operator_key(env)
        run.login_key = operator
        step("starting the emulated homes and the test pool")
        world = World(
            home_specs(options.homes),
            clock=lambda: run.clock.emulated_ts(time.time()),
            broker=broker,
            warmup_s=1800.0,
        )
        run.world = world
        await world.start()
        ticker = asyncio.create_task(_tick_rooms(world))
        step("starting the coordinator and its Stratum proxy (heatgrid serve, heatgrid stratum)")
        proxy_port, coordinator_port = _two_free_ports()
        run.proxy_url, url = await asyncio.gather(
            start_proxy(run.children, env, port=proxy_port, pool_url=world.pool.url),
            start_coordinator(
                run.children,
                env,
                port=coordinator_port,
                stratum_url=f"stratum+tcp://127.0.0.1:{proxy_port}",
                speed=options.speed,
            ),
        )
        run.url = url
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            step("owners' and submitter's keys (over the API)")
            accounts = await create_accounts(http, operator, _OWNERS, speed=options.speed)
            step("enrolling one agent per heater (heatgrid agent enroll)")
            configs = await _enroll(run, env, accounts, broker)
            step("starting the agents; miners mine through the proxy")
            await _start_agents(run, env, configs)
            step("submitting examples/sweep (heatgrid jobs submit)")
            await _submit_job(run, env, accounts)
            await _run_until(deadline, run, http, operator, refresh)
            await _read_tasks(run, http, operator)
        run.phase = "done"
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await _shutdown(run, world)


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


async def _tick_rooms(world: World) -> None:
    """Move every room on once a second, from the homes' start until the demo stops."""
    while True:
        await world.tick()
        await asyncio.sleep(1.0)


async def _run_until(
    deadline: float, run: FleetRun, http: Any, operator: str, refresh: Callable[[], None]
) -> None:
    """Read the coordinator back every few seconds until ``deadline``; stop if a child dies."""
    children = run.children
    assert children is not None
    run.phase = "running"
    run.running_since_ts = time.time()
    next_poll = 0.0
    while time.monotonic() < deadline:
        failed = children.failed()
        if failed is not None:
            raise RuntimeError(f"{failed.name} exited: {failed.log_tail()}")
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
