"""Durable share accounting for the proxy: group commits, rejections per hour, pool verdicts.

:meth:`ShareRecorder.record` returns once the share's row is committed, so a miner hears
"accepted" only for work that survives a crash. One writer task commits every share queued by
any miner since its last commit in one transaction (group commit), which keeps SQLite's single
writer and PostgreSQL's fsync off the per-share path. ``share_key`` is unique: a share stored
before (by this proxy before a restart, or by another proxy on the same database) is not
stored again, and :meth:`record` says so.

Rejections are counted in memory per device, reason and hour and added to ``mining_rejects``
with each commit (at least once a second); the pool's verdicts on forwarded shares set
``upstream_accepted``.

On SQLite the writer commits in a thread (the database's fsync would otherwise stop the event
loop). On PostgreSQL it keeps one asyncio connection of its own (psycopg's
``AsyncConnection``) and sends a batch's statements and its ``COMMIT`` in one pipeline: one
round trip to the server per batch, awaited on the miners' event loop. A thread there cost
two hand-overs of the GIL per batch, from the loop to the thread and back, each waiting for
the other side to block or for the switch interval (``docs/mining.md``, *Speed*).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event

from heatgrid.coordinator.db.models import MiningReject, MiningShare
from heatgrid.coordinator.threads import run_to_its_end

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["WRITER_SWITCH_INTERVAL_S", "Settle", "ShareRecorder", "ShareRow"]

WRITER_SWITCH_INTERVAL_S = 0.0005
"""The GIL switch interval of a process that runs the proxy [s] (``sys.setswitchinterval``).

The writer's thread (SQLite; PostgreSQL's ran in one too until its writer moved onto the
event loop) hands each commit back to the miners' event loop and takes each batch from it.
A thread that wants the GIL while the other one runs Python waits for the holder to block or
for the switch interval to pass: CPython's 5 ms default, with the loop busy among 10,000
miners, was much of a share's wait between its acceptance and its commit (the p99 of
``bench/bench_stratum_proxy.py`` at 10,000 connections on PostgreSQL, the writer then in a
thread: 10.5 to 12.7 ms at 5 ms, 9.8 to 10.6 ms at 0.5 ms; ``docs/mining.md``). The
``heatgrid stratum`` command sets it.
"""

_HOUR_S = 3600.0
_FLUSH_S = 1.0
_CHECKPOINT_S = 0.5
_WAL_RESTART_FRAMES = 20_000  # ~80 MB of WAL that passive checkpoints could not catch up with
_KEYS_PER_UPDATE = 4000  # well under SQLite's 32,766 parameters a statement
_ROWS_PER_INSERT = 1000  # 7 parameters a row
_SHARE_COLUMNS = (
    "share_key",
    "device_id",
    "worker",
    "job_id",
    "difficulty",
    "accepted_ts",
    "block_hash",
)
_log = logging.getLogger("heatgrid.coordinator.stratum")


@dataclass(slots=True)
class ShareRow:
    """An accepted share to store; ``share_key`` is the header's double SHA-256 in hex."""

    share_key: str
    device_id: str
    worker: str
    job_id: str
    difficulty: float
    accepted_ts: float
    block_hash: str | None


Settle = Callable[[bool, BaseException | None], None]
"""Told a queued share's fate once its batch is written: ``(stored, None)`` after the commit
(``stored`` False when its key was stored before), ``(False, error)`` when it could not be."""


def _row(mark: str, width: int) -> str:
    return "(" + ", ".join([mark] * width) + ")"


@functools.lru_cache(maxsize=256)
def _insert_shares(mark: str, count: int) -> str:
    """``INSERT`` of ``count`` shares that skips stored keys and returns the new ones."""
    return (
        f"INSERT INTO {MiningShare.__tablename__} ({', '.join(_SHARE_COLUMNS)}) VALUES "
        + ", ".join([_row(mark, len(_SHARE_COLUMNS))] * count)
        + " ON CONFLICT (share_key) DO NOTHING RETURNING share_key"
    )


@functools.lru_cache(maxsize=64)
def _add_rejects(mark: str, count: int) -> str:
    """Upsert of ``count`` (device, reason, hour) rejection counts, added to stored ones."""
    table = MiningReject.__tablename__
    return (
        f'INSERT INTO {table} (device_id, reason, hour_start_ts, "count") VALUES '
        + ", ".join([_row(mark, 4)] * count)
        + ' ON CONFLICT (device_id, reason, hour_start_ts) DO UPDATE SET "count" = '
        f'{table}."count" + excluded."count"'
    )


