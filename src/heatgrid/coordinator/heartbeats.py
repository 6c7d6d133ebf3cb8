"""Heartbeats written in batches: one transaction stores the heartbeats of many devices.

A heartbeat is a handful of small writes (the device's ``last_seen_ts``, its samples, its heat
window, its leases renewed). Done one request at a time, each write is a database round trip
and most of a heartbeat's cost. The :class:`HeartbeatWriter` of a process instead collects the
heartbeats that arrive while it writes, and stores them together in one transaction of five
statements (on PostgreSQL one), whatever their number (group commit). Each request is answered
only once that transaction committed; a batch that fails fails each of its requests.

What "committed" promises: a batch that renewed a lease commits as every other transaction
does (on PostgreSQL, after its WAL is flushed to disk), so a renewal that was answered
survives any crash. A batch of telemetry, heat windows and ``last_seen_ts`` only commits on
PostgreSQL with ``synchronous_commit = off``: it is committed and visible to every process
when the heartbeat is answered, and survives a ``kill -9`` of the coordinator, but a crash of
the PostgreSQL server or of its machine may lose the last ``3 × wal_writer_delay`` (0.6 s by
default) of such batches (never part of one, never anything else). An agent resends the
samples of a heartbeat that was not answered; telemetry acknowledged just before a database
crash can be lost, as a sampling gap. SQLite commits every batch the same way.

The writer's thread holds one connection while heartbeats keep coming (no checkout, no
liveness ping per batch) and builds its statements once (Core statements on the tables, rows
sent as one multi-row ``INSERT``), so a batch costs little more than its round trips.
Memory is bounded without a limit of its own: each queued heartbeat is a request waiting for
its answer, and the app admits at most ``POOL_CONNECTIONS`` requests at once.

A batch holds at most one heartbeat per device, so that a device's heartbeats are applied in
the order they arrived. Heartbeats that change a device's kind or hardware do not come here
(:func:`heatgrid.coordinator.devices.record_heartbeat` handles them one at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    event,
    insert,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from heatgrid.coordinator.db.engine import lost_connection
from heatgrid.coordinator.db.models import (
    HOLDING_TASK_STATES,
    Device,
    HeatWindowSegmentRow,
    Task,
    TelemetrySampleRow,
)
from heatgrid.protocol import v1

__all__ = ["HeartbeatWriter", "StoredHeartbeat"]

_LOG = logging.getLogger(__name__)
_MAX_BATCH = 512
_IDLE_S = 5.0  # an idle writer's thread ends; the next heartbeat starts another
_ASYNC_COMMITS = text("SET synchronous_commit = off")  # the writer's connection, once
_SYNC_COMMIT = text("SET LOCAL synchronous_commit = on")  # a batch that renewed a lease


@dataclass(frozen=True)
class StoredHeartbeat:
    """What one heartbeat stored.

    Attributes
    ----------
    revoked : bool
        The device was revoked: nothing was stored.
    stored_samples, duplicate_samples : int
        Samples new, and samples already stored before.
    leased_task_ids : list of str
        Tasks whose leases the device holds, renewed.
    """

    revoked: bool
    stored_samples: int = 0
    duplicate_samples: int = 0
    leased_task_ids: tuple[str, ...] = ()


@dataclass
class _Pending:
    device_id: str
    heartbeat: v1.Heartbeat
    now_ts: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredHeartbeat]


_DEVICES = cast(Table, Device.__table__)
_TELEMETRY = cast(Table, TelemetrySampleRow.__table__)
_WINDOWS = cast(Table, HeatWindowSegmentRow.__table__)
_TASKS = cast(Table, Task.__table__)


@cache
def _statements(dialect_name: str) -> tuple[Any, ...]:
    """Build the batch's statements once per dialect, so that their compiled form is cached.

    Core statements on the table, run on a connection, with lists as expanding ``IN``
    parameters and rows as an ``executemany`` (which SQLAlchemy sends as one multi-row
    ``INSERT``): the ORM's bulk machinery and a compilation per batch cost more than the
    statements' execution in PostgreSQL.
    """
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    touch = (
        update(_DEVICES)
        .where(_DEVICES.c.id.in_(bindparam("ids", expanding=True)), _DEVICES.c.revoked_ts.is_(None))
        .values(last_seen_ts=bindparam("now_ts"))
        .returning(_DEVICES.c.id)
    )
    samples = (
        dialect.insert(_TELEMETRY)
        .on_conflict_do_nothing(index_elements=["device_id", "sample_ts"])
        .returning(_TELEMETRY.c.device_id)
    )
    clear = delete(_WINDOWS).where(_WINDOWS.c.device_id.in_(bindparam("ids", expanding=True)))
    # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT; without it psycopg's
    # executemany runs the statement once per row.
    windows = insert(_WINDOWS).returning(_WINDOWS.c.device_id)
    renew = (
        update(_TASKS)
        .where(
            _TASKS.c.lease_device_id.in_(bindparam("ids", expanding=True)),
            _TASKS.c.state.in_(HOLDING_TASK_STATES),
        )
        .values(lease_expires_ts=bindparam("expires_ts"))
        .returning(_TASKS.c.id, _TASKS.c.lease_device_id)
    )
    return touch, samples, clear, windows, renew


# PostgreSQL: the whole batch in one statement (data-modifying CTEs, rows as arrays), of a fixed
# text that psycopg prepares: one round trip where five were. Every part sees the devices the
# first one found alive (not revoked). All parts run on one snapshot, so the heat windows,
# which a new heartbeat replaces whole, are written as an upsert of the new segments and a
# delete of the device's other ones (two parts that touch disjoint rows), not as a delete of
# all and an insert of the same keys. The answer: one row per alive device, per stored sample
# and per renewed lease.
_PG_BATCH = text(
    "WITH alive AS (UPDATE devices SET last_seen_ts = :now_ts "
    "WHERE id = ANY(CAST(:ids AS VARCHAR[])) AND revoked_ts IS NULL RETURNING id), "
    "samples AS (INSERT INTO telemetry (device_id, sample_ts, received_ts, room_temp_c, "
    "setpoint_c, power_w, device_temp_c, workload, hashrate_ths, task_id) "
    "SELECT * FROM unnest(CAST(:s_device_id AS VARCHAR[]), "
    "CAST(:s_sample_ts AS DOUBLE PRECISION[]), CAST(:s_received_ts AS DOUBLE PRECISION[]), "
    "CAST(:s_room_temp_c AS DOUBLE PRECISION[]), CAST(:s_setpoint_c AS DOUBLE PRECISION[]), "
    "CAST(:s_power_w AS DOUBLE PRECISION[]), CAST(:s_device_temp_c AS DOUBLE PRECISION[]), "
    "CAST(:s_workload AS VARCHAR[]), CAST(:s_hashrate_ths AS DOUBLE PRECISION[]), "
    "CAST(:s_task_id AS VARCHAR[])) "
    "AS s(device_id, sample_ts, received_ts, room_temp_c, setpoint_c, power_w, device_temp_c, "
    "workload, hashrate_ths, task_id) WHERE s.device_id IN (SELECT id FROM alive) "
    "ON CONFLICT (device_id, sample_ts) DO NOTHING RETURNING device_id), "
    "windows AS (INSERT INTO heat_windows (device_id, start_ts, duration_s, heat_power_w, "
    "received_ts) SELECT * FROM unnest(CAST(:w_device_id AS VARCHAR[]), "
    "CAST(:w_start_ts AS DOUBLE PRECISION[]), CAST(:w_duration_s AS DOUBLE PRECISION[]), "
    "CAST(:w_heat_power_w AS DOUBLE PRECISION[]), CAST(:w_received_ts AS DOUBLE PRECISION[])) "
    "AS w(device_id, start_ts, duration_s, heat_power_w, received_ts) "
    "WHERE w.device_id IN (SELECT id FROM alive) "
    "ON CONFLICT (device_id, start_ts) DO UPDATE SET duration_s = EXCLUDED.duration_s, "
    "heat_power_w = EXCLUDED.heat_power_w, received_ts = EXCLUDED.received_ts), "
    "cleared AS (DELETE FROM heat_windows AS h WHERE h.device_id IN (SELECT id FROM alive) "
    "AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:w_device_id AS VARCHAR[]), "
    "CAST(:w_start_ts AS DOUBLE PRECISION[])) AS n(device_id, start_ts) "
    "WHERE n.device_id = h.device_id AND n.start_ts = h.start_ts)), "
    "renewed AS (UPDATE tasks SET lease_expires_ts = :expires_ts "
    "WHERE lease_device_id IN (SELECT id FROM alive) AND state = ANY(CAST(:holding AS VARCHAR[])) "
    "RETURNING id, lease_device_id) "
    "SELECT 'alive' AS kind, id AS device_id, NULL AS task_id FROM alive "
    "UNION ALL SELECT 'sample', device_id, NULL FROM samples "
    "UNION ALL SELECT 'lease', lease_device_id, id FROM renewed"
)
_SAMPLE_COLUMNS = (
    "sample_ts",
    "room_temp_c",
    "setpoint_c",
    "power_w",
    "device_temp_c",
    "workload",
    "hashrate_ths",
    "task_id",
)


def _write_postgresql(
    connection: Connection, batch: Sequence[_Pending], now_ts: float, lease_s: float
) -> tuple[set[str], dict[str, int], dict[str, list[str]]]:
    """Store the batch in one statement (:data:`_PG_BATCH`): alive devices, samples, leases."""
    samples = [
        (pending.device_id, pending.now_ts, sample)
        for pending in batch
        for sample in pending.heartbeat.telemetry
    ]
    segments = [
        (pending.device_id, pending.now_ts, segment)
        for pending in batch
        for segment in pending.heartbeat.heat_window
    ]
    parameters: dict[str, Any] = {
        "now_ts": now_ts,
        "ids": [pending.device_id for pending in batch],
        "expires_ts": now_ts + lease_s,
        "holding": list(HOLDING_TASK_STATES),
        "s_device_id": [device_id for device_id, _, _ in samples],
        "s_received_ts": [received_ts for _, received_ts, _ in samples],
        "w_device_id": [device_id for device_id, _, _ in segments],
        "w_start_ts": [segment.start_ts for _, _, segment in segments],
        "w_duration_s": [segment.duration_s for _, _, segment in segments],
        "w_heat_power_w": [segment.heat_power_w for _, _, segment in segments],
        "w_received_ts": [received_ts for _, received_ts, _ in segments],
    }
    for name in _SAMPLE_COLUMNS:
        parameters[f"s_{name}"] = [getattr(sample, name) for _, _, sample in samples]
    alive: set[str] = set()
    stored: dict[str, int] = defaultdict(int)
    held: dict[str, list[str]] = defaultdict(list)
    for kind, device_id, task_id in connection.execute(_PG_BATCH, parameters):
        if kind == "alive":
            alive.add(str(device_id))
        elif kind == "sample":
            stored[str(device_id)] += 1
        else:
            held[str(device_id)].append(str(task_id))
    return alive, stored, held


class _LostBeforeCommitError(Exception):
    """The batch's connection was lost before its commit was sent: nothing of it was stored.

    Its ``__cause__`` is the database's error.
    """


def _write(
    connection: Connection, batch: Sequence[_Pending], lease_s: float
) -> list[StoredHeartbeat]:
    """Store one heartbeat per device of ``batch`` in one transaction on ``connection``.

    Raises
    ------
    _LostBeforeCommitError
        When a statement found the connection lost (the server restarted, the backend was
        terminated): the transaction never reached its commit, so the batch may be written
        again on a new connection. A connection lost at the commit itself is raised as it
        is: the commit may have been applied.
    """
    with connection.begin():
        try:
            return _statements_of_batch(connection, batch, lease_s)
        except Exception as error:
            if lost_connection(error):
                raise _LostBeforeCommitError from error
            raise


def _statements_of_batch(
    connection: Connection, batch: Sequence[_Pending], lease_s: float
) -> list[StoredHeartbeat]:
    """Run the statements of one batch in the transaction open on ``connection``.

    Five statements on SQLite; on PostgreSQL one (:func:`_write_postgresql`), and a
    ``SET LOCAL`` when the batch renewed a lease.
    """
    touch, samples_insert, clear, windows_insert, renew = _statements(connection.dialect.name)
    now_ts = max(pending.now_ts for pending in batch)
    stored: dict[str, int] = defaultdict(int)
    held: dict[str, list[str]] = defaultdict(list)
    if connection.dialect.name == "postgresql":
        alive, stored, held = _write_postgresql(connection, batch, now_ts, lease_s)
        if held:  # a renewed lease waits for the WAL's flush (see the module's docstring)
            connection.execute(_SYNC_COMMIT)
        return _answers(batch, alive, stored, held)
    ids = [pending.device_id for pending in batch]
    alive = set(connection.execute(touch, {"ids": ids, "now_ts": now_ts}).scalars())
    kept = [pending for pending in batch if pending.device_id in alive]
    samples = [
        {"device_id": pending.device_id, "received_ts": pending.now_ts, **sample.model_dump()}
        for pending in kept
        for sample in pending.heartbeat.telemetry
    ]
    if samples:
        for device_id in connection.execute(samples_insert, samples).scalars():
            stored[device_id] += 1
    if kept:
        connection.execute(clear, {"ids": [pending.device_id for pending in kept]})
    segments = [
        {"device_id": pending.device_id, "received_ts": pending.now_ts, **segment.model_dump()}
        for pending in kept
        for segment in pending.heartbeat.heat_window
    ]
    if segments:
        connection.execute(windows_insert, segments).close()
    if kept:
        renewed = connection.execute(renew, {"ids": sorted(alive), "expires_ts": now_ts + lease_s})
        for task_id, device_id in renewed:
            held[str(device_id)].append(str(task_id))
    return _answers(batch, alive, stored, held)


def _answers(
    batch: Sequence[_Pending],
    alive: set[str],
    stored: dict[str, int],
    held: dict[str, list[str]],
) -> list[StoredHeartbeat]:
    """Return what each heartbeat of ``batch`` stored, from what its transaction wrote."""
    return [
        StoredHeartbeat(
            revoked=pending.device_id not in alive,
            stored_samples=stored.get(pending.device_id, 0),
            duplicate_samples=len(pending.heartbeat.telemetry) - stored.get(pending.device_id, 0),
            leased_task_ids=tuple(sorted(held.get(pending.device_id, ()))),
        )
        for pending in batch
    ]


_Answer = tuple[_Pending, StoredHeartbeat | BaseException]


def _settle(batch: Sequence[_Answer]) -> None:
    """Answer each request of a batch on its event loop: one wake-up of each loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = defaultdict(list)
    for pending, outcome in batch:
        by_loop[pending.loop].append((pending, outcome))

    def deliver(answers: list[_Answer]) -> None:
        for pending, outcome in answers:
            if pending.future.done():  # the request went away
                continue
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # its event loop closed: nobody is waiting
            loop.call_soon_threadsafe(deliver, answers)


