"""An enrolled agent points its miners at the coordinator's Stratum proxy through pyasic.

A real coordinator (uvicorn, SQLite) tells where its proxy listens; two emulated miners speak
their firmware's RPC and web API on loopback ports and are driven through pyasic. The miner
configured with ``coordinator_pool = true`` ends up mining at the proxy as ``DEVICE_ID.NAME``
with a password the coordinator's own check accepts; the other keeps its owner's pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.agent.coordinator_app import ServedCoordinator, SimClock, migrated_database, running

from heatgrid.agent.client import CoordinatorClient
from heatgrid.agent.config import AgentConfig, parse_config
from heatgrid.agent.daemon import AgentDaemon
from heatgrid.agent.devices.base import DeviceCommandError
from heatgrid.agent.devices.pyasic_miner import PyasicMiner, connect_pyasic_miner
from heatgrid.agent.devices.settings import PyasicDeviceSpec
from heatgrid.agent.mqtt_sensor import TemperatureReading
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import Device
from heatgrid.coordinator.mining_credentials import (
    check_credentials,
    get_credential,
    issue_password,
)
from heatgrid.emulators import miner_model as mm
from heatgrid.emulators._fluxos_device import Pool
from heatgrid.emulators.miner_server import MinerEmulator
from heatgrid.protocol import v1

T0_TS = 1_767_225_600.0
PROXY_URL = "stratum+tcp://127.0.0.1:3333"
OWNER_POOL = {"url": "stratum+tcp://pool.owner.example:3333", "user": "owner.rig", "pass": "x"}
OWNER_BACKUP = {"url": "stratum+tcp://backup.owner.example:443", "user": "owner.rig2", "pass": "x"}
CONFIG = """
[heater]
name = "attic"

[sensor]
topic = "unused: the room is read in-process"

[thermostat]
setpoint_c = 21.0
tick_s = 60.0

[[devices]]
type = "pyasic"
name = "attic miner"
host = "127.0.0.1"
min_power_w = 300.0
max_power_w = 1200.0
timeout_s = 5.0

[[devices]]
type = "pyasic"
name = "owners-own"
host = "127.0.0.1"
min_power_w = 300.0
max_power_w = 1200.0
timeout_s = 5.0
coordinator_pool = false
"""


def _config(emulators: list[MinerEmulator], text: str = CONFIG) -> AgentConfig:
    environ = {}
    for index, emulator in enumerate(emulators):
        environ[f"HEATGRID_AGENT__DEVICES__{index}__RPC_PORT"] = str(emulator.rpc_port)
        environ[f"HEATGRID_AGENT__DEVICES__{index}__WEB_PORT"] = str(emulator.web_port)
    return parse_config(text, environ=environ)


@dataclass
class _Heater:
    daemon: AgentDaemon
    emulators: list[MinerEmulator]
    device_id: str
    database_url: str
    clock: SimClock
    client: CoordinatorClient
    store: StateStore


async def _daemon(heater: _Heater, config: AgentConfig) -> AgentDaemon:
    """A new agent on the same state file (a restart with ``config``), its miners via pyasic."""
    miners: list[PyasicMiner] = []
    for spec in config.devices:
        assert isinstance(spec, PyasicDeviceSpec)
        miners.append(await connect_pyasic_miner(spec, clock=heater.clock))
    clock = heater.clock
    return AgentDaemon(
        config,
        devices=miners,
        room=lambda: TemperatureReading(
            room_temp_c=20.0, reading_ts=clock.now_ts, received_ts=clock.now_ts
        ),
        store=heater.store,
        client=heater.client,
        clock=clock,
    )


def _check(database_url: str, user: str, password: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return check_credentials(session, user, password)
    finally:
        engine.dispose()


def _rotate(database_url: str, device_id: str, now_ts: float) -> None:
    """The owner issues a new password (``heatgrid mining credentials --rotate``)."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            device = session.get(Device, device_id)
            assert device is not None
            issue_password(session, device, now_ts=now_ts)
    finally:
        engine.dispose()


