"""The Stratum v1 proxy: miners on one side, the operator's pool account on the other.

:class:`StratumProxy` listens for miners (:class:`~.miner.MinerSession` each), keeps one
connection to the pool (:class:`~.upstream.Upstream`), slices the pool's extranonce2 so that
each miner has its own (:class:`~heatgrid.mining.extranonce.ExtranonceSlicer`), hands every job
to every miner, and records shares through one :class:`~.accounting.ShareRecorder`. It opens
the coordinator's database only through its own engine, so it runs beside ``serve`` (and
beside other proxies on the same database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy import Engine

from heatgrid.coordinator.db import make_engine, make_session_factory
from heatgrid.coordinator.mining_credentials import check_credentials
from heatgrid.coordinator.stratum.accounting import ShareRecorder
from heatgrid.coordinator.stratum.config import ProxySettings
from heatgrid.coordinator.stratum.miner import MinerSession
from heatgrid.coordinator.stratum.upstream import PoolSession, Upstream
from heatgrid.core.errors import InputError
from heatgrid.mining import stratum
from heatgrid.mining.extranonce import ExtranonceSlice, ExtranonceSlicer
from heatgrid.mining.shares import Job

__all__ = ["StratumProxy", "parse_pool_url"]

_HOUSEKEEPING_S = 1.0
_SWEEP_CHUNK = 100
_log = logging.getLogger("heatgrid.coordinator.stratum")


def parse_pool_url(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of ``stratum+tcp://HOST:PORT``; InputError naming the fault."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "stratum+tcp" or not parts.hostname or not port:
        raise InputError(f"pool URL: expected stratum+tcp://HOST:PORT, got {url!r}")
    return parts.hostname, port


_KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 20), ("TCP_KEEPCNT", 3))
"""A peer that vanished (half-open) is found in about 2 minutes, not Linux's 2 hours."""