@functools.lru_cache(maxsize=256)
def _set_verdicts(mark: str, count: int) -> str:
    """``UPDATE`` of the pool's verdict (first parameter) on ``count`` share keys."""
    return (
        f"UPDATE {MiningShare.__tablename__} SET upstream_accepted = {mark}"
        f" WHERE share_key IN ({', '.join([mark] * count)})"
    )


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint = 0")
    cursor.close()


def _share_key(row: ShareRow) -> str:
    return row.share_key


class ShareRecorder:
    """The proxy's one writer of shares and rejections.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The coordinator's database.
    max_batch : int
        Most shares in one transaction [-].
    """

    def __init__(self, engine: Engine, max_batch: int = 2000) -> None:
        self._engine = engine
        self._max_batch = max_batch
        # the writer's SQL goes to the driver as text, written once per row count: SQLAlchemy's
        # compiler cost more than the database's own work for a batch, and the writer thread
        # holds the GIL while it runs, which the miners' event loop then waits for
        self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._queue: list[tuple[ShareRow, Settle]] = []
        self._rejects: Counter[tuple[str, str, float]] = Counter()
        self._verdicts: list[tuple[str, bool]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._checkpointer: asyncio.Task[None] | None = None
        self._pipelined = engine.dialect.name == "postgresql"
        self._held: AsyncConnection[Any] | None = None
        """The writer's own connection (PostgreSQL), kept from one batch to the next."""
        if engine.dialect.name == "sqlite":
            # SQLite checkpoints the WAL in the commit that crosses 1,000 pages: a copy of the
            # pages into the database file and an fsync of it, 10-100 ms in which every miner's
            # share waits. The proxy's connections never do that; a task checkpoints beside
            # the writer instead (a passive checkpoint does not block writers)
            event.listen(engine, "connect", _no_autocheckpoint)
        self.commits = 0
        """Transactions committed so far [-]."""
        self.checkpoints = 0
        """SQLite WAL checkpoints run beside the writer so far [-]."""

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run())
        if self._engine.dialect.name == "sqlite":
            self._checkpointer = asyncio.create_task(self._checkpoints())

    async def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
        if self._held is not None:
            held, self._held = self._held, None
            await held.close()

    async def record(self, row: ShareRow) -> bool:
        """Store ``row``; True once committed, False when it was stored before.

        Raises
        ------
        sqlalchemy.exc.SQLAlchemyError, OSError
            When the database could not commit it (the share is then not counted).
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def settle(stored: bool, error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(stored)
            else:
                future.set_exception(error)

        self.enqueue(row, settle)
        return await future

    def enqueue(self, row: ShareRow, settle: Settle) -> None:
        """Queue ``row`` for the next commit; the writer calls ``settle`` when it is written.

        What :meth:`record` does without a future and a task to await it: the proxy answers
        an accepted share from ``settle``, called by the writer for every share of a batch
        right after its commit.
        """
        self._queue.append((row, settle))
        self._wake.set()

    def count_reject(self, device_id: str, reason: str, now_ts: float) -> None:
        """Count one rejected share of ``device_id`` for ``reason`` in the hour of ``now_ts``."""
        hour_start_ts = math.floor(now_ts / _HOUR_S) * _HOUR_S
        self._rejects[device_id, reason, hour_start_ts] += 1

    def pool_verdict(self, share_key: str, accepted: bool) -> None:
        """Remember what the pool answered to a forwarded share."""
        self._verdicts.append((share_key, accepted))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FLUSH_S):
                    await self._wake.wait()
            self._wake.clear()
            writing = self._start_write()
            while writing is not None:
                batch, written = writing
                stored: set[str] = set()
                error: Exception | None = None
                try:
                    stored = await written
                except Exception as failed:
                    _log.warning("could not commit shares", extra={"error": str(failed)})
                    error = failed
                else:
                    self.commits += 1
                # the next batch is handed on before this one is answered: answering a batch
                # of hundreds of shares takes milliseconds of the event loop, which SQLite's
                # next commit (in its thread) need not wait for. PostgreSQL's is a task on this
                # loop: it sends its batch only once the answering is done
                writing = self._start_write()
                self._settle(batch, stored, error)
            if self._closing:
                return

    def _start_write(
        self,
    ) -> tuple[list[tuple[ShareRow, Settle]], asyncio.Future[set[str]]] | None:
        """Hand what is queued to the writer thread; None when nothing is."""
        if not (self._queue or self._rejects or self._verdicts):
            return None
        batch = self._queue[: self._max_batch]
        del self._queue[: len(batch)]
        rejects, self._rejects = self._rejects, Counter()
        verdicts, self._verdicts = self._verdicts, []
        rows = [row for row, _ in batch]
        written: asyncio.Future[set[str]]
        if self._pipelined:
            written = asyncio.ensure_future(self._write_pipelined(rows, rejects, verdicts))
        else:
            written = asyncio.get_running_loop().run_in_executor(
                None, self._write, rows, rejects, verdicts
            )
        return batch, written

    @staticmethod
    def _settle(
        batch: list[tuple[ShareRow, Settle]], stored: set[str], error: BaseException | None
    ) -> None:
        for row, settle in batch:
            try:
                settle(error is None and row.share_key in stored, error)
            except Exception:  # one share's answer must not keep the others unanswered
                _log.exception("could not answer a recorded share")

    async def _checkpoints(self) -> None:
        """Checkpoint SQLite's WAL beside the writer, twice a second."""
        frames = 0
        while True:
            await asyncio.sleep(_CHECKPOINT_S)
            # a WAL that passive checkpoints never caught up with is restarted (that one
            # waits for the writer and holds it up, as an automatic checkpoint would)
            mode = "RESTART" if frames > _WAL_RESTART_FRAMES else "PASSIVE"
            try:
                # close() cancels this task and the proxy then disposes of the engine: not
                # while the checkpoint's thread still holds a connection of it
                frames = await run_to_its_end(asyncio.to_thread(self._checkpoint, mode))
                self.checkpoints += 1
            except Exception as error:
                _log.warning("could not checkpoint the WAL", extra={"error": str(error)})

    def _checkpoint(self, mode: str) -> int:
        """Run a checkpoint outside any transaction; the WAL's length after it [frames]."""
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(f"PRAGMA wal_checkpoint({mode})")
            _busy, log_frames, _copied = cursor.fetchone() or (0, 0, 0)
            cursor.close()
        finally:
            connection.close()
        return max(int(log_frames), 0)

    def _statements(
        self,
        rows: list[ShareRow],
        rejects: Counter[tuple[str, str, float]],
        verdicts: list[tuple[str, bool]],
    ) -> tuple[list[tuple[str, tuple[object, ...]]], list[tuple[str, tuple[object, ...]]]]:
        """Return a batch's driver SQL: the share inserts (returning the keys stored), the rest."""
        inserts: list[tuple[str, tuple[object, ...]]] = []
        others: list[tuple[str, tuple[object, ...]]] = []
        if rows:
            # In key order, as every writer does: two proxies recording overlapping shares
            # then wait on each other's keys in one order, never in a cycle (PostgreSQL
            # otherwise aborts one with a deadlock).
            unique = sorted({row.share_key: row for row in rows}.values(), key=_share_key)
            for start in range(0, len(unique), _ROWS_PER_INSERT):
                chunk = unique[start : start + _ROWS_PER_INSERT]
                parameters = tuple(
                    value
                    for row in chunk
                    for value in (
                        row.share_key,
                        row.device_id,
                        row.worker,
                        row.job_id,
                        row.difficulty,
                        row.accepted_ts,
                        row.block_hash,
                    )
                )
                inserts.append((_insert_shares(self._mark, len(chunk)), parameters))
        if rejects:
            others.append(
                (
                    _add_rejects(self._mark, len(rejects)),
                    tuple(
                        value
                        for (device_id, reason, hour_start_ts), count in sorted(rejects.items())
                        for value in (device_id, reason, hour_start_ts, count)
                    ),
                )
            )
        for verdict in (True, False):
            keys = [key for key, said in verdicts if said is verdict]
            for start in range(0, len(keys), _KEYS_PER_UPDATE):
                chunk_keys = keys[start : start + _KEYS_PER_UPDATE]
                others.append((_set_verdicts(self._mark, len(chunk_keys)), (verdict, *chunk_keys)))
        return inserts, others

    def _write(
        self,
        rows: list[ShareRow],
        rejects: Counter[tuple[str, str, float]],
        verdicts: list[tuple[str, bool]],
    ) -> set[str]:
        """Commit a batch in one transaction (SQLite, in the writer's thread); the keys stored."""
        inserts, others = self._statements(rows, rejects, verdicts)
        stored: set[str] = set()
        with self._engine.begin() as connection:
            for sql, parameters in inserts:
                stored.update(key for (key,) in connection.exec_driver_sql(sql, parameters))
            for sql, parameters in others:
                connection.exec_driver_sql(sql, parameters)
        return stored

    async def _write_pipelined(
        self,
        rows: list[ShareRow],
        rejects: Counter[tuple[str, str, float]],
        verdicts: list[tuple[str, bool]],
    ) -> set[str]:
        """Commit a batch on the writer's own connection in one round trip (PostgreSQL).

        A connection that broke (the server restarted, the network dropped it) is replaced
        and the batch tried once more on the new one. A break can come after the server
        committed and before its answer arrived: the new connection first looks for the
        batch's shares as this writer stored them (:func:`_committed_before`); found, the
        first try committed, and its shares are answered as stored and nothing is written
        again (its rejection counts are not added twice). Otherwise the batch is written
        again; its statements skip keys stored before, so nothing is counted twice.
        """
        inserts, others = self._statements(rows, rejects, verdicts)
        for attempt in (1, 2):
            held = self._held
            if held is None:
                held = self._held = await self._connect()
            try:
                if attempt == 2:
                    committed = await _committed_before(held, rows)
                    if committed:
                        return committed
                return await _pipeline(held, inserts, others)
            except Exception:
                self._held = None
                broken = held.broken
                with contextlib.suppress(Exception):
                    await held.close()
                if not broken or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(self) -> AsyncConnection[Any]:
        """Open the writer's own connection with the engine's connection settings."""
        import psycopg  # noqa: PLC0415 - the proxy on SQLite never needs the driver

        _args, settings = self._engine.dialect.create_connect_args(self._engine.url)
        settings.pop("context", None)  # SQLAlchemy's adapters, for its own connections
        return await psycopg.AsyncConnection.connect(**settings)