def _issued(database_url: str, device_id: str) -> bool:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return get_credential(session, device_id) is not None
    finally:
        engine.dispose()


@contextlib.asynccontextmanager
async def _heater(
    tmp_path: Path, stratum_url: str | None, *, owner_pools: bool = True
) -> AsyncIterator[_Heater]:
    """An enrolled agent with two emulated miners whose pools are the owner's (or none)."""
    clock = SimClock(T0_TS)
    database_url, code = migrated_database(tmp_path, clock)
    coordinator = ServedCoordinator(
        database_url, tmp_path / "checkpoints", clock, stratum_url=stratum_url
    )
    params = mm.MinerParams()
    async with (
        MinerEmulator(params, rpc_port=0, web_port=0, clock=clock) as first,
        MinerEmulator(params, rpc_port=0, web_port=0, clock=clock) as second,
        running(coordinator),
        CoordinatorClient(coordinator.url, timeout_s=5.0) as client,
    ):
        emulators = [first, second]
        for emulator in emulators if owner_pools else []:
            emulator.device.update_pools([OWNER_POOL, OWNER_BACKUP])
        config = _config(emulators)
        miners: list[PyasicMiner] = []
        for spec in config.devices:
            assert isinstance(spec, PyasicDeviceSpec)
            miners.append(await connect_pyasic_miner(spec, clock=clock))
        enrolled = await client.enroll(
            v1.EnrollRequest(
                enrollment_code=code,
                device_name="attic",
                device_kind="asic",
                hardware=v1.Hardware(model="AT1500", max_power_w=1200.0, min_power_w=300.0),
                has_room=True,
            )
        )
        with StateStore(tmp_path / "agent.sqlite3") as store:
            store.save_identity(
                Identity(
                    url=client.url,
                    device_id=enrolled.device_id,
                    device_token=enrolled.device_token,
                )
            )
            daemon = AgentDaemon(
                config,
                devices=miners,
                room=lambda: TemperatureReading(
                    room_temp_c=20.0, reading_ts=clock.now_ts, received_ts=clock.now_ts
                ),
                store=store,
                client=client,
                clock=clock,
            )
            try:
                yield _Heater(
                    daemon, emulators, enrolled.device_id, database_url, clock, client, store
                )
            finally:
                for miner in miners:  # (a miner a test switched off cannot be paused)
                    with contextlib.suppress(DeviceCommandError):
                        await miner.aclose()


def _owner_pools() -> tuple[Pool, ...]:
    return tuple(
        Pool(pool["url"], pool["user"], pool["pass"]) for pool in (OWNER_POOL, OWNER_BACKUP)
    )


def _pools(emulator: MinerEmulator) -> tuple[Pool, ...]:
    return emulator.device.view().pools


def test_an_enrolled_agent_points_its_miner_at_the_proxy_with_working_credentials(
    tmp_path: Path,
) -> None:
    owner_pool = _owner_pools()

    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL) as heater:
            daemon, emulators, device_id = heater.daemon, heater.emulators, heater.device_id
            database_url, clock = heater.database_url, heater.clock
            first, second = emulators
            await daemon.sync()
            (pool,) = _pools(first)
            assert (pool.url, pool.user) == (PROXY_URL, f"{device_id}.attic-miner")
            assert _check(database_url, pool.user, pool.password) == device_id
            assert _pools(second) == owner_pool  # coordinator_pool = false: left alone
            assert daemon.pools.pointed == {"attic miner"}

            # a later check finds the same password in force: nothing is issued or sent again
            clock.now_ts += 7200.0
            first.device.update_pools(
                [OWNER_POOL, OWNER_BACKUP]
            )  # (so that a second send would show)
            await daemon.sync()
            assert _pools(first) == owner_pool
            assert _check(database_url, pool.user, pool.password) == device_id

            # the owner rotates the password: the agent issues its own and points anew
            _rotate(database_url, device_id, T0_TS + 7300.0)
            assert _check(database_url, pool.user, pool.password) is None
            clock.now_ts += 7200.0
            await daemon.sync()
            (renewed,) = _pools(first)
            assert renewed.url == PROXY_URL
            assert renewed.password != pool.password
            assert _check(database_url, renewed.user, renewed.password) == device_id

    asyncio.run(scenario())


