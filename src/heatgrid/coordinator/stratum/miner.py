"""One miner's connection to the proxy: handshake, jobs, share checks, vardiff.

The miner negotiates version rolling (it gets the pool's mask, narrowed to what it asks for),
subscribes (it gets its own extranonce slice), and authorizes as ``DEVICE_ID[.worker]`` with
the device's mining password. Then it gets jobs at its own difficulty, and every
``mining.submit`` is checked by :class:`~heatgrid.mining.shares.ShareValidator`: a rejected share
is answered with its error code and counted, never forwarded; an accepted one is committed to the
database before the miner hears "accepted", then forwarded to the pool if it also meets the
pool's difficulty. An accepted share is handed to the recorder with the function that answers
it (no task of its own): the recorder's writer calls it right after the commit, and the share
is forwarded from there, its verdict taken by a callback too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import math
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from heatgrid.coordinator.stratum.accounting import ShareRow
from heatgrid.core.errors import InputError
from heatgrid.mining import stratum
from heatgrid.mining.extranonce import ExtranonceSlice, upstream_submit
from heatgrid.mining.shares import Job, RejectReason, ShareResult, ShareValidator
from heatgrid.mining.targets import target_from_difficulty
from heatgrid.mining.vardiff import retarget

if TYPE_CHECKING:
    from heatgrid.coordinator.stratum.proxy import StratumProxy

__all__ = ["MinerSession"]

_MAX_WRITE_BUFFER_BYTES = 256 * 1024
_RETARGET_SHARES = 24
_RETARGET_INTERVALS = 3.0
_KEPT_ALIASES = 32
_log = logging.getLogger("heatgrid.coordinator.stratum")


def _error(code: int, message: str) -> stratum.StratumError:
    return stratum.StratumError(code, message)


_NOT_RECORDED = _error(stratum.ErrorCode.OTHER, "share not recorded (database unavailable)")
_UNKNOWN = _error(stratum.ErrorCode.OTHER, "not a request a pool answers")
_POOL_DOWN = _error(stratum.ErrorCode.OTHER, "the pool is unavailable; try again")


def _accepted_line(request_id: stratum.RequestId) -> bytes:
    """Return the answer "accepted" to ``request_id`` (built without a JSON encoder)."""
    if isinstance(request_id, int):
        return b'{"id":%d,"result":true,"error":null}\n' % request_id
    return stratum.encode(stratum.Response(request_id, True))


@dataclasses.dataclass(slots=True)
class _Accepted:
    """A share checked and accepted, waiting for its commit: what its answer and forward need."""

    submit: stratum.Submit
    result: ShareResult
    row: ShareRow
    slice: ExtranonceSlice
    session: object
    """The pool session its job came from (it is not forwarded to another)."""


class MinerSession(asyncio.Protocol):
    """A miner's connection, as asyncio's protocol for it: it is handed the bytes read.

    Complete lines are handled as they arrive, in order. A share (and every other message
    answered at once) is handled inside :meth:`data_received`; a handshake message that waits
    for the pool or the database (configure, subscribe, authorize) is handled in a task, with
    reading paused and later lines held until it is answered. Between lines a connection
    holds no coroutine, future or timer: with thousands of miners each sending a share every
    few seconds, such waiting state (a stream reader's ``readuntil``) lived from one share to
    the next and filled the cycle collector's young generations (``docs/mining.md``, *Speed*).
    """

    def __init__(self, proxy: StratumProxy) -> None:
        self._proxy = proxy
        self._transport: asyncio.Transport | None = None
        self._settings = proxy.settings
        self._limit = self._settings.max_line_bytes + 1
        self._partial = b""
        """The start of a line whose end has not arrived."""
        self._held: deque[bytes] = deque()
        """Lines read while a handshake message was being handled, in order."""
        self._handler: asyncio.Task[None] | None = None
        self.slice: ExtranonceSlice | None = None
        self.validator: ShareValidator | None = None
        self._requested_mask: int | None = None
        self.version_mask = 0
        self.devices: dict[str, str] = {}
        """Authorized worker names and their device ids."""
        self.difficulty = self._settings.start_difficulty
        self._sent_difficulty: float | None = None
        self.window_start = time.monotonic()
        self.window_shares = 0
        self.extranonce_subscribed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._shares_in_flight = 0
        """Accepted shares not yet answered, or forwarded and not yet judged by the pool."""
        self._lost = False
        self._aliases: OrderedDict[str, str] = OrderedDict()
        """Job ids made for a new difficulty, and the pool's job id each stands for."""
        self._alias_numbers = itertools.count(1)
        self.closed = False
        self._heard_s = time.monotonic()
        """When the last line was read or handled [monotonic s]; +inf while one is handled."""

    # ------------------------------------------------------------------ asyncio's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Join the proxy's miners (asyncio calls this once the connection is accepted)."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._proxy.miner_connected(self, transport)

    def data_received(self, data: bytes) -> None:
        """Handle every complete line in ``data``; a line over the cap closes the connection."""
        if self.closed:
            return
        buffer = self._partial + data if self._partial else data
        start = 0
        while not self.closed:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if end - start > self._limit:
                self._overrun()
                return
            self._line(buffer if start == 0 and end + 1 == len(buffer) else buffer[start : end + 1])
            start = end + 1
        self._partial = buffer[start:]
        if len(self._partial) > self._limit:
            self._overrun()

    def connection_lost(self, exc: Exception | None) -> None:
        """Leave the proxy's miners once what is in flight has finished."""
        self.closed = True
        self._lost = True
        self._partial = b""
        self._held.clear()
        self._maybe_done()

    @property
    def busy(self) -> bool:
        """Whether shares are in flight (being recorded or forwarded) or a handshake runs."""
        return self._shares_in_flight > 0 or self._handler is not None or bool(self._tasks)

    def _maybe_done(self) -> None:
        """Leave the proxy's miners once the connection is lost and nothing is in flight."""
        if self._lost and not self.busy:
            self._lost = False
            self._proxy.miner_lost(self)

    @property
    def ready(self) -> bool:
        """Subscribed and authorized: it gets jobs."""
        return self.validator is not None and bool(self.devices)

    def send(self, line: bytes) -> None:
        """Write a line; a miner that does not read (a full buffer) is dropped."""
        transport = self._transport
        if self.closed or transport is None:
            return
        if transport.get_write_buffer_size() > _MAX_WRITE_BUFFER_BYTES:
            self.close()
            return
        transport.write(line)

    def close(self) -> None:
        """Close the connection (asyncio then calls :meth:`connection_lost`)."""
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.close()

    def give_job(self, job: Job, notify_line: bytes, *, clean: bool) -> None:
        """Send ``job`` at this miner's difficulty; a clean one makes the miner's others stale."""
        if self.validator is None:
            return
        if clean:
            self.validator.clear_jobs()
        self.validator.add_job(job, self.difficulty)
        if self._sent_difficulty != self.difficulty:
            self.send(stratum.encode(stratum.SetDifficulty(self.difficulty)))
            self._sent_difficulty = self.difficulty
        self.send(notify_line)

    def pool_lost(self) -> None:
        """Forget the miner's jobs: the pool is gone, and a new extranonce will come."""
        if self.validator is not None:
            self.validator.clear_jobs()
        self._aliases.clear()  # they name the lost session's jobs

    def drop_slice(self) -> None:
        """Close a miner whose slice ended with its pool session (it reconnects, as miners do)."""
        self.slice, self.validator = None, None  # the old slice is not the new slicer's
        self.close()

    def new_slice(self, extranonce_slice: ExtranonceSlice) -> None:
        """Move to a new extranonce slice (a new pool session) with ``mining.set_extranonce``."""
        if self.validator is None:
            return
        self.slice = extranonce_slice
        self.validator = self._validator_like(self.validator)
        self.send(
            stratum.encode(
                stratum.SetExtranonce(
                    extranonce_slice.extranonce1, extranonce_slice.extranonce2_size
                )
            )
        )

    def _validator_like(self, old: ShareValidator) -> ShareValidator:
        assert self.slice is not None
        validator = ShareValidator(
            self.slice.extranonce1, self.slice.extranonce2_size, self.version_mask
        )
        for worker in old.authorized:
            validator.authorize(worker)
        return validator

    def maybe_retarget(self, now_s: float, *, force: bool = False) -> None:
        """Vardiff: a new difficulty after enough shares or time; re-sends the job if changed."""
        elapsed_s = now_s - self.window_start
        due_s = _RETARGET_INTERVALS * self._settings.share_interval_s
        if not force and self.window_shares < _RETARGET_SHARES and elapsed_s < due_s:
            return
        if elapsed_s <= 0.0:
            return
        settings = self._settings
        new = retarget(
            self.difficulty,
            self.window_shares,
            elapsed_s,
            share_interval_s=settings.share_interval_s,
            min_difficulty=settings.min_difficulty,
            max_difficulty=settings.max_difficulty,
        )
        self.window_start, self.window_shares = now_s, 0
        if new != self.difficulty:
            self.difficulty = new
            job = self._proxy.upstream.job
            if job is not None and self.ready:
                self._give_alias(job)

    def _give_alias(self, job: Job) -> None:
        """Send ``job`` again under a new id at the new difficulty.

        Shares on the id sent before keep the difficulty it was sent at (``set_difficulty``
        applies to later jobs), so work in flight at a retarget is credited as it was found.
        """
        alias_id = f"{job.job_id}~{next(self._alias_numbers):x}"
        notify = dataclasses.replace(job.notify, job_id=alias_id, clean_jobs=False)
        alias = dataclasses.replace(job, job_id=alias_id, clean_jobs=False, notify=notify)
        self._aliases[alias_id] = job.job_id
        while len(self._aliases) > _KEPT_ALIASES:
            self._aliases.popitem(last=False)
        self.give_job(alias, stratum.encode(notify), clean=False)

    def upstream_job_id(self, job_id: str) -> str:
        """Return the pool's id of the job a miner's ``job_id`` names."""
        return self._aliases.get(job_id, job_id)

    def silent_too_long(self, now_s: float) -> bool:
        """Whether the miner has been silent past its timeout at ``now_s`` [monotonic s].

        The handshake timeout until it is subscribed and authorized, the idle timeout after;
        counted from the last line read, or from the end of its handling (a line that waits
        for the pool or the database is not silence). The proxy's housekeeping asks this
        about every connection once a second and closes those silent too long: one
        comparison per connection there, where a timer per line read (``asyncio.timeout``)
        made a timer handle, its context and a timeout object for every share, each alive
        until the connection's next line (seconds, with thousands of miners), so the cycle
        collector's young passes walked them (``docs/mining.md``, *Speed*).
        """
        timeout_s = (
            self._settings.idle_timeout_s if self.ready else self._settings.handshake_timeout_s
        )
        return now_s - self._heard_s > timeout_s

    def _overrun(self) -> None:
        self._count_malformed()
        self.close()  # a line over the cap closes the connection, unanswered

    def _line(self, line: bytes) -> None:
        """Handle one line now, or hold it while a handshake message is being handled."""
        if self._handler is not None:
            self._held.append(line)
            return
        self._heard_s = time.monotonic()
        if not line.strip():
            return
        message = stratum.decode(line, self._settings.max_line_bytes)
        if isinstance(message, stratum.Configure | stratum.Subscribe | stratum.Authorize):
            assert self._transport is not None
            self._heard_s = math.inf  # not silent while it waits for the pool or the database
            self._transport.pause_reading()
            self._handler = asyncio.create_task(self._handshake(message))
        else:
            self._handle(message)

    async def _handshake(
        self, message: stratum.Configure | stratum.Subscribe | stratum.Authorize
    ) -> None:
        """Answer ``message``, then the lines held meanwhile, then read again."""
        try:
            if isinstance(message, stratum.Configure):
                await self._configure(message)
            elif isinstance(message, stratum.Subscribe):
                await self._subscribe(message)
            else:
                await self._authorize(message)
        except Exception:
            _log.exception("could not answer a miner's handshake")
            self.close()
        finally:
            self._handler = None
            self._heard_s = time.monotonic()
        while self._held and self._handler is None and not self.closed:
            self._line(self._held.popleft())
        if self._handler is None and not self.closed and self._transport is not None:
            self._transport.resume_reading()
        self._maybe_done()

    def _count_malformed(self) -> None:
        device_id = next(iter(self.devices.values()), None)
        if device_id is not None:  # an unauthorized connection's lines count for no device
            self._proxy.recorder.count_reject(device_id, "malformed", self._proxy.clock())

    def _handle(self, message: stratum.Message | stratum.Malformed) -> None:
        if isinstance(message, stratum.Submit):
            self._submit(message)
        elif isinstance(message, stratum.Malformed):
            self._count_malformed()
            self._answer(message.id, None, _error(stratum.ErrorCode.OTHER, message.reason))
        elif isinstance(message, stratum.ExtranonceSubscribe):
            self.extranonce_subscribed = True
            self._answer(message.id, True)
        elif isinstance(message, stratum.SuggestDifficulty):
            settings = self._settings
            self.difficulty = min(
                max(message.difficulty, settings.min_difficulty), settings.max_difficulty
            )
            self._answer(message.id, True)
        elif isinstance(message, stratum.Response):
            pass  # an answer to nothing the proxy asks
        else:
            self._answer(getattr(message, "id", None), None, _UNKNOWN)

    def _answer(
        self,
        request_id: stratum.RequestId,
        result: object,
        error: stratum.StratumError | None = None,
    ) -> None:
        self.send(stratum.encode(stratum.Response(request_id, result, error)))

    async def _pool(self) -> bool:
        """Wait (up to the handshake timeout) for the pool session; False if none came."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._settings.handshake_timeout_s):
                await self._proxy.pool_up.wait()
        return self._proxy.upstream.session is not None

    async def _configure(self, message: stratum.Configure) -> None:
        result: dict[str, object] = dict.fromkeys(message.extensions, False)
        if "version-rolling" in message.extensions:
            if not await self._pool():
                self._answer(message.id, None, _POOL_DOWN)
                return
            session = self._proxy.upstream.session
            assert session is not None
            wanted = message.version_rolling_mask
            self._requested_mask = 0xFFFFFFFF if wanted is None else wanted
            self.version_mask = session.version_mask & self._requested_mask
            if self.validator is not None:
                self.validator.version_mask = self.version_mask
            result["version-rolling"] = bool(self.version_mask)
            result["version-rolling.mask"] = f"{self.version_mask:08x}"
        self._answer(message.id, result)

    async def _subscribe(self, message: stratum.Subscribe) -> None:
        if self.validator is not None:
            self._answer(message.id, None, _error(stratum.ErrorCode.OTHER, "already subscribed"))
            return
        if not await self._pool():
            self._answer(message.id, None, _POOL_DOWN)
            return
        try:
            self.slice = self._proxy.allocate_slice()
        except InputError as full:
            self._answer(message.id, None, _error(stratum.ErrorCode.OTHER, str(full)))
            self.close()
            return
        self.validator = ShareValidator(
            self.slice.extranonce1, self.slice.extranonce2_size, self.version_mask
        )
        subscription = f"{id(self):x}"
        self._answer(
            message.id,
            [
                [["mining.set_difficulty", subscription], ["mining.notify", subscription]],
                self.slice.extranonce1.hex(),
                self.slice.extranonce2_size,
            ],
        )
        self._start_mining()

    async def _authorize(self, message: stratum.Authorize) -> None:
        device_id = await self._proxy.check_credentials(message.username, message.password)
        if device_id is None:
            self._answer(
                message.id, False, _error(stratum.ErrorCode.UNAUTHORIZED, "unauthorized worker")
            )
            return
        was_ready = self.ready
        self.devices[message.username] = device_id
        if self.validator is not None:
            self.validator.authorize(message.username)
        self._answer(message.id, True)
        if not was_ready:
            self._start_mining()

    def _start_mining(self) -> None:
        job = self._proxy.upstream.job
        if self.ready and job is not None:
            self.window_start, self.window_shares = time.monotonic(), 0
            self.give_job(job, self._proxy.notify_line(job, clean=True), clean=True)

    def _submit(self, submit: stratum.Submit) -> None:
        validator = self.validator
        if validator is None:
            result = ShareResult(False, RejectReason.NOT_SUBSCRIBED)
        else:
            result = validator.check(submit)
        device_id = self.devices.get(submit.worker)
        if not result.accepted:
            assert result.reason is not None
            if device_id is not None:
                self._proxy.recorder.count_reject(
                    device_id, result.reason.name.lower(), self._proxy.clock()
                )
            self._answer(submit.id, None, _error(result.reason.code, result.reason.message))
            return
        assert device_id is not None
        assert self.slice is not None
        self.window_shares += 1
        row = ShareRow(
            share_key=result.digest.hex(),
            device_id=device_id,
            worker=submit.worker,
            job_id=self.upstream_job_id(submit.job_id),
            difficulty=result.difficulty,
            accepted_ts=self._proxy.clock(),
            block_hash=result.block_hash if result.is_block else None,
        )
        self._shares_in_flight += 1
        accepted = _Accepted(submit, result, row, self.slice, self._proxy.upstream.session)
        self._proxy.recorder.enqueue(row, functools.partial(self._recorded, accepted))
        self.maybe_retarget(time.monotonic())

    def _recorded(self, share: _Accepted, stored: bool, error: BaseException | None) -> None:
        """Answer a share once the writer has committed it (or failed to).

        An accepted one is forwarded in a callback of its own, soon after: the writer answers
        every share of a batch first, so that the last answer of a large batch does not wait
        for the encoding and sending of all the forwards before it.
        """
        try:
            if error is not None:
                self._answer(share.submit.id, None, _NOT_RECORDED)
            elif not stored:
                reason = RejectReason.DUPLICATE
                self._proxy.recorder.count_reject(
                    share.row.device_id, reason.name.lower(), self._proxy.clock()
                )
                self._answer(share.submit.id, None, _error(reason.code, reason.message))
            else:
                self.send(_accepted_line(share.submit.id))
                if share.result.is_block:
                    _log.warning(
                        "block found",
                        extra={
                            "block_hash": share.row.block_hash,
                            "device_id": share.row.device_id,
                        },
                    )
                asyncio.get_running_loop().call_soon(self._forward_soon, share)
                return
        except BaseException:
            self._share_done()
            raise
        self._share_done()

    def _forward_soon(self, share: _Accepted) -> None:
        forwarding = False
        try:
            forwarding = self._forward(share)
        finally:
            if not forwarding:
                self._share_done()

    def _share_done(self) -> None:
        self._shares_in_flight -= 1
        self._maybe_done()

    def _forward(self, share: _Accepted) -> bool:
        """Send an accepted share on to the pool if it meets the pool's difficulty.

        Returns whether it was sent (then :meth:`_share_done` is called with the pool's verdict).
        """
        submit, session = share.submit, share.session
        upstream = self._proxy.upstream
        if upstream.session is not session:
            # the pool was lost while the share was being recorded: its job belongs to the old
            # session, and a pool that came back may reuse the job id for other work
            return False
        if submit.job_id in self._aliases:
            submit = dataclasses.replace(submit, job_id=self._aliases[submit.job_id])
        pool_difficulty = upstream.job_difficulty(submit.job_id)
        if pool_difficulty is None:
            return False  # the pool no longer holds the job: nothing to send it
        if int.from_bytes(share.result.digest, "little") > target_from_difficulty(pool_difficulty):
            return False  # counted here, below what the pool takes
        worker = upstream.known_worker(share.row.device_id)
        if worker is None:  # the device's first share on this pool session: authorize it first
            task = asyncio.create_task(self._forward_as_new_worker(share, submit))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            return True
        self._submit_upstream(share, submit, worker)
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._maybe_done()

    async def _forward_as_new_worker(self, share: _Accepted, submit: stratum.Submit) -> None:
        upstream = self._proxy.upstream
        try:
            worker = await upstream.worker(share.row.device_id)
        except BaseException:
            self._share_done()
            raise
        if upstream.session is not share.session:
            self._share_done()  # lost while the pool authorized the device's worker
            return
        self._submit_upstream(share, submit, worker)

    def _submit_upstream(self, share: _Accepted, submit: stratum.Submit, worker: str) -> None:
        """Send ``submit`` (the pool's job id) as ``worker``; the verdict goes to the share."""
        self._proxy.upstream.submit_soon(
            upstream_submit(submit, share.slice, 0, worker),
            functools.partial(self._judged, share.row),
        )

    def _judged(self, row: ShareRow, verdict: bool | None) -> None:
        """Keep what the pool answered to a forwarded share (None: no answer came)."""
        self._proxy.forwarded += 1
        try:
            if verdict is not None:
                self._proxy.recorder.pool_verdict(row.share_key, verdict)
                if not verdict:
                    _log.warning("the pool rejected a share", extra={"device_id": row.device_id})
        finally:
            self._share_done()
