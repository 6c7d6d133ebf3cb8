"""The Stratum proxy end to end over loopback TCP: emulated miners → proxy → test pool.

Each miner hashes real headers; the pool checks every share it receives on its own. The proxy
records each accepted share in the database (SQLite and PostgreSQL) before answering.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningShare
from heatgrid.coordinator.stratum import ProxySettings, StratumProxy
from heatgrid.emulators.stratum_miner import StratumMinerClient
from heatgrid.emulators.stratum_pool import StratumPool

from .stratum_fleet import make_miners, shares_by_device, until

POOL_DIFFICULTY = 2.0**-18  # ~16,000 hashes a share
FAST_HS = 1e15  # the CPU is the limit
POOL_USER, POOL_PASSWORD = "operator", "pool-secret"


def proxy_settings(database_url: str, pool: StratumPool, **overrides: object) -> ProxySettings:
    """Settings of a proxy on a free loopback port whose miners work at the pool's difficulty."""
    values: dict[str, object] = {
        "database_url": database_url,
        "pool_url": pool.url,
        "pool_user": POOL_USER,
        "pool_password": POOL_PASSWORD,
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "start_difficulty": POOL_DIFFICULTY,
        "min_difficulty": POOL_DIFFICULTY,
        "max_difficulty": POOL_DIFFICULTY,
        **overrides,
    }
    return ProxySettings(**values)  # type: ignore[arg-type]


def test_several_miners_counted_as_the_pool_counts(database_url: str) -> None:
    miners = make_miners(database_url, 3)

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with pool, StratumProxy(proxy_settings(database_url, pool)) as proxy:
            url = f"stratum+tcp://127.0.0.1:{proxy.port}"
            clients = [
                StratumMinerClient(url, f"{device_id}.rig", password, lambda: FAST_HS)
                for device_id, password in miners
            ]
            tasks = [asyncio.create_task(client.run()) for client in clients]
            try:
                await until(lambda: all(c.stats.accepted >= 25 for c in clients), "25 shares each")
                for client in clients:
                    await client.drain()
                accepted = sum(c.stats.accepted for c in clients)
                await until(
                    lambda: sum(pool.stats.accepted_shares.values()) >= accepted,
                    "the pool heard every share",
                )
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            work, rows = shares_by_device(database_url)
            assert sum(rows.values()) == accepted
            assert not pool.stats.rejected
            for client, (device_id, _) in zip(clients, miners, strict=True):
                pool_work = pool.stats.accepted_work[f"{POOL_USER}.{device_id}"]
                assert work[device_id] == pytest.approx(pool_work, rel=1e-3)
                assert work[device_id] == pytest.approx(client.stats.accepted_work, rel=1e-9)
                assert rows[device_id] == client.stats.accepted

    asyncio.run(scenario())
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:  # the pool's verdicts, stored
        verdicts = list(session.scalars(select(MiningShare.upstream_accepted)))
    engine.dispose()
    assert verdicts
    assert all(verdict is True for verdict in verdicts)