def test_without_a_proxy_the_miners_keep_their_owners_pool(tmp_path: Path) -> None:
    owner_pool = _owner_pools()

    async def scenario() -> None:
        async with _heater(tmp_path, None) as heater:
            daemon, emulators = heater.daemon, heater.emulators
            device_id, database_url = heater.device_id, heater.database_url
            await daemon.sync()
            assert [_pools(emulator) for emulator in emulators] == [owner_pool] * 2
            assert not _issued(database_url, device_id)  # no password was issued either
            assert daemon.pools.pointed == frozenset()

    asyncio.run(scenario())


def test_turning_coordinator_pool_off_gives_the_miner_its_owners_pools_back(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL) as heater:
            first, second = heater.emulators
            await heater.daemon.sync()
            assert _pools(first)[0].url == PROXY_URL
            assert len(_pools(first)) == 1  # the proxy alone, the owner's backup too is gone
            # the owner's pools were read through pyasic and kept before the miner was pointed
            assert set(heater.daemon.pools.kept) == {"attic miner"}

            # the agent restarts with coordinator_pool turned off for that miner
            text = CONFIG.replace(
                'name = "attic miner"', 'name = "attic miner"\ncoordinator_pool = false'
            )
            restarted = await _daemon(heater, _config(heater.emulators, text))
            await restarted.sync()
            assert _pools(first) == _owner_pools()  # both pools, in their order
            assert _pools(second) == _owner_pools()  # never touched
            assert restarted.pools.kept == {}  # given back, forgotten
            assert restarted.pools.pointed == frozenset()

    asyncio.run(scenario())


def test_a_miner_whose_pools_cannot_be_read_is_not_pointed(tmp_path: Path) -> None:
    """pyasic reads FluxOS pools through the web API; with that closed nothing would be known
    to restore later, so the miner keeps mining at its owner's pools."""

    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL) as heater:
            first, second = heater.emulators
            with socket.socket() as probe:  # a loopback port where nothing listens
                probe.bind(("127.0.0.1", 0))
                closed_port = probe.getsockname()[1]
            environ = {
                "HEATGRID_AGENT__DEVICES__0__RPC_PORT": str(first.rpc_port),
                "HEATGRID_AGENT__DEVICES__0__WEB_PORT": str(closed_port),
                "HEATGRID_AGENT__DEVICES__1__RPC_PORT": str(second.rpc_port),
                "HEATGRID_AGENT__DEVICES__1__WEB_PORT": str(second.web_port),
            }
            daemon = await _daemon(heater, parse_config(CONFIG, environ=environ))
            await daemon.sync()
            assert _pools(first) == _owner_pools()
            assert daemon.pools.kept == {}
            assert daemon.pools.pointed == frozenset()

    asyncio.run(scenario())


def test_a_miner_with_no_pool_of_its_own_is_pointed_and_nothing_is_kept(tmp_path: Path) -> None:
    """A miner fresh out of its box has no pool: its RPC API answers "No pools" (cgminer's
    code 8), which tells it from a pool read that failed; it mines at the proxy at once."""

    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL, owner_pools=False) as heater:
            first, second = heater.emulators
            assert _pools(first) == ()
            await heater.daemon.sync()
            (pool,) = _pools(first)
            assert pool.url == PROXY_URL
            assert _check(heater.database_url, pool.user, pool.password) == heater.device_id
            assert heater.daemon.pools.pointed == {"attic miner"}
            assert heater.daemon.pools.kept == {}  # nothing of the owner's to put back
            assert _pools(second) == ()  # coordinator_pool = false: left alone

    asyncio.run(scenario())


