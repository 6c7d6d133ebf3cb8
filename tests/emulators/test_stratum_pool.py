"""The test pool and the emulated miners' Stratum client, over loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from heatgrid.core.errors import InputError
from heatgrid.emulators.stratum_miner import StratumMinerClient, parse_stratum_url
from heatgrid.emulators.stratum_pool import StratumPool
from heatgrid.mining import stratum
from heatgrid.mining.hashing import (
    apply_version_mask,
    assemble_coinbase,
    header_bytes,
    merkle_root,
    sha256d,
)
from heatgrid.mining.shares import Job, RejectReason
from heatgrid.mining.targets import target_from_difficulty

DIFFICULTY = 2.0**-20  # ~4,096 hashes a share
FAST_HS = 1e15  # an emulated hashrate the CPU cannot reach: hashing is the limit


async def _until(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Wait until ``condition()``; the limit only keeps a broken build from hanging."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), limit_s)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


class _Raw:
    """A hand-driven Stratum connection: send lines, read answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.notifications: list[stratum.Message] = []

    @classmethod
    async def open(cls, pool: StratumPool) -> _Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", pool.port)
        return cls(reader, writer)

    async def send(self, line: bytes) -> None:
        self.writer.write(line if line.endswith(b"\n") else line + b"\n")
        await self.writer.drain()

    async def answer(self, rid: object) -> stratum.Response:
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), 30)
            message = stratum.decode(line)
            if isinstance(message, stratum.Response) and message.id == rid:
                return message
            assert not isinstance(message, stratum.Malformed), message
            self.notifications.append(message)

    async def call(self, message: stratum.Message) -> stratum.Response:
        await self.send(stratum.encode(message))
        return await self.answer(getattr(message, "id", None))

    async def login(self, user: str = "dev1.rig", mask: bool = True) -> tuple[bytes, int]:
        if mask:
            granted = await self.call(stratum.Configure(1, ("version-rolling",), 0x1FFFE000, 2))
            assert stratum.configure_result(granted.result) == 0x1FFFE000
        subscribed = stratum.subscribe_result((await self.call(stratum.Subscribe(2))).result)
        assert isinstance(subscribed, stratum.SubscribeResult)
        assert (await self.call(stratum.Authorize(3, user, "x"))).result is True
        return subscribed.extranonce1, subscribed.extranonce2_size

    def close(self) -> None:
        self.writer.close()


def _share(
    job: Job, en1: bytes, en2: bytes, *, bits: int = 0, mask: int = 0, want: bool = True
) -> int:
    """The first nonce whose header meets (or, with want=False, misses) the share target."""
    root = merkle_root(
        sha256d(assemble_coinbase(job.coinbase1, en1, en2, job.coinbase2)), job.merkle_branch
    )
    version = apply_version_mask(job.version, bits, mask)
    target = target_from_difficulty(DIFFICULTY)
    for nonce in range(1_000_000):
        header = header_bytes(
            version, job.prevhash, root, ntime=job.ntime, nbits=job.nbits, nonce=nonce
        )
        if (int.from_bytes(sha256d(header), "little") <= target) == want:
            return nonce
    raise AssertionError("no nonce")


def _run(test: Callable[[StratumPool], Awaitable[None]], **pool_options: Any) -> None:
    async def main() -> None:
        async with StratumPool(difficulty=DIFFICULTY, **pool_options) as pool:
            await test(pool)

    asyncio.run(main())


