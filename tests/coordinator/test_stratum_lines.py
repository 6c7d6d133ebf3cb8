"""How the proxy reads a miner's lines: in order, and nothing held between them.

A miner may send its whole handshake at once (cgminer-style miners send subscribe and
authorize in one write): the proxy answers each line in order, the ones behind a handshake
message that waits for the pool or the database included. Between two shares a connection
holds no coroutine, future or timer: the cycle collector's young passes would walk that
waiting state of every connection (``docs/mining.md``, *Speed*).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import socket
import threading
import types
from typing import Any

from heatgrid.coordinator.stratum import StratumProxy
from heatgrid.emulators.stratum_pool import StratumPool
from heatgrid.mining import stratum
from heatgrid.mining.shares import Job, ShareValidator, job_from_notify

from .stratum_fleet import make_miners, until
from .test_stratum_hostile import Raw, _share
from .test_stratum_proxy import POOL_DIFFICULTY, POOL_PASSWORD, POOL_USER, proxy_settings

_MASK = 0x1FFFE000


def test_a_handshake_sent_in_one_write_is_answered_line_by_line_in_order(
    database_url: str,
) -> None:
    ((device_id, password),) = make_miners(database_url, 1)

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with pool, StratumProxy(proxy_settings(database_url, pool)) as proxy:
            raw = await Raw.open(proxy.port)
            lines = [
                stratum.encode(stratum.Configure(1, ("version-rolling",), _MASK, 2)),
                stratum.encode(stratum.Subscribe(2)),
                b'{"id": 3, "method": "mining.steal", "params": []}\n',
                stratum.encode(stratum.Authorize(4, f"{device_id}.rig", password)),
                stratum.encode(stratum.ExtranonceSubscribe(5)),
            ]
            await raw.send(b"".join(lines))
            answers = []
            while len(answers) < len(lines):
                message = stratum.decode(await asyncio.wait_for(raw.reader.readuntil(b"\n"), 60))
                if isinstance(message, stratum.Response):
                    answers.append(message)
                elif isinstance(message, stratum.Notify):
                    raw.jobs.append(job_from_notify(message))
            assert [a.id for a in answers] == [1, 2, 3, 4, 5]
            assert stratum.configure_result(answers[0].result) == _MASK
            assert isinstance(stratum.subscribe_result(answers[1].result), stratum.SubscribeResult)
            assert answers[2].error is not None
            assert answers[3].result is True
            assert answers[4].result is True
            await raw.job()  # authorized and subscribed: it mines
            await raw.close()

    asyncio.run(scenario())


def _waiting_state() -> int:
    """Coroutines, futures (tasks included) and live timer handles in this process [-].

    Each object's class is read with ``type()``, not ``isinstance``: ``isinstance`` reads an
    object's ``__class__``, which some library objects answer with a warning (PyTorch's
    deprecated ``torch.distributed.reduce_op`` does, once torch is imported in the process).
    """
    kinds = (types.CoroutineType, asyncio.Future, asyncio.TimerHandle)
    return sum(
        1
        for thing in gc.get_objects()
        if issubclass(type(thing), kinds)
        and not (issubclass(type(thing), asyncio.TimerHandle) and thing.cancelled())
    )


class _BlockingMiner:
    """A miner on a plain socket, driven from a thread: it adds no asyncio objects."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.lines = self.sock.makefile("rb")
        self.job: Job | None = None

    def call(self, message: stratum.Message) -> stratum.Response:
        self.sock.sendall(stratum.encode(message))
        while True:
            answer = stratum.decode(self.lines.readline())
            if isinstance(answer, stratum.Notify):
                self.job = job_from_notify(answer)
            elif isinstance(answer, stratum.Response) and answer.id == getattr(message, "id", 0):
                return answer

    def one_share(self, worker: str, password: str) -> None:
        """Handshake, then one valid share, answered "accepted"."""
        self.call(stratum.Configure(1, ("version-rolling",), _MASK, 2))
        subscribed = stratum.subscribe_result(self.call(stratum.Subscribe(2)).result)
        assert isinstance(subscribed, stratum.SubscribeResult)
        assert self.call(stratum.Authorize(3, worker, password)).result is True
        while self.job is None:
            message = stratum.decode(self.lines.readline())
            if isinstance(message, stratum.Notify):
                self.job = job_from_notify(message)
        mine = ShareValidator(subscribed.extranonce1, subscribed.extranonce2_size, 0)
        share = _share(mine, self.job, worker, valid=True)
        answer = self.call(dataclasses.replace(share, id=4))
        assert answer.result is True, answer

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


