"""An emulated miner's Stratum v1 client: real shares, hashed with hashlib, at an emulated rate.

It speaks to a pool (or the proxy) as an ASIC does: ``mining.configure`` for version rolling
(BIP 310), ``mining.subscribe``, ``mining.authorize``, then it hashes each job's headers with
hashlib (coinbase, merkle root, version bits rolled inside the granted mask, nonce) and sends
every header that meets the share target in ``mining.submit``. A CPU does about a million
hashes a second, an ASIC 10**14: so the pool hands it a tiny difficulty, and the client never
submits faster than its emulated hashrate would find shares at that difficulty (one share
per ``difficulty · 2**32 / hashrate_hs`` seconds); while the emulated hashrate is 0 (paused,
curtailed) it sends nothing. It reconnects with backoff when the connection is lost.

:class:`PoolFollower` mines into whichever pool the miner is configured with (the first of the
pools set through its API, as pyasic's ``send_config`` does) and switches when that changes,
as a real miner does when an agent points it at the coordinator's proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from heatgrid.core.errors import InputError
from heatgrid.mining import stratum
from heatgrid.mining.shares import Job, job_from_notify
from heatgrid.mining.targets import target_from_difficulty

__all__ = ["MinerClientStats", "PoolFollower", "StratumMinerClient", "parse_stratum_url"]

_HASHES_PER_SLICE = 2048
_DIFF1_HASHES = 2.0**32
_WANTED_MASK = 0x1FFFE000
_MAX_BACKOFF_S = 30.0
_ANSWER_TIMEOUT_S = 30.0
_sha256 = hashlib.sha256


def parse_stratum_url(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``stratum+tcp://host:port``; InputError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "stratum+tcp" or not parts.hostname:
        raise InputError(f"a Stratum URL looks like stratum+tcp://host:port, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == 0:
        raise InputError(f"the Stratum URL {url!r} needs a port between 1 and 65535")
    return parts.hostname, port


@dataclass
class MinerClientStats:
    """What the client sent and what the pool answered."""

    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    accepted_work: float = 0.0
    """Sum of the difficulty of accepted shares [difficulty-1 shares]."""
    connections: int = 0
    unanswered: int = 0
    """Shares sent on a connection that closed before the pool answered them."""
    submitted_keys: list[bytes] | None = None
    """Header hashes (internal order) of the shares sent, when the client records them."""
    accepted_keys: list[bytes] | None = None
    """Header hashes of the shares the pool answered accepted, when the client records them."""


@dataclass
class _Work:
    job: Job
    target: int
    difficulty: float


class StratumMinerClient:
    """Mine at ``hashrate_hs()`` into a Stratum pool as ``user``.

    Parameters
    ----------
    url : str
        ``stratum+tcp://host:port``.
    user, password : str
        Stratum credentials (``mining.authorize``).
    hashrate_hs : callable
        The emulated hashrate at present [H/s] (0 while paused).
    clock : callable
        Seconds that pace the shares: monotonic, or an emulated clock [s].
    record_shares : bool
        Keep the header hash of every share sent and accepted (``stats.submitted_keys``,
        ``stats.accepted_keys``), for tests that check what a pool was told.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        hashrate_hs: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        *,
        record_shares: bool = False,
    ) -> None:
        self._host, self._port = parse_stratum_url(url)
        self.url = url
        if not user:
            raise InputError("a Stratum user name must not be empty")
        self.user, self._password = user, password
        self._hashrate_hs = hashrate_hs
        self._clock = clock
        self.stats = MinerClientStats()
        if record_shares:
            self.stats.submitted_keys, self.stats.accepted_keys = [], []
        self.authorized = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, float, bytes]] = {}
        self._work: _Work | None = None
        self._new_work = asyncio.Event()
        self._difficulty = 1.0
        self._extranonce1 = b""
        self._extranonce2_size = 4
        self._mask = 0
        self._draining = False

    @property
    def description(self) -> str:
        """Who mines where, for people."""
        return f"as {self.user} into {self.url}"

    async def drain(self) -> None:
        """Stop finding shares and wait until the pool has answered every one sent."""
        self._draining = True
        while self._pending:
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        """Connect, mine, and reconnect with jittered backoff until cancelled."""
        backoff_s = 0.5
        while True:
            try:
                await self._session()
                backoff_s = 0.5
            except (
                ConnectionError,
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ):
                pass
            self.authorized.clear()
            await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))
            backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)

    async def _session(self) -> None:
        reader, writer = await asyncio.open_connection(
            self._host, self._port, limit=stratum.DEFAULT_MAX_LINE_BYTES + 1
        )
        self.stats.connections += 1
        self._work = None
        self.stats.unanswered += len(self._pending)  # the old connection's answers never come
        self._pending.clear()
        hashing: asyncio.Task[None] | None = None
        try:
            await self._handshake(reader, writer)
            hashing = asyncio.create_task(self._hash_loop(writer))
            while True:
                line = await reader.readuntil(b"\n")
                self._on_message(stratum.decode(line))
        finally:
            if hashing is not None:
                hashing.cancel()
                await asyncio.wait({hashing})  # a cancel of this task itself goes on up
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        message: stratum.Message,
    ) -> stratum.Response:
        writer.write(stratum.encode(message))
        await writer.drain()
        wanted = getattr(message, "id", None)
        while True:
            async with asyncio.timeout(_ANSWER_TIMEOUT_S):
                line = await reader.readuntil(b"\n")
            answer = stratum.decode(line)
            if isinstance(answer, stratum.Response) and answer.id == wanted:
                return answer
            self._on_message(answer)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        configure = stratum.Configure(next(self._ids), ("version-rolling",), _WANTED_MASK, 2)
        answer = await self._request(reader, writer, configure)
        granted = stratum.configure_result(answer.result) if answer.error is None else None
        self._mask = granted if isinstance(granted, int) else 0
        answer = await self._request(
            reader, writer, stratum.Subscribe(next(self._ids), "heatgrid-emulated-miner/1")
        )
        subscribed = stratum.subscribe_result(answer.result)
        if isinstance(subscribed, stratum.Malformed):
            raise ConnectionError(f"the pool's subscribe answer is wrong: {subscribed.reason}")
        self._extranonce1 = subscribed.extranonce1
        self._extranonce2_size = subscribed.extranonce2_size
        answer = await self._request(
            reader, writer, stratum.Authorize(next(self._ids), self.user, self._password)
        )
        if answer.result is not True:
            message = answer.error.message if answer.error else "refused"
            raise ConnectionError(f"the pool refused {self.user!r}: {message}")
        self.authorized.set()

    def _on_message(self, message: stratum.Message | stratum.Malformed) -> None:
        if isinstance(message, stratum.Notify):
            with contextlib.suppress(InputError):
                job = job_from_notify(message)
                target = target_from_difficulty(self._difficulty)
                self._work = _Work(job, target, self._difficulty)
                self._new_work.set()
        elif isinstance(message, stratum.SetDifficulty):
            self._difficulty = message.difficulty
        elif isinstance(message, stratum.SetExtranonce):
            self._extranonce1 = message.extranonce1
            self._extranonce2_size = message.extranonce2_size or self._extranonce2_size
            self._work = None
        elif isinstance(message, stratum.SetVersionMask):
            self._mask &= message.mask
        elif isinstance(message, stratum.Response) and isinstance(message.id, int):
            sent = self._pending.pop(message.id, None)
            if sent is not None:
                if message.result is True:
                    self.stats.accepted += 1
                    self.stats.accepted_work += sent[1]
                    if self.stats.accepted_keys is not None:
                        self.stats.accepted_keys.append(sent[2])
                else:
                    self.stats.rejected += 1

    async def _hash_loop(self, writer: asyncio.StreamWriter) -> None:
        extranonce2s = itertools.count(random.getrandbits(16))
        next_share_ts = self._clock()
        while True:
            work = self._work
            hashrate_hs = self._hashrate_hs()
            if work is None or hashrate_hs <= 0.0 or self._draining:
                self._new_work.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._new_work.wait()
                next_share_ts = max(next_share_ts, self._clock())
                continue
            wait_s = next_share_ts - self._clock()
            if wait_s > 0:
                await asyncio.sleep(min(wait_s, 0.5))
                continue
            en2 = (next(extranonce2s) % (1 << (8 * self._extranonce2_size))).to_bytes(
                self._extranonce2_size, "big"
            )
            found = await self._search(work, en2)
            if found is None or self._work is not work or self._draining:
                continue  # no await between this check and the share's registration below
            ntime, nonce, bits, digest = found
            rid = next(self._ids)
            self._pending[rid] = (work.job.job_id, work.difficulty, digest)
            if self.stats.submitted_keys is not None:
                self.stats.submitted_keys.append(digest)
            submit = stratum.Submit(
                rid, self.user, work.job.job_id, en2, ntime, nonce, bits if self._mask else None
            )
            writer.write(stratum.encode(submit))
            await writer.drain()
            self.stats.submitted += 1
            next_share_ts += work.difficulty * _DIFF1_HASHES / max(hashrate_hs, 1e-9)
            next_share_ts = max(next_share_ts, self._clock() - 1.0)

    async def _search(self, work: _Work, en2: bytes) -> tuple[int, int, int, bytes] | None:
        """Hash nonces for this extranonce2 in slices, yielding between slices."""
        job = work.job
        bits = random.getrandbits(16) << 13 & self._mask
        version = (job.version & ~self._mask & 0xFFFFFFFF) | bits
        coinbase = job.coinbase1 + self._extranonce1 + en2 + job.coinbase2
        root = _sha256(_sha256(coinbase).digest()).digest()
        for sibling in job.merkle_branch:
            root = _sha256(_sha256(root + sibling).digest()).digest()
        ntime = job.ntime
        prefix = (
            struct.pack("<I", version) + job.prevhash + root + struct.pack("<II", ntime, job.nbits)
        )
        base = _sha256(prefix)
        for start in range(0, 1 << 32, _HASHES_PER_SLICE):
            for nonce in range(start, start + _HASHES_PER_SLICE):
                state = base.copy()
                state.update(struct.pack("<I", nonce))
                digest = _sha256(state.digest()).digest()
                if int.from_bytes(digest, "little") <= work.target:
                    return ntime, nonce, bits, digest
            await asyncio.sleep(0)
            if self._work is not work:
                return None
        return None


