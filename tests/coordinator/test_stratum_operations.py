"""The proxy in operation: started by ``heatgrid serve``, surviving the pool's loss, vardiff."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from heatgrid.cli.main import main
from heatgrid.coordinator import logs
from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.db.models import MiningShare
from heatgrid.coordinator.stratum import ProxySettings, StratumProxy
from heatgrid.coordinator.stratum import proxy as proxy_module
from heatgrid.coordinator.stratum.accounting import WRITER_SWITCH_INTERVAL_S, Settle, ShareRow
from heatgrid.coordinator.stratum.miner import MinerSession
from heatgrid.core.clock import ClockSpec
from heatgrid.emulators.stratum_miner import StratumMinerClient
from heatgrid.emulators.stratum_pool import StratumPool

from .serve_process import ServeProcess, free_port
from .stratum_fleet import make_miners, shares_by_device, until
from .test_stratum_proxy import FAST_HS, POOL_DIFFICULTY, POOL_PASSWORD, POOL_USER, proxy_settings

_WINTER_TS = 1768370400.0  # 2026-01-14 06:00 UTC [POSIX s]


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _difficulties(database_url: str) -> list[float]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(MiningShare.difficulty).order_by(MiningShare.id)))
    finally:
        engine.dispose()


def _accepted_ts(database_url: str) -> list[float]:
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(MiningShare.accepted_ts)))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_serve_runs_the_proxy_as_a_child_and_stops_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child also runs on the clock ``serve --clock`` was given: its shares say January."""
    ((device_id, password),) = make_miners(database_url, 1)
    stratum_port = free_port()
    clock = ClockSpec(start_ts=_WINTER_TS, origin_ts=time.time())

    async def scenario() -> None:
        async with StratumPool(
            difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD}
        ) as pool:
            monkeypatch.setenv("HEATGRID_POOL_PASSWORD", POOL_PASSWORD)
            for name in ("START", "MIN", "MAX"):  # the child reads them from the environment
                monkeypatch.setenv(f"HEATGRID_STRATUM_{name}_DIFFICULTY", repr(POOL_DIFFICULTY))
            server = ServeProcess(
                database_url,
                tmp_path / "serve.log",
                ("--stratum-port", str(stratum_port), "--pool-url", pool.url,
                 "--pool-user", POOL_USER, "--clock", clock.text()),
            )  # fmt: skip
            server.start()
            try:
                await asyncio.to_thread(server.wait_ready)
                url = f"stratum+tcp://127.0.0.1:{stratum_port}"
                client = StratumMinerClient(url, device_id, password, lambda: 1e9)
                mining = asyncio.create_task(client.run())
                try:
                    await until(lambda: client.stats.accepted >= 3, "shares through serve's proxy")
                finally:
                    await _stop(mining)
            finally:
                await asyncio.to_thread(server.stop)
            address = ("127.0.0.1", stratum_port)
            with pytest.raises(ConnectionRefusedError), socket.create_connection(address):
                pass  # the proxy stopped with serve

    asyncio.run(scenario())
    assert shares_by_device(database_url)[1][device_id] >= 3
    stamps_ts = _accepted_ts(database_url)
    assert all(_WINTER_TS <= ts < _WINTER_TS + 86_400.0 for ts in stamps_ts), stamps_ts


def test_serve_refuses_a_stratum_port_without_a_pool(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["serve", "--database-url", database_url, "--stratum-port", "3333"])
    assert status == 2
    assert "--pool-url" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "stratum"])
