"""Hostile and broken submissions to the proxy: rejected with their codes, never forwarded.

A well-behaved emulated miner mines through the proxy the whole time; a hand-driven connection
sends bad JSON, an unknown method, a wrong job id, a wrong nonce, an extranonce2 of the wrong
length, a worker that never authorized, a wrong password and a share twice, and another sends a
1 MB line. The pool sees none of them, and the good miner's shares are all counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from heatgrid.coordinator.stratum import StratumProxy
from heatgrid.emulators.stratum_miner import StratumMinerClient
from heatgrid.emulators.stratum_pool import StratumPool
from heatgrid.mining import stratum
from heatgrid.mining.shares import Job, RejectReason, ShareValidator, job_from_notify

from .stratum_fleet import make_miners, rejects_by_device, shares_by_device, until
from .test_stratum_proxy import POOL_DIFFICULTY, POOL_PASSWORD, POOL_USER, proxy_settings

_GOOD_HS = 2.0e5  # [H/s]


class Raw:
    """A hand-driven Stratum connection to the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.jobs: list[Job] = []
        self.ids = itertools.count(100)

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        return cls(reader, writer)

    async def send(self, line: bytes) -> None:
        self.writer.write(line if line.endswith(b"\n") else line + b"\n")
        await self.writer.drain()

    async def answer(self, rid: object) -> stratum.Response:
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), 60)
            message = stratum.decode(line)
            if isinstance(message, stratum.Response) and message.id == rid:
                return message
            if isinstance(message, stratum.Notify):
                self.jobs.append(job_from_notify(message))

    async def job(self) -> Job:
        while not self.jobs:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), 60)
            message = stratum.decode(line)
            if isinstance(message, stratum.Notify):
                self.jobs.append(job_from_notify(message))
        return self.jobs[-1]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def call(self, message: stratum.Message) -> stratum.Response:
        await self.send(stratum.encode(message))
        return await self.answer(getattr(message, "id", None))


def _share(validator: ShareValidator, job: Job, worker: str, *, valid: bool) -> stratum.Submit:
    """A submission that the validator (a copy of the proxy's view) accepts, or finds too weak."""
    for nonce in itertools.count():
        submit = stratum.Submit(0, worker, job.job_id, bytes(2), job.ntime, nonce, 0x2000)
        probe = ShareValidator(validator.extranonce1, validator.extranonce2_size, 0x1FFFE000)
        probe.authorize(worker)
        probe.add_job(job, POOL_DIFFICULTY)
        result = probe.check(submit)
        if result.accepted == valid:
            return submit
    raise AssertionError("unreachable")