def test_several_emulated_miners_mine_and_the_pool_counts_each_one() -> None:
    async def scenario(pool: StratumPool) -> None:
        clients = [
            StratumMinerClient(pool.url, f"dev{i}.rig", "x", lambda: FAST_HS) for i in range(3)
        ]
        tasks = [asyncio.create_task(c.run()) for c in clients]
        try:
            await _until(
                lambda: all(c.stats.accepted >= 5 for c in clients), "5 accepted shares each"
            )
            for client in clients:
                await asyncio.wait_for(client.drain(), 30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            assert client.stats.rejected == 0
            assert pool.stats.accepted_work[client.user] == pytest.approx(
                client.stats.accepted_work, rel=1e-12
            )
            assert pool.stats.accepted_shares[client.user] == client.stats.accepted
            assert client.stats.submitted == client.stats.accepted
        assert not pool.stats.rejected
        assert pool.stats.malformed_lines == 0

    _run(scenario)


def test_a_paused_miner_sends_nothing_and_the_rate_follows_the_emulated_clock() -> None:
    now = [0.0]
    hashrate = [0.0]

    async def scenario(pool: StratumPool) -> None:
        client = StratumMinerClient(pool.url, "dev1.rig", "x", lambda: hashrate[0], lambda: now[0])
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(client.authorized.wait(), 30)
            for _ in range(50):
                await asyncio.sleep(0.01)
            assert client.stats.submitted == 0  # paused: hashrate 0
            # one share per 1,000 emulated seconds at this difficulty
            hashrate[0] = DIFFICULTY * 2**32 / 1000.0
            await _until(lambda: client.stats.accepted == 1, "the first share")
            for _ in range(50):
                await asyncio.sleep(0.01)
            assert client.stats.submitted == 1  # the emulated clock has not moved
            now[0] += 1000.0
            await _until(lambda: client.stats.accepted == 2, "a share 1,000 s later")
            assert client.stats.submitted == 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    _run(scenario)


def test_every_bad_submission_is_refused_with_its_code() -> None:
    async def scenario(pool: StratumPool) -> None:
        raw = await _Raw.open(pool)
        en1, en2_size = await raw.login()
        job = pool.job
        en2 = b"\x00\x00\x00\x07"
        nonce = _share(job, en1, en2)
        good = stratum.Submit(10, "dev1.rig", job.job_id, en2, job.ntime, nonce, 0)
        assert (await raw.call(good)).result is True
        cases: list[tuple[stratum.Submit, int]] = [
            (stratum.Submit(11, "dev1.rig", job.job_id, en2, job.ntime, nonce, 0), 22),
            (stratum.Submit(12, "dev9.rig", job.job_id, en2, job.ntime, nonce, 0), 24),
            (stratum.Submit(13, "dev1.rig", "nope", en2, job.ntime, nonce, 0), 21),
            (stratum.Submit(14, "dev1.rig", job.job_id, b"\x07", job.ntime, nonce, 0), 20),
            (stratum.Submit(15, "dev1.rig", job.job_id, en2, job.ntime - 1, nonce, 0), 20),
            (stratum.Submit(16, "dev1.rig", job.job_id, en2, job.ntime, nonce, 0x1000), 20),
        ]
        low = _share(job, en1, en2, want=False)
        cases.append((stratum.Submit(17, "dev1.rig", job.job_id, en2, job.ntime, low, 0), 23))
        for submit, code in cases:
            answer = await raw.call(submit)
            assert answer.result is False
            assert answer.error is not None, submit
            assert answer.error.code == code, submit
        old = job
        await pool.new_block()
        stale = stratum.Submit(18, "dev1.rig", old.job_id, b"\x00\x00\x00\x08", old.ntime, 0, 0)
        assert (await raw.call(stale)).error.code == 21  # type: ignore[union-attr]
        assert pool.stats.accepted_shares["dev1.rig"] == 1
        assert pool.stats.rejected["dev1.rig", RejectReason.DUPLICATE] == 1
        assert en2_size == 4
        raw.close()

    _run(scenario)


def test_a_new_block_skips_a_closing_connection_and_reaches_the_others() -> None:
    async def scenario(pool: StratumPool) -> None:
        leaving, staying = await _Raw.open(pool), await _Raw.open(pool)
        leaving_en1, _ = await leaving.login("dev1.rig")
        await staying.login("dev2.rig")
        # The pool is closing the leaving miner's connection (as when it went away or the pool
        # stops) and has not yet dropped its session when the block arrives.
        (closing,) = [s for s in pool._sessions if s.extranonce1 == leaving_en1]
        assert closing.writer is not None
        closing.writer.close()
        await pool.new_block()  # raised ConnectionResetError from the closing connection
        assert (await staying.call(stratum.ExtranonceSubscribe(9))).result is True
        notified = [m.job_id for m in staying.notifications if isinstance(m, stratum.Notify)]
        assert notified[-1] == pool.job.job_id  # sent before the answer: the new block's job
        leaving.close()
        staying.close()

    _run(scenario)


def test_malformed_lines_are_answered_and_the_connection_stays() -> None:
    async def scenario(pool: StratumPool) -> None:
        raw = await _Raw.open(pool)
        await raw.send(b'{"id": 5, "method": "mining.fly", "params": []}')
        answer = await raw.answer(5)
        assert answer.error == stratum.StratumError(20, "unknown method 'mining.fly'")
        await raw.send(b"this is not json")
        assert (await raw.answer(None)).error.code == 20  # type: ignore[union-attr]
        submit = stratum.Submit(6, "dev1.rig", "1", b"\0\0\0\0", 0, 0, None)
        assert (await raw.call(submit)).error.code == 25  # type: ignore[union-attr]
        await raw.login()  # still usable
        assert pool.stats.malformed_lines == 2
        raw.close()

    _run(scenario)


def test_a_one_megabyte_line_closes_the_connection_and_others_keep_mining() -> None:
    async def scenario(pool: StratumPool) -> None:
        client = StratumMinerClient(pool.url, "dev1.rig", "x", lambda: FAST_HS)
        task = asyncio.create_task(client.run())
        try:
            raw = await _Raw.open(pool)
            await raw.send(
                b'{"id":1,"method":"mining.subscribe","params":["' + b"a" * 2**20 + b'"]}'
            )
            # closed without an answer: an end of stream, or a reset (data left unread)
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(raw.reader.read(), 30) == b""
            await _until(lambda: client.stats.accepted >= 3, "the other miner's shares")
            assert client.stats.rejected == 0
            assert client.stats.connections == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    _run(scenario)


def test_a_wrong_password_is_refused() -> None:
    async def scenario(pool: StratumPool) -> None:
        raw = await _Raw.open(pool)
        await raw.call(stratum.Subscribe(1))
        refused = await raw.call(stratum.Authorize(2, "dev1.rig", "wrong"))
        assert refused.result is False
        assert refused.error is not None
        assert refused.error.code == 24
        assert (await raw.call(stratum.Authorize(3, "dev1.rig", "secret"))).result is True
        raw.close()

    _run(scenario, users={"dev1": "secret"})


@pytest.mark.parametrize(
    "url", ["http://pool:3333", "stratum+tcp://pool", "stratum+tcp://:3333", "stratum+tcp://p:0"]
)
def test_bad_stratum_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError, match="Stratum URL"):
        parse_stratum_url(url)
    assert parse_stratum_url("stratum+tcp://127.0.0.1:3333") == ("127.0.0.1", 3333)


def test_pool_jobs_are_real_coinbases() -> None:
    from heatgrid.mining.transactions import parse_coinbase  # noqa: PLC0415

    pool = StratumPool()
    job = pool.job
    tx = parse_coinbase(assemble_coinbase(job.coinbase1, bytes(4), bytes(4), job.coinbase2))
    assert tx.vin[0].scriptSig[:4].hex() == "0310730d"  # BIP 34 height 881424
    assert len(job.merkle_branch) == 11
    assert json.loads(stratum.encode(job.notify))["method"] == "mining.notify"