def test_serve_and_stratum_refuse_a_bad_clock(
    command: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = ("--pool-url", "stratum+tcp://127.0.0.1:1", "--pool-user", "u")
    options = pool if command == "stratum" else ()
    status = main(
        [command, "--database-url", database_url, *options, "--clock", "start=soon,origin_ts=0"]
    )
    assert status == 2
    assert "clock: start must be a date" in capsys.readouterr().err


def test_the_stratum_command_refuses_a_bad_pool_url(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["stratum", "--database-url", database_url, "--pool-url", "http://pool", "--pool-user", "u"]
    )
    assert status == 2
    assert "stratum+tcp://HOST:PORT" in capsys.readouterr().err


def test_the_stratum_command_passes_the_gil_every_half_millisecond(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy's process runs at the writer's switch interval, not CPython's 5 ms."""
    intervals_s: list[float] = []
    ran: list[float] = []

    def run(coroutine: Coroutine[Any, Any, None]) -> None:  # the proxy itself is not started
        coroutine.close()
        ran.append(intervals_s[-1])

    monkeypatch.setattr(sys, "setswitchinterval", intervals_s.append)
    monkeypatch.setattr(asyncio, "run", run)
    monkeypatch.setattr(logs, "configure_logging", lambda level: None)
    pool = ("--pool-url", "stratum+tcp://127.0.0.1:1", "--pool-user", "u")
    assert main(["stratum", "--database-url", database_url, *pool]) == 0
    assert ran == [WRITER_SWITCH_INTERVAL_S] == [0.0005]


def test_pool_loss_makes_jobs_stale_and_mining_resumes_after_reconnect(
    database_url: str,
) -> None:
    ((device_id, password),) = make_miners(database_url, 1)

    async def scenario() -> None:
        first = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        await first.start()
        pool_port = first.port
        try:
            async with StratumProxy(proxy_settings(database_url, first)) as proxy:
                url = f"stratum+tcp://127.0.0.1:{proxy.port}"
                client = StratumMinerClient(url, device_id, password, lambda: FAST_HS)
                mining = asyncio.create_task(client.run())
                try:
                    await until(lambda: client.stats.accepted >= 5, "mining through the first pool")
                    await first.stop()
                    await until(lambda: proxy.upstream.session is None, "the proxy saw the loss")
                    second = StratumPool(
                        port=pool_port, difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD}
                    )
                    # the pool comes back with another extranonce1: every slice changes, and a
                    # miner that did not subscribe to extranonce changes reconnects
                    second._extranonce1s = itertools.count(0x09000001)
                    async with second:
                        await until(
                            lambda: second.stats.accepted_shares[f"{POOL_USER}.{device_id}"] >= 5,
                            "mining resumed through the pool that came back",
                        )
                        await client.drain()
                finally:
                    await _stop(mining)
        finally:
            await first.stop()
        assert proxy.upstream.connections >= 2
        assert client.stats.connections >= 2
        assert not second.stats.rejected  # nothing stale or invalid was forwarded
        assert second.stats.malformed_lines == 0

    asyncio.run(scenario())


def test_vardiff_raises_the_difficulty_of_a_fast_miner_and_lowers_a_slow_ones(
    database_url: str,
) -> None:
    (fast_id, fast_password), (slow_id, slow_password) = make_miners(database_url, 2)
    start = 2.0**-16

    async def scenario() -> None:
        pool = StratumPool(difficulty=2.0**-24, users={POOL_USER: POOL_PASSWORD})
        await pool.start()
        settings = proxy_settings(
            database_url,
            pool,
            start_difficulty=start,
            min_difficulty=2.0**-24,
            max_difficulty=2.0**-8,
            share_interval_s=1.0,
        )
        try:
            await _vardiff(settings, start)
        finally:
            await pool.stop()

    async def _vardiff(settings: ProxySettings, start: float) -> None:
        async with StratumProxy(settings) as proxy:
            url = f"stratum+tcp://127.0.0.1:{proxy.port}"
            fast = StratumMinerClient(url, fast_id, fast_password, lambda: FAST_HS)
            # one share per 60 s at the start difficulty: vardiff must come down
            slow = StratumMinerClient(url, slow_id, slow_password, lambda: start * 2**32 / 60.0)
            tasks = [asyncio.create_task(c.run()) for c in (fast, slow)]
            try:
                await until(
                    lambda: any(
                        s.difficulty > start for s in proxy.sessions if fast_id in str(s.devices)
                    ),
                    "the fast miner's difficulty went up",
                )
                await until(
                    lambda: any(
                        s.difficulty < start for s in proxy.sessions if slow_id in str(s.devices)
                    ),
                    "the slow miner's difficulty went down",
                )
                await until(lambda: fast.stats.accepted >= 40, "the fast miner mines on")
                await fast.drain()
            finally:
                for task in tasks:
                    await _stop(task)
        credited = _difficulties(database_url)
        assert max(credited) > start  # shares credited at the raised difficulty
        work, _ = shares_by_device(database_url)
        assert work[fast_id] == pytest.approx(fast.stats.accepted_work, rel=1e-12)

    asyncio.run(scenario())


def test_silent_and_never_authorizing_connections_are_closed(database_url: str) -> None:
    ((device_id, password),) = make_miners(database_url, 1)

    async def scenario() -> None:
        async with StratumPool(
            difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD}
        ) as pool:
            settings = proxy_settings(
                database_url, pool, handshake_timeout_s=0.5, idle_timeout_s=1.0
            )
            async with StratumProxy(settings) as proxy:
                lurker = await asyncio.open_connection("127.0.0.1", proxy.port)
                assert await lurker[0].read() == b""  # never subscribed: closed
                lurker[1].close()

                client = StratumMinerClient(
                    f"stratum+tcp://127.0.0.1:{proxy.port}", device_id, password, lambda: 0.0
                )  # authorizes, then sends nothing (a heater curtailed to sleep)
                task = asyncio.create_task(client.run())
                try:
                    await until(lambda: client.stats.connections >= 2, "closed, and back")
                finally:
                    await _stop(task)

    asyncio.run(scenario())


