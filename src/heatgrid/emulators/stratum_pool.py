"""A test mining pool: Stratum v1 on loopback TCP, checking every share on its own.

It stands in for a real pool in tests and demos. Miners (or the proxy) subscribe, may negotiate
version rolling (BIP 310), authorize, and receive jobs built like a real pool's: a coinbase
with a BIP 34 height, the pool's tag and a SegWit commitment output (through python-bitcoinlib),
a merkle branch over ~1,500 transaction ids, the current ``nbits`` of mainnet, and ``ntime``
from the clock. Each connection gets its own extranonce1. Every ``mining.submit`` is checked
by :class:`heatgrid.mining.shares.ShareValidator` (hash, target, duplicate, stale, sizes,
ntime, version bits, authorization) and answered with the Stratum error code of its verdict;
accepted work is counted per worker in difficulty-1 shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from heatgrid.core.errors import InputError
from heatgrid.emulators._service import AsyncService
from heatgrid.mining import stratum
from heatgrid.mining.hashing import merkle_branch, prevhash_from_stratum, sha256d
from heatgrid.mining.shares import Job, RejectReason, ShareValidator, job_from_notify
from heatgrid.mining.targets import target_from_difficulty
from heatgrid.mining.transactions import coinbase_parts

__all__ = ["PoolStats", "StratumPool"]

BIP320_MASK = 0x1FFFE000
_MAINNET_NBITS = 0x17029A8A  # block 881423's
_SUBSIDY_SAT = 312_500_000
_BLOCK_TXS = 1514
_WITNESS_COMMITMENT = bytes.fromhex("6a24aa21a9ed") + sha256d(b"heatgrid test pool witness")
_PAYOUT_SCRIPT = bytes.fromhex("0014") + sha256d(b"heatgrid test pool payout")[:20]


@dataclass
class PoolStats:
    """What the pool counted: accepted work per worker, rejections per worker and reason."""

    accepted_work: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Sum of the difficulty of accepted shares, per worker [difficulty-1 shares]."""
    accepted_shares: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, RejectReason]] = field(default_factory=Counter)
    blocks: list[str] = field(default_factory=list)
    malformed_lines: int = 0


@dataclass(eq=False)
class _Session:
    extranonce1: bytes
    version_mask: int = 0
    validator: ShareValidator | None = None
    difficulty: float = 1.0
    writer: asyncio.StreamWriter | None = None


