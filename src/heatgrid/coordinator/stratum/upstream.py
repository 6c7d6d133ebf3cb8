"""The proxy's connection to the pool: one per pool account, kept up with backoff.

It negotiates version rolling (BIP 310), subscribes, authorizes the operator's account, and
then hands every job, difficulty, extranonce and version mask the pool sends to its
listener. Shares go up with :meth:`Upstream.submit_soon`, which hands the pool's verdict to a
function when it comes (no task or future per share).
With ``worker_per_device`` each device gets its own pool worker ``POOL_USER.DEVICE_ID``,
authorized once per connection. When the connection is lost the listener hears so at once
(its miners' jobs are then stale), and the connection is made again with jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from heatgrid.core.errors import InputError
from heatgrid.mining import stratum
from heatgrid.mining.shares import Job, job_from_notify

__all__ = ["PoolSession", "Upstream", "UpstreamListener"]

_WANTED_MASK = 0x1FFFE000
_ANSWER_TIMEOUT_S = 30.0
_MIN_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_KEPT_JOBS = 16
_log = logging.getLogger("heatgrid.coordinator.stratum")


@dataclass(frozen=True)
class PoolSession:
    """What the pool granted on one connection."""

    extranonce1: bytes
    extranonce2_size: int
    version_mask: int


class UpstreamListener(Protocol):
    """What the proxy does with the pool's news."""

    def pool_ready(self, session: PoolSession) -> None:
        """Take a new connection, subscribed and authorized."""

    def pool_lost(self) -> None:
        """Forget every job: the connection is lost."""

    def pool_job(self, job: Job) -> None:
        """Take a new job (its pool difficulty is :meth:`Upstream.job_difficulty`)."""