def test_a_connection_between_shares_holds_no_coroutine_future_or_timer(
    database_url: str,
) -> None:
    ((device_id, password),) = make_miners(database_url, 1)
    connections = 30

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with pool, StratumProxy(proxy_settings(database_url, pool)) as proxy:
            miners: list[_BlockingMiner] = []

            def connect(count: int) -> None:
                for _ in range(count):
                    miners.append(_BlockingMiner(proxy.port))
                    miners[-1].one_share(f"{device_id}.w{len(miners)}", password)

            async def one_share_each(count: int) -> None:
                await asyncio.to_thread(connect, count)
                await until(lambda: proxy.forwarded == len(miners), "every share forwarded")
                await until(
                    lambda: not any(session.busy for session in proxy.sessions),
                    "every share answered and judged by the pool",
                )
                await asyncio.sleep(0.2)  # the pool's verdicts, the writer's last commit

            try:
                await one_share_each(1)
                before = _waiting_state()
                await one_share_each(connections)
                assert len(proxy.sessions) == connections + 1
                grown = _waiting_state() - before
                # a stream reader's readuntil under asyncio.timeout held ~10 such objects per
                # connection from one line to the next
                assert grown < connections, grown
            finally:
                for miner in miners:
                    miner.close()

    asyncio.run(scenario())


def _distinct_shares(
    extranonce1: bytes, extranonce2_size: int, job: Job, worker: str, count: int
) -> list[stratum.Submit]:
    """``count`` different valid shares of ``job``, ids 100, 101, ….

    The first valid nonce is left out: it is the share :meth:`_BlockingMiner.one_share` sent.
    """
    probe = ShareValidator(extranonce1, extranonce2_size, _MASK)
    probe.authorize(worker)
    probe.add_job(job, POOL_DIFFICULTY)
    found: list[stratum.Submit] = []
    nonce = 0
    while not probe.check(
        stratum.Submit(0, worker, job.job_id, bytes(2), job.ntime, nonce, 0x2000)
    ).accepted:
        nonce += 1
    while len(found) < count:
        submit = stratum.Submit(
            100 + len(found), worker, job.job_id, bytes(2), job.ntime, nonce, 0x2000
        )
        if probe.check(submit).accepted:
            found.append(submit)
        nonce += 1
    return found


def test_shares_waiting_for_their_commit_hold_no_task_or_future(database_url: str) -> None:
    """A share waiting for the writer is a queued row and the function that answers it.

    Each accepted share used to start an asyncio task that awaited a future until its commit
    (then the pool's verdict): with the writer held, 40 shares in flight were 40 tasks, their
    coroutines and futures. Now the writer answers each share of a batch itself.
    """
    ((device_id, password),) = make_miners(database_url, 1)
    count = 40

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with pool, StratumProxy(proxy_settings(database_url, pool)) as proxy:
            worker = f"{device_id}.rig"
            miner = _BlockingMiner(proxy.port)
            try:
                await asyncio.to_thread(miner.one_share, worker, password)
                await until(lambda: not any(s.busy for s in proxy.sessions), "first share done")
                (session,) = proxy.sessions
                assert session.validator is not None
                assert miner.job is not None
                validator = session.validator
                shares = _distinct_shares(
                    validator.extranonce1, validator.extranonce2_size, miner.job, worker, count
                )
                recorder = proxy.recorder
                release = threading.Event()
                opened = asyncio.Event()  # the same, for PostgreSQL's writer on the loop
                held: list[int] = []
                write, write_pipelined = recorder._write, recorder._write_pipelined

                def held_write(*args: Any) -> set[str]:
                    held.append(len(args[0]))
                    release.wait(60)
                    return write(*args)

                async def held_write_pipelined(*args: Any) -> set[str]:
                    held.append(len(args[0]))
                    await opened.wait()
                    return await write_pipelined(*args)

                recorder._write = held_write  # type: ignore[method-assign]
                recorder._write_pipelined = held_write_pipelined  # type: ignore[method-assign]
                # a first commit (of the first share's verdict) may already be under way
                await asyncio.sleep(0.2)
                before = _waiting_state()
                miner.sock.sendall(b"".join(stratum.encode(share) for share in shares))
                await until(
                    lambda: sum(held) + len(recorder._queue) >= count,
                    "every share waiting for its commit",
                )
                grown = _waiting_state() - before
                assert grown < count // 2, grown  # a task, coroutine and future each, before
                release.set()
                opened.set()

                def answers() -> list[stratum.Response]:
                    found: list[stratum.Response] = []
                    while len(found) < count:
                        message = stratum.decode(miner.lines.readline())
                        if isinstance(message, stratum.Response):
                            found.append(message)
                    return found

                answered = await asyncio.to_thread(answers)
                assert sorted(int(str(a.id)) for a in answered) == [s.id for s in shares]
                assert all(a.result is True for a in answered), answered
            finally:
                release.set()
                opened.set()
                miner.close()

    asyncio.run(scenario())