class StratumPool(AsyncService):
    """A Stratum v1 pool on a TCP port.

    Parameters
    ----------
    host, port : str, int
        Where to listen; port 0 lets the OS choose (see :attr:`port`).
    difficulty : float
        Share difficulty sent to miners (tiny for CPU miners, e.g. 2**-20) [-].
    extranonce2_size : int
        Extranonce2 length miners fill in [bytes].
    version_mask : int
        Version bits the pool lets miners roll (BIP 320's 0x1fffe000) [-].
    users : dict of str to str, optional
        Accepted user names (the part before a ``.worker`` suffix) and passwords; None: any.
    clock : callable
        Present time [POSIX s] for ``ntime``.
    max_line_bytes : int
        A longer line closes the connection [bytes].
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        difficulty: float = 2.0**-20,
        extranonce2_size: int = 4,
        version_mask: int = BIP320_MASK,
        users: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        max_line_bytes: int = stratum.DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        target_from_difficulty(difficulty)  # refuses a bad difficulty
        if not 1 <= extranonce2_size <= 8:
            raise InputError(f"extranonce2 size must be 1 to 8 bytes, got {extranonce2_size}")
        self.difficulty = difficulty
        self.extranonce2_size = extranonce2_size
        self.version_mask = version_mask
        self.stats = PoolStats()
        self._host, self._port = host, port
        self._users = users
        self._clock = clock
        self._max_line_bytes = max_line_bytes
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._extranonce1s = itertools.count(0x08000001)
        self._job_ids = itertools.count(1)
        self._height = 881_424
        self._job = self._make_job(clean=True)

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the pool is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``stratum+tcp://host:port`` of this pool."""
        return f"stratum+tcp://{self._host}:{self.port}"

    @property
    def job(self) -> Job:
        """The current job."""
        return self._job

    async def start(self) -> None:
        """Bind and start answering."""
        self._server = await asyncio.start_server(
            self._on_connection, self._host, self._port, limit=self._max_line_bytes + 1
        )

    async def stop(self) -> None:
        """Close the listener and every miner connection."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            if session.writer is not None:
                session.writer.close()  # its reader ends; the handler returns
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in late:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def new_block(self) -> None:
        """Move to a new block: a clean job to every miner; earlier jobs become stale.

        A connection that is closing (its miner left, or the pool stops) is skipped, and one
        lost while the job is sent does not keep the job from the others.
        """
        self._height += 1
        self._job = self._make_job(clean=True)
        for session in list(self._sessions):
            if session.validator is not None and _open(session):
                with contextlib.suppress(ConnectionError):
                    await self._send_job(session)

    def _make_job(self, *, clean: bool) -> Job:
        job_id = f"{next(self._job_ids):x}"
        coinbase1, coinbase2 = coinbase_parts(
            self._height,
            [(_PAYOUT_SCRIPT, _SUBSIDY_SAT + 12_345_678), (_WITNESS_COMMITMENT, 0)],
            4 + self.extranonce2_size,
            tag=b"/heatgrid test pool/",
        )
        txids = [bytes(32)] + [
            sha256d(struct.pack("<II", self._height, i)) for i in range(1, _BLOCK_TXS)
        ]
        prevhash = sha256d(struct.pack("<I", self._height))[:28] + bytes(4)
        return job_from_notify(
            stratum.Notify(
                job_id=job_id,
                prevhash=prevhash_from_stratum(prevhash),
                coinbase1=coinbase1,
                coinbase2=coinbase2,
                merkle_branch=tuple(merkle_branch(txids)),
                version=0x20000000,
                nbits=_MAINNET_NBITS,
                ntime=int(self._clock()),
                clean_jobs=clean,
            )
        )

    async def _send(self, session: _Session, message: stratum.Message) -> None:
        if session.writer is not None and _open(session):
            session.writer.write(stratum.encode(message))
            await session.writer.drain()

    async def _send_job(self, session: _Session) -> None:
        assert session.validator is not None
        session.validator.add_job(self._job, session.difficulty)
        await self._send(session, stratum.SetDifficulty(session.difficulty))
        await self._send(session, self._job.notify)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        session = _Session(extranonce1=struct.pack(">I", next(self._extranonce1s)))
        session.difficulty = self.difficulty
        session.writer = writer
        self._sessions.add(session)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    self.stats.malformed_lines += 1
                    break  # a line over the cap closes the connection
                except asyncio.IncompleteReadError:
                    break
                if line.strip():
                    await self._handle(session, line)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio's server callback chokes on a cancelled task)
        finally:
            self._sessions.discard(session)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(self, session: _Session, line: bytes) -> None:
        message = stratum.decode(line, self._max_line_bytes)
        if isinstance(message, stratum.Malformed):
            self.stats.malformed_lines += 1
            error = stratum.StratumError(stratum.ErrorCode.OTHER, message.reason)
            await self._send(session, stratum.Response(message.id, None, error))
            return
        answer: stratum.Response
        if isinstance(message, stratum.Submit):
            answer = self._submit(session, message)
        elif isinstance(message, stratum.Configure):
            answer = self._configure(session, message)
        elif isinstance(message, stratum.Subscribe):
            session.validator = ShareValidator(
                session.extranonce1, self.extranonce2_size, session.version_mask
            )
            subscriptions = [["mining.set_difficulty", "1"], ["mining.notify", "1"]]
            result = [subscriptions, session.extranonce1.hex(), self.extranonce2_size]
            await self._send(session, stratum.Response(message.id, result))
            await self._send_job(session)
            return
        elif isinstance(message, stratum.Authorize):
            answer = self._authorize(session, message)
        elif isinstance(message, stratum.SuggestDifficulty):
            session.difficulty = max(message.difficulty, self.difficulty)
            answer = stratum.Response(message.id, True)
        elif isinstance(message, stratum.ExtranonceSubscribe):
            answer = stratum.Response(message.id, True)
        else:
            error = stratum.StratumError(stratum.ErrorCode.OTHER, "not a request a pool answers")
            answer = stratum.Response(getattr(message, "id", None), None, error)
        await self._send(session, answer)

    def _configure(self, session: _Session, message: stratum.Configure) -> stratum.Response:
        result: dict[str, object] = {}
        if "version-rolling" in message.extensions:
            wanted = (
                self.version_mask
                if message.version_rolling_mask is None
                else message.version_rolling_mask
            )
            session.version_mask = wanted & self.version_mask
            if session.validator is not None:
                session.validator.version_mask = session.version_mask
            result["version-rolling"] = True
            result["version-rolling.mask"] = f"{session.version_mask:08x}"
        for name in message.extensions:
            result.setdefault(name, False)
        return stratum.Response(message.id, result)

    def _authorize(self, session: _Session, message: stratum.Authorize) -> stratum.Response:
        if session.validator is None:
            error = stratum.StratumError(stratum.ErrorCode.NOT_SUBSCRIBED, "not subscribed")
            return stratum.Response(message.id, False, error)
        user = message.username.split(".", 1)[0]
        if self._users is not None and self._users.get(user) != message.password:
            error = stratum.StratumError(stratum.ErrorCode.UNAUTHORIZED, "unauthorized worker")
            return stratum.Response(message.id, False, error)
        session.validator.authorize(message.username)
        return stratum.Response(message.id, True)

    def _submit(self, session: _Session, message: stratum.Submit) -> stratum.Response:
        if session.validator is None:
            reason = RejectReason.NOT_SUBSCRIBED
        else:
            result = session.validator.check(message)
            if result.accepted:
                self.stats.accepted_work[message.worker] += result.difficulty
                self.stats.accepted_shares[message.worker] += 1
                if result.is_block:
                    self.stats.blocks.append(result.block_hash)
                return stratum.Response(message.id, True)
            assert result.reason is not None
            reason = result.reason
        self.stats.rejected[message.worker, reason] += 1
        error = stratum.StratumError(reason.code, reason.message)
        return stratum.Response(message.id, False, error)


def _open(session: _Session) -> bool:
    """Whether the session's connection still takes lines (not closing, not closed)."""
    return session.writer is not None and not session.writer.is_closing()