class Upstream:
    """A Stratum client for the operator's pool account.

    Parameters
    ----------
    host, port : str, int
        The pool.
    user, password : str
        The pool account.
    listener : UpstreamListener
        Told of sessions, losses and jobs.
    worker_per_device : bool
        Authorize ``USER.DEVICE_ID`` per device and submit under it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        listener: UpstreamListener,
        *,
        worker_per_device: bool = True,
        max_line_bytes: int = stratum.DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self._host, self._port = host, port
        self._user, self._password = user, password
        self._listener = listener
        self._worker_per_device = worker_per_device
        self._max_line_bytes = max_line_bytes
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[stratum.Response]] = {}
        self._judging: OrderedDict[int, tuple[float, Callable[[bool | None], None]]] = OrderedDict()
        """Shares sent and not yet judged: request id -> (deadline [monotonic s], callback)."""
        self._writer: asyncio.StreamWriter | None = None
        self._workers: dict[str, asyncio.Task[str]] = {}
        self._job_difficulty: OrderedDict[str, float] = OrderedDict()
        self.session: PoolSession | None = None
        """The live session, None while disconnected."""
        self.difficulty = 1.0
        """The pool's share difficulty for the next jobs [-]."""
        self.job: Job | None = None
        """The newest job."""
        self.connections = 0
        """Connections made so far [-]."""

    def job_difficulty(self, job_id: str) -> float | None:
        """Return the pool's share difficulty for ``job_id``, None for a job it no longer holds."""
        return self._job_difficulty.get(job_id)

    async def run(self) -> None:
        """Connect and serve until cancelled; reconnect with jittered backoff."""
        backoff_s = _MIN_BACKOFF_S
        while True:
            try:
                await self._connection()
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                InputError,
            ) as error:
                _log.warning("pool connection lost", extra={"error": str(error) or repr(error)})
            except Exception:  # a bug must not end the proxy's only pool connection for good
                _log.exception("pool connection failed")
            else:
                backoff_s = _MIN_BACKOFF_S
            await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))
            backoff_s = min(backoff_s * 2.0, _MAX_BACKOFF_S)

    def submit_soon(self, share: stratum.Submit, judged: Callable[[bool | None], None]) -> None:
        """Send a share (its id is replaced); ``judged`` gets the pool's verdict.

        ``judged(True)`` or ``judged(False)`` when the pool answers; ``judged(None)`` at once
        without a pool session, when the connection is lost first, or when no answer came
        within the answer timeout (:meth:`expire`).
        """
        writer = self._writer
        if writer is None or self.session is None:
            _call(judged, None)
            return
        request_id = next(self._ids)
        share.id = request_id
        self._judging[request_id] = (time.monotonic() + _ANSWER_TIMEOUT_S, judged)
        writer.write(stratum.encode(share))

    def expire(self, now_s: float) -> None:
        """Give up on shares the pool has not judged by their deadline [monotonic s]."""
        judging = self._judging
        while judging:
            request_id, (deadline_s, judged) = next(iter(judging.items()))
            if deadline_s > now_s:
                return
            del judging[request_id]
            _call(judged, None)

    def known_worker(self, device_id: str) -> str | None:
        """Return ``device_id``'s pool worker name if known already (else :meth:`worker`)."""
        if not self._worker_per_device:
            return self._user
        task = self._workers.get(device_id)
        if task is not None and task.done() and not task.cancelled():
            return task.result()
        return None

    async def worker(self, device_id: str) -> str:
        """Return the pool worker name to submit ``device_id``'s shares under."""
        if not self._worker_per_device:
            return self._user
        task = self._workers.get(device_id)
        if task is not None and task.done() and not task.cancelled():
            return task.result()
        if task is None:
            task = asyncio.create_task(self._authorize_worker(f"{self._user}.{device_id}"))
            self._workers[device_id] = task
        return await task

    async def _authorize_worker(self, name: str) -> str:
        writer = self._writer
        if writer is None:
            return self._user
        answer = await self._request(writer, stratum.Authorize(None, name, self._password))
        return name if answer is not None and answer.result is True else self._user

    async def _request(
        self, writer: asyncio.StreamWriter, message: stratum.Message
    ) -> stratum.Response | None:
        request_id = next(self._ids)
        message.id = request_id  # type: ignore[union-attr]  # every request has an id
        future: asyncio.Future[stratum.Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            writer.write(stratum.encode(message))
            async with asyncio.timeout(_ANSWER_TIMEOUT_S):
                return await future
        except (TimeoutError, ConnectionError, OSError):
            return None
        finally:
            self._pending.pop(request_id, None)

    async def _connection(self) -> None:
        async with asyncio.timeout(_ANSWER_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(
                self._host, self._port, limit=self._max_line_bytes + 1
            )
        self.connections += 1
        reading = asyncio.create_task(self._read(reader))
        self._writer = writer
        try:
            session = await self._handshake(writer)
            if session is None:
                return
            self.session = session
            self._listener.pool_ready(session)
            if self.job is not None:
                self._listener.pool_job(self.job)
            await reading
        finally:
            lost = self.session is not None
            self.session, self._writer, self.job = None, None, None
            self._job_difficulty.clear()
            for task in self._workers.values():
                task.cancel()
            self._workers.clear()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("pool connection lost"))
            judging, self._judging = self._judging, OrderedDict()
            for _, judged in judging.values():
                _call(judged, None)
            reading.cancel()
            writer.close()
            if lost:
                self._listener.pool_lost()
            await asyncio.wait({reading})  # a cancel of run() itself goes on up (it ends)
            if not reading.cancelled():
                reading.exception()  # the reader's end is the loss handled here
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _handshake(self, writer: asyncio.StreamWriter) -> PoolSession | None:
        answer = await self._request(
            writer, stratum.Configure(None, ("version-rolling",), _WANTED_MASK, 2)
        )
        mask = 0
        if answer is not None and answer.error is None:
            granted = stratum.configure_result(answer.result)
            mask = granted if isinstance(granted, int) else 0
        answer = await self._request(writer, stratum.Subscribe(None, "heatgrid-proxy/1"))
        if answer is None:
            raise TimeoutError("the pool did not answer mining.subscribe")
        subscribed = stratum.subscribe_result(answer.result)
        if isinstance(subscribed, stratum.Malformed):
            raise InputError(f"the pool's subscribe answer is wrong: {subscribed.reason}")
        answer = await self._request(writer, stratum.Authorize(None, self._user, self._password))
        if answer is None or answer.result is not True:
            reason = answer.error.message if answer and answer.error else "no answer"
            raise InputError(f"the pool refused the account {self._user!r}: {reason}")
        _log.info(
            "pool connected",
            extra={
                "extranonce2_size": subscribed.extranonce2_size,
                "version_mask": f"{mask:08x}",
            },
        )
        return PoolSession(subscribed.extranonce1, subscribed.extranonce2_size, mask)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readuntil(b"\n")
            self._on_message(stratum.decode(line, self._max_line_bytes))

    def _on_response(self, message: stratum.Response) -> None:
        if not isinstance(message.id, int):
            return
        waiting = self._judging.pop(message.id, None)
        if waiting is not None:
            _call(waiting[1], message.result is True and message.error is None)
            return
        future = self._pending.get(message.id)
        if future is not None and not future.done():
            future.set_result(message)

    def _on_message(self, message: stratum.Message | stratum.Malformed) -> None:
        if isinstance(message, stratum.Response):
            self._on_response(message)
        elif isinstance(message, stratum.Notify):
            try:
                job = job_from_notify(message)
            except InputError:
                _log.warning("the pool sent a job with a bad nbits; ignored")
                return
            self._job_difficulty[job.job_id] = self.difficulty
            self._job_difficulty.move_to_end(job.job_id)
            while len(self._job_difficulty) > _KEPT_JOBS:
                self._job_difficulty.popitem(last=False)
            self.job = job
            if self.session is not None:
                self._listener.pool_job(job)
        elif isinstance(message, stratum.SetDifficulty):
            self.difficulty = message.difficulty
        elif isinstance(message, stratum.SetExtranonce):
            # A new extranonce1: every slice changes. Treat it as a new session.
            if self.session is not None:
                size = message.extranonce2_size or self.session.extranonce2_size
                self.session = PoolSession(message.extranonce1, size, self.session.version_mask)
                self._listener.pool_lost()
                self._listener.pool_ready(self.session)
        elif isinstance(message, stratum.SetVersionMask):
            if self.session is not None:
                self.session = PoolSession(
                    self.session.extranonce1,
                    self.session.extranonce2_size,
                    self.session.version_mask & message.mask,
                )
        elif isinstance(message, stratum.Malformed):
            _log.warning(
                "the pool sent a line that is not Stratum", extra={"reason": message.reason}
            )


def _call(judged: Callable[[bool | None], None], verdict: bool | None) -> None:
    """Hand ``verdict`` on; a fault there must not end the pool connection's reader."""
    try:
        judged(verdict)
    except Exception:
        _log.exception("could not take the pool's verdict on a share")