def test_hostile_submissions_are_rejected_and_never_reach_the_pool(database_url: str) -> None:
    (good_id, good_password), (bad_id, bad_password) = make_miners(database_url, 2)

    async def scenario() -> None:
        pool = StratumPool(difficulty=POOL_DIFFICULTY, users={POOL_USER: POOL_PASSWORD})
        async with pool, StratumProxy(proxy_settings(database_url, pool)) as proxy:
            url = f"stratum+tcp://127.0.0.1:{proxy.port}"
            # ~12 shares/s: enough to show it goes on, without flooding a loaded machine's
            # commits (at FAST_HS it hashes flat out in the loop the proxy shares)
            good = StratumMinerClient(url, good_id, good_password, lambda: _GOOD_HS)
            mining = asyncio.create_task(good.run())
            try:
                await until(lambda: good.stats.accepted >= 5, "the good miner mines")

                huge = await Raw.open(proxy.port)
                await huge.send(
                    b'{"id": 1, "method": "mining.subscribe", "params": ["' + b"a" * 2**20
                )
                # closed, unanswered (a reset: the proxy left the rest unread)
                with contextlib.suppress(ConnectionResetError):
                    assert await huge.reader.read() == b""
                await huge.close()

                raw = await Raw.open(proxy.port)
                configured = await raw.call(
                    stratum.Configure(1, ("version-rolling",), 0x1FFFE000, 2)
                )
                assert stratum.configure_result(configured.result) == 0x1FFFE000
                subscribed = stratum.subscribe_result((await raw.call(stratum.Subscribe(2))).result)
                assert isinstance(subscribed, stratum.SubscribeResult)
                wrong = await raw.call(stratum.Authorize(3, bad_id, bad_password + "x"))
                assert wrong.result is False
                assert wrong.error is not None
                assert wrong.error.code == stratum.ErrorCode.UNAUTHORIZED
                worker = f"{bad_id}.rig"
                assert (await raw.call(stratum.Authorize(4, worker, bad_password))).result is True
                job = await raw.job()
                mine = ShareValidator(subscribed.extranonce1, subscribed.extranonce2_size, 0)

                await raw.send(b'{"id": 5, "method": "mining.submit", "params": [}')
                answer = await raw.answer(None)
                assert answer.error is not None
                assert answer.error.code == stratum.ErrorCode.OTHER
                await raw.send(b'{"id": 6, "method": "mining.steal", "params": []}')
                answer = await raw.answer(6)
                assert answer.error is not None
                assert "unknown method" in answer.error.message

                def codes() -> dict[str, stratum.Submit]:
                    valid = _share(mine, job, worker, valid=True)
                    weak = _share(mine, job, worker, valid=False)
                    en2, ntime, jid = bytes(2), job.ntime, job.job_id

                    def again(rid: int, share: stratum.Submit) -> stratum.Submit:
                        return stratum.Submit(
                            rid, worker, jid, share.extranonce2, share.ntime, share.nonce,
                            share.version_bits,
                        )  # fmt: skip

                    return {
                        "wrong job": stratum.Submit(7, worker, "nosuchjob", en2, ntime, 1, 0x2000),
                        "wrong nonce": again(8, weak),
                        "short extranonce2": stratum.Submit(9, worker, jid, bytes(1), ntime, 1),
                        "never authorized": stratum.Submit(10, f"{good_id}.x", jid, en2, ntime, 1),
                        "valid": again(11, valid),
                        "twice": again(12, valid),
                    }

                expected = {
                    "wrong job": stratum.ErrorCode.JOB_NOT_FOUND,
                    "wrong nonce": stratum.ErrorCode.LOW_DIFFICULTY,
                    "short extranonce2": stratum.ErrorCode.OTHER,
                    "never authorized": stratum.ErrorCode.UNAUTHORIZED,
                    "valid": None,
                    "twice": stratum.ErrorCode.DUPLICATE_SHARE,
                }
                for name, submit in codes().items():
                    answer = await raw.call(submit)
                    code = None if answer.error is None else answer.error.code
                    assert code == expected[name], (name, answer)
                    assert (answer.result is True) == (expected[name] is None), name

                await until(
                    lambda: pool.stats.accepted_shares[f"{POOL_USER}.{bad_id}"] == 1,
                    "the valid share reached the pool",
                )
                await until(lambda: good.stats.accepted >= 10, "the good miner goes on")
                await good.drain()
                await raw.close()
            finally:
                mining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mining
            await until(
                lambda: sum(pool.stats.accepted_shares.values()) == good.stats.accepted + 1,
                "the pool heard every accepted share",
            )
        assert not pool.stats.rejected
        assert pool.stats.malformed_lines == 0
        work, rows = shares_by_device(database_url)
        assert rows == {good_id: good.stats.accepted, bad_id: 1}
        assert work[good_id] == good.stats.accepted_work
        rejects = rejects_by_device(database_url)
        assert rejects == {
            (bad_id, RejectReason.MALFORMED.name.lower()): 2,
            (bad_id, RejectReason.STALE_JOB.name.lower()): 1,
            (bad_id, RejectReason.LOW_DIFFICULTY.name.lower()): 1,
            (bad_id, RejectReason.BAD_EXTRANONCE2_LENGTH.name.lower()): 1,
            (bad_id, RejectReason.DUPLICATE.name.lower()): 1,
        }

    asyncio.run(scenario())
