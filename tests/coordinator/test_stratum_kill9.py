"""``kill -9`` of the proxy process while miners submit: nothing acknowledged is lost or doubled.

A real ``heatgrid stratum`` process sits between four emulated miners and the test pool. Mid
load it is killed with SIGKILL and started again on the same port and database. The miners
reconnect on their own (with backoff) and go on mining. Afterwards every share a miner was
told was accepted is in the database once, and every stored share is one a miner sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningShare
from heatgrid.emulators.stratum_miner import StratumMinerClient
from heatgrid.emulators.stratum_pool import StratumPool

from .serve_process import free_port
from .stratum_fleet import make_miners, until
from .test_stratum_proxy import FAST_HS, POOL_PASSWORD, POOL_USER

pytestmark = pytest.mark.slow

POOL_DIFFICULTY = 2.0**-22  # ~1,000 hashes a share: many shares in flight at the kill


def _start_proxy(database_url: str, pool_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    difficulty = repr(POOL_DIFFICULTY)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "heatgrid.cli.main", "stratum",
             "--listen", f"127.0.0.1:{port}", "--database-url", database_url,
             "--pool-url", pool_url, "--pool-user", POOL_USER,
             "--start-difficulty", difficulty, "--min-difficulty", difficulty,
             "--max-difficulty", difficulty],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HEATGRID_POOL_PASSWORD": POOL_PASSWORD},
        )  # fmt: skip


def _stored_keys(database_url: str) -> tuple[set[str], int]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            keys = set(session.scalars(select(MiningShare.share_key)))
            rows = session.scalar(select(func.count()).select_from(MiningShare))
    finally:
        engine.dispose()
    return keys, int(rows or 0)


def test_kill_9_loses_no_acknowledged_share(database_url: str, tmp_path: Path) -> None:
    miners = make_miners(database_url, 4)
    log = tmp_path / "stratum.log"
    port = free_port()

    async def scenario() -> None:
        async with StratumPool(
            difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD}
        ) as pool:
            proxy = _start_proxy(database_url, pool.url, port, log)
            url = f"stratum+tcp://127.0.0.1:{port}"
            clients = [
                StratumMinerClient(url, device_id, password, lambda: FAST_HS, record_shares=True)
                for device_id, password in miners
            ]
            tasks = [asyncio.create_task(client.run()) for client in clients]
            try:
                await until(lambda: all(c.stats.accepted >= 100 for c in clients), "20 shares each")
                proxy.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proxy.wait)
                before = [c.stats.accepted for c in clients]
                proxy = _start_proxy(database_url, pool.url, port, log)
                await until(
                    lambda: all(
                        c.stats.accepted >= b + 20 and c.stats.connections >= 2
                        for c, b in zip(clients, before, strict=True)
                    ),
                    "every miner reconnected and mines again",
                )
                for client in clients:
                    await client.drain()
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                proxy.terminate()
                await asyncio.to_thread(proxy.wait)

        acknowledged = {key.hex() for c in clients for key in c.stats.accepted_keys or []}
        submitted = {key.hex() for c in clients for key in c.stats.submitted_keys or []}
        stored, rows = _stored_keys(database_url)
        assert rows == len(stored)  # none doubled
        missing = acknowledged - stored
        assert not missing, f"{len(missing)} acknowledged shares lost; log:\n{log.read_text()}"
        assert stored <= submitted  # nothing stored that no miner sent
        assert sum(c.stats.accepted for c in clients) == len(acknowledged)

    asyncio.run(scenario())