def test_the_housekeeping_spreads_its_pass_over_the_second(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each connection is looked at once a pass, a chunk at a time, the chunks spread apart.

    Six connections in chunks of two: three chunks, each visited at one instant, a third of
    a second after the one before (asyncio's timers never fire early, so the span has this
    lower bound however slow the machine). Before, the chunks followed each other
    with only a loop turn between them, and a pass over 10,000 miners delayed every share
    answered during it.
    """
    monkeypatch.setattr(proxy_module, "_SWEEP_CHUNK", 2)
    visits: list[float] = []
    real_silent_too_long = MinerSession.silent_too_long

    def visited(session: MinerSession, now_s: float) -> bool:
        visits.append(now_s)  # one value per chunk: the time its turn began
        return real_silent_too_long(session, now_s)

    monkeypatch.setattr(MinerSession, "silent_too_long", visited)

    async def scenario() -> None:
        async with (
            StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD}) as pool,
            StratumProxy(proxy_settings(database_url, pool)) as proxy,
        ):
            connections = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(6)]
            try:
                await until(lambda: len(proxy.sessions) == 6, "six connections")
                visits.clear()
                await until(lambda: len(visits) >= 12, "two passes over them")
            finally:
                for _, writer in connections:
                    writer.close()

    asyncio.run(scenario())
    # a pass that began before the six were all there has fewer; every pass pauses at least
    # a third of a second before each of its chunks
    chunks = sorted(set(visits))
    assert all(visits.count(when) <= 2 for when in chunks), visits  # a chunk at a time
    assert len(chunks) >= 6
    assert all(later - earlier >= 1.0 / 3 - 1e-3 for earlier, later in itertools.pairwise(chunks))


def test_a_share_recorded_across_a_pool_reconnect_is_not_sent_to_the_new_session(
    database_url: str,
) -> None:
    """A share still being recorded when the pool is lost belongs to the old session's job.

    The pool that comes back keeps the extranonce (the miner stays connected) and numbers its
    jobs from 1 again, an hour later: the old share, sent to it, would name another job and be
    rejected as "ntime out of range". It is credited (the miner was told "accepted") but not
    forwarded.
    """
    ((device_id, password),) = make_miners(database_url, 1)

    async def scenario() -> None:
        first = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        await first.start()
        pool_port = first.port
        second: StratumPool | None = None
        try:
            async with StratumProxy(proxy_settings(database_url, first)) as proxy:
                url = f"stratum+tcp://127.0.0.1:{proxy.port}"
                client = StratumMinerClient(url, device_id, password, lambda: FAST_HS)
                mining = asyncio.create_task(client.run())
                recorder = proxy.recorder
                enqueue = recorder.enqueue
                held: list[tuple[ShareRow, Settle]] = []

                def held_enqueue(row: ShareRow, settle: Settle) -> None:
                    held.append((row, settle))

                try:
                    await until(lambda: client.stats.accepted >= 3, "mining through the first pool")
                    recorder.enqueue = held_enqueue  # type: ignore[method-assign]
                    await until(lambda: len(held) >= 3, "shares waiting to be recorded")
                    forwarded = proxy.forwarded
                    await first.stop()
                    await until(lambda: proxy.upstream.session is None, "the proxy saw the loss")
                    second = StratumPool(
                        port=pool_port,
                        difficulty=POOL_DIFFICULTY,
                        users={POOL_USER: POOL_PASSWORD},
                        clock=lambda: time.time() + 3600.0,
                    )
                    await second.start()
                    await until(lambda: proxy.upstream.session is not None, "the pool is back")
                    recorder.enqueue = enqueue  # type: ignore[method-assign]
                    for row, settle in held:
                        enqueue(row, settle)
                    await until(
                        lambda: second.stats.accepted_shares[f"{POOL_USER}.{device_id}"] >= 3,
                        "mining resumed through the pool that came back",
                    )
                    await client.drain()
                finally:
                    recorder.enqueue = enqueue  # type: ignore[method-assign]
                    await _stop(mining)
        finally:
            await first.stop()
            if second is not None:
                await second.stop()
        assert client.stats.connections == 1  # the same extranonce: the miner stayed
        assert forwarded >= 3
        assert not second.stats.rejected  # no share of the old session reached the new one

    asyncio.run(scenario())