class HeartbeatWriter:
    """The process's writer of heartbeats: a thread that stores them in batches.

    Parameters
    ----------
    engine : Engine
        The database; the thread holds one connection of it while heartbeats keep coming.
    lease_s : float
        Leases the heartbeat's device holds are renewed to ``now_ts + lease_s`` [s].
    max_batch : int
        Most heartbeats stored in one transaction.
    """

    def __init__(self, engine: Engine, lease_s: float, max_batch: int = _MAX_BATCH) -> None:
        self._engine = engine
        self._lease_s = lease_s
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        # The thread holds a connection; an engine disposed of (without the app's lifespan,
        # as tests do) must not leave it open.
        event.listen(engine, "engine_disposed", lambda _engine: self.stop())
        self.batches = 0
        """Transactions written so far."""

    async def write(
        self, device_id: str, heartbeat: v1.Heartbeat, *, now_ts: float
    ) -> StoredHeartbeat:
        """Queue a heartbeat of ``device_id`` received at ``now_ts`` [POSIX s]; return once stored.

        Raises
        ------
        sqlalchemy.exc.SQLAlchemyError
            When its batch could not be stored (nothing of it was).
        """
        loop = asyncio.get_running_loop()
        pending = _Pending(device_id, heartbeat, now_ts, loop, loop.create_future())
        with self._lock:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="heatgrid-heartbeat-writer", daemon=True
                )
                self._thread.start()
            self._queue.append(pending)
            self._wake.notify()
        return await pending.future

    def stop(self) -> None:
        """Finish the heartbeats queued, then end the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        self._stopping = False

    def _take(self) -> list[_Pending] | None:
        """Wait for heartbeats; take up to ``max_batch`` of them, one per device."""
        with self._lock:
            while not self._queue:
                idle = self._stopping or not self._wake.wait(timeout=_IDLE_S)
                if idle and not self._queue:
                    self._thread = None  # ends; write() starts another when needed
                    return None
            batch: list[_Pending] = []
            later: list[_Pending] = []
            devices: set[str] = set()
            for pending in self._queue:
                if pending.device_id in devices or len(batch) >= self._max_batch:
                    later.append(pending)
                else:
                    devices.add(pending.device_id)
                    batch.append(pending)
            self._queue = later
            return batch

    def _connect(self) -> Connection:
        """Open the connection the thread holds across batches (no checkout, no ping each)."""
        connection = self._engine.connect()
        if connection.dialect.name == "postgresql":
            with connection.begin():  # this session only; never pooled again
                connection.execute(_ASYNC_COMMITS)
        return connection

    def _store(
        self, connection: Connection | None, batch: list[_Pending]
    ) -> tuple[Connection, list[StoredHeartbeat]]:
        """Store ``batch``; once more on a new connection if the held one was found lost.

        A held connection is not checked before use: after a database restart the first batch
        finds it dead before its commit (:class:`_LostBeforeCommitError`), nothing of it was
        stored, and it is written again on a new connection. A second loss is raised.
        """
        if connection is None:
            connection = self._connect()
        try:
            return connection, _write(connection, batch, self._lease_s)
        except _LostBeforeCommitError:
            _close(connection)
        connection = self._connect()
        return connection, _write(connection, batch, self._lease_s)

    def _run(self) -> None:
        connection: Connection | None = None
        try:
            while (batch := self._take()) is not None:
                try:
                    connection, outcomes = self._store(connection, batch)
                except Exception as failure:  # each request of the batch answers it
                    error = (
                        failure.__cause__
                        if isinstance(failure, _LostBeforeCommitError)
                        else failure
                    )
                    _LOG.warning("heartbeat batch failed", extra={"error": str(error)})
                    if connection is not None:
                        _close(connection)
                        connection = None
                    _settle([(pending, error or failure) for pending in batch])
                    continue
                self.batches += 1
                _settle(list(zip(batch, outcomes, strict=True)))
        finally:
            if connection is not None:
                _close(connection)


def _close(connection: Connection) -> None:
    """Close a held connection for good: invalidated, never returned to the pool."""
    with contextlib.suppress(Exception):
        connection.invalidate()
        connection.close()