async def _committed_before(connection: AsyncConnection[Any], rows: list[ShareRow]) -> set[str]:
    """Return the keys of ``rows`` stored as these rows (same device and acceptance time).

    A transaction commits all its rows or none, so any such key means that the batch's
    first try committed, and these are the keys it stored. A key stored by another proxy (a
    miner that sent one share to two) carries that proxy's acceptance time; a batch whose
    every share was stored before by others is written again, which stores nothing new.
    """
    wanted = {row.share_key: (row.device_id, row.accepted_ts) for row in rows}
    found: set[str] = set()
    keys = sorted(wanted)
    try:
        for start in range(0, len(keys), _KEYS_PER_UPDATE):
            chunk = keys[start : start + _KEYS_PER_UPDATE]
            cursor = await connection.execute(
                f"SELECT share_key, device_id, accepted_ts FROM {MiningShare.__tablename__} "
                "WHERE share_key = ANY(%s)",
                (chunk,),
            )
            found.update(
                key
                for key, device_id, accepted_ts in await cursor.fetchall()
                if wanted[key] == (device_id, accepted_ts)
            )
    finally:
        await connection.rollback()
    return found


async def _pipeline(
    connection: AsyncConnection[Any],
    inserts: list[tuple[str, tuple[object, ...]]],
    others: list[tuple[str, tuple[object, ...]]],
) -> set[str]:
    """Send every statement and the ``COMMIT`` in one psycopg pipeline; the keys stored.

    The verdicts and rejection counts are planned at each execution (``prepare=False``).
    psycopg prepares a statement run five times, and after five more runs PostgreSQL may
    keep a generic plan for the connection's life: one made while the table of shares was
    small scans it whole, and each verdict's ``UPDATE`` then read every share stored (the
    server's CPU per commit grew with the table, 0.5 to 1.6 ms within 6,000 batches;
    ``docs/mining.md``). Planned each time, it takes the unique index of ``share_key``.
    """
    cursors = []
    async with connection.pipeline():
        for sql, parameters in inserts:
            cursor = connection.cursor()
            await cursor.execute(sql, parameters)
            cursors.append(cursor)
        for sql, parameters in others:
            await connection.cursor().execute(sql, parameters, prepare=False)
        await connection.commit()
    stored: set[str] = set()
    for cursor in cursors:
        stored.update(key for (key,) in await cursor.fetchall())
        await cursor.close()
    return stored