async def _leave(
    heater: _Heater, tmp_path: Path, ports: list[tuple[int, int]]
) -> tuple[int, str, str]:
    """Run ``heatgrid agent leave`` in its own process; ``ports``: each miner's RPC and web."""
    config = tmp_path / "agent.toml"
    config.write_text(
        CONFIG.replace("[heater]", f'[state]\npath = "{heater.store.path}"\n\n[heater]')
    )
    environ = dict(os.environ)
    for index, (rpc_port, web_port) in enumerate(ports):
        environ[f"HEATGRID_AGENT__DEVICES__{index}__RPC_PORT"] = str(rpc_port)
        environ[f"HEATGRID_AGENT__DEVICES__{index}__WEB_PORT"] = str(web_port)
    leave = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "heatgrid.cli.main", "agent", "leave", "--config", str(config)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await leave.communicate()
    assert leave.returncode is not None
    return leave.returncode, out.decode(), err.decode()


def test_heatgrid_agent_leave_restores_the_owners_pools_and_forgets_the_identity(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL) as heater:
            first, second = heater.emulators
            await heater.daemon.sync()
            assert _pools(first)[0].url == PROXY_URL
            mining = first.device.view().state.mining
            ports = [(emulator.rpc_port, emulator.web_port) for emulator in heater.emulators]
            heater.store.close()  # the agent stops; leave opens the state file itself
            status, out, err = await _leave(heater, tmp_path, ports)
            assert status == 0, err
            assert "attic miner: mines at its owner's pool again" in out
            assert f"device {heater.device_id} is forgotten" in out
            assert _pools(first) == _owner_pools()
            assert _pools(second) == _owner_pools()
            assert first.device.view().state.mining == mining  # leave pauses or resumes nothing
            with StateStore(heater.store.path) as store:
                assert store.identity is None
                assert store.get("mining_password") is None
                assert store.get("owner_pools") == {}

            # a second leave finds nothing to do and says so
            status, out, _ = await _leave(heater, tmp_path, ports)
            assert status == 0
            assert "not enrolled" in out

    asyncio.run(scenario())


def test_heatgrid_agent_leave_names_a_miner_it_cannot_reach_and_keeps_its_pools(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL) as heater:
            first, _ = heater.emulators
            await heater.daemon.sync()
            ports = [(emulator.rpc_port, emulator.web_port) for emulator in heater.emulators]
            heater.store.close()
            await first.stop()  # the miner is switched off while its owner leaves
            status, out, err = await _leave(heater, tmp_path, ports)
            assert status == 1
            assert "attic miner: the owner's pools not restored" in err
            assert "heatgrid agent leave` again" in err
            assert "Traceback" not in err
            assert f"device {heater.device_id} is forgotten" in out
            with StateStore(heater.store.path) as store:
                assert store.identity is None
                assert set(store.get("owner_pools")) == {"attic miner"}  # kept for later

    asyncio.run(scenario())


def test_an_agent_no_longer_enrolled_restores_the_owners_pools_at_its_next_sync(
    tmp_path: Path,
) -> None:
    """What a miner unreachable during ``heatgrid agent leave`` gets once the agent reaches it."""

    async def scenario() -> None:
        async with _heater(tmp_path, PROXY_URL) as heater:
            first, _ = heater.emulators
            await heater.daemon.sync()
            assert _pools(first)[0].url == PROXY_URL
            heater.store.forget_identity()  # left, with this miner's pools still kept
            await heater.daemon.sync()
            assert _pools(first) == _owner_pools()
            assert heater.daemon.pools.kept == {}

    asyncio.run(scenario())