PoolSetting = tuple[str, str, str]
"""A configured pool: (URL, user, password)."""


class PoolFollower:
    """Mine into the pool ``pool()`` names, and move when it names another one.

    Parameters
    ----------
    pool : callable
        The configured pool at present, or None for none.
    hashrate_hs : callable
        The emulated hashrate at present [H/s].
    poll_s : float
        How often the configuration is read [s].
    clock : callable
        Seconds that pace the shares (the emulated clock of a sped-up miner) [s].
    """

    def __init__(
        self,
        pool: Callable[[], PoolSetting | None],
        hashrate_hs: Callable[[], float],
        poll_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._hashrate_hs = hashrate_hs
        self._poll_s = poll_s
        self._clock = clock
        self.client: StratumMinerClient | None = None
        """The client of the pool mined into now (None: no usable pool)."""

    @property
    def description(self) -> str:
        """Where it mines, for people."""
        return "into the first pool set through the miner's API"

    async def run(self) -> None:
        """Follow the configuration until cancelled."""
        current: PoolSetting | None = None
        task: asyncio.Task[None] | None = None
        try:
            while True:
                wanted = self._pool()
                if wanted != current:
                    if task is not None:
                        task.cancel()
                        await asyncio.wait({task})  # a cancel of run() itself goes on up
                    current, task, self.client = wanted, None, None
                    if wanted is not None:
                        with contextlib.suppress(InputError):  # an unusable URL: no mining
                            self.client = StratumMinerClient(
                                *wanted, self._hashrate_hs, self._clock
                            )
                            task = asyncio.create_task(self.client.run())
                await asyncio.sleep(self._poll_s)
        finally:
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