def _keepalive(sock: socket.socket | None) -> None:
    """Turn on TCP keepalive probes, so a half-open miner connection is closed."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


class StratumProxy:
    """A Stratum proxy on the coordinator's database.

    Parameters
    ----------
    settings : ProxySettings
        Where to listen, which pool, vardiff and timeouts.
    clock : callable, optional
        Returns the present [POSIX s]; shares and rejections are stamped with it. The wall
        clock by default; an emulated one (:mod:`heatgrid.core.clock`) where the coordinator
        runs on one too, so that the proxy's stamps and the coordinator's present agree.
        Vardiff times share rates on the monotonic clock, whatever this one says.
    """

    def __init__(self, settings: ProxySettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        host, port = parse_pool_url(settings.pool_url)
        self.upstream = Upstream(
            host,
            port,
            settings.pool_user,
            settings.pool_password,
            self,
            worker_per_device=settings.worker_per_device,
            max_line_bytes=settings.max_line_bytes,
        )
        self.pool_up = asyncio.Event()
        self.sessions: set[MinerSession] = set()
        self.forwarded = 0
        """Shares sent to the pool so far [-]."""
        self._engine: Engine | None = None
        self._recorder: ShareRecorder | None = None
        self._slicer: ExtranonceSlicer | None = None
        self._slices: dict[MinerSession, ExtranonceSlice] = {}
        self._server: asyncio.Server | None = None
        self._background: list[asyncio.Task[None]] = []
        self._notify_cache: tuple[Job, bool, bytes] | None = None
        self._fresh_pool = True

    # ------------------------------------------------------------------ life

    @property
    def recorder(self) -> ShareRecorder:
        """The share writer (after :meth:`start`)."""
        if self._recorder is None:
            raise RuntimeError("the proxy is not started")
        return self._recorder

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Open the database, connect to the pool (in the background) and listen for miners."""
        self._engine = make_engine(self.settings.database_url)
        self._sessions_factory = make_session_factory(self._engine, read_only=True)
        self._recorder = ShareRecorder(self._engine, self.settings.max_batch)
        self._recorder.start()
        self._background.append(asyncio.create_task(self.upstream.run()))
        self._background.append(asyncio.create_task(self._housekeeping()))
        self._server = await asyncio.get_running_loop().create_server(
            lambda: MinerSession(self),
            self.settings.listen_host,
            self.settings.listen_port,
            backlog=4096,
        )

    async def stop(self) -> None:
        """Stop listening, close every miner, commit what is queued, close the database."""
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close()
        # shares being recorded are committed and answered first, and forwarded ones judged
        # (asyncio's connection_lost calls come soon after a close; then each session leaves
        # once nothing of it is in flight)
        deadline_s = time.monotonic() + 10.0
        while self.sessions and time.monotonic() < deadline_s:
            await asyncio.sleep(0.01)
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        if self._recorder is not None:
            await self._recorder.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._engine is not None:
            self._engine.dispose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ miners

    async def check_credentials(self, username: str, password: str) -> str | None:
        """Return the device id ``username`` may mine for with ``password``, None if refused."""

        def check() -> str | None:
            with self._sessions_factory() as session:
                return check_credentials(session, username, password)

        try:
            return await asyncio.to_thread(check)
        except Exception as error:
            _log.warning("could not check mining credentials", extra={"error": str(error)})
            return None

    def allocate_slice(self) -> ExtranonceSlice:
        """Return a slice of the pool's extranonce space for a new miner (InputError if full)."""
        if self._slicer is None:
            raise InputError("the pool is unavailable")
        return self._slicer.allocate()

    def notify_line(self, job: Job, *, clean: bool) -> bytes:
        """``job`` as a ``mining.notify`` line, with ``clean_jobs`` as given (encoded once)."""
        cached = self._notify_cache
        if cached is not None and cached[0] is job and cached[1] == clean:
            return cached[2]
        notify = job.notify
        line = stratum.encode(
            stratum.Notify(
                notify.job_id,
                notify.prevhash,
                notify.coinbase1,
                notify.coinbase2,
                notify.merkle_branch,
                notify.version,
                notify.nbits,
                notify.ntime,
                clean,
            )
        )
        self._notify_cache = (job, clean, line)
        return line

    def miner_connected(self, session: MinerSession, transport: asyncio.Transport) -> None:
        """Count ``session`` among the miners (its connection was just accepted)."""
        _keepalive(transport.get_extra_info("socket"))
        self.sessions.add(session)

    def miner_lost(self, session: MinerSession) -> None:
        """Drop ``session`` and free its slice (its connection is closed, nothing in flight)."""
        self.sessions.discard(session)
        if session.slice is not None and self._slicer is not None:
            self._slicer.release(session.slice)

    async def _housekeeping(self) -> None:
        """Once a second: close miners silent too long, and vardiff for those gone quiet.

        Each pass visits the sessions ``_SWEEP_CHUNK`` at a time, its chunks spread evenly over
        the second (at 10,000 miners a chunk every 10 ms, about 0.25 ms each). A pass over
        10,000 miners at once held every share's answer for milliseconds; in chunks of 500
        with only a loop turn between them, every share accepted in the 20-50 ms of a pass
        waited behind it, and those passes set the p99 of a share's answer (``docs/mining.md``,
        "The housekeeping's bursts, a plan that scanned, and the writer's thread").
        """
        while True:
            sessions = list(self.sessions)
            pause_s = _HOUSEKEEPING_S / max(1, math.ceil(len(sessions) / _SWEEP_CHUNK))
            await asyncio.sleep(pause_s)
            self.upstream.expire(time.monotonic())
            for start in range(0, len(sessions), _SWEEP_CHUNK):
                if start:
                    await asyncio.sleep(pause_s)
                now_s = time.monotonic()
                for session in sessions[start : start + _SWEEP_CHUNK]:
                    if session.closed:
                        continue
                    if session.silent_too_long(now_s):
                        session.close()
                    elif session.ready:
                        session.maybe_retarget(now_s)

    # ------------------------------------------------------------------ the pool

    def pool_ready(self, session: PoolSession) -> None:
        """Start a pool session: new slices for every miner if its extranonce changed."""
        slicer = self._slicer
        if (
            slicer is None
            or slicer.upstream_extranonce1 != session.extranonce1
            or slicer.upstream_extranonce2_size != session.extranonce2_size
        ):
            self._slicer = ExtranonceSlicer(session.extranonce1, session.extranonce2_size)
            for miner in list(self.sessions):
                if miner.validator is None:
                    continue
                if miner.extranonce_subscribed:
                    try:
                        miner.new_slice(self._slicer.allocate())
                        continue
                    except InputError:
                        pass  # no slice left: the miner is closed like the others
                miner.drop_slice()
        self._fresh_pool = True
        self.pool_up.set()

    def pool_lost(self) -> None:
        """Make every miner's jobs stale: the pool is gone until it is back."""
        self.pool_up.clear()
        for miner in self.sessions:
            miner.pool_lost()

    def pool_job(self, job: Job) -> None:
        """Hand a new job to every miner (clean if the pool said so or the session is new)."""
        clean = job.clean_jobs or self._fresh_pool
        self._fresh_pool = False
        line = self.notify_line(job, clean=clean)
        for miner in list(self.sessions):
            if miner.ready:
                miner.give_job(job, line, clean=clean)
